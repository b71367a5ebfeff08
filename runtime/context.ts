/**
 * The task context: what a running task can know about itself, without it
 * being passed as an argument (task functions keep their own signature, and
 * stay callable as plain functions).
 *
 *   export const resize = spooler.task(async function resize(path: string) {
 *     const task = taskContext();               // throws NotInTaskError outside a task
 *     task.log.info('resizing', { path });
 *     await sharp(path).resize(100).toFile(out, { signal: task.signal });
 *     await notify(path);                        // enqueued from inside: body.parent = task.id
 *   });
 *
 * The daemon (in its own process with --processes 0, or in a worker process)
 * runs every task inside an AsyncLocalStorage scope holding its context, so
 * currentTask() works across awaits, timers and callbacks started by the task.
 * Tasks enqueued while a context is current record its id as their `parent`.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { SpoolError } from '../spool/errors.js';
import type { Spooler, TaskHandle } from './spooler.js';
import type { ChildrenOptions } from './children.js';
import type { Step } from './steps.js';
import type { WaitOptions } from './wait.js';

/** A logger bound to one task: every record carries the task's name, id and attempt. */
export interface TaskLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface TaskContext {
  /** The task id (stays the same over retries). */
  readonly id: string;
  /** The task name (the registered function's name for fcall tasks). */
  readonly name: string;
  /** Attempts that ended badly before this run: 0 on the first run. */
  readonly attempt: number;
  /** The claimed file's name. */
  readonly fileName: string;
  /** The spooler of the spool the task came from. */
  readonly spooler: Spooler;
  /**
   * Fires when the task's timeout expires (reason: a TaskTimeoutError), the task
   * is cancelled (a TaskCancelledError: `spool cancel`, spooler.cancel()) or the
   * daemon lost its claim on the task (a ClaimLostError).
   */
  readonly signal: AbortSignal;
  /** Whether the task was cancelled: it ends as cancelled (not retried) whatever it returns now. */
  readonly cancelled: boolean;
  readonly log: TaskLogger;
  /** Id of the task that enqueued this one, if any. */
  readonly parent: string | undefined;
  /** Enqueues a child of this task (its entry in children/<id>/ first; runtime/children.ts). */
  enqueueChild(step: Step): Promise<TaskHandle>;
  /** Enqueues children; with `limit`, at most that many of them wait or run at once, across every daemon. */
  enqueueChildren(steps: readonly Step[], options?: ChildrenOptions): Promise<TaskHandle[]>;
  /** Enqueues a child keyed by its task name and arguments: a rerun of this task, or a second call, adds nothing (`existing: true`). */
  enqueueChildOnce(step: Step): Promise<TaskHandle>;
  /** Waits inside the task for every child this run enqueued: their values in order; throws as handle.result() does. */
  waitForChildren(options?: WaitOptions): Promise<unknown[]>;
  /**
   * The continuation: once every child this run enqueued has ended (any ending), `step` is enqueued exactly once with
   * `[{ id, name, ending, value?, error?, reason? }]` (in the order the children were enqueued) as its first argument.
   * Written when this task ends as processed; the task does not wait for its children (it holds no slot).
   */
  afterChildren(step: Step): void;
  /**
   * Reports how far the task is: `fraction` from 0 to 1 (checked: InvalidOptionError), and a short
   * message (cut to 200 characters). Cheap to call in a loop: at most one write per 200 ms reaches
   * progress/<id>.json (the latest value always does), which `spool ls`, `spool show` and waiting
   * producers (handle.result({ onProgress }), spooler.onProgress()) read. Removed when the run ends.
   */
  progress(fraction: number, message?: string): void;
}

/** taskContext() was called outside a running task. */
export class NotInTaskError extends SpoolError {
  constructor() {
    super('SPOOL_NOT_IN_TASK', 'taskContext() was called outside a running task; use currentTask() to test whether code runs inside one');
  }
}

/** The task's timeout expired: the reason of its AbortSignal, and the error recorded for the attempt. */
export class TaskTimeoutError extends Error {
  override name = 'TaskTimeoutError';
  constructor(readonly timeoutMs: number, detail = '') {
    super(`the task did not finish within its timeout of ${timeoutMs} ms${detail}`);
  }
}

/**
 * The daemon lost its claim on the task while it ran: it was stalled (or its
 * clock was off) for longer than --stale-after, so other daemons took it for
 * dead and may be running the task again. The reason of the task's AbortSignal;
 * whatever the task returns after it is ignored.
 */
export class ClaimLostError extends Error {
  override name = 'ClaimLostError';
  constructor(message = 'the daemon lost its claim on this task (it was stalled for longer than --stale-after); another daemon may be running it: stop') {
    super(message);
  }
}

/**
 * The task was cancelled while it ran (`spool cancel <id>`, `spool rm <id>`,
 * spooler.cancel(id)): the reason of its AbortSignal. Whatever the task returns
 * after it, it ends as cancelled, is not retried, and its file is removed (or
 * archived); one that has not stopped --kill-grace later is killed.
 */
export class TaskCancelledError extends Error {
  override name = 'TaskCancelledError';
  constructor(message = 'the task was cancelled (spool cancel, or spooler.cancel()); stop') {
    super(message);
  }
}

/** Shared through globalThis, like the spooler registry, so a second copy of spoolerd in the process sees the same scope. */
const STORAGE = Symbol.for('spoolerd.taskContext');
const storage = ((globalThis as Record<symbol, unknown>)[STORAGE] ??= new AsyncLocalStorage<TaskContext>()) as AsyncLocalStorage<TaskContext>;

/** The context of the task this code runs in, or undefined outside a task. */
export function currentTask(): TaskContext | undefined {
  return storage.getStore();
}

/** The context of the task this code runs in. Throws NotInTaskError outside a task. */
export function taskContext(): TaskContext {
  const context = storage.getStore();
  if (context === undefined) throw new NotInTaskError();
  return context;
}

/** Runs `fn` as the task `context` (for the daemon's executors). */
export function runInTaskContext<T>(context: TaskContext, fn: () => T): T {
  return storage.run(context, fn);
}
