/**
 * Steps: what a chain, an onError callback, a child or a continuation is given
 * as (a TaskRequest from `fn.request(...args)`, or a TaskFunction that takes no
 * extra arguments), and the wire record a body carries for it (StepSpec,
 * spool/body.ts STEP_FIELDS; SPOOL-FORMAT.md, "Chains").
 *
 * A step carries the enqueue options that make sense for a task enqueued later
 * by a daemon: priority, postpone (as a delay from when it is enqueued: a Date
 * cannot be, it would be the producer's clock), retries and backoff, timeout,
 * keepResult, meta and encoding. Other options (unique keys, expires, hooks,
 * limits) are not carried: the task's registration in the daemon's modules
 * gives hooks and limits; unique and expires on a step are refused.
 */
import type { StepSpec } from '../spool/body.js';
import { InvalidOptionError } from '../spool/errors.js';
import { checkPriority, checkTaskName } from '../spool/name.js';
import { toWire, type PlainValue } from '../spool/wire.js';
import { toRetrySpec } from './backoff.js';
import { toMs } from './duration.js';
import type { EnqueueOptions, TaskFunction, TaskRequest } from './spooler.js';

export type { StepSpec } from '../spool/body.js';

/** A step as users give it: a request (`fn.request(...args)`) or a task wrapper (called with no extra arguments). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a wrapper of any signature: its arguments are not given here
export type Step = TaskRequest | TaskFunction<any[], unknown>;

/** Turns a step into the record a body carries. Throws InvalidOptionError for a step that cannot be one. */
export function toStep(step: Step, what = 'a step'): StepSpec {
  const request = requestOf(step, what);
  checkTaskName(request.name);
  const spec: StepSpec = { name: request.name };
  const args = trimTrailingUndefined(request.args ?? []);
  if (args.length > 0) spec.args = toWire(args, 'msgpack', `${what} (${request.name}) args`) as PlainValue[];
  const o: EnqueueOptions = request.options ?? {};
  if (o.priority !== undefined) {
    checkPriority(o.priority);
    spec.priority = o.priority;
  }
  if (o.postpone !== undefined) {
    if (o.postpone instanceof Date) throw new InvalidOptionError(`${what} (${request.name}): postpone must be a delay (ms or "30s"), not a Date: the step is enqueued later, by a daemon`);
    spec.delay = toMs(o.postpone, 'postpone');
  }
  const retry = toRetrySpec(o.retries, o.backoff);
  if (retry !== undefined) spec.retry = retry;
  if (o.timeout !== undefined) {
    const ms = toMs(o.timeout, 'timeout');
    if (ms <= 0) throw new InvalidOptionError('timeout must be more than 0 ms');
    spec.timeout = ms;
  }
  if (o.keepResult !== undefined) spec.keepResult = toMs(o.keepResult, 'keepResult');
  if (o.meta !== undefined) spec.meta = toWire(o.meta, 'msgpack', `${what} (${request.name}) meta`) as StepSpec['meta'];
  if (o.encoding !== undefined) spec.encoding = o.encoding;
  // A TaskFunction's own options are its registration's (they may hold a unique key function): only a request's are checked.
  if (!isTaskFunction(step) && (o.unique !== undefined || o.expires !== undefined)) {
    throw new InvalidOptionError(`${what} (${request.name}) cannot have ${o.unique !== undefined ? 'a unique key' : 'expires'}: a step is enqueued once by the daemon when its turn comes`);
  }
  return spec;
}

function requestOf(step: Step, what: string): TaskRequest {
  if (isTaskFunction(step)) return { name: step.taskName, args: [], options: step.options };
  if (typeof step === 'object' && step !== null && typeof (step as TaskRequest).name === 'string') return step as TaskRequest;
  throw new InvalidOptionError(`${what} must be a task (the wrapper spooler.task() returned) or a request (fn.request(...args)), got ${typeof step}`);
}

function isTaskFunction(step: unknown): step is TaskFunction<unknown[], unknown> {
  return typeof step === 'function' && typeof (step as { taskName?: unknown }).taskName === 'string';
}

function trimTrailingUndefined(args: readonly unknown[]): readonly unknown[] {
  let end = args.length;
  while (end > 0 && args[end - 1] === undefined) end--;
  return end === args.length ? args : args.slice(0, end);
}
