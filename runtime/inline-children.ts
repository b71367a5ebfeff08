/**
 * Children of a task in the inline test mode (runtime/inline.ts): the task
 * context's enqueueChild, enqueueChildren({ limit }), enqueueChildOnce,
 * waitForChildren and then (the continuation), kept in memory where a daemon
 * keeps children/<P>/ (issue 18's contract, runtime/children.ts):
 *
 *   - a child is an ordinary enqueue from inside the parent (its `parent` is set);
 *   - a batch with a limit: at most `limit` of its children have started and not
 *     ended at once (a child waiting for a retry still counts), the others wait;
 *   - enqueueChildOnce is keyed by the parent, the task name and the arguments;
 *   - the continuation is enqueued once, when the parent has ended as processed
 *     and every child it enqueued has ended (any ending), with
 *     `[{ id, name, ending, value?, error?, reason? }]` first, in enqueue order;
 *   - cancelling the parent cancels its children that have not ended, and no
 *     continuation is enqueued.
 */
import { InvalidOptionError } from '../spool/errors.js';
import type { ResultRecord } from '../spool/results.js';
import { toMs } from './duration.js';
import type { Spooler, TaskFunction, TaskHandle, TaskRequest } from './spooler.js';
import type { WaitOptions } from './wait.js';

/** A step: a request (`fn.request(...args)`) or a task function (called with no arguments). */
export type ChildStep = TaskRequest | TaskFunction<never[], unknown>;

/** One child's ending, as the continuation receives it. */
export interface ChildEnding {
  id: string;
  name: string;
  ending: ResultRecord['ending'];
  value?: unknown;
  error?: ResultRecord['error'];
  reason?: string;
}

interface Family {
  children: { id: string; name: string }[];
  once: Map<string, TaskHandle>;
  then?: TaskRequest;
  /** The parent ended as processed (the continuation may go once the children have ended). */
  parentDone: boolean;
  continued: boolean;
  cancelled: boolean;
}

/** A batch's limit: how many of its children have started and not ended. */
interface Gate {
  limit: number;
  active: number;
}

export class InlineChildren {
  private readonly families = new Map<string, Family>();
  private readonly parentOf = new Map<string, string>();
  private readonly gates = new Map<string, Gate>();
  private readonly endings = new Map<string, ChildEnding>();

  constructor(
    private readonly spooler: () => Spooler,
    private readonly cancel: (id: string) => void,
    /** A continuation that could not be enqueued (its arguments cannot be stored): said in the runner's log. */
    private readonly trouble: (parent: string, err: unknown) => void,
  ) {}

  private family(parent: string): Family {
    let f = this.families.get(parent);
    if (f === undefined) this.families.set(parent, (f = { children: [], once: new Map(), parentDone: false, continued: false, cancelled: false }));
    return f;
  }

  async enqueueChild(parent: string, step: ChildStep): Promise<TaskHandle> {
    const [handle] = await this.enqueueChildren(parent, [step]);
    return handle!;
  }

  /**
   * Enqueues each step as a child of `parent`. With a limit, the children are
   * gated before the event loop turns (the enqueues resolve on microtasks, the
   * runner starts tasks on the next macrotask), so none starts over it.
   */
  async enqueueChildren(parent: string, steps: readonly ChildStep[], options: { limit?: number } = {}): Promise<TaskHandle[]> {
    const limit = options.limit;
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) throw new InvalidOptionError(`enqueueChildren(): limit must be a whole number of at least 1, got ${String(limit)}`);
    if (!Array.isArray(steps)) throw new InvalidOptionError('enqueueChildren(): steps must be an array of steps');
    const requests = steps.map((s, i) => requestOf(s, `enqueueChildren(), step ${i}`));
    const f = this.family(parent);
    const handles: TaskHandle[] = [];
    for (const r of requests) {
      if (r.options?.unique !== undefined) throw new InvalidOptionError(`children cannot take unique keys (task ${r.name}); use enqueueChildOnce(), keyed by the task and its arguments`);
      handles.push(await this.spooler().enqueue({ ...r, options: { ...r.options, parent } }));
    }
    const gate = limit !== undefined && limit < handles.length ? { limit, active: 0 } : undefined;
    for (const h of handles) {
      f.children.push({ id: h.id, name: h.name });
      this.parentOf.set(h.id, parent);
      if (gate !== undefined) this.gates.set(h.id, gate);
    }
    return handles;
  }

  async enqueueChildOnce(parent: string, step: ChildStep): Promise<TaskHandle> {
    const r = requestOf(step, 'enqueueChildOnce()');
    const f = this.family(parent);
    const key = `${r.name}\n${JSON.stringify(r.args ?? [])}`;
    const known = f.once.get(key);
    if (known !== undefined) return { ...known, existing: true, result: (o?: WaitOptions) => known.result(o), progress: () => known.progress() };
    const handle = await this.enqueueChild(parent, step);
    f.once.set(key, handle);
    return handle;
  }

  /** The children's values in order; throws as handle.result() does for the first that was not processed. */
  async waitForChildren(parent: string, options: WaitOptions = {}): Promise<unknown[]> {
    const deadline = options.timeout === undefined ? undefined : Date.now() + toMs(options.timeout, 'timeout');
    const values: unknown[] = [];
    for (const c of this.families.get(parent)?.children ?? []) {
      const left = deadline === undefined ? undefined : Math.max(1, deadline - Date.now());
      values.push(await this.spooler().wait(c.id, left === undefined ? {} : { timeout: left }));
    }
    return values;
  }

  afterChildren(parent: string, step: ChildStep): void {
    const f = this.family(parent);
    if (f.then !== undefined) throw new InvalidOptionError('afterChildren() was called twice in one run; a task has one continuation');
    f.then = requestOf(step, 'afterChildren()');
  }

  /** Whether a waiting task may start now (its batch's limit). Counts it as started when it may. */
  mayStart(id: string, attempts: number): boolean {
    const gate = this.gates.get(id);
    if (gate === undefined || attempts > 0) return true;
    if (gate.active >= gate.limit) return false;
    gate.active++;
    return true;
  }

  /** A task has ended for good (not a retry): a parent ended as processed, or a child ended. */
  ended(record: ResultRecord): void {
    const gate = this.gates.get(record.id);
    if (gate !== undefined) {
      // A child that never started (cancelled, expired while waiting) took no place in its batch.
      if (record.attempts > 0) gate.active--;
      this.gates.delete(record.id);
    }
    const f = this.families.get(record.id);
    if (f !== undefined && record.ending === 'processed') {
      f.parentDone = true;
      this.continueIfDone(record.id, f);
    }
    const parent = this.parentOf.get(record.id);
    if (parent === undefined) return;
    this.endings.set(record.id, endingOf(record));
    const pf = this.families.get(parent);
    if (pf !== undefined) this.continueIfDone(parent, pf);
  }

  /** `spooler.cancel(parent)`: its children that have not ended are cancelled too, and no continuation comes. */
  cancelled(parent: string): void {
    const f = this.families.get(parent);
    if (f === undefined) return;
    f.cancelled = true;
    for (const c of f.children) if (!this.endings.has(c.id)) this.cancel(c.id);
  }

  private continueIfDone(parent: string, f: Family): void {
    if (f.then === undefined || !f.parentDone || f.continued || f.cancelled) return;
    if (!f.children.every((c) => this.endings.has(c.id))) return;
    f.continued = true;
    const endings = f.children.map((c) => this.endings.get(c.id)!);
    const step = f.then;
    this.spooler()
      .enqueue({ ...step, args: [endings, ...(step.args ?? [])], options: { ...step.options, parent } })
      .catch((err: unknown) => this.trouble(parent, err));
  }
}

function endingOf(r: ResultRecord): ChildEnding {
  const e: ChildEnding = { id: r.id, name: r.name, ending: r.ending };
  if (r.value !== undefined) e.value = r.value;
  if (r.error !== undefined) e.error = r.error;
  if (r.reason !== undefined) e.reason = r.reason;
  return e;
}

function requestOf(step: ChildStep, what: string): TaskRequest {
  if (typeof step === 'function' && typeof (step as { taskName?: unknown }).taskName === 'string') {
    const fn = step as TaskFunction<never[], unknown>;
    return { name: fn.taskName, args: [], options: fn.options };
  }
  if (typeof step === 'object' && step !== null && typeof (step as TaskRequest).name === 'string') return step as TaskRequest;
  throw new InvalidOptionError(`${what}: a step is a task function (spooler.task(...)) or a request (fn.request(...args)), got ${typeof step}`);
}
