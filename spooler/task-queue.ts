/**
 * The daemon's in-memory view of the pending tasks of one spool: which file
 * names exist, which are due, and when the next one falls due.
 *
 * Due tasks sit in a heap ordered by file name, which is the execution order
 * (priority, then due time, then id: see SPOOL-FORMAT.md). Future tasks sit in a
 * heap ordered by due time; one timer, set for the earliest, moves them over.
 * Picking the next task is O(log n) however large the backlog, and nothing runs
 * while every task is in the future.
 */
import { parseTaskName } from '../spool/name.js';
import { Heap } from './heap.js';

/** Where a pending task's file is: producers drop into incoming/, the daemon moves to pending/. */
export type PendingDir = 'incoming' | 'pending';

export interface QueuedTask {
  fileName: string;
  due: number;
  dir: PendingDir;
  /** Set when the task was forgotten; the heap entry is skipped when it surfaces (lazy deletion). */
  gone?: boolean;
}

const byName = (a: QueuedTask, b: QueuedTask): boolean => a.fileName < b.fileName;
const byDue = (a: QueuedTask, b: QueuedTask): boolean => a.due < b.due || (a.due === b.due && a.fileName < b.fileName);
/** setTimeout's limit; a later wake-up is simply re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class TaskQueue {
  private ready = new Heap<QueuedTask>(byName);
  private future = new Heap<QueuedTask>(byDue);
  /** Every file name in either heap, so the same file found twice (watch + scan) is queued once. */
  private known = new Map<string, QueuedTask>();
  private timer: NodeJS.Timeout | undefined;
  private timerDue = Infinity;

  /** @param onDue called (from a timer) when future tasks have become due. */
  constructor(private readonly onDue: () => void) {}

  get size(): number {
    return this.known.size;
  }

  get readyCount(): number {
    return this.ready.size;
  }

  has(fileName: string): boolean {
    return this.known.has(fileName);
  }

  /** Adds a task by file name; returns false when the name is not a task name or is already queued. */
  add(fileName: string, dir: PendingDir, now: number): boolean {
    if (this.known.has(fileName)) {
      // The daemon moved it between directories since it was queued: keep the newer location.
      this.known.get(fileName)!.dir = dir;
      return false;
    }
    const name = parseTaskName(fileName);
    if (name === undefined) return false;
    const task: QueuedTask = { fileName, due: name.due, dir };
    this.known.set(fileName, task);
    if (task.due <= now) this.ready.push(task);
    else {
      this.future.push(task);
      if (task.due < this.timerDue) this.arm(now);
    }
    return true;
  }

  /**
   * Replaces the contents with a full listing at start-up: builds both heaps in
   * O(n) rather than n pushes.
   */
  load(entries: Iterable<[fileName: string, dir: PendingDir]>, now: number): void {
    const ready: QueuedTask[] = [];
    const future: QueuedTask[] = [];
    for (const [fileName, dir] of entries) {
      if (this.known.has(fileName)) continue;
      const name = parseTaskName(fileName);
      if (name === undefined) continue;
      const task: QueuedTask = { fileName, due: name.due, dir };
      this.known.set(fileName, task);
      (task.due <= now ? ready : future).push(task);
    }
    for (const t of this.drainAll()) (t.due <= now ? ready : future).push(t);
    this.ready = new Heap(byName, ready);
    this.future = new Heap(byDue, future);
    this.arm(now);
  }

  /** Takes the next due task, or undefined when none is due. */
  take(now: number): QueuedTask | undefined {
    this.promote(now);
    const task = this.ready.pop();
    if (task !== undefined) this.known.delete(task.fileName);
    return task;
  }

  /** The queued tasks whose file is in `dir` (a live view: entries may change or go as it is walked). */
  *inDir(dir: PendingDir): Generator<QueuedTask> {
    for (const task of this.known.values()) if (task.dir === dir) yield task;
  }

  /** Forgets a task (it was claimed, revoked or moved by someone else). */
  forget(fileName: string): void {
    // Lazy deletion: the heap entry stays and is skipped when it surfaces.
    const task = this.known.get(fileName);
    if (task === undefined) return;
    this.known.delete(fileName);
    task.gone = true;
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
      if (next === undefined || next.due > now) break;
      this.future.pop();
      if (!next.gone) this.ready.push(next);
    }
    // Skip entries deleted lazily.
    while (this.ready.peek()?.gone) this.ready.pop();
  }

  private arm(now: number): void {
    while (this.future.peek()?.gone) this.future.pop();
    const next = this.future.peek();
    clearTimeout(this.timer);
    if (next === undefined) {
      this.timer = undefined;
      this.timerDue = Infinity;
      return;
    }
    this.timerDue = next.due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerDue = Infinity;
      const t = Date.now();
      this.promote(t);
      this.arm(t);
      if (this.ready.size > 0) this.onDue();
    }, Math.min(Math.max(0, next.due - now), MAX_TIMER_MS));
    // The daemon's watcher and lock keep it alive; a wake-up alone should not.
    this.timer.unref();
  }

  private *drainAll(): Generator<QueuedTask> {
    let t: QueuedTask | undefined;
    while ((t = this.ready.pop()) !== undefined) if (!t.gone) yield t;
    while ((t = this.future.pop()) !== undefined) if (!t.gone) yield t;
  }
}
