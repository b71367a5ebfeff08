/**
 * Discovery's output: names handed to the task queue (task-queue.ts), and a
 * wake-up of dispatch. Every call discovery makes to the queue is here, so
 * that the queue can change inside (a bounded window of the next tasks, the
 * rest left on disk) with one place to follow on this side.
 */
import type { PendingDir, TaskQueue } from '../task-queue.js';

/** What discovery needs of the queue; TaskQueue has it, tests give a fake. */
export type QueueForDiscovery = Pick<
  TaskQueue,
  'load' | 'add' | 'has' | 'setDir' | 'forgetAbsent' | 'inDir' | 'setShare' | 'close' | 'size' | 'readyCount' | 'incomingCount'
>;

export class QueueFeed {
  constructor(
    private readonly queue: QueueForDiscovery,
    /** Asks the daemon to dispatch soon (coalesced). */
    readonly wake: () => void,
  ) {}

  /** Start-up: whole listings at once. Returns the names that are not task names, with their directory. */
  load(pending: readonly string[], incoming: readonly string[], now: number): Array<[fileName: string, dir: PendingDir]> {
    return this.queue.load(
      [
        [pending, 'pending'],
        [incoming, 'incoming'],
      ],
      now,
    );
  }

  /** Queues a task found in `dir`; false when it was queued already (its directory is updated) or is not a task name. */
  add(fileName: string, dir: PendingDir, now: number): boolean {
    return this.queue.add(fileName, dir, now);
  }

  has(fileName: string): boolean {
    return this.queue.has(fileName);
  }

  /** A queued task's file moved from incoming/ to pending/. */
  movedToPending(fileName: string): void {
    this.queue.setDir(fileName, 'pending');
  }

  /** A fresh listing of incoming/ beside other daemons: forget what they claimed since. */
  forgetAbsentFromIncoming(listing: ReadonlySet<string>): void {
    this.queue.forgetAbsent('incoming', listing);
  }

  /** The queued names whose file is in `dir`. */
  inDir(dir: PendingDir): IterableIterator<string> {
    return this.queue.inDir(dir);
  }

  /** The claim share of this daemon among the live owners (claim-shares.ts). */
  setShare(mine: ((fileName: string) => boolean) | undefined): void {
    this.queue.setShare(mine);
  }

  close(): void {
    this.queue.close();
  }

  get size(): number {
    return this.queue.size;
  }

  get readyCount(): number {
    return this.queue.readyCount;
  }

  get incomingCount(): number {
    return this.queue.incomingCount;
  }
}
