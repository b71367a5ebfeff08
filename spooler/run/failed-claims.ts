/**
 * Claims that failed for a reason other than a lost race: permissions, a full
 * disk, a claim directory that cannot grow. The file stays where it was; it is
 * held back from the queue (a watch event or a listing must not queue it again
 * early) and queued again by the reconciliation scan once its backoff is over,
 * doubling from CLAIM_RETRY_FIRST_MS up to CLAIM_RETRY_MAX_MS. Only the first
 * failure of a file is logged as an error. A later claim of it, won or lost,
 * ends its entry (settled()).
 */
import type { Logger } from '../logger.js';
import type { PendingDir, TaskQueue } from '../order/task-queue.js';

const CLAIM_RETRY_FIRST_MS = 500;
const CLAIM_RETRY_MAX_MS = 30_000;

interface FailedClaim {
  dir: PendingDir;
  tries: number;
  retryAt: number;
}

export class FailedClaims {
  private readonly entries = new Map<string, FailedClaim>();

  constructor(
    private readonly queue: TaskQueue,
    /** Files discovery leaves alone until the given time (shared with discovery: arrivals.ts). */
    private readonly held: Map<string, number>,
    private readonly log: Logger,
  ) {}

  failed(fileName: string, from: PendingDir, reason: string | undefined, now: number): void {
    const entry = this.entries.get(fileName) ?? { dir: from, tries: 0, retryAt: 0 };
    entry.tries++;
    const delay = Math.min(CLAIM_RETRY_FIRST_MS * 2 ** (entry.tries - 1), CLAIM_RETRY_MAX_MS);
    entry.retryAt = now + delay;
    this.entries.set(fileName, entry);
    this.held.set(fileName, entry.retryAt);
    if (entry.tries === 1) this.log.error('cannot claim a task; will try again until it succeeds', { file: fileName, retryInMs: delay, err: reason });
    else this.log.debug('still cannot claim a task', { file: fileName, tries: entry.tries, retryInMs: delay, err: reason });
  }

  settled(fileName: string): void {
    if (this.entries.size > 0) this.entries.delete(fileName);
  }

  /** Queues again the files whose backoff is over; true if any was queued. */
  retry(now: number): boolean {
    let queued = false;
    for (const [fileName, entry] of this.entries) {
      if (entry.retryAt > now) continue;
      if (this.queue.add(fileName, entry.dir, now)) queued = true;
    }
    return queued;
  }

  get size(): number {
    return this.entries.size;
  }
}
