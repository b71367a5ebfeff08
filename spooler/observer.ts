/**
 * What the daemon tells observers about its tasks, and the one observer it
 * keeps: a tally per spool that the metrics endpoint (metrics.ts) and the
 * status file (status-file.ts) read when they need it (a scrape, a timer).
 *
 * ServedSpool calls an observer at the points where it already decides a
 * task's fate, so these calls are on the per-task path: each one must cost a
 * few field increments. Nothing here allocates per task (after a task name's
 * first appearance), formats, or does I/O; prom-client is only touched at
 * scrape time. Totals that need no task name (quarantined, lost, reclaimed)
 * are ServedSpool.stats, counted there already.
 */
/** What the tally needs of a task: its registered name (runners report only that, never a body). */
export type TaskFile = { readonly name: string };

export interface SpoolObserver {
  /** A claimed task starts running; it was claimed (read, decoded) `waitMs` ago. */
  started(task: TaskFile, waitMs: number): void;
  /** A run ended after `runMs`; `failed`: it threw, timed out or its worker died (the attempt counts). */
  ran(task: TaskFile, runMs: number, failed: boolean): void;
  /** Its file is gone (or archived): done. */
  processed(task: TaskFile): void;
  skipped(task: TaskFile): void;
  /** Moved to pending/ for another attempt (a failure, or rescheduled() by the task). */
  rescheduled(task: TaskFile): void;
  /** Moved to dead/. */
  dead(task: TaskFile): void;
}

/** Upper bounds (seconds) of the run-time buckets: from a no-op task to a long job. */
export const RUN_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] as const;
/** Upper bounds (seconds) of the claim-to-start buckets: a task claimed ahead waits for a run slot. */
export const WAIT_SECONDS_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30] as const;
/**
 * Distinct task names tallied one by one; later ones are counted under
 * OTHER_TASKS. Names come from files anyone allowed to produce may write:
 * without a cap they could grow the daemon's memory and the metrics without end.
 */
export const MAX_TASK_NAMES = 500;
export const OTHER_TASKS = '_other';

/** A histogram kept as plain counts: observe() is a short loop and two additions (prom-client's costs a label hash). */
export class LocalHistogram {
  /** counts[i]: observations ≤ bounds[i] and > bounds[i-1]; the last one is above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(seconds: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += seconds;
    this.count++;
  }
}

/** Counters of one task name (one spool), since the daemon started. */
export class TaskNameTally {
  processed = 0;
  skipped = 0;
  rescheduled = 0;
  dead = 0;
  /** Runs that ended in an error (counted in rescheduled or dead too, once their file has moved). */
  failed = 0;
  readonly runSeconds = new LocalHistogram(RUN_SECONDS_BUCKETS);
}

/** The observer every spool has: counts by task name and timings, read by the metrics and the status file. */
export class Tally implements SpoolObserver {
  readonly byName = new Map<string, TaskNameTally>();
  readonly waitSeconds = new LocalHistogram(WAIT_SECONDS_BUCKETS);

  started(_task: TaskFile, waitMs: number): void {
    this.waitSeconds.observe(waitMs / 1000);
  }

  ran(task: TaskFile, runMs: number, failed: boolean): void {
    const t = this.of(task.name);
    t.runSeconds.observe(runMs / 1000);
    if (failed) t.failed++;
  }

  processed(task: TaskFile): void {
    this.of(task.name).processed++;
  }

  skipped(task: TaskFile): void {
    this.of(task.name).skipped++;
  }

  rescheduled(task: TaskFile): void {
    this.of(task.name).rescheduled++;
  }

  dead(task: TaskFile): void {
    this.of(task.name).dead++;
  }

  private of(name: string): TaskNameTally {
    let t = this.byName.get(name);
    if (t === undefined) {
      if (this.byName.size >= MAX_TASK_NAMES) name = OTHER_TASKS;
      t = this.byName.get(name);
      if (t === undefined) this.byName.set(name, (t = new TaskNameTally()));
    }
    return t;
  }
}
