/**
 * The inline test mode: a Spooler whose enqueued tasks run in this process, with
 * no spool directory and no daemon, so task code can be tested with vitest (or
 * any runner) by calling the wrappers a tasks module exports.
 *
 *   const spooler = Spooler.inline();                 // a spooler with no directory
 *   const inline = tasksModuleSpooler.runInline();    // or switch the one a tasks module opened
 *   SPOOLERD_INLINE=1                                 // or: Spooler.open() makes inline spoolers (no folder made)
 *
 * What is the daemon's, shared and not copied: how a return or throw becomes an
 * outcome (runtime/execute.ts invoke, runtime/results.ts outcomeOf), retryOn /
 * noRetryOn and the hooks (runtime/task-behaviour.ts), retry or dead letter and
 * the backoff (runtime/results.ts nextAttempt), the errors a dead letter records
 * (describeError, failedError), how a waiter reads an ending (runtime/wait.ts
 * settleRecord: the same typed errors), and the task's code lookup
 * (findHandler). Arguments are encoded and decoded as in a task file (a value a
 * file cannot carry fails at the enqueue, as it would in production) and a
 * returned value is encoded as a result record is, so a task sees, and a waiter
 * gets, what a daemon would give them.
 *
 * When a task runs: never inside the enqueue call. Each enqueue schedules a
 * pump on the macrotask queue (setImmediate), which starts every due task, in
 * the daemon's order (priority, then due time, then enqueue order), up to
 * `concurrency` at once (default: no limit, as a daemon with enough slots; a
 * task that waits for its children needs them to run beside it). So an enqueue
 * resolves with its handle before the task runs, as in production; a task
 * enqueued from a task never runs nested in its parent's call stack (a chain of
 * a thousand steps does not grow the stack); and a test awaits `inline.idle()`
 * (or `spooler.drain()`) for everything enqueued, and all they enqueued, to end.
 *
 * Time: a postponed task's delay and a retry's backoff are waited for really
 * ('real'), scaled down ('compress': divided by `compress`, default 1000, so a
 * second becomes a millisecond) or not at all ('skip', the default for both:
 * the task is due at once, after the tasks that were due before it of the same
 * priority). Expiry is judged against the time the task would have started
 * (its due time, when that is later than now), so a skipped postpone does not
 * let a task escape its `expires`.
 *
 * Differences from a daemon, on purpose: every ending is kept (handle.result()
 * works without keepResult); a waiting task that is cancelled keeps a
 * `cancelled` ending (the daemon deletes its file and keeps none); concurrency
 * and rate limits (issue 17) are not applied; a task that ignores its
 * AbortSignal after its timeout or a cancel is settled `killGrace` later
 * although its code may still run (as the daemon does with --processes 0).
 */
import { InvalidOptionError } from '../spool/errors.js';
import { renameTask } from '../spool/name.js';
import { encodeResult, type NewResult, type RemoteErrorInfo, type ResultRecord, type TaskEnding } from '../spool/results.js';
import { decodeTask, type EncodedTask, type TaskFile } from '../spool/task-file.js';
import { decodeWire } from '../spool/wire.js';
import { errorStepTask, nextStepTask, type FailureArgument } from '../spool/flows.js';
import type { CancelResult } from '../spool/cancel.js';
import { runInTaskContext, TaskCancelledError, TaskTimeoutError, type TaskContext } from './context.js';
import { toMs, type Duration } from './duration.js';
import { describeRegistered, findBehaviour, findHandler, invoke, isThenable, UnknownTaskError } from './execute.js';
import { InlineTaskRun, type InlineLogRecord } from './inline-context.js';
import { InlineChildren } from './inline-children.js';
import { failedError, nextAttempt, rescheduledError, type TaskOutcome } from './results.js';
import { anyBehaviour, type Spooler } from './spooler.js';
import { applyRetryFilter, callHooks, hooksFor, type Behaviour, type HookTrouble, type RunEnd } from './task-behaviour.js';
import { ResultTimeoutError, settleRecord, type WaitOptions } from './wait.js';
import type { UniqueMode } from './unique-enqueue.js';
import type { Progress } from '../spool/progress.js';

export type { InlineLogRecord } from './inline-context.js';

/** How a delay is honoured inline: waited for, scaled down, or not waited for. */
export type InlineTime = 'real' | 'compress' | 'skip';
export const INLINE_TIMES: readonly InlineTime[] = ['real', 'compress', 'skip'];

export interface InlineOptions {
  /** A retry's backoff: 'skip' (default: retried at once), 'compress' or 'real'. */
  backoff?: InlineTime;
  /** A postponed task's delay (postpone, rescheduled({ delay })): 'skip' (default), 'compress' or 'real'. */
  postpone?: InlineTime;
  /** With 'compress': delays are divided by this (default 1000: a second becomes a millisecond). */
  compress?: number;
  /** How many tasks run at once (default: no limit). 1 runs them one after another. */
  concurrency?: number;
  /** The run-time limit of tasks that set none (the daemon's --task-timeout); default none. */
  taskTimeout?: Duration;
  /** How long a task may go on after its timeout or a cancel fired its AbortSignal before it is settled anyway (default 3s, as --kill-grace). */
  killGrace?: Duration;
  /** Where task logs go besides inline.logs: nowhere (default), the console, or a function. */
  log?: 'silent' | 'console' | ((record: InlineLogRecord) => void);
}

/** One run of a task (or one ending without a run: expired, cancelled while waiting), in the order they ended. */
export interface InlineRunRecord {
  id: string;
  name: string;
  /** The arguments as the task received them (decoded from the task's body). */
  args: readonly unknown[];
  /** Attempts that ended badly before this one (taskContext().attempt). */
  attempt: number;
  ending: RunEnd['outcome'] | 'expired';
  /** False for a task that ended without running (expired, or cancelled while it waited). */
  ran: boolean;
  value?: unknown;
  /** What the attempt threw (the error object itself), or the dead letter's error. */
  error?: unknown;
  reason?: string;
  /** rescheduled: the delay it got (before compressing or skipping). */
  delayMs?: number;
  parent?: string;
  durationMs: number;
  /** What the run reported with taskContext().progress(), in order. */
  progress?: Progress[];
}

interface Waiting {
  task: TaskFile;
  /** When it may start (ms, this host's clock), after compressing or skipping its delay. */
  readyAt: number;
  seq: number;
}

interface Running {
  task: TaskFile;
  run: InlineTaskRun;
  behaviour: Behaviour | undefined;
  startedAt: number;
  progress?: Progress[];
  timer?: NodeJS.Timeout;
  grace?: NodeJS.Timeout;
  cancelled?: boolean;
  /** Settled already (by the kill grace): whatever it returns later is ignored. */
  done?: boolean;
}

/** What an enqueue did: the task was added, or a unique key was held by `holder`. */
export type InlineAdded = { added: true; encoded: EncodedTask } | { added: false; holder: TaskFile };

/** The runner of an inline spooler: `spooler.runInline()` returns it. */
export class InlineRunner {
  private backoffMode: InlineTime = 'skip';
  private postponeMode: InlineTime = 'skip';
  private compressBy = 1000;
  private concurrency = Infinity;
  private taskTimeoutMs = 0;
  private killGraceMs = 3000;
  private logSink: ((record: InlineLogRecord) => void) | undefined;

  private readonly waiting: Waiting[] = [];
  private readonly running = new Map<string, Running>();
  /** Hook calls still going on for ended tasks (idle() waits for them). */
  private settling = 0;
  private seq = 0;
  private pumpQueued = false;
  private wakeTimer: NodeJS.Timeout | undefined;
  private wakeAt = Infinity;
  /** Unique keys ("name\nkey") and the id of the task holding each. */
  private readonly keys = new Map<string, string>();
  private readonly results = new Map<string, ResultRecord>();
  private readonly waiters = new Map<string, Array<(record: ResultRecord) => void>>();
  private readonly progressListeners = new Map<string, Set<(progress: Progress) => void>>();
  private idleWaiters: Array<() => void> = [];
  private readonly runs: InlineRunRecord[] = [];
  /** Children, their batches' limits and continuations (runtime/inline-children.ts). */
  private readonly children = new InlineChildren(
    () => this.spooler,
    (id) => void this.cancel(id),
    (parent, err) => this.writeLog({ level: 'error', msg: 'the continuation of a task cannot be enqueued', task: '', id: parent, attempt: 0, err: err instanceof Error ? err.message : String(err) }),
  );
  private readonly logRecords: InlineLogRecord[] = [];

  constructor(
    readonly spooler: Spooler,
    options: InlineOptions = {},
  ) {
    this.configure(options);
  }

  /** Changes the options (runInline() with options on a spooler already inline comes here). */
  configure(options: InlineOptions): this {
    const time = (value: InlineTime | undefined, what: string): InlineTime | undefined => {
      if (value !== undefined && !INLINE_TIMES.includes(value)) throw new InvalidOptionError(`inline ${what} must be one of ${INLINE_TIMES.join(', ')}, got ${JSON.stringify(value)}`);
      return value;
    };
    this.backoffMode = time(options.backoff, 'backoff') ?? this.backoffMode;
    this.postponeMode = time(options.postpone, 'postpone') ?? this.postponeMode;
    if (options.compress !== undefined) {
      if (!(options.compress >= 1)) throw new InvalidOptionError(`inline compress must be a number ≥ 1 (delays are divided by it), got ${String(options.compress)}`);
      this.compressBy = options.compress;
    }
    if (options.concurrency !== undefined) {
      if (!(options.concurrency === Infinity || (Number.isSafeInteger(options.concurrency) && options.concurrency >= 1))) throw new InvalidOptionError(`inline concurrency must be a whole number ≥ 1 (or Infinity), got ${String(options.concurrency)}`);
      this.concurrency = options.concurrency;
    }
    if (options.taskTimeout !== undefined) this.taskTimeoutMs = toMs(options.taskTimeout, 'taskTimeout');
    if (options.killGrace !== undefined) this.killGraceMs = toMs(options.killGrace, 'killGrace');
    if (options.log !== undefined) {
      const log = options.log;
      if (log === 'silent') this.logSink = undefined;
      else if (log === 'console') this.logSink = (r) => console.log(JSON.stringify(r));
      else if (typeof log === 'function') this.logSink = log;
      else throw new InvalidOptionError(`inline log must be 'silent', 'console' or a function, got ${JSON.stringify(log)}`);
    }
    return this;
  }

  /** Every run and ending so far, in the order they ended. */
  get history(): readonly InlineRunRecord[] {
    return this.runs;
  }

  /** The runs of the task named `name` (a task name, or the wrapper spooler.task() returned). */
  runsOf(name: string | { taskName: string }): InlineRunRecord[] {
    const n = typeof name === 'string' ? name : name.taskName;
    return this.runs.filter((r) => r.name === n);
  }

  /** What tasks logged (taskContext().log), and what the runner logged about them (a hook that failed). */
  get logs(): readonly InlineLogRecord[] {
    return this.logRecords;
  }

  /** How many tasks wait or run. */
  get pending(): number {
    return this.waiting.length + this.running.size;
  }

  /** The result record of task `id` (every ending is kept inline), or undefined while it has not ended. */
  record(id: string): ResultRecord | undefined {
    return this.results.get(id);
  }

  /**
   * Resolves once no task waits or runs and every hook has returned: everything
   * enqueued, and everything those tasks enqueued, has ended. A task postponed
   * with postpone 'real' is waited for. `timeout`: reject (naming what is left) after it.
   */
  idle(options: WaitOptions = {}): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.idleWaiters.push(done);
      if (options.timeout !== undefined) {
        const ms = toMs(options.timeout, 'idle timeout');
        timer = setTimeout(() => {
          this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
          const left = [...this.running.values()].map((r) => `${r.task.name} ${r.task.id} (running)`).concat(this.waiting.map((w) => `${w.task.name} ${w.task.id} (waiting)`));
          reject(new Error(`the inline spooler was not idle within ${ms} ms: ${left.join(', ') || `${this.settling} hook call(s) still going on`}`));
        }, ms);
      }
    });
  }

  /** Forgets every waiting task (they never run), every result, key, run and log record; tasks running now go on. */
  reset(): void {
    this.waiting.length = 0;
    this.keys.clear();
    this.results.clear();
    this.runs.length = 0;
    this.logRecords.length = 0;
    this.checkIdle();
  }

  /**
   * Adds a task (for Spooler): `encode(due?)` makes it (`due`: a due time to
   * keep, for uniqueMode 'preserve-due'). With a unique key held by a task
   * that waits, 'keep' returns the holder, 'replace' and 'preserve-due' drop it
   * for the new one; a running holder (uniqueWhileRunning) is always kept.
   */
  enqueue(name: string, uniqueKey: string | undefined, mode: UniqueMode, encode: (due?: number) => EncodedTask): InlineAdded {
    let keepDue: number | undefined;
    const keyName = uniqueKey === undefined ? undefined : `${name}\n${uniqueKey}`;
    if (keyName !== undefined) {
      const holderId = this.keys.get(keyName);
      if (holderId !== undefined) {
        const at = this.waiting.findIndex((w) => w.task.id === holderId);
        const holder = at >= 0 ? this.waiting[at]!.task : this.running.get(holderId)?.task;
        if (holder !== undefined && (mode === 'keep' || at < 0)) return { added: false, holder };
        if (holder !== undefined) {
          this.waiting.splice(at, 1);
          if (mode === 'preserve-due') keepDue = holder.due;
        }
      }
    }
    const encoded = encode(keepDue);
    const decoded = decodeTask(encoded.fileName, encoded.bytes);
    // encode() wrote what decodeTask() reads; a task that does not decode is a bug in the encoder, not the caller's.
    if (!decoded.ok) throw new Error(`an inline task does not decode: ${decoded.reason}`);
    if (keyName !== undefined) this.keys.set(keyName, encoded.id);
    this.add(decoded.task, this.readyAt(decoded.task.due - Date.now(), this.postponeMode));
    return { added: true, encoded };
  }

  /** The value of task `id` once it has ended, or the typed error of its ending (runtime/wait.ts); onProgress hears each progress meanwhile. */
  async wait(id: string, options: WaitOptions = {}): Promise<unknown> {
    const stop = options.onProgress === undefined ? undefined : this.onProgress(id, options.onProgress);
    let record: ResultRecord;
    try {
      record = await this.waitRecord(id, options);
    } finally {
      stop?.();
    }
    const settled = settleRecord(record);
    if ('error' in settled) throw settled.error;
    return settled.value;
  }

  /** The result record of task `id` once it has ended. */
  waitRecord(id: string, options: WaitOptions = {}): Promise<ResultRecord> {
    const kept = this.results.get(id);
    if (kept !== undefined) return Promise.resolve(kept);
    const timeoutMs = options.timeout === undefined ? undefined : toMs(options.timeout, 'timeout');
    return new Promise<ResultRecord>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (record: ResultRecord) => {
        clearTimeout(timer);
        resolve(record);
      };
      const list = this.waiters.get(id) ?? [];
      list.push(settle);
      this.waiters.set(id, list);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          const left = (this.waiters.get(id) ?? []).filter((w) => w !== settle);
          if (left.length === 0) this.waiters.delete(id);
          else this.waiters.set(id, left);
          reject(new ResultTimeoutError(id, timeoutMs));
        }, timeoutMs);
      }
    });
  }

  /** Calls `listener` with each progress task `id` reports (the last one at once, if it runs and reported one). Returns the function that stops it. */
  onProgress(id: string, listener: (progress: Progress) => void): () => void {
    const own = (p: Progress) => listener(p);
    let set = this.progressListeners.get(id);
    if (set === undefined) this.progressListeners.set(id, (set = new Set()));
    set.add(own);
    const now = this.progressOf(id);
    if (now !== undefined) own(now);
    return () => {
      set.delete(own);
      if (set.size === 0 && this.progressListeners.get(id) === set) this.progressListeners.delete(id);
    };
  }

  /** The last progress task `id` reported while it runs; undefined when it reported none or is not running. */
  progressOf(id: string): Progress | undefined {
    return this.running.get(id)?.progress?.at(-1);
  }

  /** spooler.cancel() inline: a waiting task is revoked (it never runs), a running one's AbortSignal fires. */
  cancel(id: string): CancelResult {
    const result = this.cancelOne(id);
    this.children.cancelled(id);
    return result;
  }

  private cancelOne(id: string): CancelResult {
    const at = this.waiting.findIndex((w) => w.task.id === id);
    if (at >= 0) {
      const [w] = this.waiting.splice(at, 1);
      const task = w!.task;
      this.releaseKey(task);
      this.keep(task, 'cancelled', { reason: 'cancelled before it ran', attempts: task.attempts });
      this.note(task, { ending: 'cancelled', ran: false, reason: 'cancelled before it ran', durationMs: 0 });
      this.checkIdle();
      return { kind: 'revoked', name: task.fileName };
    }
    const r = this.running.get(id);
    if (r === undefined) return { kind: 'not-found' };
    const already = r.cancelled === true;
    if (!already) {
      r.cancelled = true;
      clearTimeout(r.timer);
      clearTimeout(r.grace);
      r.run.abort(new TaskCancelledError());
      r.grace = setTimeout(() => {
        this.writeLog({ level: 'error', msg: 'a cancelled task ignored its AbortSignal; it is settled as cancelled after the kill grace (its code may still be running)', task: r.task.name, id: r.task.id, attempt: r.task.attempts, killGraceMs: this.killGraceMs });
        this.finishRun(r, { kind: 'cancelled' });
      }, this.killGraceMs);
    }
    return { kind: 'requested', name: r.task.fileName, owner: 'inline', already };
  }

  /** Tasks waiting, in the order they would start. */
  waitingTasks(): TaskFile[] {
    return [...this.waiting].sort(startOrder).map((w) => w.task);
  }

  // ---- running --------------------------------------------------------------

  private readyAt(delayMs: number, mode: InlineTime): number {
    const now = Date.now();
    if (delayMs <= 0 || mode === 'skip') return now;
    return now + (mode === 'real' ? delayMs : delayMs / this.compressBy);
  }

  private add(task: TaskFile, readyAt: number): void {
    this.waiting.push({ task, readyAt, seq: this.seq++ });
    this.schedulePump();
  }

  private schedulePump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    setImmediate(() => this.pump());
  }

  /** Starts every task that is due, in order, up to the concurrency; sets a timer for the next one due later. */
  private pump(): void {
    this.pumpQueued = false;
    const now = Date.now();
    this.waiting.sort(startOrder);
    let next = Infinity;
    // Only what waited when this pump began: a task enqueued by a task started here (a child, whose batch
    // limit is set once its enqueue call returns) waits for the next pump, as it would for a daemon's next pickup.
    for (const w of [...this.waiting]) {
      if (this.running.size >= this.concurrency) break;
      if (w.readyAt > now) {
        next = Math.min(next, w.readyAt);
        continue;
      }
      const at = this.waiting.indexOf(w);
      // Gone meanwhile: cancelled, or replaced under its unique key, by a task started in this pump.
      if (at < 0) continue;
      // A child of a batch whose limit is reached waits for a sibling to end.
      if (!this.children.mayStart(w.task.id, w.task.attempts)) continue;
      this.waiting.splice(at, 1);
      this.start(w.task);
    }
    for (const w of this.waiting) if (w.readyAt > now) next = Math.min(next, w.readyAt);
    if (next !== Infinity && next !== this.wakeAt) {
      clearTimeout(this.wakeTimer);
      this.wakeAt = next;
      this.wakeTimer = setTimeout(() => {
        this.wakeAt = Infinity;
        this.pump();
      }, Math.max(0, next - now));
    }
    this.checkIdle();
  }

  private start(task: TaskFile): void {
    const body = task.body;
    if (body.unique !== undefined && body.uniqueWhile !== 'running') this.releaseKey(task);
    // Judged at the time it would have started: a skipped postpone does not let it escape its expiry.
    if (body.expires !== undefined && body.expires <= Math.max(Date.now(), task.due)) return this.expire(task);
    const r: Running = { task, run: undefined as never, behaviour: undefined, startedAt: performance.now() };
    r.run = new InlineTaskRun(task, this.spooler, (record) => this.writeLog(record), (p) => this.reported(r, p), this.children);
    this.running.set(task.id, r);
    const timeout = body.timeout ?? this.taskTimeoutMs;
    if (timeout > 0) this.arm(r, timeout);
    let outcome: TaskOutcome | Promise<TaskOutcome>;
    try {
      outcome = this.execute(r);
    } catch (error) {
      outcome = { kind: 'rescheduled', error };
    }
    if (outcome instanceof Promise) {
      outcome.then(
        (o) => this.ended(r, o),
        (error: unknown) => this.ended(r, { kind: 'rescheduled', error }),
      );
    } else {
      this.ended(r, outcome);
    }
  }

  private reported(r: Running, p: Progress): void {
    if (r.done === true) return;
    (r.progress ??= []).push(p);
    const listeners = this.progressListeners.get(r.task.id);
    if (listeners !== undefined) for (const l of [...listeners]) l(p);
  }

  /** As the daemon's runner (spooler/run/run-task.ts TaskRun.execute): the code, its `before` hooks, the retry filter. */
  private execute(r: Running): TaskOutcome | Promise<TaskOutcome> {
    const dir = this.spooler.dir;
    const handler = findHandler(dir, r.task);
    if (handler === undefined) {
      return { kind: 'rescheduled', error: new UnknownTaskError(`no task named "${r.task.name}" (type ${r.task.body.type}) is registered; ${describeRegistered(dir)}`) };
    }
    const b = anyBehaviour() ? findBehaviour(dir, r.task) : undefined;
    r.behaviour = b;
    const call = () => runInTaskContext(r.run, () => invoke(handler, r.task));
    if (b === undefined) return call();
    const run = () => {
      const outcome = call();
      return isThenable(outcome) ? outcome.then((o) => applyRetryFilter(o, b)) : applyRetryFilter(outcome, b);
    };
    const before = this.callHooks(r, ['before'], undefined);
    return before === undefined ? run() : before.then(run);
  }

  /** The task's timeout fires its AbortSignal; one that has not ended `killGrace` later is counted as failed. */
  private arm(r: Running, timeoutMs: number): void {
    r.timer = setTimeout(() => {
      r.run.abort(new TaskTimeoutError(timeoutMs));
      r.grace = setTimeout(() => {
        this.writeLog({ level: 'error', msg: 'a task ignored its AbortSignal after its timeout; it is counted as failed (its code may still be running)', task: r.task.name, id: r.task.id, attempt: r.task.attempts, timeoutMs, killGraceMs: this.killGraceMs });
        const error = new TaskTimeoutError(timeoutMs, `, nor within ${this.killGraceMs} ms after its AbortSignal fired; it may still be running`);
        this.finishRun(r, { kind: 'rescheduled', error });
      }, this.killGraceMs);
    }, timeoutMs);
  }

  private ended(r: Running, outcome: TaskOutcome): void {
    if (r.done === true) return;
    this.finishRun(r, r.cancelled === true ? { kind: 'cancelled' } : outcome);
  }

  private finishRun(r: Running, outcome: TaskOutcome): void {
    r.done = true;
    clearTimeout(r.timer);
    clearTimeout(r.grace);
    this.running.delete(r.task.id);
    this.settle(r, outcome, Math.round(performance.now() - r.startedAt));
  }

  /** The daemon's settle (spooler/run/task-path.ts), in memory: the ending kept, a retry queued, then the hooks. */
  private settle(r: Running, outcome: TaskOutcome, durationMs: number): void {
    const task = r.task;
    const attempts = task.attempts + 1;
    let end: RunEnd;
    switch (outcome.kind) {
      case 'processed': {
        this.endKey(task);
        // As the daemon: its next chain step is made before its result is kept (a value that cannot be passed on is said in the result), and enqueued after.
        const next = task.body.chain !== undefined && task.body.chain.length > 0 ? this.prepareNext(task, outcome.value) : undefined;
        this.keep(task, 'processed', { value: outcome.value, attempts, ...(typeof next === 'string' && { nextError: next }) });
        if (next !== undefined && typeof next !== 'string') this.addEncoded(next);
        end = { outcome: 'processed', durationMs, ...(outcome.value !== undefined && { value: outcome.value }) };
        break;
      }
      case 'skipped':
        this.endKey(task);
        this.keep(task, 'skipped', { reason: outcome.reason, attempts });
        end = { outcome: 'skipped', durationMs, ...(outcome.reason !== undefined && { reason: outcome.reason }) };
        break;
      case 'cancelled':
        this.endKey(task);
        this.keep(task, 'cancelled', { attempts });
        end = { outcome: 'cancelled', durationMs };
        break;
      case 'rescheduled': {
        const next = nextAttempt(task.attempts, task.body.retry, outcome.delay);
        if (!next.retry) {
          end = this.bury(task, next.failures, rescheduledError(outcome), outcome, durationMs);
          break;
        }
        const due = Date.now() + next.delay;
        const retried: TaskFile = { ...task, attempts: next.failures, due, fileName: renameTask(task, { due, attempts: next.failures }) };
        // A delay the task asked for is a postpone; one from its backoff is a backoff.
        this.add(retried, this.readyAt(next.delay, outcome.delay !== undefined ? this.postponeMode : this.backoffMode));
        end = { outcome: 'rescheduled', durationMs, delayMs: next.delay, ...(outcome.error !== undefined && { error: outcome.error }), ...(outcome.reason !== undefined && { reason: outcome.reason }) };
        break;
      }
      case 'failed':
        end = this.bury(task, attempts, failedError(outcome), outcome, durationMs);
        break;
    }
    this.note(task, { ending: end.outcome, ran: true, durationMs, value: end.value, error: end.error, reason: end.reason, delayMs: end.delayMs, progress: r.progress });
    const hooks = r.behaviour === undefined ? undefined : this.callHooks(r, hooksFor(end), end);
    if (hooks === undefined) return this.schedulePump();
    this.settling++;
    void hooks.then(() => {
      this.settling--;
      this.schedulePump();
    });
  }

  /** A dead letter: out of retries, or failed for good. */
  private bury(task: TaskFile, attempts: number, error: RemoteErrorInfo, outcome: TaskOutcome, durationMs: number): RunEnd {
    this.endKey(task);
    this.keep(task, 'dead', { error, attempts });
    if (task.body.onError !== undefined) {
      // Its onError task (SPOOL-FORMAT.md, "Chains"), with the failure as its first argument.
      const failure: FailureArgument = { id: task.id, name: task.name, attempts, error: error.name === undefined ? { message: error.message } : { name: error.name, message: error.message } };
      try {
        this.addEncoded(errorStepTask(task, failure, Date.now(), this.spooler.options.maxBytes));
      } catch (err) {
        this.writeLog({ level: 'error', msg: 'the onError task of a dead letter cannot be enqueued', task: task.name, id: task.id, attempt: task.attempts, onError: task.body.onError.name, err: (err as Error).message });
      }
    }
    const thrown = 'error' in outcome ? outcome.error : undefined;
    const reason = 'reason' in outcome ? outcome.reason : undefined;
    return { outcome: 'dead', durationMs, error: thrown ?? error, ...(reason !== undefined && { reason }) };
  }

  private expire(task: TaskFile): void {
    const reason = `not started by ${new Date(task.body.expires!).toISOString()}`;
    this.endKey(task);
    this.keep(task, 'expired', { reason, attempts: task.attempts });
    this.note(task, { ending: 'expired', ran: false, reason, durationMs: 0 });
    this.schedulePump();
  }

  /** The next step of a processed chain step (spool/flows.ts nextStepTask), or why it cannot be enqueued. */
  private prepareNext(task: TaskFile, value: unknown): EncodedTask | string {
    try {
      return nextStepTask(task, value, Date.now(), this.spooler.options.maxBytes);
    } catch (err) {
      const problem = `the next step of the chain (${task.body.chain![0]!.name}) was not enqueued: the value cannot be passed on: ${(err as Error).message}`;
      this.writeLog({ level: 'error', msg: 'a chain stops: the value a step returned cannot be given to the next step', task: task.name, id: task.id, attempt: task.attempts, err: (err as Error).message });
      return problem;
    }
  }

  /** Adds a task made by the runner (a chain's next step, an onError task), due after its own delay. */
  private addEncoded(encoded: EncodedTask): void {
    const decoded = decodeTask(encoded.fileName, encoded.bytes);
    if (!decoded.ok) throw new Error(`an inline task does not decode: ${decoded.reason}`);
    this.add(decoded.task, this.readyAt(decoded.task.due - Date.now(), this.postponeMode));
  }

  /** Keeps the ending as a result record, encoded and decoded as the daemon's is (a value it cannot keep says so), and wakes its waiters. */
  private keep(task: TaskFile, ending: TaskEnding, end: { value?: unknown; reason?: string | undefined; error?: RemoteErrorInfo; attempts: number; nextError?: string }): void {
    const finishedAt = Date.now();
    const result: NewResult = { id: task.id, name: task.name, ending, attempts: end.attempts, owner: 'inline', finishedAt, keepUntil: finishedAt };
    if (end.value !== undefined) result.value = end.value;
    if (end.reason !== undefined) result.reason = end.reason;
    if (end.error !== undefined) result.error = end.error;
    if (end.nextError !== undefined) result.nextError = end.nextError;
    const encoded = encodeResult(result, task.encoding, this.spooler.options.maxBytes);
    if (encoded.problem !== undefined) this.writeLog({ level: 'error', msg: 'the value a task returned cannot be kept; its result record says so', task: task.name, id: task.id, attempt: task.attempts, problem: encoded.problem });
    const record = decodeWire(encoded.bytes, task.encoding) as ResultRecord;
    this.results.set(task.id, record);
    // Every ending kept here is final (a retry keeps none): the parent's continuation, a batch's next child.
    this.children.ended(record);
    const waiting = this.waiters.get(task.id);
    if (waiting === undefined) return;
    this.waiters.delete(task.id);
    for (const w of waiting) w(record);
  }

  private note(task: TaskFile, r: Omit<InlineRunRecord, 'id' | 'name' | 'args' | 'attempt' | 'parent'>): void {
    const record: InlineRunRecord = { id: task.id, name: task.name, args: task.body.args ?? [], attempt: task.attempts, ending: r.ending, ran: r.ran, durationMs: r.durationMs };
    if (r.value !== undefined) record.value = r.value;
    if (r.error !== undefined) record.error = r.error;
    if (r.reason !== undefined) record.reason = r.reason;
    if (r.delayMs !== undefined) record.delayMs = r.delayMs;
    if (r.progress !== undefined) record.progress = r.progress;
    if (task.body.parent !== undefined) record.parent = task.body.parent;
    this.runs.push(record);
  }

  /** A uniqueWhile-running task has ended: its key goes (a retry keeps it). */
  private endKey(task: TaskFile): void {
    if (task.body.uniqueWhile === 'running') this.releaseKey(task);
  }

  private releaseKey(task: TaskFile): void {
    if (task.body.unique === undefined) return;
    const keyName = `${task.name}\n${task.body.unique}`;
    if (this.keys.get(keyName) === task.id) this.keys.delete(keyName);
  }

  private callHooks(r: Running, names: Parameters<typeof callHooks>[1], end: RunEnd | undefined): Promise<void> | undefined {
    const call = (hook: (task: TaskContext, ...args: unknown[]) => unknown) => runInTaskContext(r.run, () => (end === undefined ? hook(r.run) : hook(r.run, end)));
    return callHooks(r.behaviour!, names, call, (t: HookTrouble) => {
      const base = { task: r.task.name, id: r.task.id, attempt: r.task.attempts, hook: t.hook };
      if (t.timedOut !== undefined) this.writeLog({ ...base, level: 'error', msg: 'a task hook did not finish within its hookTimeout; it is no longer waited for and the outcome stands', hookTimeoutMs: t.timedOut });
      else this.writeLog({ ...base, level: 'warn', msg: 'a task hook failed; the outcome stands', error: t.error instanceof Error ? t.error.message : String(t.error) });
    });
  }

  private writeLog(record: InlineLogRecord): void {
    this.logRecords.push(record);
    this.logSink?.(record);
  }

  private isIdle(): boolean {
    return this.waiting.length === 0 && this.running.size === 0 && this.settling === 0;
  }

  private checkIdle(): void {
    if (this.waiting.length === 0 && this.wakeTimer !== undefined) {
      // Nothing left to wake for (the last waiting task was cancelled or reset away).
      clearTimeout(this.wakeTimer);
      this.wakeTimer = undefined;
      this.wakeAt = Infinity;
    }
    if (!this.isIdle() || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

/** The daemon's order among due tasks: priority, then due time, then the order they were enqueued in. */
function startOrder(a: Waiting, b: Waiting): number {
  return a.task.priority - b.task.priority || a.task.due - b.task.due || a.seq - b.seq;
}
