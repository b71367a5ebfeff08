/**
 * The k best items of a stream, in O(k) memory: a max-heap of the kept items
 * whose top is the worst of them, replaced when a better one comes. A refill
 * of the queue's window streams a million names through one of these and
 * keeps only the few thousand it has room for (task-queue.ts).
 */
import { Heap } from './heap.js';

export class BestOf<T> {
  private readonly kept: Heap<T>;
  /** How many items were offered and not kept (or pushed out since). */
  leftOut = 0;

  /** @param better whether a is better than b (comes first in the order kept). */
  constructor(
    private readonly k: number,
    private readonly better: (a: T, b: T) => boolean,
  ) {
    this.kept = new Heap<T>((a, b) => better(b, a));
  }

  get size(): number {
    return this.kept.size;
  }

  /** Whether offer(item) would keep it: a single comparison, for callers with costlier checks to skip. */
  wouldKeep(item: T): boolean {
    if (this.kept.size < this.k) return true;
    const worst = this.kept.peek();
    return worst !== undefined && this.better(item, worst);
  }

  /** Counts an item the caller did not offer because wouldKeep() said no. */
  passOver(): void {
    this.leftOut++;
  }

  offer(item: T): void {
    if (this.kept.size < this.k) return this.kept.push(item);
    this.leftOut++;
    const worst = this.kept.peek();
    if (worst === undefined || !this.better(item, worst)) return;
    this.kept.replaceTop(item);
  }

  /** The kept items, best first (empties this). */
  takeSorted(): T[] {
    const out: T[] = [];
    for (let item = this.kept.pop(); item !== undefined; item = this.kept.pop()) out.push(item);
    return out.reverse();
  }
}
