/**
 * What a task (or every task of a Spooler) adds around its runs: lifecycle
 * hooks (alsek's on_* and pre_op/post_op) and which thrown errors are worth a
 * retry (retryOn / noRetryOn).
 *
 *   spooler.task(charge, {
 *     noRetryOn: [CardDeclinedError, 'ValidationError'],   // these fail for good at once
 *     hooks: { onDeadLetter: (task, end) => alert(task.id, end.error) },
 *   });
 *   spooler.addHooks({ after: (task, end) => metrics.observe(task.name, end.durationMs) });
 *
 * Hooks run in the process that runs the task (the runner: a worker process,
 * or the daemon itself with --processes 0), inside the task's context
 * (taskContext() works), one after another: the task's own hooks, then its
 * Spooler's. `before` runs before the function; every other hook runs once the
 * task's file has been moved (deleted, archived, rescheduled or dead-lettered),
 * so a hook never makes a returned task run again and a crash while hooks run
 * loses the hook calls, never the task (hooks are at most once). A hook that
 * throws or rejects is logged and changes nothing; one that has not settled
 * after `hookTimeout` (default 10 s) is logged and no longer waited for, so it
 * holds the task's run slot at most that long (its code may go on running in
 * the background: a runner cannot stop one function call).
 *
 * The order of hooks for one run:
 *   before → (the function) → after → onSuccess | onSkip | onCancel
 *                                   | onFailure → onRetry | onDeadLetter      (an attempt that failed)
 *                                   | onRetry                                 (rescheduled() without an error)
 */
import { InvalidOptionError } from '../spool/errors.js';
import type { TaskContext } from './context.js';
import { toMs, type Duration } from './duration.js';
import type { TaskOutcome } from './results.js';

/** How a run ended, as the hooks see it (`outcome` in the closed set of endings, plus `rescheduled`). */
export interface RunEnd {
  outcome: 'processed' | 'skipped' | 'rescheduled' | 'dead' | 'cancelled';
  /** How long the function ran (ms). */
  durationMs: number;
  /** processed: what the task returned. */
  value?: unknown;
  /** The error of a failed attempt (or the dead letter's). */
  error?: unknown;
  /** skipped/failed/rescheduled: the reason the task gave. */
  reason?: string;
  /** rescheduled: due again in this many ms. */
  delayMs?: number;
}

type Hook<A extends unknown[]> = (task: TaskContext, ...args: A) => unknown;

export interface TaskHooks {
  /** Before each run (pre_op). */
  before?: Hook<[]>;
  /** After each run, whatever its outcome (post_op). */
  after?: Hook<[end: RunEnd]>;
  onSuccess?: Hook<[end: RunEnd]>;
  /** An attempt failed (threw, rejected, failed(), or a PermanentError): before onRetry or onDeadLetter. */
  onFailure?: Hook<[end: RunEnd]>;
  onRetry?: Hook<[end: RunEnd]>;
  onDeadLetter?: Hook<[end: RunEnd]>;
  onSkip?: Hook<[end: RunEnd]>;
  onCancel?: Hook<[end: RunEnd]>;
}

export const HOOK_NAMES = ['before', 'after', 'onSuccess', 'onFailure', 'onRetry', 'onDeadLetter', 'onSkip', 'onCancel'] as const;

/** An error class (matched with instanceof) or an error name (matched against error.name). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ErrorMatcher = string | (abstract new (...args: any[]) => Error);

export interface BehaviourOptions {
  /** Retry only errors that match one of these; any other thrown error fails the task for good at once. */
  retryOn?: readonly ErrorMatcher[];
  /** Never retry errors that match one of these: the task fails for good at once (a dead letter, no retry spent). */
  noRetryOn?: readonly ErrorMatcher[];
  hooks?: TaskHooks;
  /** How long a hook is waited for before it is abandoned (default 10 s). */
  hookTimeout?: Duration;
}

export const DEFAULT_HOOK_TIMEOUT_MS = 10_000;

/** What one run of one task does besides calling its function; undefined (the common case) costs nothing. */
export interface Behaviour {
  retryOn: readonly ErrorMatcher[] | undefined;
  noRetryOn: readonly ErrorMatcher[] | undefined;
  /** The task's hooks, then its Spooler's. */
  hooks: readonly TaskHooks[];
  hookTimeoutMs: number;
}

/** Checks behaviour options when a task or a Spooler is defined, so mistakes surface at import time. */
export function checkBehaviourOptions(options: BehaviourOptions, where: string): void {
  for (const key of ['retryOn', 'noRetryOn'] as const) {
    const list = options[key];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new InvalidOptionError(`${where}: ${key} must be a list of error classes or error names`);
    for (const m of list) {
      if (typeof m !== 'string' && typeof m !== 'function') throw new InvalidOptionError(`${where}: ${key} holds ${String(m)}; give error classes (e.g. TypeError) or error names (e.g. "TypeError")`);
    }
  }
  if (options.retryOn !== undefined && options.noRetryOn !== undefined) {
    throw new InvalidOptionError(`${where}: give retryOn or noRetryOn, not both (retryOn already fails for good every error it does not list)`);
  }
  checkHooks(options.hooks, where);
  if (options.hookTimeout !== undefined && toMs(options.hookTimeout, 'hookTimeout') <= 0) throw new InvalidOptionError(`${where}: hookTimeout must be more than 0 ms`);
}

export function checkHooks(hooks: TaskHooks | undefined, where: string): void {
  if (hooks === undefined) return;
  if (typeof hooks !== 'object' || hooks === null) throw new InvalidOptionError(`${where}: hooks must be an object such as { onSuccess(task, end) {} }`);
  for (const [key, value] of Object.entries(hooks)) {
    if (!(HOOK_NAMES as readonly string[]).includes(key)) throw new InvalidOptionError(`${where}: unknown hook "${key}"; hooks are ${HOOK_NAMES.join(', ')}`);
    if (typeof value !== 'function' && value !== undefined) throw new InvalidOptionError(`${where}: hook "${key}" must be a function`);
  }
}

/** Whether `error` matches one of `matchers` (a class by instanceof, a name by error.name). */
export function matchesError(error: unknown, matchers: readonly ErrorMatcher[]): boolean {
  for (const m of matchers) {
    if (typeof m === 'string') {
      if (typeof error === 'object' && error !== null && (error as { name?: unknown }).name === m) return true;
    } else if (error instanceof m) {
      return true;
    }
  }
  return false;
}

/**
 * A thrown error's outcome under retryOn/noRetryOn: `failed` (a dead letter at
 * once) when the task's options say the error is not worth a retry.
 */
export function applyRetryFilter(outcome: TaskOutcome, b: Behaviour): TaskOutcome {
  if (outcome.kind !== 'rescheduled' || outcome.error === undefined) return outcome;
  const error = outcome.error;
  if (b.noRetryOn !== undefined && matchesError(error, b.noRetryOn)) return { kind: 'failed', reason: `${errorLabel(error)} is not retried (noRetryOn): ${errorMessage(error)}`, error };
  if (b.retryOn !== undefined && !matchesError(error, b.retryOn)) return { kind: 'failed', reason: `${errorLabel(error)} is not among the errors retried (retryOn): ${errorMessage(error)}`, error };
  return outcome;
}

function errorLabel(error: unknown): string {
  const name = typeof error === 'object' && error !== null ? (error as { name?: unknown }).name : undefined;
  return typeof name === 'string' ? name : typeof error;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The hooks to call for an ending, in order. */
export function hooksFor(end: RunEnd): ReadonlyArray<Exclude<keyof TaskHooks, 'before'>> {
  switch (end.outcome) {
    case 'processed':
      return ['after', 'onSuccess'];
    case 'skipped':
      return ['after', 'onSkip'];
    case 'cancelled':
      return ['after', 'onCancel'];
    case 'rescheduled':
      return end.error === undefined ? ['after', 'onRetry'] : ['after', 'onFailure', 'onRetry'];
    case 'dead':
      return ['after', 'onFailure', 'onDeadLetter'];
  }
}

/** What a hook call that went wrong is reported as (the runner logs it against the task). */
export interface HookTrouble {
  hook: string;
  error?: unknown;
  timedOut?: number;
}

/**
 * Calls `names` of every hook set in turn, each bounded by the timeout. Resolves
 * (never rejects) once all have settled or been abandoned; `trouble` hears of
 * each that threw, rejected or hung. Undefined when no hook of those names is
 * set (nothing to wait for).
 */
export function callHooks(
  b: Behaviour,
  names: readonly (keyof TaskHooks)[],
  call: (hook: Hook<unknown[]>) => unknown,
  trouble: (t: HookTrouble) => void,
): Promise<void> | undefined {
  const calls: Array<[string, Hook<unknown[]>]> = [];
  for (const name of names) for (const set of b.hooks) {
    const hook = set[name] as Hook<unknown[]> | undefined;
    if (hook !== undefined) calls.push([name, hook]);
  }
  if (calls.length === 0) return undefined;
  return (async () => {
    for (const [name, hook] of calls) {
      let result: unknown;
      try {
        result = call(hook);
      } catch (error) {
        trouble({ hook: name, error });
        continue;
      }
      if (!isThenable(result)) continue;
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise<'hung'>((done) => (timer = setTimeout(() => done('hung'), b.hookTimeoutMs)));
      try {
        const settled = await Promise.race([Promise.resolve(result).then(() => 'ok' as const), hung]);
        if (settled === 'hung') trouble({ hook: name, timedOut: b.hookTimeoutMs });
      } catch (error) {
        trouble({ hook: name, error });
      } finally {
        clearTimeout(timer);
      }
    }
  })();
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
