/**
 * The daemon's in-memory view of the pending tasks of one spool: a window of
 * the next tasks to run, which of them are due, and when the next one falls
 * due. The rest of a large backlog stays on disk, in order, until the window
 * runs low and is refilled from a listing.
 *
 * Due tasks sit in a heap ordered by file name, which is the execution order
 * (priority, then due time, then id: see SPOOL-FORMAT.md). Future tasks sit in a
 * heap ordered by due time; one timer, set for the earliest, moves them over.
 * Picking the next task is O(log n) however large the backlog, and nothing runs
 * while every task is in the future.
 *
 * When several daemons serve the spool, the due tasks are split by claim
 * share (due-tasks.ts, claim-shares.ts) and take() gives this daemon's own
 * first. How many tasks wait beyond the window is estimated from the
 * listings (backlog-estimate.ts), for the census.
 *
 * The window, and its memory trade-off. A queued name costs ~0.2 KB here (the
 * string, its map entry, its heap slot) and ~0.7 KB of RSS all told: holding
 * every name of a million-task backlog cost ~300 MB and grew without bound with
 * the queue. So at most `window` names are held (default WINDOW, ~20 MB), each
 * kind of task cut at a point of its own order:
 *
 *   due tasks     by file name (the execution order)   cut at `dueCutoff`
 *   future tasks  by due time, then name               cut at `futureCutoff`
 *
 * Invariant (what makes it safe): every task file on disk that comes before
 * its kind's cut-off is held here (or was taken). A name after the cut-off may
 * or may not be held; one that is not is left on disk and found by a later
 * refill, so nothing is forgotten. An arrival before the cut-off is held (a
 * task of better priority still goes first); one after it is left on disk.
 * When the window overflows, shrink() drops the worst of each kind and moves
 * the cut-off back to the last name kept. When the due tasks held fall below a
 * quarter of the window, or the future tasks held reach the future cut-off,
 * the queue asks for a refill once (`wantsRefill`); the caller streams both
 * directories through a WindowRefill (refill.ts: beginRefill(), then its
 * offer() a slice at a time, then endRefill()), which keeps the best names it
 * has room for and sets the cut-offs anew; refill() does all three at once.
 *
 * The price: a refill lists the directories (~0.4 s per million names), about
 * once per 3/4 of a window of tasks run, ~0.3 µs per name listed, so a few
 * µs per task with a million queued. A postponed task left on disk becomes due
 * while unknown only if no refill ran before its due time; the timer asks for
 * one when the future cut-off is reached, so it is late by at most one
 * listing. With no cut-off set (a backlog that fits), nothing is listed and
 * the queue behaves exactly as a plain in-memory queue.
 *
 * Entries are the file-name strings themselves, and the due time is read from
 * its fixed place in the name. A forgotten task is dropped from `known` and
 * skipped when it surfaces from a heap (lazy deletion).
 */
import { dueOfTaskName, roughDue } from '../../spool/name.js';
import { Heap } from './heap.js';
import { DueTasks } from './due-tasks.js';
import { byDue, dueBefore, dueOf } from './name-order.js';
import { BacklogEstimate } from './backlog-estimate.js';
import { WindowRefill } from './refill.js';

/** Where a pending task's file is: producers drop into incoming/, the daemon moves to pending/. */
export type PendingDir = 'incoming' | 'pending';

export interface QueuedTask {
  fileName: string;
  dir: PendingDir;
}

/**
 * How many names the queue holds by default. 100,000 names cost ~20 MB of heap;
 * a refill then comes every ~75,000 tasks run.
 */
export const WINDOW = 100_000;

/**
 * A test knob, not a setting: SPOOLERD_TEST_QUEUE_WINDOW=<n> makes the daemon's
 * window n names, so end-to-end tests can drain a backlog many windows deep
 * with a few hundred tasks. Unset (always, in production): WINDOW.
 */
export function windowFromTestKnob(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env.SPOOLERD_TEST_QUEUE_WINDOW);
  return Number.isSafeInteger(n) && n > 0 ? n : WINDOW;
}

export interface QueueOptions {
  /** Most names held in memory; the rest stay on disk until a refill. */
  window?: number;
  /** Called (once until the next refill()) when the window runs low while names were left on disk. */
  wantsRefill?: () => void;
}

/** Bits of a held name's entry in `known`. */
const IN_PENDING = 1;
const IS_DUE = 2;

/** setTimeout's limit; a later wake-up is simply re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class TaskQueue {
  /** The due tasks held, by claim share (due-tasks.ts). */
  private readonly due = new DueTasks((n) => this.known.has(n));
  private future = new Heap<string>(byDue);
  /**
   * Every held name, with where its file is (IN_PENDING) and whether it is due
   * (IS_DUE), so that the same file found twice (watch + scan) is queued once.
   */
  private readonly known = new Map<string, number>();
  /** How many of `known` are in incoming/ (the daemon stops watching a crowded incoming/). */
  private inIncoming = 0;
  /** How many of `known` are due (in `due`). */
  private dueHeld = 0;
  /** Due names after this one (in name order) may be on disk and not held; undefined: none is. */
  private dueCutoff: string | undefined;
  /** Future names after this one (byDue) may be on disk and not held; undefined: none is. */
  private futureCutoff: string | undefined;
  private refillAsked = false;
  /** The refill under way (refill.ts), if any. */
  private open: WindowRefill | undefined;
  /** What the last refill's listings counted (the whole backlog), and what was taken since: the census's estimate. */
  private readonly estimate = new BacklogEstimate();
  private timer: NodeJS.Timeout | undefined;
  private timerDue = Infinity;
  /** The most names held (the window). */
  readonly window: number;
  private readonly wantsRefill: (() => void) | undefined;

  /**
   * @param onDue called (from a timer) when future tasks have become due.
   * @param now the clock due times are judged by (the spool clock, spool/clock.ts).
   */
  constructor(
    private readonly onDue: () => void,
    private readonly now: () => number = Date.now,
    options: QueueOptions = {},
  ) {
    this.window = Math.max(16, options.window ?? WINDOW);
    this.wantsRefill = options.wantsRefill;
  }

  /** How many tasks are held (at most about `window`; more may wait on disk: see `complete`). */
  get size(): number {
    return this.known.size;
  }

  get readyCount(): number {
    return this.due.size;
  }

  /** How many held tasks have their file in incoming/. */
  get incomingCount(): number {
    return this.inIncoming;
  }

  /**
   * How many tasks wait in `dir`, due or not, held or not: the names held
   * while the whole backlog is; else an estimate, the last refill's (or
   * incoming/ listing's) count less the tasks taken since, never below what
   * is held. Arrivals left on disk since that listing are not counted.
   */
  backlogIn(dir: PendingDir): number {
    const held = dir === 'incoming' ? this.inIncoming : this.known.size - this.inIncoming;
    return this.complete ? held : this.estimate.inDir(dir, held);
  }

  /** Of backlogIn() of both directories, how many are due: readyCount, or an estimate as there. */
  get dueBacklog(): number {
    return this.complete ? this.readyCount : this.estimate.due(this.readyCount);
  }

  /** A listing of incoming/ alone counted `entries` task files there: the estimate's new base for it. */
  noteListing(dir: PendingDir, entries: number): void {
    this.estimate.listedOne(dir, entries);
  }

  /** Whether every pending task on disk is held (no cut-off): false while some wait on disk for a refill. */
  get complete(): boolean {
    return this.dueCutoff === undefined && this.futureCutoff === undefined;
  }

  has(fileName: string): boolean {
    return this.known.has(fileName);
  }

  /**
   * Whether add() would leave this name on disk (it comes after its kind's
   * cut-off), by a cheap look at the name: a listing of a deep backlog skips
   * most names with this before any costlier check. False for a name not
   * shaped like a task name (the caller's full check deals with it).
   */
  beyondWindow(fileName: string, now: number): boolean {
    if (this.dueCutoff === undefined && this.futureCutoff === undefined) return false;
    const at = roughDue(fileName);
    if (at !== at /* NaN */) return false;
    if (at <= now) return this.dueCutoff !== undefined && fileName > this.dueCutoff;
    return this.futureCutoff !== undefined && byDue(this.futureCutoff, fileName);
  }

  /**
   * Adds a task by file name; returns false when the name is not a task name,
   * is already queued, or comes after its kind's cut-off (it stays on disk for
   * a later refill).
   */
  add(fileName: string, dir: PendingDir, now: number): boolean {
    if (this.known.has(fileName)) {
      // The daemon moved it between directories since it was queued: keep the newer location.
      this.setDir(fileName, dir);
      return false;
    }
    const due = dueOfTaskName(fileName);
    if (due === undefined) return false;
    if (due <= now) {
      if (this.dueCutoff !== undefined && fileName > this.dueCutoff) return false;
      this.remember(fileName, dir, IS_DUE);
      this.due.push(fileName);
    } else {
      if (this.futureCutoff !== undefined && byDue(this.futureCutoff, fileName)) return false;
      this.remember(fileName, dir, 0);
      this.future.push(fileName);
      if (due < this.timerDue) this.arm(now);
    }
    if (this.known.size > this.window) this.shrink(now);
    return true;
  }

  /**
   * Fills the window from listings of the directories, all at once (start-up
   * in tests, and callers that need no slices): beginRefill(), every listing
   * offered whole, endRefill(). Each listing is iterated once and may be a
   * stream (never held whole). Returns the names that are not task names.
   */
  refill(listings: ReadonlyArray<readonly [names: Iterable<string>, dir: PendingDir]>, now: number, skip?: (fileName: string) => boolean): Array<[fileName: string, dir: PendingDir]> {
    const refill = this.beginRefill(now, skip);
    for (const [names, dir] of listings) refill.offer(names[Symbol.iterator](), dir);
    return this.endRefill(refill, now);
  }

  /**
   * Opens a refill (refill.ts): the caller offers it the listings, in slices
   * if it likes, then calls endRefill(). Meanwhile the queue works as before.
   * `skip` refuses names this process holds or holds back; names beginning
   * with "." are passed over. One refill at a time.
   */
  beginRefill(now: number, skip?: (fileName: string) => boolean): WindowRefill {
    if (this.open !== undefined) throw new Error('a refill of the queue is already open (a bug in spoolerd: please report it)');
    this.refillAsked = false;
    const target = (this.window * 3) >> 2;
    const futureHeld = this.known.size - this.dueHeld;
    // Due tasks may fill the window up to `target` on their own; future ones get at least a quarter of it.
    // What does not fit once both are in is trimmed by shrink(), the due tasks kept first.
    const dueRoom = Math.max(1, target - this.dueHeld);
    const futureRoom = Math.max(1, target >> 2, target - this.dueHeld - futureHeld);
    this.open = new WindowRefill(dueRoom, futureRoom, now, (n) => this.known.has(n), skip, (n, dir) => !this.beyondWindow(n, now) && this.add(n, dir, now));
    return this.open;
  }

  /** Closes an open refill whose listing failed: nothing of it is held, the cut-offs stay as they were. */
  abandonRefill(refill: WindowRefill): void {
    if (refill === this.open) this.open = undefined;
  }

  /**
   * Commits an open refill: holds the best names it found that it has room
   * for and sets the cut-offs where it stopped. Returns the names that are not
   * task names, with their directory, for the caller to deal with.
   */
  endRefill(refill: WindowRefill, now: number): Array<[fileName: string, dir: PendingDir]> {
    if (refill !== this.open) throw new Error('not the refill of the queue that is open (a bug in spoolerd: please report it)');
    this.open = undefined;
    const { due, future, dueLeftOut, futureLeftOut } = refill.result();
    const rejected = refill.rejected;
    // Every name not held after this comes after the last one kept of its kind (the listings offered them all), or
    // after a cut-off a shrink set meanwhile (the names it dropped were held when listed, so were not offered).
    let dueCut = dueLeftOut > 0 ? (due[due.length - 1]?.[0] ?? '') : undefined;
    if (refill.dueShrunk !== undefined && (dueCut === undefined || refill.dueShrunk < dueCut)) dueCut = refill.dueShrunk;
    let futureCut = futureLeftOut > 0 ? (future[future.length - 1]?.[0] ?? '') : undefined;
    if (refill.futureShrunk !== undefined && (futureCut === undefined || byDue(refill.futureShrunk, futureCut))) futureCut = refill.futureShrunk;
    // Nothing after a cut-off is held: take() would give it before a better task left on disk.
    for (const [n, dir] of due) {
      if (dueCut !== undefined && n > dueCut) break;
      // Held already (an arrival meanwhile, or listed twice: moved between directories while listed), or given out.
      if (this.known.has(n) || refill.taken.has(n)) continue;
      if (dueOfTaskName(n) === undefined) {
        rejected.push([n, dir]);
        continue;
      }
      this.remember(n, dir, IS_DUE);
      this.due.push(n);
    }
    for (const [n, dir] of future) {
      if (futureCut !== undefined && byDue(futureCut, n)) break;
      if (this.known.has(n) || refill.taken.has(n)) continue;
      if (dueOfTaskName(n) === undefined) {
        rejected.push([n, dir]);
        continue;
      }
      this.remember(n, dir, 0);
      this.future.push(n);
    }
    // Names hold() held at once, in the listing's order, may come after the new cut-offs: back on disk with them.
    if (refill.heldAtOnce > 0) this.forgetBeyond(dueCut, futureCut);
    this.dueCutoff = dueCut;
    this.futureCutoff = futureCut;
    // Asks made while the listings ran are answered by this commit; a window still low asks again.
    this.refillAsked = false;
    this.estimate.listedAll(refill.listed);
    if (this.known.size > this.window) this.shrink(now);
    this.arm(now);
    return rejected;
  }

  /** Forgets the held names after the cut-offs (their files stay on disk, found by a later refill): O(window). */
  private forgetBeyond(dueCut: string | undefined, futureCut: string | undefined): void {
    if (dueCut === undefined && futureCut === undefined) return;
    const beyond: string[] = [];
    for (const [name, entry] of this.known) {
      if ((entry & IS_DUE) !== 0 ? dueCut !== undefined && name > dueCut : futureCut !== undefined && byDue(futureCut, name)) beyond.push(name);
    }
    for (const name of beyond) this.forget(name);
  }

  /** Whether the queue asked for a refill since the last one began and none has begun since. */
  get refillWanted(): boolean {
    return this.refillAsked;
  }

  /** Whether a refill is open (begun, not yet committed). */
  get refilling(): boolean {
    return this.open !== undefined;
  }

  /**
   * Sets which due tasks are this daemon's claim share (undefined: all of them,
   * the spool is not shared) and sorts the due tasks again: O(window), when the
   * daemons serving the spool change.
   */
  setShare(mine: ((fileName: string) => boolean) | undefined): void {
    this.due.setShare(mine);
  }

  /**
   * Forgets the queued tasks of `dir` that `listing` (a fresh listing of it)
   * does not hold: another daemon claimed them. Returns how many. Worth its
   * O(window) only on a shared spool, where others' claims would otherwise each
   * cost a lost claim race to find out.
   */
  forgetAbsent(dir: PendingDir, listing: ReadonlySet<string>): number {
    const bit = dir === 'pending' ? IN_PENDING : 0;
    let gone = 0;
    for (const [name, entry] of this.known) {
      if ((entry & IN_PENDING) === bit && !listing.has(name)) {
        this.forget(name);
        gone++;
      }
    }
    return gone;
  }

  /** Takes the next due task, or undefined when none is due. */
  take(now: number): QueuedTask | undefined {
    this.promote(now);
    for (;;) {
      const fileName = this.due.pop();
      if (fileName === undefined) return this.lowOnDue();
      const entry = this.known.get(fileName);
      if (entry === undefined) continue; // forgotten
      this.forget(fileName);
      this.open?.taken.add(fileName);
      const dir = (entry & IN_PENDING) !== 0 ? 'pending' : 'incoming';
      this.estimate.taken(dir);
      if (this.dueCutoff !== undefined && this.dueHeld < this.window >> 2) this.askRefill();
      return { fileName, dir };
    }
  }

  /** The earliest due time of the queued tasks not due yet (as of the last timer arming), or null when none is. */
  get nextDueAt(): number | null {
    return this.timerDue === Infinity ? null : this.timerDue;
  }

  /**
   * The earliest due time among the due tasks held (undefined: none is due). An
   * O(due tasks) walk comparing the fixed-width digits in place, no allocation
   * (~1 ms per 100,000 names): for a scrape, never per task. A task forgotten
   * but still in the heap (lazy deletion) may be counted.
   */
  oldestDueAt(now: number): number | undefined {
    let oldest = this.due.earliestDue();
    const future = this.future.peek();
    if (future !== undefined && dueOf(future) <= now && (oldest === undefined || dueBefore(future, oldest))) oldest = future;
    return oldest === undefined ? undefined : dueOf(oldest);
  }

  /** The due time of the next due task to take (the first in execution order), O(1); undefined when none is due. */
  get nextReadyDue(): number | undefined {
    const next = this.due.peekOwn();
    return next === undefined ? undefined : dueOf(next);
  }

  /** Every held name with its directory (an O(window) walk: for a cached census, never per task). */
  forEachKnown(visit: (fileName: string, dir: PendingDir) => void): void {
    for (const [name, entry] of this.known) visit(name, (entry & IN_PENDING) !== 0 ? 'pending' : 'incoming');
  }

  /** Whether a due task of this daemon's own claim share is queued (every due task is, while the spool is not shared). */
  hasOwnDue(now: number): boolean {
    this.promote(now);
    return this.due.hasOwn();
  }

  /** The held names whose file is in `dir` (a live view: entries may change or go as it is walked). */
  *inDir(dir: PendingDir): Generator<string> {
    const bit = dir === 'pending' ? IN_PENDING : 0;
    for (const [name, entry] of this.known) if ((entry & IN_PENDING) === bit) yield name;
  }

  /** Records that a queued task's file moved to `dir`. */
  setDir(fileName: string, dir: PendingDir): void {
    const was = this.known.get(fileName);
    if (was === undefined) return;
    const bit = dir === 'pending' ? IN_PENDING : 0;
    if ((was & IN_PENDING) === bit) return;
    this.known.set(fileName, (was & IS_DUE) | bit);
    this.inIncoming += bit === 0 ? 1 : -1;
  }

  /** Forgets a task (it was claimed, revoked or moved by someone else). */
  forget(fileName: string): void {
    const was = this.known.get(fileName);
    if (was === undefined) return;
    this.known.delete(fileName);
    if ((was & IN_PENDING) === 0) this.inIncoming--;
    if ((was & IS_DUE) !== 0) this.dueHeld--;
  }

  private remember(fileName: string, dir: PendingDir, due: number): void {
    this.known.set(fileName, (dir === 'pending' ? IN_PENDING : 0) | due);
    if (dir === 'incoming') this.inIncoming++;
    if (due !== 0) this.dueHeld++;
  }

  /** Stops the timer (shutdown). */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = Infinity;
  }

  /**
   * The window is over-full (arrivals): keeps the best 3/4 of it, the due
   * tasks first (at least a quarter for the future ones if there are that
   * many), drops the rest (their files stay on disk) and moves each cut-off back
   * to the last name kept. O(window log window), once per quarter-window of
   * arrivals at most.
   */
  private shrink(now: number): void {
    const target = (this.window * 3) >> 2;
    const due: string[] = [];
    const future: string[] = [];
    for (const [name, entry] of this.known) ((entry & IS_DUE) !== 0 ? due : future).push(name);
    const keepFuture = Math.min(future.length, Math.max(target >> 2, target - due.length));
    const keepDue = Math.min(due.length, target - keepFuture);
    if (due.length > keepDue) {
      due.sort();
      for (let i = keepDue; i < due.length; i++) this.forget(due[i]!);
      due.length = keepDue;
      const last = due[keepDue - 1] ?? '';
      // Names before the old cut-off that were never held must stay before the new one.
      if (this.dueCutoff === undefined || last < this.dueCutoff) this.dueCutoff = last;
      if (this.open !== undefined && (this.open.dueShrunk === undefined || last < this.open.dueShrunk)) this.open.dueShrunk = last;
      this.due.set(due);
    }
    if (future.length > keepFuture) {
      future.sort((a, b) => (byDue(a, b) ? -1 : 1));
      for (let i = keepFuture; i < future.length; i++) this.forget(future[i]!);
      future.length = keepFuture;
      const last = future[keepFuture - 1] ?? '';
      if (this.futureCutoff === undefined || byDue(last, this.futureCutoff)) this.futureCutoff = last;
      if (this.open !== undefined && (this.open.futureShrunk === undefined || byDue(last, this.open.futureShrunk))) this.open.futureShrunk = last;
      this.future = new Heap(byDue, future);
      this.arm(now);
    }
  }

  /** No due task held: if some may wait on disk, ask for them. */
  private lowOnDue(): undefined {
    if (this.dueCutoff !== undefined) this.askRefill();
    return undefined;
  }

  private askRefill(): void {
    if (this.refillAsked || this.wantsRefill === undefined) return;
    this.refillAsked = true;
    this.wantsRefill();
  }

  private promote(now: number): void {
    for (;;) {
      const next = this.future.peek();
      if (next === undefined || dueOf(next) > now) break;
      this.future.pop();
      const entry = this.known.get(next);
      if (entry === undefined) continue;
      this.known.set(next, entry | IS_DUE);
      this.dueHeld++;
      this.due.push(next);
    }
    // Future tasks left on disk start at the cut-off: reached it (or every held one before it is due), ask for them.
    if (this.futureCutoff !== undefined && (this.futureCutoff === '' || dueOf(this.futureCutoff) <= now)) this.askRefill();
  }

  private arm(now: number): void {
    let next = this.future.peek();
    while (next !== undefined && !this.known.has(next)) {
      this.future.pop();
      next = this.future.peek();
    }
    clearTimeout(this.timer);
    // Future tasks left on disk: wake at the cut-off at the latest, to ask for a refill before they fall due.
    // Not once asked (until the refill, which arms again), nor without anyone to ask: that would spin.
    const cutoff = this.futureCutoff === undefined || this.futureCutoff === '' || this.refillAsked || this.wantsRefill === undefined ? undefined : this.futureCutoff;
    if (cutoff !== undefined && (next === undefined || byDue(cutoff, next))) next = cutoff;
    if (next === undefined) {
      this.timer = undefined;
      this.timerDue = Infinity;
      return;
    }
    this.timerDue = dueOf(next);
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerDue = Infinity;
        const t = this.now();
        this.promote(t);
        this.arm(t);
        if (this.readyCount > 0) this.onDue();
      },
      Math.min(Math.max(0, this.timerDue - now), MAX_TIMER_MS),
    );
    // The daemon's watcher and scan timer keep it alive; a wake-up alone should not.
    this.timer.unref();
  }
}
