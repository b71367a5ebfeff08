/**
 * The daemon's in-memory view of the pending tasks of one spool: which file
 * names exist, which are due, and when the next one falls due.
 *
 * Due tasks sit in a heap ordered by file name, which is the execution order
 * (priority, then due time, then id: see SPOOL-FORMAT.md). Future tasks sit in a
 * heap ordered by due time; one timer, set for the earliest, moves them over.
 * Picking the next task is O(log n) however large the backlog, and nothing runs
 * while every task is in the future.
 *
 * When several daemons serve the spool, the due tasks of this daemon's claim
 * share (claim-shares.ts) sit in `ready` and the others' in `others`, and
 * take() gives its own first: others' only when it has none left, or when
 * one of theirs has a better priority. Others' tasks are taken from the far
 * end of their order (the latest of the best priority), where the daemons
 * whose share they are come last.
 *
 * Entries are the file-name strings themselves (a million of them cost about
 * 80 MB of names, plus one map from name to directory of ~40 MB), and the due
 * time is read from its fixed place in the name. A forgotten task is dropped
 * from `known` and skipped when it surfaces from a heap (lazy deletion).
 */
import { dueOfTaskName } from '../../spool/name.js';
import { Heap } from './heap.js';

/** Where a pending task's file is: producers drop into incoming/, the daemon moves to pending/. */
export type PendingDir = 'incoming' | 'pending';

export interface QueuedTask {
  fileName: string;
  dir: PendingDir;
}

/** Offsets of the 13-digit due time in a task file name ("PP-DUE-…"). */
const DUE_START = 3;
const DUE_END = 16;

const byName = (a: string, b: string): boolean => a < b;
/** The best priority first (the first two characters), then the far end of the execution order. */
function byPriorityThenLast(a: string, b: string): boolean {
  const p = a.charCodeAt(0) - b.charCodeAt(0) || a.charCodeAt(1) - b.charCodeAt(1);
  return p !== 0 ? p < 0 : a > b;
}
/** Whether `a` has a strictly better (lower) priority than `b`. */
const betterPriority = (a: string, b: string): boolean => a.charCodeAt(0) - b.charCodeAt(0) < 0 || (a.charCodeAt(0) === b.charCodeAt(0) && a.charCodeAt(1) < b.charCodeAt(1));
/** Due time first (compared digit by digit: fixed width, no allocation), then the whole name. */
function byDue(a: string, b: string): boolean {
  for (let i = DUE_START; i < DUE_END; i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d < 0;
  }
  return a < b;
}
/** Whether a falls due strictly before b. */
function dueBefore(a: string, b: string): boolean {
  for (let i = DUE_START; i < DUE_END; i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d < 0;
  }
  return false;
}
const dueOf = (fileName: string): number => Number(fileName.slice(DUE_START, DUE_END));
/** setTimeout's limit; a later wake-up is simply re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class TaskQueue {
  private ready = new Heap<string>(byName);
  /** Due tasks of other daemons' claim shares (empty while the spool is not shared). */
  private others = new Heap<string>(byPriorityThenLast);
  private future = new Heap<string>(byDue);
  /** Whether a due task is in this daemon's claim share; undefined: every task is (claim-shares.ts). */
  private mine: ((fileName: string) => boolean) | undefined;
  /**
   * Every queued name, with the directory its file is in, so that the same file
   * found twice (watch + scan) is queued once. One map rather than a set of
   * names and a set of those in incoming/: half the hashing and ~30% less memory
   * for a large backlog.
   */
  private readonly known = new Map<string, PendingDir>();
  /** How many of `known` are in incoming/ (the daemon stops watching a crowded incoming/). */
  private inIncoming = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = Infinity;

  /**
   * @param onDue called (from a timer) when future tasks have become due.
   * @param now the clock due times are judged by (the spool clock, spool/clock.ts).
   */
  constructor(
    private readonly onDue: () => void,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.known.size;
  }

  get readyCount(): number {
    return this.ready.size + this.others.size;
  }

  /** How many queued tasks have their file in incoming/. */
  get incomingCount(): number {
    return this.inIncoming;
  }

  has(fileName: string): boolean {
    return this.known.has(fileName);
  }

  /** Adds a task by file name; returns false when the name is not a task name or is already queued. */
  add(fileName: string, dir: PendingDir, now: number): boolean {
    if (this.known.has(fileName)) {
      // The daemon moved it between directories since it was queued: keep the newer location.
      this.setDir(fileName, dir);
      return false;
    }
    const due = dueOfTaskName(fileName);
    if (due === undefined) return false;
    this.remember(fileName, dir);
    if (due <= now) this.pushDue(fileName);
    else {
      this.future.push(fileName);
      if (due < this.timerDue) this.arm(now);
    }
    return true;
  }

  /**
   * Adds whole directory listings at start-up: both heaps are rebuilt in O(n)
   * rather than n pushes. Names beginning with "." are skipped; returns the
   * other names that are not task names, with their directory, for the caller
   * to deal with.
   */
  load(listings: ReadonlyArray<readonly [names: readonly string[], dir: PendingDir]>, now: number): Array<[fileName: string, dir: PendingDir]> {
    const ready: string[] = [];
    const future: string[] = [];
    const rejected: Array<[string, PendingDir]> = [];
    for (const name of this.drainLive()) (dueOf(name) <= now ? ready : future).push(name);
    for (const [names, dir] of listings) {
      for (const fileName of names) {
        if (fileName.charCodeAt(0) === 46 /* "." */ || this.known.has(fileName)) continue;
        const due = dueOfTaskName(fileName);
        if (due === undefined) {
          rejected.push([fileName, dir]);
          continue;
        }
        this.remember(fileName, dir);
        (due <= now ? ready : future).push(fileName);
      }
    }
    this.setDue(ready);
    this.future = new Heap(byDue, future);
    this.arm(now);
    return rejected;
  }

  /**
   * Sets which due tasks are this daemon's claim share (undefined: all of them,
   * the spool is not shared) and sorts the due tasks again: O(n), when the
   * daemons serving the spool change.
   */
  setShare(mine: ((fileName: string) => boolean) | undefined): void {
    const due: string[] = [];
    for (let name = this.ready.pop(); name !== undefined; name = this.ready.pop()) if (this.known.has(name)) due.push(name);
    for (let name = this.others.pop(); name !== undefined; name = this.others.pop()) if (this.known.has(name)) due.push(name);
    this.mine = mine;
    this.setDue(due);
  }

  /**
   * Forgets the queued tasks of `dir` that `listing` (a fresh listing of it)
   * does not hold: another daemon claimed them. Returns how many. Worth its
   * O(n) only on a shared spool, where others' claims would otherwise each
   * cost a lost claim race to find out.
   */
  forgetAbsent(dir: PendingDir, listing: ReadonlySet<string>): number {
    let gone = 0;
    for (const [name, where] of this.known) {
      if (where === dir && !listing.has(name)) {
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
      const fileName = this.others.size > 0 && this.othersFirst() ? this.others.pop() : this.ready.pop();
      if (fileName === undefined) return undefined;
      const dir = this.known.get(fileName);
      if (dir === undefined) continue; // forgotten
      this.forget(fileName);
      return { fileName, dir };
    }
  }

  /** The earliest due time of the queued tasks not due yet (as of the last timer arming), or null when none is. */
  get nextDueAt(): number | null {
    return this.timerDue === Infinity ? null : this.timerDue;
  }

  /**
   * The earliest due time among the due tasks (undefined: none is due). An
   * O(due tasks) walk comparing the fixed-width digits in place, no allocation
   * (~1 ms per 100,000 names): for a scrape, never per task. A task forgotten
   * but still in the heap (lazy deletion) may be counted.
   */
  oldestDueAt(now: number): number | undefined {
    let oldest: string | undefined;
    for (const name of this.ready.unordered) if (oldest === undefined || dueBefore(name, oldest)) oldest = name;
    for (const name of this.others.unordered) if (oldest === undefined || dueBefore(name, oldest)) oldest = name;
    const future = this.future.peek();
    if (future !== undefined && dueOf(future) <= now && (oldest === undefined || dueBefore(future, oldest))) oldest = future;
    return oldest === undefined ? undefined : dueOf(oldest);
  }

  /** The due time of the next due task to take (the first in execution order), O(1); undefined when none is due. */
  get nextReadyDue(): number | undefined {
    const next = this.ready.peek();
    return next === undefined ? undefined : dueOf(next);
  }

  /** Every queued name with its directory (an O(n) walk: for a cached census, never per task). */
  forEachKnown(visit: (fileName: string, dir: PendingDir) => void): void {
    for (const [name, dir] of this.known) visit(name, dir);
  }

  /** Whether a due task of this daemon's own claim share is queued (every due task is, while the spool is not shared). */
  hasOwnDue(now: number): boolean {
    this.promote(now);
    return this.peekLive(this.ready) !== undefined;
  }

  /** Whether take() should give another share's task next: none of ours is left, or theirs has a better priority. */
  private othersFirst(): boolean {
    const own = this.peekLive(this.ready);
    if (own === undefined) return true;
    const other = this.peekLive(this.others);
    return other !== undefined && betterPriority(other, own);
  }

  /** The top of `heap` after dropping forgotten names from it. */
  private peekLive(heap: Heap<string>): string | undefined {
    let top = heap.peek();
    while (top !== undefined && !this.known.has(top)) {
      heap.pop();
      top = heap.peek();
    }
    return top;
  }

  private pushDue(fileName: string): void {
    if (this.mine === undefined || this.mine(fileName)) this.ready.push(fileName);
    else this.others.push(fileName);
  }

  private setDue(due: string[]): void {
    if (this.mine === undefined) {
      this.ready = new Heap(byName, due);
      this.others = new Heap(byPriorityThenLast);
      return;
    }
    const mine = this.mine;
    this.ready = new Heap(
      byName,
      due.filter((n) => mine(n)),
    );
    this.others = new Heap(
      byPriorityThenLast,
      due.filter((n) => !mine(n)),
    );
  }

  /** The queued names whose file is in `dir` (a live view: entries may change or go as it is walked). */
  *inDir(dir: PendingDir): Generator<string> {
    for (const [name, where] of this.known) if (where === dir) yield name;
  }

  /** Records that a queued task's file moved to `dir`. */
  setDir(fileName: string, dir: PendingDir): void {
    const was = this.known.get(fileName);
    if (was === undefined || was === dir) return;
    this.known.set(fileName, dir);
    this.inIncoming += dir === 'incoming' ? 1 : -1;
  }

  /** Forgets a task (it was claimed, revoked or moved by someone else). */
  forget(fileName: string): void {
    const was = this.known.get(fileName);
    if (was === undefined) return;
    this.known.delete(fileName);
    if (was === 'incoming') this.inIncoming--;
  }

  private remember(fileName: string, dir: PendingDir): void {
    this.known.set(fileName, dir);
    if (dir === 'incoming') this.inIncoming++;
  }

  /** Stops the timer (shutdown). */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = Infinity;
  }

  private promote(now: number): void {
    for (;;) {
      const next = this.future.peek();
      if (next === undefined || dueOf(next) > now) break;
      this.future.pop();
      if (this.known.has(next)) this.pushDue(next);
    }
  }

  private arm(now: number): void {
    let next = this.future.peek();
    while (next !== undefined && !this.known.has(next)) {
      this.future.pop();
      next = this.future.peek();
    }
    clearTimeout(this.timer);
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

  private *drainLive(): Generator<string> {
    let name: string | undefined;
    while ((name = this.ready.pop()) !== undefined) if (this.known.has(name)) yield name;
    while ((name = this.others.pop()) !== undefined) if (this.known.has(name)) yield name;
    while ((name = this.future.pop()) !== undefined) if (this.known.has(name)) yield name;
  }
}
