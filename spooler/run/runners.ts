/**
 * Where tasks run: runners, which own the per-task path (task-path.ts). The
 * daemon's main thread discovers and orders tasks and gives each runner
 * names; the runner claims, reads, decodes, runs and settles each one itself
 * and reports what became of it. Two kinds, each with a real user:
 *
 *   InProcessRunner (--processes 0)  on the daemon's own thread: least overhead, no isolation (in-process-runner.ts)
 *   ProcessRunners  (--processes N)  N worker processes the daemon can kill and replace (process-runners.ts)
 *
 * This module holds what both share: the spool's view of its runner
 * (SiteRunner), the daemon's view of all of them (Runners), and the error a
 * crashed runner's started tasks fail with.
 */
import type { RegisteredTasks } from '../task-names.js';
import type { PendingDir } from '../order/task-queue.js';
import type { TaskOutcome } from '../../runtime/results.js';
import type { Item } from './task-path.js';

/** The runner of one spool under one owner, as that spool's coordinator uses it. */
export interface SiteRunner {
  /** How many names it takes now (the daemon's free slots cap it further). */
  room(): number;
  /** Names to claim and run, in the queue's order; each is reported once (Stuck: twice). */
  give(items: Item[]): void;
  /** The owner was lost: running tasks' signals fire (ClaimLostError); their outcomes are ignored, their files left alone. */
  revoke(reason: Error): void;
  /** A stop: nothing more is given; with `lastTry`, stuck moves are tried once more. */
  stop(lastTry: boolean): void;
  /** Cancels the task `name` given to it: its AbortSignal fires, it ends as cancelled, killed after the kill grace (process runners). */
  cancel(name: string): void;
  /** Settles a claimed task whose runner died with it (read again on this thread). */
  settleOrphan(name: string, from: PendingDir, outcome: TaskOutcome): void;
  /**
   * From now on every task (`all`) or the tasks named are paused: names given
   * and not started yet go back (reported Unclaimed) and are not started.
   */
  pause(all: boolean, tasks: ReadonlySet<string> | undefined): void;
}

/** The daemon's view of the runners: start-up, readiness, the stop. */
export interface Runners {
  start(): Promise<void>;
  /** Whether names given now would start (false while every runner process is being replaced). */
  accepting(): boolean;
  registered(): RegisteredTasks;
  /** A stop: runners give back the names they have not started. */
  drain(): void;
  /** Ends whatever still runs (after the grace period). */
  stop(): Promise<void>;
  forceStop(): void;
  describe(): Record<string, unknown>;
}

/** The worker process running a task died (crash, out of memory, native abort, killed from outside). */
export class WorkerCrashedError extends Error {
  override name = 'WorkerCrashedError';
}
