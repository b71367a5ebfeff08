/**
 * Chains: tasks that run one after the other, each given the value the one
 * before it returned as its first argument (SPOOL-FORMAT.md, "Chains").
 *
 *   const h = await chain(fetchPage.request(url), parse, store.request('pages')).onError(alert).enqueue();
 *   const h = await fetchPage.then(parse).then(store)(url);      // the same, from the wrapper
 *   await h.last();                                              // store's value
 *
 * Only the first task is written here; its body carries the rest (`chain`)
 * and `onError`, and the daemon that processes each step enqueues the next
 * one, exactly once, with a deterministic id (spool/derived-id.ts): so every
 * step's id is known at once (ChainHandle.steps). Steps keep their results for
 * a day unless they say otherwise, so that last() can wait for the end.
 */
import type { StepSpec } from '../spool/body.js';
import { derivedId } from '../spool/derived-id.js';
import { InvalidOptionError } from '../spool/errors.js';
import type { ResultRecord } from '../spool/results.js';
import { toMs } from './duration.js';
import type { EnqueueOptions, Spooler, TaskFunction, TaskHandle, TaskRequest } from './spooler.js';
import { toStep, type Step } from './steps.js';
import { ResultTimeoutError, settleRecord, TaskNotProcessedError, type WaitOptions } from './wait.js';

/** How long the steps of a chain keep their results unless they say otherwise: a day (last() waits on them). */
export const CHAIN_KEEP_RESULT_MS = 86_400_000;

/** The handle of an enqueued chain: the first task's handle, every step's id, and the last step's value. */
export interface ChainHandle extends TaskHandle {
  /** Every step's task id, the first task's first (ids are deterministic: known before the steps exist). */
  readonly steps: readonly string[];
  /**
   * The value of the last step once it is processed. Rejects as result() does with the error of the
   * first step that did not end as processed (TaskFailedError, …), ChainBrokenError when a step's value
   * could not be passed on, ResultTimeoutError after `timeout` (for the whole chain).
   */
  last(options?: WaitOptions): Promise<unknown>;
}

/** A step was processed but its value could not be given to the next step: the chain ended there. */
export class ChainBrokenError extends TaskNotProcessedError {
  constructor(record: ResultRecord) {
    super('SPOOL_CHAIN_BROKEN', `task ${record.name} ${record.id} was processed, but the chain stops there: ${record.nextError ?? 'its next step was not enqueued'}`, 'processed', record);
  }
}

/** A chain to enqueue: chain(…), spooler.chain(…), fn.then(…). Immutable: each call returns a new one. */
export class ChainRequest {
  constructor(
    private readonly spooler: Spooler,
    private readonly first: TaskRequest,
    private readonly next: readonly StepSpec[],
    private readonly errorStep?: StepSpec,
  ) {}

  /** Adds a step at the end. */
  then(step: Step): ChainRequest {
    return new ChainRequest(this.spooler, this.first, [...this.next, chainStep(step, 'chain step')], this.errorStep);
  }

  /** A task enqueued once if any step ends as dead (out of retries, or failed for good), with `{ id, name, attempts, error }` first. */
  onError(step: Step): ChainRequest {
    return new ChainRequest(this.spooler, this.first, this.next, chainStep(step, 'onError'));
  }

  /** Enqueues the first task (with the rest in its body). */
  async enqueue(): Promise<ChainHandle> {
    const options: EnqueueOptions = { ...this.first.options };
    if (options.unique !== undefined) throw new InvalidOptionError(`the first task of a chain (${this.first.name}) cannot have a unique key`);
    options.keepResult ??= CHAIN_KEEP_RESULT_MS;
    const flow = { ...(this.next.length > 0 && { chain: [...this.next] }), ...(this.errorStep !== undefined && { onError: this.errorStep }) };
    const handle = await this.spooler.enqueueFlow({ ...this.first, options }, flow);
    return chainHandle(this.spooler, handle, this.next.length);
  }
}

/** A chain: `first` (a request, `fn.request(...args)`), then each of `next` with the value before it first. */
export function chain(first: TaskRequest, ...next: Step[]): ChainRequest {
  const spooler = spoolerOf(first) ?? next.map(spoolerOf).find((s) => s !== undefined);
  if (spooler === undefined) throw new InvalidOptionError('chain(): cannot tell which spool to enqueue on: give a request made by fn.request(...), or call spooler.chain(...)');
  return chainOn(spooler, first, next);
}

/** chain() on a given spooler (spooler.chain()). */
export function chainOn(spooler: Spooler, first: TaskRequest, next: readonly Step[]): ChainRequest {
  if (typeof first !== 'object' || first === null || typeof first.name !== 'string') {
    throw new InvalidOptionError('the first task of a chain must be a request with its arguments: fn.request(...args)');
  }
  return new ChainRequest(spooler, first, next.map((s) => chainStep(s, 'chain step')), undefined);
}

/**
 * `fn.then(next)`: a callable with fn's arguments that enqueues fn with the
 * chain (resolving to its ChainHandle), with `.then()` and `.onError()` to add more.
 */
export interface ChainedFunction<A extends unknown[]> {
  (...args: A): Promise<ChainHandle>;
  then(step: Step): ChainedFunction<A>;
  onError(step: Step): ChainedFunction<A>;
}

export function chainedFunction<A extends unknown[]>(fn: TaskFunction<A, unknown>, next: readonly StepSpec[], errorStep: StepSpec | undefined): ChainedFunction<A> {
  const call = ((...args: A) => new ChainRequest(fn.spooler, fn.request(...args), next, errorStep).enqueue()) as ChainedFunction<A>;
  // Defined, not assigned: a function with a `then` method would be taken for a promise by `await`; a
  // ChainedFunction is never awaited itself (its call is).
  Object.defineProperties(call, {
    then: { value: (step: Step) => chainedFunction(fn, [...next, chainStep(step, 'chain step')], errorStep) },
    onError: { value: (step: Step) => chainedFunction(fn, next, chainStep(step, 'onError')) },
  });
  return call;
}

/** A step of a chain: as toStep, keeping its result a day unless it says otherwise. */
function chainStep(step: Step, what: string): StepSpec {
  const spec = toStep(step, what);
  spec.keepResult ??= CHAIN_KEEP_RESULT_MS;
  return spec;
}

function chainHandle(spooler: Spooler, first: TaskHandle, more: number): ChainHandle {
  const steps = [first.id];
  for (let i = 0; i < more; i++) steps.push(derivedId(steps[i]!, 'next'));
  const handle = first as ChainHandle;
  Object.defineProperties(handle, {
    steps: { value: Object.freeze(steps), enumerable: true },
    last: { value: (options: WaitOptions = {}) => waitForLast(spooler, steps, options) },
  });
  return handle;
}

/** Waits for each step in turn (one shared watch of results/): the first that did not go on decides. */
async function waitForLast(spooler: Spooler, steps: readonly string[], options: WaitOptions): Promise<unknown> {
  const timeoutMs = options.timeout === undefined ? undefined : toMs(options.timeout, 'timeout');
  const deadline = timeoutMs === undefined ? undefined : performance.now() + timeoutMs;
  for (let i = 0; i < steps.length; i++) {
    const left = deadline === undefined ? undefined : Math.max(0, deadline - performance.now());
    let record: ResultRecord;
    try {
      record = await spooler.waitRecord(steps[i]!, left === undefined ? {} : { timeout: left });
    } catch (err) {
      if (err instanceof ResultTimeoutError && timeoutMs !== undefined) throw new ResultTimeoutError(steps[i]!, timeoutMs);
      throw err;
    }
    const last = i === steps.length - 1;
    if (record.ending === 'processed' && !last) {
      if (record.nextError !== undefined) throw new ChainBrokenError(record);
      continue;
    }
    const settled = settleRecord(record);
    if ('error' in settled) throw settled.error;
    return settled.value;
  }
  return undefined;
}

/** The spooler a request or task wrapper belongs to, when it says (fn.request() marks its requests). */
function spoolerOf(x: unknown): Spooler | undefined {
  if (typeof x === 'function') return (x as { spooler?: Spooler }).spooler;
  if (typeof x === 'object' && x !== null) return (x as { [REQUEST_SPOOLER]?: Spooler })[REQUEST_SPOOLER];
  return undefined;
}

/** The hidden property fn.request() sets on its requests: the spooler that made them. */
export const REQUEST_SPOOLER = Symbol.for('spoolerd.requestSpooler');
