/**
 * Children of a running task (the task context's enqueueChild*, waitForChildren
 * and then; runtime/context.ts). One FlowOfRun per run that uses them, made at
 * the first call: a task that enqueues no child pays nothing.
 *
 *   const ctx = taskContext();
 *   await ctx.enqueueChildren(files.map((f) => resize.request(f)), { limit: 3 });
 *   ctx.afterChildren(summarize);          // summarize([{ id, name, ending, value? ... }, ...]) runs once all have ended
 *
 * Each child gets an entry in children/<P>/ (spool/children.ts), made O_EXCL
 * before it is enqueued, and the body fields `flow` (P) and a kept result of
 * at least FLOW_KEEP_MS. Ids are derived (spool/children.ts flowDerivedId):
 * enqueueChild's from P, the attempt and the call's place (a rerun enqueues its
 * own children); enqueueChildOnce's from P, the task name and the arguments (a
 * rerun, or a second call, finds the entry and adds nothing).
 *
 * A batch with a limit: the first `limit` children go to incoming/; the others
 * wait in children/<P>/ as whole task files; each child of the batch that ends
 * (its runner, spooler/run/flow.ts) starts the next one. So at most `limit` of
 * the batch wait or run at once, across every daemon, with no lock and no slot:
 * the rename that starts a waiting child is taken by exactly one ending sibling.
 */
import { addChildEntry, childTaskExists, FLOW_KEEP_MS, queueChild } from '../spool/children.js';
import type { StepSpec } from '../spool/body.js';
import { derivedId } from '../spool/derived-id.js';
import { toStep, type Step } from './steps.js';
import { InvalidOptionError } from '../spool/errors.js';
import { readResult } from '../spool/results.js';
import { toMs } from './duration.js';
import type { Spooler, TaskFunction, TaskHandle, TaskRequest } from './spooler.js';
import type { WaitOptions } from './wait.js';

export interface ChildrenOptions {
  /** At most this many of these children wait or run at once (default: all at once). */
  limit?: number;
}

/** What the run that uses children knows about itself. */
export interface RunOfFlow {
  readonly id: string;
  readonly attempt: number;
  readonly spooler: Spooler;
}

/** The request of a step. */
export function requestOf(step: Step, what: string): TaskRequest {
  if (typeof step === 'function' && typeof (step as TaskFunction<unknown[], unknown>).taskName === 'string') {
    const fn = step as TaskFunction<unknown[], unknown>;
    return { name: fn.taskName, args: [], options: fn.options };
  }
  if (typeof step === 'object' && step !== null && typeof (step as TaskRequest).name === 'string') return step as TaskRequest;
  throw new InvalidOptionError(`${what}: a step is a task function (spooler.task(...)) or a request (fn.request(...args)), got ${typeof step}`);
}

export class FlowOfRun {
  /** The children this run enqueued (or found enqueued), in order: what waitForChildren and the continuation wait for. */
  readonly children: { id: string; name: string; handle: TaskHandle }[] = [];
  /** The continuation, set by afterChildren(). */
  thenStep: StepSpec | undefined;
  private calls = 0;

  constructor(private readonly run: RunOfFlow) {}

  async enqueueChild(step: Step): Promise<TaskHandle> {
    const [handle] = await this.enqueueBatch([requestOf(step, 'enqueueChild()')], undefined, 'child');
    return handle!;
  }

  async enqueueChildren(steps: readonly Step[], options: ChildrenOptions = {}): Promise<TaskHandle[]> {
    const limit = options.limit;
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) throw new InvalidOptionError(`enqueueChildren(): limit must be a whole number of at least 1, got ${String(limit)}`);
    if (!Array.isArray(steps)) throw new InvalidOptionError('enqueueChildren(): steps must be an array of steps');
    const requests = steps.map((s, i) => requestOf(s, `enqueueChildren(), step ${i}`));
    return this.enqueueBatch(requests, limit !== undefined && limit < requests.length ? limit : undefined, 'child');
  }

  /** Keyed by the task name and its arguments: a rerun of the parent, or a second call, adds nothing (existing: true). */
  async enqueueChildOnce(step: Step): Promise<TaskHandle> {
    const request = requestOf(step, 'enqueueChildOnce()');
    const [handle] = await this.enqueueBatch([request], undefined, 'once');
    return handle!;
  }

  afterChildren(step: Step): void {
    if (this.thenStep !== undefined) throw new InvalidOptionError('afterChildren() was called twice in one run; a task has one continuation');
    requestOf(step, 'afterChildren()');
    this.thenStep = toStep(step, 'afterChildren()');
  }

  /**
   * Waits for every child this run enqueued; their values in order. Throws the
   * first (in order) that did not end as processed, as handle.result() does
   * (TaskFailedError, TaskSkippedError, …), or ResultTimeoutError.
   */
  async waitForChildren(options: WaitOptions = {}): Promise<unknown[]> {
    const deadline = options.timeout === undefined ? undefined : Date.now() + toMs(options.timeout, 'timeout');
    const values: unknown[] = [];
    for (const c of this.children) {
      const left = deadline === undefined ? undefined : Math.max(1, deadline - Date.now());
      values.push(await c.handle.result({ ...options, ...(left !== undefined && { timeout: left }) }));
    }
    return values;
  }

  private async enqueueBatch(requests: readonly TaskRequest[], limit: number | undefined, kind: 'child' | 'once'): Promise<TaskHandle[]> {
    const { spooler, id: parent, attempt } = this.run;
    const layout = spooler.layout;
    const call = this.calls++;
    const pool = limit === undefined ? undefined : `a${attempt}c${call}`;
    // Encoded first: a bad argument enqueues nothing.
    const encoded = requests.map((request, i) => {
      if (request.options?.unique !== undefined) throw new InvalidOptionError(`children cannot take unique keys (task ${request.name}); use enqueueChildOnce(), keyed by the task and its arguments`);
      const id = kind === 'once' ? derivedId(parent, `once:${request.name}\n${JSON.stringify(request.args ?? [])}`) : derivedId(parent, `child:${attempt}:${call}:${i}`);
      const asked = request.options?.keepResult;
      const keepResult = Math.max(asked === undefined ? 0 : toMs(asked, 'keepResult'), FLOW_KEEP_MS);
      return spooler.encodeChild(request, id, { flow: parent, keepResult, ...(pool !== undefined && { flowPool: pool }) });
    });
    const handles: TaskHandle[] = [];
    for (let i = 0; i < encoded.length; i++) {
      const e = encoded[i]!;
      const request = requests[i]!;
      let handle: TaskHandle;
      if (!addChildEntry(layout, parent, e.id) && !lostBeforeEnqueue(spooler, parent, e.id, kind)) {
        handle = spooler.handleOfExisting(e.id, request.name, request.options?.priority);
      } else if (pool !== undefined && i >= limit!) {
        queueChild(layout, parent, pool, i, e.fileName, e.bytes);
        handle = spooler.handleOfExisting(e.id, request.name, request.options?.priority, false);
      } else {
        handle = await spooler.publishEncoded(e, request);
      }
      // A child enqueued once is one child of this run however often it is asked for.
      if (!this.children.some((c) => c.id === e.id)) this.children.push({ id: e.id, name: request.name, handle });
      handles.push(handle);
    }
    return handles;
  }
}

/**
 * An entry was there for a child enqueued once: enqueued before, unless the
 * run that made the entry died before its enqueue. Looked for (results/, and
 * the task folders by id): only reruns and second calls take this path.
 */
function lostBeforeEnqueue(spooler: Spooler, parent: string, id: string, kind: 'child' | 'once'): boolean {
  if (kind !== 'once') return false;
  const r = readResult(spooler.layout, id);
  if (r.ok || r.missing !== true) return false;
  return !childTaskExists(spooler.layout, parent, id);
}
