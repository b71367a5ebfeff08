/**
 * The due tasks the queue holds (task-queue.ts), split by claim share
 * (claim-shares.ts): this daemon's own in `ready`, in execution order (the
 * file name), other daemons' in `others`, best priority first and then the
 * far end of their order, where the daemons whose share they are come last.
 * next() gives its own first: others' only when it has none left, or when one
 * of theirs has a better priority. While the spool is not shared every task
 * is its own and `others` stays empty.
 *
 * Names are removed lazily: the queue forgets a name in its map, and a
 * forgotten name is skipped when it surfaces here (`live`).
 */
import { Heap } from './heap.js';
import { betterPriority, byName, byPriorityThenLast, dueBefore } from './name-order.js';

export class DueTasks {
  private ready = new Heap<string>(byName);
  private others = new Heap<string>(byPriorityThenLast);
  /** Whether a due task is in this daemon's claim share; undefined: every task is. */
  private mine: ((fileName: string) => boolean) | undefined;

  /** @param live whether a name is still held by the queue (not forgotten). */
  constructor(private readonly live: (fileName: string) => boolean) {}

  /** Names in both heaps, forgotten ones not yet dropped included. */
  get size(): number {
    return this.ready.size + this.others.size;
  }

  push(fileName: string): void {
    if (this.mine === undefined || this.mine(fileName)) this.ready.push(fileName);
    else this.others.push(fileName);
  }

  /** The next name to take (live or not: the caller skips forgotten ones), or undefined when none is left. */
  pop(): string | undefined {
    return this.others.size > 0 && this.othersFirst() ? this.others.pop() : this.ready.pop();
  }

  /** The first of this daemon's own share in execution order (possibly forgotten), O(1). */
  peekOwn(): string | undefined {
    return this.ready.peek();
  }

  /** Whether a live task of this daemon's own share is held. */
  hasOwn(): boolean {
    return this.peekLive(this.ready) !== undefined;
  }

  /** The name that falls due first (an O(n) walk comparing digits in place: for a scrape, never per task). */
  earliestDue(): string | undefined {
    let oldest: string | undefined;
    for (const name of this.ready.unordered) if (oldest === undefined || dueBefore(name, oldest)) oldest = name;
    for (const name of this.others.unordered) if (oldest === undefined || dueBefore(name, oldest)) oldest = name;
    return oldest;
  }

  /** Sets the claim share and sorts the live names again: O(n), when the daemons serving the spool change. */
  setShare(mine: ((fileName: string) => boolean) | undefined): void {
    const due: string[] = [];
    for (let name = this.ready.pop(); name !== undefined; name = this.ready.pop()) if (this.live(name)) due.push(name);
    for (let name = this.others.pop(); name !== undefined; name = this.others.pop()) if (this.live(name)) due.push(name);
    this.mine = mine;
    this.set(due);
  }

  /** Replaces the names held by `due` (O(n) heap builds). */
  set(due: string[]): void {
    const mine = this.mine;
    if (mine === undefined) {
      this.ready = new Heap(byName, due);
      this.others = new Heap(byPriorityThenLast);
      return;
    }
    this.ready = new Heap(
      byName,
      due.filter((n) => mine(n)),
    );
    this.others = new Heap(
      byPriorityThenLast,
      due.filter((n) => !mine(n)),
    );
  }

  /** Whether the next take should be another share's task: none of ours is left, or theirs has a better priority. */
  private othersFirst(): boolean {
    const own = this.peekLive(this.ready);
    if (own === undefined) return true;
    const other = this.peekLive(this.others);
    return other !== undefined && betterPriority(other, own);
  }

  /** The top of `heap` after dropping forgotten names from it. */
  private peekLive(heap: Heap<string>): string | undefined {
    let top = heap.peek();
    while (top !== undefined && !this.live(top)) {
      heap.pop();
      top = heap.peek();
    }
    return top;
  }
}
