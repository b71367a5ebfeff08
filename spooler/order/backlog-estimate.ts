/**
 * How many tasks wait on disk in all, for the census (metrics.ts), when the
 * queue holds only a window of them (task-queue.ts): the last listing's
 * counts (a refill's, or a listing of incoming/ alone) less the tasks taken
 * since, never below what is held. Arrivals left on disk since that listing
 * are counted at the next one. Counting is a few additions per listing and
 * one per task taken: nothing is listed for it.
 */
import type { ListedCounts } from './refill.js';
import type { PendingDir } from './task-queue.js';

export class BacklogEstimate {
  /** The last listing's counts; undefined before the first. */
  private listed: ListedCounts | undefined;
  private takenSince = { incoming: 0, pending: 0, due: 0 };

  /** A refill's listings of both folders counted these. */
  listedAll(counts: ListedCounts): void {
    this.listed = { ...counts };
    this.takenSince = { incoming: 0, pending: 0, due: 0 };
  }

  /** A listing of one folder alone counted `entries`. */
  listedOne(dir: PendingDir, entries: number): void {
    if (this.listed === undefined) return;
    this.listed[dir] = entries;
    this.takenSince[dir] = 0;
  }

  /** A due task was taken from `dir`. */
  taken(dir: PendingDir): void {
    this.takenSince[dir]++;
    this.takenSince.due++;
  }

  /** The tasks waiting in `dir`, `held` of them in the queue. */
  inDir(dir: PendingDir, held: number): number {
    return this.listed === undefined ? held : Math.max(held, this.listed[dir] - this.takenSince[dir]);
  }

  /** Of those, the due ones, `held` of them in the queue. */
  due(held: number): number {
    return this.listed === undefined ? held : Math.max(held, this.listed.due - this.takenSince.due);
  }
}
