/**
 * One refill of the queue's window (task-queue.ts): the listings of pending/
 * and incoming/ streamed through, keeping only the best names the window has
 * room for (best-of.ts: O(room) memory whatever the listing), in slices the
 * caller may spread over several turns of the event loop.
 *
 *        queue.beginRefill()          offer(...) until every listing is done      queue.endRefill()
 *   ─────────────────────────▶ open ─────────────────────────────────────────▶ open ────────────────▶ committed
 *                               │ ▲   (between slices the daemon claims and runs       (the best names held,
 *                               └─┘    from the window as it was; see below)            cut-offs set anew)
 *
 * While a refill is open the queue goes on as before (takes, arrivals, its
 * old cut-offs), and records here what would make the commit wrong:
 *   - the names it gave out (`taken`): a name offered before it was taken
 *     would otherwise be held again at the commit, its file claimed or gone;
 *   - a cut-off moved back by a shrink (`dueShrunk`, `futureShrunk`): the names
 *     it dropped were held when the listing passed them, so were not offered,
 *     and the new cut-off must not go past them.
 * Names the queue holds when the listing passes them are not offered (they
 * are held, or taken: either way not waiting unseen), so the commit's
 * invariant is the queue's own: every task on disk before the new cut-off is
 * held or was taken.
 *
 * The price of streaming a listing over several turns: a task of better
 * priority than the window's may sit unseen while the listing goes on, but
 * never for longer than that one listing.
 */
import { roughDue } from '../../spool/name.js';
import { BestOf } from './best-of.js';
import { byDue, byName } from './name-order.js';
import type { PendingDir } from './task-queue.js';

/** Names offered between two looks at the clock (performance.now() per name would cost more than the comparison). */
const CLOCK_EVERY = 512;

/** What a listing counted: the whole backlog, as an estimate for the census (the window holds only part of it). */
export interface ListedCounts {
  incoming: number;
  pending: number;
  /** Of both, the names due when listed. */
  due: number;
}

export class WindowRefill {
  /** Names the queue gave out while this refill was open (never held again by its commit). */
  readonly taken = new Set<string>();
  /** The earliest cut-off a shrink set while this refill was open, per kind (undefined: none). */
  dueShrunk: string | undefined;
  futureShrunk: string | undefined;
  /** Names found that are not task names (not "." files), with their directory, for the caller. */
  readonly rejected: Array<[fileName: string, dir: PendingDir]> = [];
  readonly listed: ListedCounts = { incoming: 0, pending: 0, due: 0 };
  /** How many names hold() held at once (the commit then drops those after the new cut-offs). */
  heldAtOnce = 0;
  private readonly best = new Map<PendingDir, { due: BestOf<string>; future: BestOf<string> }>();

  constructor(
    readonly dueRoom: number,
    readonly futureRoom: number,
    private readonly now: number,
    /** Whether the queue holds the name now (it is not offered). */
    private readonly held: (fileName: string) => boolean,
    /** Names the caller wants left alone (held by this process, held back). */
    private readonly skip: ((fileName: string) => boolean) | undefined,
    /** Holds a due task now, before the commit (hold()); false when it comes after the queue's cut-off or is not a task name. */
    private readonly holdNow: (fileName: string, dir: PendingDir) => boolean,
  ) {}

  /**
   * The window is running dry while the listing goes on: the next `max` due
   * names of the listing are held at once, in the listing's order, rather
   * than offered (the rest as offer() would). So a daemon starting on a
   * million tasks claims within milliseconds, and a refill that takes longer
   * than the window lasts leaves no gap. Returns true when the listing ended,
   * false once `max` are held or performance.now() passed `until`.
   */
  hold(names: Iterator<string>, dir: PendingDir, max: number, until = Infinity): boolean {
    const { due } = this.bestOf(dir);
    const now = this.now;
    for (let i = 1, held = 0; held < max; i++) {
      if (i % CLOCK_EVERY === 0 && performance.now() >= until) return false;
      const r = names.next();
      if (r.done === true) return true;
      const fileName = r.value;
      if (fileName.charCodeAt(0) === 46 /* "." */) continue;
      const at = roughDue(fileName);
      if (!(at <= now) /* NaN, or not due: as offer() does */) {
        this.offerOne(fileName, dir, at);
        continue;
      }
      this.listed[dir]++;
      this.listed.due++;
      if (this.held(fileName) || this.skip?.(fileName) === true) continue;
      if (this.holdNow(fileName, dir)) {
        held++;
        this.heldAtOnce++;
      } else due.offer(fileName);
    }
    return false;
  }

  /**
   * Offers the names of `names` (a listing of `dir`) until it ends (returns
   * true) or performance.now() passes `until` (returns false: call again with
   * the same iterator to go on). Names beginning with "." are passed over.
   */
  offer(names: Iterator<string>, dir: PendingDir, until = Infinity): boolean {
    for (let i = 1; ; i++) {
      const r = names.next();
      if (r.done === true) return true;
      const fileName = r.value;
      if (fileName.charCodeAt(0) !== 46 /* "." */) this.offerOne(fileName, dir, roughDue(fileName));
      if (i % CLOCK_EVERY === 0 && performance.now() >= until) return false;
    }
  }

  private offerOne(fileName: string, dir: PendingDir, at: number): void {
    this.listed[dir]++;
    if (at !== at /* NaN */) {
      if (!this.held(fileName) && this.skip?.(fileName) !== true) this.rejected.push([fileName, dir]);
      return;
    }
    const kinds = this.bestOf(dir);
    let best = kinds.future;
    if (at <= this.now) {
      this.listed.due++;
      best = kinds.due;
    }
    // Most names of a deep backlog go no further than this one comparison.
    if (!best.wouldKeep(fileName)) best.passOver();
    else if (!this.held(fileName) && this.skip?.(fileName) !== true) best.offer(fileName);
  }

  private bestOf(dir: PendingDir): { due: BestOf<string>; future: BestOf<string> } {
    let kinds = this.best.get(dir);
    if (kinds === undefined) {
      kinds = { due: new BestOf<string>(this.dueRoom, byName), future: new BestOf<string>(this.futureRoom, byDue) };
      this.best.set(dir, kinds);
    }
    return kinds;
  }

  /** The best names of every listing, merged (each kind sorted, at most its room), and how many were left out. Empties this. */
  result(): { due: Array<[string, PendingDir]>; future: Array<[string, PendingDir]>; dueLeftOut: number; futureLeftOut: number } {
    const due: Array<[string, PendingDir]> = [];
    const future: Array<[string, PendingDir]> = [];
    let dueLeftOut = 0;
    let futureLeftOut = 0;
    for (const [dir, kinds] of this.best) {
      dueLeftOut += kinds.due.leftOut;
      futureLeftOut += kinds.future.leftOut;
      for (const n of kinds.due.takeSorted()) due.push([n, dir]);
      for (const n of kinds.future.takeSorted()) future.push([n, dir]);
    }
    this.best.clear();
    // Each directory's best, merged: the best of all within each room.
    due.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    future.sort((a, b) => (byDue(a[0], b[0]) ? -1 : 1));
    if (due.length > this.dueRoom) {
      dueLeftOut += due.length - this.dueRoom;
      due.length = this.dueRoom;
    }
    if (future.length > this.futureRoom) {
      futureLeftOut += future.length - this.futureRoom;
      future.length = this.futureRoom;
    }
    return { due, future, dueLeftOut, futureLeftOut };
  }
}
