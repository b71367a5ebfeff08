/**
 * One refill of the queue's window (order/refill.ts) run over the listings of
 * incoming/ and pending/ a slice of the event loop at a time, so that the
 * daemon goes on claiming and running between slices: a listing of a million
 * names takes a second or more, and at start-up the first claims would wait
 * for all of it (4.6 s from spawn to the first task run, measured with 1M due
 * tasks queued).
 *
 * When the window holds fewer than LOW_WATER due tasks at the start of a
 * slice after the first, the next HOLD_CHUNK due names of the listing are held at once, in
 * the listing's order (WindowRefill.hold()): the daemon claims from them while
 * the rest is offered. That is the order's one concession: while a listing is
 * under way, a task may run before a better one the listing has not reached
 * yet, never for longer than that one listing.
 *
 * incoming/ is listed before pending/: the daemon's own moves go from
 * incoming/ to pending/ (the future mover, between slices), so a task moved
 * while listed is seen in one of the two.
 *
 *   refillInSlices()     a slice: hold a chunk if low, offer names for SLICE_MS     every listing ended
 *   ─────────────────▶ listing ◀──────────────────────────────────────────────┐ ───────────────────▶ committed (endRefill)
 *                         │  └──────────────── setImmediate ───────────────────┘
 *                         └── discovery stopped: abandoned (nothing committed) ── a listing threw: abandoned, rejected
 */
import type { PendingDir, TaskQueue } from '../order/task-queue.js';
import type { ListedCounts } from '../order/refill.js';

/** One slice's share of the event loop (ms). */
export const SLICE_MS = 20;
/**
 * Below this many due tasks held at the start of a slice, names are held at
 * once (HOLD_CHUNK of them). Few: the daemon runs about as many between two
 * slices, so the listing keeps about half of the event loop and ends soon
 * (with 2,048, --processes 0 ran ~150 ms of tasks per 20 ms slice, and a
 * start on a million tasks spent a minute listing, a stop waiting for it).
 */
export const LOW_WATER = 256;
export const HOLD_CHUNK = 256;

export interface SlicedRefillHost {
  readonly queue: Pick<TaskQueue, 'beginRefill' | 'endRefill' | 'abandonRefill' | 'readyCount'>;
  /** Dispatch soon: names were held. */
  wake(): void;
  /** Discovery stopped: the refill is abandoned. */
  stopped(): boolean;
}

export interface RefillDone {
  /** Names that are not task names, with their directory. */
  rejected: Array<[fileName: string, dir: PendingDir]>;
  listed: ListedCounts;
  /** The event loop's time spent in the slices (ms): what the listings cost, tasks run between them not counted. */
  busyMs: number;
}

/**
 * Runs one refill over `listings` (each an iterator read once; closed if the
 * refill ends early). Resolves when it is committed, with undefined if
 * discovery stopped first; rejects (the refill abandoned) if a listing throws.
 */
export function refillInSlices(host: SlicedRefillHost, listings: Array<[names: Iterator<string>, dir: PendingDir]>, now: number, skip?: (fileName: string) => boolean): Promise<RefillDone | undefined> {
  const { queue } = host;
  const refill = queue.beginRefill(now, skip);
  const close = () => {
    for (const [names] of listings) names.return?.(undefined);
  };
  return new Promise((resolve, reject) => {
    let i = 0;
    let busyMs = 0;
    let slices = 0;
    const step = () => {
      const sliceStart = performance.now();
      try {
        if (host.stopped()) {
          queue.abandonRefill(refill);
          close();
          return resolve(undefined);
        }
        const until = performance.now() + SLICE_MS;
        const heldBefore = refill.heldAtOnce;
        while (i < listings.length && performance.now() < until) {
          const [names, dir] = listings[i]!;
          // Not in the first slice: a listing that ends within it (a backlog of some ten thousand tasks) keeps the order exactly.
          if (slices > 0 && queue.readyCount < LOW_WATER && refill.hold(names, dir, HOLD_CHUNK, until)) {
            i++;
            continue;
          }
          if (refill.offer(names, dir, until)) i++;
        }
        slices++;
        if (refill.heldAtOnce > heldBefore) host.wake();
        if (i < listings.length) {
          busyMs += performance.now() - sliceStart;
          return void setImmediate(step);
        }
        const rejected = queue.endRefill(refill, now);
        busyMs += performance.now() - sliceStart;
        resolve({ rejected, listed: refill.listed, busyMs });
      } catch (err) {
        queue.abandonRefill(refill);
        close();
        reject(err);
      }
    };
    step();
  });
}
