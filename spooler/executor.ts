/**
 * Where claimed tasks run. The daemon claims, reads and decodes every task
 * itself and does every rename (so the crash table of SPOOL-FORMAT.md,
 * "Claiming", holds whatever happens to a task's code); an executor runs the
 * decoded task and says how it ended:
 *
 *   InProcessExecutor (--processes 0)  in the daemon's own event loop: least overhead, no isolation
 *   WorkerPool        (--processes N)  in N worker processes it can kill and replace
 *
 * Besides the outcomes a task can return (results.ts), an executor may answer
 * `released`: the task did not fail, it was interrupted by something else (its
 * worker was killed to stop another task), so it goes back to the spool with
 * no attempt counted.
 *
 * A task run in a worker process that ends processed or skipped has its file
 * removed (or archived) by that worker, at once, before anything else runs
 * there; the executor then answers `settled-by-runner`. A worker's report can
 * be lost (it is sent asynchronously; a task that blocks the worker's event
 * loop next keeps it from leaving, and the worker is then killed), but the
 * file cannot come back: a task whose function returned is never run again.
 */
import type { TaskOutcome } from '../runtime/results.js';
import type { TaskFile } from '../spool/task-file.js';
import type { RegisteredTasks } from './task-names.js';

/** One claimed task, ready to run. */
export interface Job {
  /** The spool's root directory (the daemon's name for it). */
  spool: string;
  task: TaskFile;
  /** Its path in the daemon's claim directory (active/<owner>/NAME). */
  claimedPath: string;
  /** The file's bytes as read, for executors that pass the task on to another process. */
  bytes: Uint8Array;
  /** Run-time limit (ms): the task's own, else the daemon's --task-timeout; undefined for none. */
  timeoutMs: number | undefined;
}

/**
 * A processed or skipped task whose claimed file its runner dealt with itself:
 *   removed   the runner removed it (or moved it to archive/). `outcome` is
 *             undefined when the runner ended before it could report which it
 *             was (found by the claimed file being gone after the worker died)
 *   missing   the runner found it gone: the claim was taken over (another
 *             daemon reclaimed it, so it will run again there)
 */
export type SettledByRunner = {
  kind: 'settled-by-runner';
  outcome: Extract<TaskOutcome, { kind: 'processed' | 'skipped' }> | undefined;
  file: 'removed' | 'missing';
};

export type Execution = TaskOutcome | { kind: 'released'; reason: string } | SettledByRunner;

export interface Executor {
  /** Ready to run tasks (worker processes started, task modules imported). Throws what stops start-up. */
  start(): Promise<void>;
  /** Whether a task handed over now would start at once (false while every worker is being replaced). */
  accepting(): boolean;
  /**
   * Runs a task. Never throws or rejects. A task that ended before run()
   * returns (a synchronous task function, run in this process) gives its
   * outcome as a value, so the caller can settle it without a promise.
   */
  run(job: Job): Execution | Promise<Execution>;
  /**
   * The daemon lost its claims on the tasks of `spool` now running: fire each
   * one's AbortSignal with `reason`. Each run still settles (its outcome is for
   * the caller to ignore): when the task stops, or `killGrace` ms later when its
   * worker process is killed. In the daemon's own process nothing can be
   * killed: such a run settles when its code ends.
   */
  revoke(spool: string, reason: Error): void;
  /** Ends the execution of whatever still runs (graceful stop, after the grace period). Runs not ended yet never settle. */
  stop(): Promise<void>;
  /** Same, synchronously, for a second signal. */
  forceStop(): void;
  /** What the task modules registered (known once start() resolved). */
  registered(): RegisteredTasks;
  /** A line of figures for the daemon's progress log. */
  describe(): Record<string, unknown>;
}

/** The worker process running a task died (crash, out of memory, native abort, killed from outside). */
export class WorkerCrashedError extends Error {
  override name = 'WorkerCrashedError';
}
