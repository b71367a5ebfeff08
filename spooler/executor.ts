/**
 * Where claimed tasks run. The daemon claims, reads and decodes every task
 * itself and does every rename and unlink (so the crash table of
 * SPOOL-FORMAT.md, "Claiming", holds whatever happens to a task's code); an
 * executor only runs the decoded task and says how it ended:
 *
 *   InProcessExecutor (--processes 0)  in the daemon's own event loop: least overhead, no isolation
 *   WorkerPool        (--processes N)  in N worker processes it can kill and replace
 *
 * Besides the outcomes a task can return (results.ts), an executor may answer
 * `released`: the task did not fail, it was interrupted by something else (its
 * worker was killed to stop another task), so it goes back to the spool with
 * no attempt counted.
 */
import type { TaskOutcome } from '../runtime/results.js';
import type { TaskFile } from '../spool/task-file.js';

/** One claimed task, ready to run. */
export interface Job {
  /** The spool's root directory (the daemon's name for it). */
  spool: string;
  task: TaskFile;
  /** The file's bytes as read, for executors that pass the task on to another process. */
  bytes: Uint8Array;
  /** Run-time limit (ms): the task's own, else the daemon's --task-timeout; undefined for none. */
  timeoutMs: number | undefined;
}

export type Execution = TaskOutcome | { kind: 'released'; reason: string };

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
  /** A line of figures for the daemon's progress log. */
  describe(): Record<string, unknown>;
}

/** The worker process running a task died (crash, out of memory, native abort, killed from outside). */
export class WorkerCrashedError extends Error {
  override name = 'WorkerCrashedError';
}
