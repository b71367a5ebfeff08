/**
 * Discovery's output: names handed to the task queue (order/task-queue.ts), and a
 * wake-up of dispatch. Every call discovery makes to the queue is here, so
 * that the queue can change inside (a bounded window of the next tasks, the
 * rest left on disk) with one place to follow on this side.
 */
import type { PendingDir, TaskQueue } from '../order/task-queue.js';

/** What discovery needs of the queue; TaskQueue has it, tests give a fake. */
export type QueueForDiscovery = Pick<
  TaskQueue,
  'refill' | 'refillWanted' | 'beginRefill' | 'endRefill' | 'abandonRefill' | 'noteListing' | 'add' | 'has' | 'beyondWindow' | 'setDir' | 'forgetAbsent' | 'inDir' | 'setShare' | 'close' | 'size' | 'readyCount' | 'incomingCount'
>;

export class QueueFeed {
  /** Whether this daemon runs the task of a file name (ServedTasks.serves); unset: every task. */
  private serves: ((fileName: string) => boolean) | undefined;
  /** Told of each task refused for that (unknown-tasks.ts keeps when the oldest of them may be dead-lettered). */
  private unserved: ((fileName: string) => void) | undefined;
  /** Whether the task of a file name is paused (control/pause.json): kept out of the queue, on disk; unset: none is. */
  private paused: ((fileName: string) => boolean) | undefined;

  constructor(
    private readonly queue: QueueForDiscovery,
    /** Asks the daemon to dispatch soon (coalesced). */
    readonly wake: () => void,
  ) {}

  /**
   * Start-up, and whenever the queue's window runs low (order/task-queue.ts):
   * the best names of both listings, streamed, into the window. `skip` refuses
   * names this process holds or holds back. Returns the names that are not task
   * names, with their directory.
   */
  refill(pending: Iterable<string>, incoming: Iterable<string>, now: number, skip?: (fileName: string) => boolean): Array<[fileName: string, dir: PendingDir]> {
    const skipping = this.refillSkip(skip);
    return this.queue.refill(
      [
        [pending, 'pending'],
        [incoming, 'incoming'],
      ],
      now,
      skipping,
    );
  }

  /**
   * `skip` and the served-task filter together, for every refill of the window
   * (refill() here, and the sliced refills of discover/sliced-refill.ts). The
   * queue asks only about names it would keep: most of a deep backlog is never
   * looked at here.
   */
  refillSkip(skip?: (fileName: string) => boolean): ((fileName: string) => boolean) | undefined {
    if (this.serves === undefined && this.paused === undefined) return skip;
    return (fileName: string) => skip?.(fileName) === true || !this.admits(fileName);
  }

  /**
   * From now on, queue only the tasks `serves` accepts (the names this daemon
   * runs): the others are never claimed here and stay on disk, out of the
   * window, for a daemon that runs them. `unserved` is told of each one refused.
   */
  serveOnly(serves: (fileName: string) => boolean, unserved?: (fileName: string) => void): void {
    this.serves = serves;
    this.unserved = unserved;
  }

  /**
   * From now on (until called again), keep the tasks `paused` names out of the
   * queue: their files stay where they are, and are not counted as tasks no
   * daemon runs. Undefined: none is paused. Names already queued stay (the
   * gate in run/spool-runs.ts drops them when they come up); names refused
   * while paused come back with a listing (Discovery.relist()).
   */
  holdBack(paused: ((fileName: string) => boolean) | undefined): void {
    this.paused = paused;
  }

  private admits(fileName: string): boolean {
    if (this.paused !== undefined && this.paused(fileName)) return false;
    if (this.serves === undefined || this.serves(fileName)) return true;
    this.unserved?.(fileName);
    return false;
  }

  /** Whether the queue would leave this name on disk (after its kind's cut-off): a cheap look, before any costlier check. */
  beyondWindow(fileName: string, now: number): boolean {
    return this.queue.beyondWindow(fileName, now);
  }

  /** Queues a task found in `dir`; false when it was queued already (its directory is updated) or is not a task name. */
  add(fileName: string, dir: PendingDir, now: number): boolean {
    if ((this.serves !== undefined || this.paused !== undefined) && !this.admits(fileName)) return false;
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

  /** A listing of incoming/ counted `entries` files: the base of the queue's estimate of its backlog. */
  incomingListed(entries: number): void {
    this.queue.noteListing('incoming', entries);
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
