/**
 * One spool served by the daemon: discovering tasks, claiming them, running
 * them and recording how they ended. Concurrency is the daemon's (daemon.ts);
 * the file moves are spool/protocol.ts's.
 *
 * A task's life inside this process (Held):
 *
 *   queued --claim batch--> claiming --claimed, read, decoded--> ready --slot--> running --settle--> finishing --unlink--> done
 *                              |                                                                       |
 *                              '-- lost the race (another daemon, or `spool rm`, got it)               '-- unlink failed: logged, left for reclaim
 *
 * Claims, reads and unlinks go to the file-ops lane (file-ops-lane.ts) in
 * batches; retries, dead letters, quarantines and releases are rare and done
 * here, synchronously. A move that fails (a full disk) leaves its task held in
 * state `stuck` and is tried again with a backoff until it succeeds
 * (stuck-moves.ts).
 *
 * Discovery (watching or listing incoming/, the reconciliation scan, dead
 * owners, peers, debris) is discover/discovery.ts's; it feeds `queue`.
 */
import { sep } from 'node:path';
import { DEFAULT_RETRY, backoffDelay } from '../runtime/backoff.js';
import { ClaimLostError } from '../runtime/context.js';
import type { TaskOutcome } from '../runtime/results.js';
import { sampleClock, SpoolClock, type ClockEstimate } from '../spool/clock.js';
import type { SpoolLayout } from '../spool/layout.js';
import { folderMode } from '../spool/trust.js';
import { decodeTask, type TaskFile } from '../spool/task-file.js';
import { bury, finish, quarantine, release, removeClaimed, retryLater } from '../spool/protocol.js';
import { openDirHandle, wantsDirHandles, type DirHandle } from './dir-handles.js';
import type { Execution, Executor, SettledByRunner } from './executor.js';
import { ClaimStatus, NAME_SEPARATOR, UnlinkStatus, type ClaimReply } from './file-ops.js';
import type { FileOpsLane } from './file-ops-lane.js';
import { SpoolFolders } from './folders.js';
import type { Logger } from './logger.js';
import type { DaemonOptions } from './options.js';
import { Tally } from './observer.js';
import { Owner } from './owner.js';
import { StuckMoves, type StuckMove } from './stuck-moves.js';
import { TaskQueue, windowFromTestKnob, type PendingDir } from './order/task-queue.js';
import { Discovery } from './discover/discovery.js';
import { UnmatchedNames, type RegisteredTasks } from './task-names.js';

/** A host clock off the spool clock by more than this is warned about (the daemon goes by the spool clock either way). */
const CLOCK_WARN_MS = 1000;
/** The measured offset is logged again when it moves by this much. */
const CLOCK_LOG_STEP_MS = 250;

/** What the daemon gives each spool: a way to ask for a run slot and to say one is free. */
export interface Slots {
  /** How many more tasks could start now (0 while the executor takes none). */
  free(): number;
  /** Whether the executor takes tasks at all now (false while every worker process is being replaced). */
  accepting(): boolean;
  acquire(): void;
  release(): void;
  /** Ask the daemon to dispatch soon (coalesced). */
  wake(): void;
}

export interface SpoolStats {
  processed: number;
  skipped: number;
  rescheduled: number;
  dead: number;
  quarantined: number;
  reclaimed: number;
  lost: number;
  /** Claims another daemon won first (a lost race costs a round trip on a network filesystem). */
  claimRaces: number;
}

/**
 * A task this process holds, from the claim request to its last file move:
 *
 *   claiming   sent to the file-ops lane to be claimed and read
 *   ready      claimed, read and decoded; waits for a run slot
 *   running    in the executor (holds a slot)
 *   finishing  processed or skipped; its unlink is queued or under way
 *   stuck      a move of its file failed; tried again by `stuck` until it succeeds
 */
interface Held {
  fileName: string;
  /** Its path in our claim directory. */
  path: string;
  /** The directory it was (to be) claimed from, for quarantine records. */
  from: PendingDir;
  state: 'claiming' | 'ready' | 'running' | 'finishing' | 'stuck';
  task?: TaskFile;
  bytes?: Uint8Array;
  /** Set when processed or skipped. */
  outcome?: Extract<TaskOutcome, { kind: 'processed' | 'skipped' }>;
  /** Set when the owner it was claimed under was lost: its outcome is ignored and its file left alone. */
  revoked?: boolean;
  /** performance.now() when its claim reply arrived, and when it started running (observer.ts, status-file.ts). */
  claimedAt?: number;
  startedAt?: number;
}

/** Names per claim request: small enough that the first tasks of a batch start soon. */
const CLAIM_BATCH = 64;
/**
 * Tasks claimed ahead of the free run slots while tasks are short, so the
 * file-ops thread claims the next batch while this thread runs the current one.
 * Only while tasks take under SHORT_TASK_MS on average: a claimed task waits
 * for a slot, unavailable to other daemons, and a task of higher priority that
 * arrives meanwhile starts after these (at most PREFETCH × SHORT_TASK_MS / concurrency).
 */
const PREFETCH = 128;
const SHORT_TASK_MS = 1;
/**
 * Unlinks go out UNLINK_BATCH at a time or, while claimed tasks wait for a
 * slot (a drain), UNLINK_DELAY_MS after the first is queued: each request
 * costs a message both ways, and a drain of short tasks finishes only a few
 * per event-loop turn. Otherwise they go at the end of the event-loop turn. A task counts as processed
 * once its file is gone; a crash in between runs it again (at-least-once).
 */
const UNLINK_BATCH = 64;
const UNLINK_DELAY_MS = 5;
/** Beside other daemons, before claiming others' tasks, incoming/ is listed again if its last listing is older than this (refreshBeforeStealing()). */
const STEAL_LISTING_MIN_AGE_MS = 250;
/** Backoff of a claim that failed (not a lost race): from the first, doubling up to the most. */
const CLAIM_RETRY_FIRST_MS = 500;
const CLAIM_RETRY_MAX_MS = 30_000;

export class SpoolService {
  readonly layout: SpoolLayout;
  readonly queue: TaskQueue;
  private readonly discovery: Discovery;
  /**
   * The spool clock (spool/clock.ts): the filesystem server's time, sampled at
   * start and at every liveness refresh. Everything compared with a due time in
   * a name, a file's mtime or another daemon's lock goes by it; durations and
   * the daemon's own timers go by the local clock.
   */
  readonly clock = new SpoolClock();
  private clockLogged: ClockEstimate | undefined;
  readonly stats: SpoolStats = { processed: 0, skipped: 0, rescheduled: 0, dead: 0, quarantined: 0, reclaimed: 0, lost: 0, claimRaces: 0 };
  /** Counts by task name and timings, for the metrics and the status file (observer.ts). */
  readonly tally = new Tally();
  /** When start() finished (ms epoch; 0 before), for readiness (http-server.ts). */
  servingSince = 0;
  private owner: Owner | undefined;
  /** Names this process moved out of incoming/: the watch event their departure causes is not an arrival. */
  private readonly departed = new Set<string>();
  /** Files to leave alone until the given time (possibly still being written). */
  private readonly held = new Map<string, number>();
  /** Every task this process holds, by file name (see Held). */
  private readonly owned = new Map<string, Held>();
  /** Claimed tasks waiting for a slot, in queue order; `readyHead` is the next. */
  private ready: Held[] = [];
  private readyHead = 0;
  private claiming = 0;
  /** Processed and skipped tasks whose unlink is not yet sent. */
  private unlinkQueue: Held[] = [];
  private unlinkScheduled = false;
  /** Lane requests under way, awaited before the claims are given up. */
  private readonly inFlight = new Set<Promise<void>>();
  /** Average run time of recent tasks (ms), to decide whether to claim ahead. */
  private runMsAverage = 10 * SHORT_TASK_MS;
  /**
   * On a network filesystem, handles of incoming/ and pending/ and of our claim
   * directory, through which claims, reads and unlinks go (dir-handles.ts);
   * undefined elsewhere. Held for the daemon's life, but a lost owner's is
   * closed once no batch can use it any more.
   */
  private sourceHandles: { incoming: DirHandle; pending: DirHandle } | undefined;
  private claimDirHandle: DirHandle | undefined;
  /** Warns about task names nothing registered (set before start()). */
  private unmatched: UnmatchedNames | undefined;
  private stopping = false;
  /** A spool folder was replaced while we ran (folders.ts): nothing more is moved here, outcomes included. */
  private untrusted = false;
  private readonly log: Logger;
  /** The folders checked at start-up, re-checked before rare moves and at every scan. */
  private readonly folders: SpoolFolders;
  /** Tasks whose claim failed (not a lost race), queued again by scans after a backoff (claimFailed()). */
  private readonly failedClaims = new Map<string, { dir: PendingDir; tries: number; retryAt: number }>();
  /** File moves that failed (a full disk) and are tried again until they succeed. */
  private readonly stuck: StuckMoves;

  constructor(
    dir: string,
    private readonly options: DaemonOptions,
    private readonly slots: Slots,
    private readonly executor: Executor,
    private readonly lane: FileOpsLane,
  ) {
    this.folders = SpoolFolders.open(dir, { gid: options.group }, options.log);
    this.layout = this.folders.layout;
    this.log = options.log.child({ spool: this.layout.root });
    this.stuck = new StuckMoves(this.log);
    // The queue holds a window of the next tasks; when it runs low, discovery refills it from the listings.
    this.queue = new TaskQueue(() => slots.wake(), () => this.clock.now(), { window: windowFromTestKnob(), wantsRefill: () => this.discovery.refillSoon() });
    this.discovery = new Discovery(
      {
        layout: this.layout,
        folders: this.folders,
        options,
        log: this.log,
        clock: this.clock,
        queue: this.queue,
        wake: () => slots.wake(),
        ownerId: () => this.owner?.id,
        unmatched: () => this.unmatched,
        holds: (fileName) => this.owned.has(fileName),
        moveUnderWay: (fileName) => this.stuck.has(fileName),
        quarantine: (path, fileName, reason, from) => this.quarantine(path, fileName, reason, from),
        retryFailedClaims: (now) => {
          if (this.failedClaims.size > 0) this.retryFailedClaims(now);
        },
        reclaimed: (tasks) => void (this.stats.reclaimed += tasks),
        untrusted: () => {
          this.untrusted = true;
          // Nothing more is moved here, failed moves included: they stay where they are.
          this.stuck.stop();
          void this.stopDiscovery();
        },
      },
      this.departed,
      this.held,
    );
  }

  // --- what the claim half asks of discovery (discover/) ----------------------------

  /** The owners serving this spool, ours included: they split the due tasks into claim shares (claim-shares.ts). */
  private get peers(): readonly string[] {
    return this.discovery.peers.ids;
  }

  /** Another daemon's claim directory was seen here once: claim batches start at a random place. */
  private get sharedSpool(): boolean {
    return this.discovery.peers.shared;
  }

  private lookForPeers(): void {
    this.discovery.peers.lookAgain();
  }

  private get lastIncomingScan(): number {
    return this.discovery.incoming.lastListedAt;
  }

  private get incomingScanCost(): number {
    return this.discovery.incoming.lastListingCost;
  }

  private scanIncoming(): void {
    this.discovery.incoming.list();
  }

  private hurryScanIfStarved(): void {
    this.discovery.incoming.hurry();
  }

  /** Before start(): what the task modules registered, to warn about tasks none of it runs. */
  expectTaskNames(registered: RegisteredTasks): void {
    this.unmatched = new UnmatchedNames(registered, this.log);
  }

  get ownerId(): string | undefined {
    return this.owner?.id;
  }

  /** Why this spool is not served now (readiness, http-server.ts), or undefined while it is. */
  get notServingReason(): string | undefined {
    if (this.untrusted) return 'a spool folder was replaced while spoolerd ran; restore it and restart spoolerd';
    if (this.stopping) return 'stopping';
    if (this.servingSince === 0) return 'starting';
    if (this.owner === undefined) return 'lost its claims (stalled past --stale-after); rejoining as a new owner';
    return undefined;
  }

  /** Throws unless these folders are still the ones checked at start-up (folders.ts). */
  checkFolders(...subs: Parameters<SpoolFolders['check']>): void {
    this.folders.check(...subs);
  }

  /** When the last periodic scan began (ms epoch; 0: none yet). */
  get lastScanAt(): number {
    return this.discovery.reconciler.lastScanAt;
  }

  /** Tasks held in active/<owner>/: being claimed, waiting for a slot, running or being settled. */
  get heldCount(): number {
    return this.owned.size;
  }

  /** Claimed tasks waiting for a run slot (claimed ahead). */
  get readyCount(): number {
    return this.ready.length - this.readyHead;
  }

  /** The file names of the tasks held in active/<owner>/ (a census, not per task). */
  heldNames(): IterableIterator<string> {
    return this.owned.keys();
  }

  /** The tasks running now, at most `limit`, with their start as ms epoch (status-file.ts; walked once a second, not per task). */
  runningTasks(limit: number): Array<{ id: string; name: string; attempt: number; startedAt: number }> {
    const out: Array<{ id: string; name: string; attempt: number; startedAt: number }> = [];
    for (const h of this.owned.values()) {
      if (out.length >= limit) break;
      if (h.state !== 'running' || h.task === undefined) continue;
      out.push({ id: h.task.id, name: h.task.name, attempt: h.task.attempts, startedAt: Math.round(performance.timeOrigin + h.startedAt!) });
    }
    return out;
  }

  async start(): Promise<void> {
    // Before the lock is stamped and anything is judged due.
    await this.sampleClock(true);
    this.openSourceHandles();
    this.owner = await this.acquireOwner();
    const started = Date.now();
    const { due, scheduled } = await this.discovery.start();
    this.log.info('serving spool', {
      owner: this.owner.id,
      due,
      scheduled,
      ms: Date.now() - started,
      watching: this.discovery.incoming.watching,
      discovery: this.discovery.incoming.how,
    });
    this.servingSince = Date.now();
    this.slots.wake();
  }

  private acquireOwner(): Promise<Owner> {
    const mode = folderMode('active', { gid: this.options.group });
    const owner = Owner.acquire(
      this.layout,
      this.options.staleAfter,
      { clock: this.clock, beforeRefresh: () => this.sampleClock() },
      (err) => void owner.then((lost) => this.ownerLost(lost, 'its liveness lock was taken for stale or removed', err)),
      mode,
    ).then((acquired) => {
      this.folders.adoptClaimDir(acquired.dir);
      if (this.sourceHandles !== undefined) this.claimDirHandle = openDirHandle(acquired.dir, this.folders.checkedId(acquired.dir)!);
      return acquired;
    });
    return owner;
  }

  /** On a network filesystem, the handles claims take tasks through (dir-handles.ts). */
  private openSourceHandles(): void {
    if (!wantsDirHandles(this.layout.root)) return;
    const incoming = openDirHandle(this.layout.incoming, this.folders.checkedId(this.layout.incoming)!);
    const pending = openDirHandle(this.layout.pending, this.folders.checkedId(this.layout.pending)!);
    if (incoming !== undefined && pending !== undefined) this.sourceHandles = { incoming, pending };
    else {
      incoming?.close();
      pending?.close();
    }
    this.log.debug('on a network filesystem: per-task file operations go through directory handles', { handles: this.sourceHandles !== undefined });
  }

  /**
   * The daemon was taken for dead: stalled (SIGSTOP, a VM pause, a long
   * pause of the event loop) or unable to refresh its lock for --stale-after
   * (its clock being off no longer does it: SPOOL-FORMAT.md, "Clocks"). Other
   * daemons may have reclaimed everything it held and may be running it
   * already; no fencing can undo what its tasks did meanwhile (SPOOL-FORMAT.md,
   * "Stalled daemons"). So it stops acting as that owner at once: the running
   * tasks' AbortSignals fire and their outcomes are ignored, nothing it held is
   * settled, moved or deleted (what is left in the old claim directory is
   * reclaimed like any dead owner's claims, with an attempt counted), and it
   * rejoins as a new owner: new id, lock and claim directory.
   */
  private ownerLost(owner: Owner, how: string, err?: unknown): void {
    if (owner !== this.owner) return;
    this.owner = undefined;
    void owner.abandon();
    const handle = this.claimDirHandle;
    this.claimDirHandle = undefined;
    // Closed only once the batches that may use it are over: its number could be reused by the next open.
    if (handle !== undefined) void Promise.allSettled([...this.inFlight]).then(() => handle.close());
    let running = 0;
    for (const h of this.owned.values()) {
      h.revoked = true;
      if (h.state === 'running') running++;
    }
    const held = this.owned.size;
    this.owned.clear();
    this.ready = [];
    this.readyHead = 0;
    this.claiming = 0;
    this.unlinkQueue = [];
    if (running > 0) this.executor.revoke(this.layout.root, new ClaimLostError());
    this.log.error(
      'this daemon lost its claims: it was stalled (or could not refresh its liveness lock) for longer than --stale-after, and other daemons may already be running the tasks it held. ' +
        'The tasks it was running were told to stop (AbortSignal, ClaimLostError) and may have run twice; their outcomes are ignored and nothing it held is touched. Rejoining as a new owner.',
      { owner: owner.id, how, running, held, ...(err !== undefined && { err }) },
    );
    if (!this.stopping) void this.rejoin(owner.id);
  }

  private async rejoin(previous: string): Promise<void> {
    while (!this.stopping) {
      try {
        const owner = await this.acquireOwner();
        if (this.stopping) return void (await owner.release());
        this.owner = owner;
        this.log.info('serving spool as a new owner', { owner: owner.id, previous });
        this.slots.wake();
        return;
      } catch (err) {
        this.log.error('cannot rejoin the spool as a new owner; trying again', { err, inMs: this.options.scanInterval });
        await new Promise((done) => setTimeout(done, this.options.scanInterval));
      }
    }
  }

  /**
   * One sample of the spool clock (a file created in tmp/ and its mtime read
   * back), then a log line if the offset is new or moved. A failed sample
   * leaves the estimate as it was.
   */
  private async sampleClock(atStart = false): Promise<void> {
    let consistent: boolean;
    try {
      this.folders.check('tmp');
      consistent = this.clock.add(await sampleClock(this.layout.tmp));
    } catch (err) {
      // A spool this daemon may not write cannot be served: said once, as the start-up failure it is.
      const code = (err as NodeJS.ErrnoException).code;
      if (atStart && (code === 'EACCES' || code === 'EPERM' || code === 'EROFS')) throw err;
      if (this.clockLogged === undefined) this.log.error('cannot sample the spool clock (a file created in tmp/); going by this host\'s clock', { err });
      return;
    }
    const e = this.clock.estimate();
    if (this.log.enabled('debug')) this.log.debug('spool clock sample', { offsetMs: e.judgeOffset, betweenMs: [Math.floor(e.lo), Math.ceil(e.hi)], samples: e.samples });
    const last = this.clockLogged;
    if (last !== undefined && consistent && Math.abs(e.judgeOffset - last.judgeOffset) < CLOCK_LOG_STEP_MS) return;
    this.clockLogged = e;
    const fields = {
      offsetMs: e.judgeOffset,
      // Where the true offset lies: the sample's precision (whole seconds on sshfs at first, narrowing with samples).
      betweenMs: [Math.floor(e.lo), Math.ceil(e.hi)],
      ...(e.wholeSeconds && { wholeSeconds: true }),
      ...(!consistent && { stepped: true }),
    };
    const what = last === undefined ? 'spool clock measured' : 'spool clock offset moved';
    if (Math.abs(e.judgeOffset) > CLOCK_WARN_MS) {
      this.log.warn(
        `${what}: this host's clock is off the spool's (the time the filesystem server stamps on files) by more than ${CLOCK_WARN_MS / 1000} s. ` +
          'spoolerd goes by the spool clock for due times and liveness, but fix this host\'s clock (NTP): producers that do not use spoolerd\'s runtime go by it',
        fields,
      );
    } else {
      this.log.info(what, fields);
    }
  }

  /** Starts as many claimed tasks as the daemon has slots for, and claims more. Returns how many started. */
  dispatch(limit: number): number {
    let started = 0;
    while (started < limit && !this.stopping && this.readyHead < this.ready.length && this.slots.free() > 0) {
      const h = this.ready[this.readyHead++]!;
      this.begin(h);
      started++;
    }
    if (this.readyHead === this.ready.length) {
      this.ready = [];
      this.readyHead = 0;
    }
    this.claimMore();
    this.hurryScanIfStarved();
    return started;
  }

  /** Stops discovery and claiming; running tasks go on. */
  async stopDiscovery(): Promise<void> {
    this.stopping = true;
    await this.discovery.stop();
  }

  /** Waits until no claim or unlink is under way (after the running tasks have ended or been stopped). */
  async settleFileOps(): Promise<void> {
    this.flushUnlinks();
    while (this.inFlight.size > 0) {
      await Promise.all(this.inFlight);
      this.flushUnlinks();
    }
  }

  /**
   * Puts every task this process still holds back into incoming/ unchanged (no
   * attempt counted): running ones, and those claimed ahead that never started.
   * Processed ones still waiting for their unlink are deleted. Synchronous file
   * moves, so it is safe from a second signal's handler. Returns how many
   * running tasks went back.
   */
  releaseAll(): number {
    if (this.untrusted) return 0; // left claimed: reclaimed after the stale time by a daemon that checked its folders
    let returned = 0;
    let unstarted = 0;
    // A last try for the moves that failed; what still fails stays where it is.
    if (this.stuck.size > 0) this.stuck.retry(true);
    this.stuck.stop();
    for (const h of this.owned.values()) {
      try {
        if (h.state === 'stuck') {
          // Its function may have returned: running it again from incoming/ without counting the attempt would be wrong.
          this.log.error('a task whose file could not be moved stays claimed; the next daemon reclaims it after the stale time', { file: h.fileName });
        } else if (h.state === 'finishing') {
          removeClaimed(h.path);
        } else if (release(h.path, this.layout)) {
          if (h.state === 'running') {
            returned++;
            this.log.warn('task returned to the spool unfinished; it will run again', { file: h.fileName });
          } else {
            unstarted++;
          }
        }
      } catch (err) {
        this.log.error('cannot return a task to the spool; it stays claimed and is reclaimed after the stale time', { file: h.fileName, err });
      }
    }
    if (unstarted > 0) this.log.debug('returned tasks claimed ahead that had not started', { tasks: unstarted });
    this.owned.clear();
    this.ready = [];
    this.readyHead = 0;
    return returned;
  }

  async releaseOwner(): Promise<void> {
    await this.owner?.release();
  }

  // --- claiming and running -------------------------------------------------

  /** Sends the next due tasks to be claimed: enough for the free slots, plus PREFETCH while tasks are short. */
  private claimMore(): void {
    // While the executor takes nothing (every worker being replaced), claim nothing: it could be a long wait.
    if (this.stopping || this.owner === undefined || !this.slots.accepting()) return;
    const ahead = this.runMsAverage < SHORT_TASK_MS ? PREFETCH : 0;
    const free = this.slots.free();
    const buffered = this.claiming + (this.ready.length - this.readyHead);
    // Claiming ahead, top up in whole batches: while what is claimed covers the free slots and half the
    // prefetch, wait. Topping up after every few finished tasks sent batches of ~8 names, and the main
    // thread spent ~10% of a flood posting them.
    if (ahead > 0 && buffered >= free + ahead / 2) return;
    let want = free + ahead - buffered;
    if (want <= 0) return;
    // Whole batches while claiming ahead: a remainder of a few names costs a message like a full batch.
    if (ahead > 0) want = Math.max(CLAIM_BATCH, want - (want % CLAIM_BATCH));
    const now = this.clock.now();
    if (this.peers.length > 1) this.refreshBeforeStealing(now);
    const ownerDir = this.owner!.dir + sep;
    while (want > 0) {
      const batch: Held[] = [];
      while (batch.length < CLAIM_BATCH && batch.length < want) {
        const next = this.queue.take(now);
        if (next === undefined) break;
        // A late watch event (its `departed` entry cleared by a scan meanwhile) can queue a task this process
        // still holds; claim()'s NFS check would then find the file in our claim directory and run it twice.
        if (this.owned.has(next.fileName)) continue;
        if (next.dir === 'incoming') this.departed.add(next.fileName);
        const h: Held = { fileName: next.fileName, path: ownerDir + next.fileName, from: next.dir, state: 'claiming' };
        this.owned.set(h.fileName, h);
        batch.push(h);
      }
      if (batch.length === 0) return;
      want -= batch.length;
      this.sendClaims(batch);
    }
  }

  /**
   * Beside other daemons, once every due task of our own claim share is
   * claimed, the next claims are other shares' tasks (claim-shares.ts); those
   * their owners claimed since incoming/ was last listed would each be a lost
   * race, so list incoming/ first (it forgets them) unless the last listing
   * is fresh.
   */
  private refreshBeforeStealing(now: number): void {
    if (this.queue.readyCount === 0 || this.queue.hasOwnDue(now)) return;
    if (now - this.lastIncomingScan < Math.max(STEAL_LISTING_MIN_AGE_MS, 10 * this.incomingScanCost)) return;
    this.scanIncoming();
  }

  private sendClaims(batch: Held[]): void {
    const names = joinNames(batch);
    const inPending = new Uint8Array(batch.length);
    for (let i = 0; i < batch.length; i++) if (batch[i]!.from === 'pending') inPending[i] = 1;
    this.claiming += batch.length;
    const owner = this.owner!;
    const handles = this.sourceHandles;
    const claimDir = this.claimDirHandle;
    const request = {
      sources: handles !== undefined ? { incoming: handles.incoming.path, pending: handles.pending.path } : { incoming: this.layout.incoming, pending: this.layout.pending },
      ...(claimDir !== undefined ? { ownerDir: claimDir.path, ownerPath: owner.dir } : { ownerDir: owner.dir }),
      names,
      inPending,
      maxBytes: this.options.maxBytes,
      // Alone on its spool a daemon claims from the head; beside others, from a random place (file-ops.ts).
      ...(this.sharedSpool && batch.length > 1 && { start: Math.floor(Math.random() * batch.length) }),
    };
    this.track(this.lane.claim(request, batch.length).then((reply) => this.onClaimed(owner, batch, reply)));
  }

  private track(work: Promise<void>): void {
    const tracked = work.catch((err: unknown) => this.log.error('unexpected error in a file-ops batch', { err })).finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  private onClaimed(owner: Owner, batch: Held[], reply: ClaimReply): void {
    // Claimed under an owner lost meanwhile: whatever got into its directory is reclaimed from there.
    if (owner !== this.owner) return;
    this.claiming -= batch.length;
    if (reply.status.includes(ClaimStatus.OwnerGone)) {
      return this.ownerLost(owner, 'its claim directory is gone (a claim into it failed)');
    }
    const now = this.clock.now();
    const claimedAt = performance.now();
    const bytes = Buffer.from(reply.bytes);
    for (let i = 0; i < batch.length; i++) {
      try {
        batch[i]!.claimedAt = claimedAt;
        this.onClaimedOne(batch[i]!, reply, i, bytes, now);
      } catch (err) {
        // A release or quarantine that failed: the file stays claimed, and held, so a stop returns it.
        this.log.error('unexpected error after claiming a task; it stays claimed until this daemon stops', { file: batch[i]!.fileName, err });
      }
    }
    this.slots.wake();
  }

  private onClaimedOne(h: Held, reply: ClaimReply, i: number, bytes: Buffer, now: number): void {
    switch (reply.status[i]) {
      case ClaimStatus.Lost:
        this.stats.claimRaces++;
        this.lookForPeers();
        this.owned.delete(h.fileName);
        if (this.failedClaims.size > 0) this.failedClaims.delete(h.fileName);
        break;
      case ClaimStatus.Failed:
        this.owned.delete(h.fileName);
        this.claimFailed(h, reply.reasons[i], now);
        break;
      case ClaimStatus.Unreadable: {
        h.from = reply.fromPending[i] === 1 ? 'pending' : 'incoming';
        this.owned.delete(h.fileName);
        const reason = reply.reasons[i]!;
        if (reason.startsWith('it disappeared')) this.lose(h.fileName, 'the claimed file vanished');
        else this.quarantine(h.path, h.fileName, reason, h.from, h);
        break;
      }
      default:
        h.from = reply.fromPending[i] === 1 ? 'pending' : 'incoming';
        if (this.failedClaims.size > 0) this.failedClaims.delete(h.fileName);
        this.admit(h, bytes.subarray(reply.offsets[i], reply.offsets[i + 1]), reply.mtimes[i]!, now);
    }
  }

  /**
   * Not a lost race: permissions, a full disk, a claim directory that cannot
   * grow. The file stays where it is; scans queue it again after a backoff
   * (retryFailedClaims()), and only the first failure is logged as an error.
   */
  private claimFailed(h: Held, reason: string | undefined, now: number): void {
    const entry = this.failedClaims.get(h.fileName) ?? { dir: h.from, tries: 0, retryAt: 0 };
    entry.tries++;
    const delay = Math.min(CLAIM_RETRY_FIRST_MS * 2 ** (entry.tries - 1), CLAIM_RETRY_MAX_MS);
    entry.retryAt = now + delay;
    this.failedClaims.set(h.fileName, entry);
    // A watch event or a scan of incoming/ must not queue it again before then.
    this.held.set(h.fileName, entry.retryAt);
    if (entry.tries === 1) this.log.error('cannot claim a task; will try again until it succeeds', { file: h.fileName, retryInMs: delay, err: reason });
    else this.log.debug('still cannot claim a task', { file: h.fileName, tries: entry.tries, retryInMs: delay, err: reason });
  }

  /** Queues again the tasks whose claim failed, once their backoff is over (from the scan). */
  private retryFailedClaims(now: number): void {
    let queued = false;
    for (const [fileName, entry] of this.failedClaims) {
      if (entry.retryAt > now) continue;
      // Its next claim ends the entry (claimed, or lost to another daemon) or backs off further.
      if (this.queue.add(fileName, entry.dir, now)) queued = true;
    }
    if (queued) this.slots.wake();
  }

  /** A claimed and read task: decode it, then queue it for a slot, or deal with it at once if it cannot run. */
  private admit(h: Held, bytes: Uint8Array, mtimeMs: number, now: number): void {
    const decoded = decodeTask(h.fileName, bytes);
    if (!decoded.ok) {
      if (now - mtimeMs < this.options.settle) {
        // Possibly a producer writing in place: put it back and look again once it has settled.
        this.held.set(h.fileName, mtimeMs + this.options.settle);
        this.owned.delete(h.fileName);
        try {
          release(h.path, this.layout);
        } catch (err) {
          return this.stuckClaimed(h, 'return a task file that does not decode yet to incoming/', {}, () => release(h.path, this.layout), () => undefined, err);
        }
        this.log.debug('task file does not decode yet; holding it while it may still be written', { file: h.fileName, reason: decoded.reason });
      } else {
        this.owned.delete(h.fileName);
        this.quarantine(h.path, h.fileName, decoded.reason, h.from, h);
      }
      return;
    }
    const task = decoded.task;
    const limit = task.body.retry?.limit ?? DEFAULT_RETRY.limit;
    if (task.attempts > limit) {
      // Only reclaims get a task here: its daemon died with it `attempts` times. Do not run a crash loop again.
      this.owned.delete(h.fileName);
      const error = new Error(`the task was interrupted ${task.attempts} times (daemons died or were killed while running it), over its retry limit of ${limit}`);
      this.buryTask(h, task, task.attempts, describeError(error), { task: task.name, id: task.id, attempt: task.attempts }, limit);
      return;
    }
    h.task = task;
    h.bytes = bytes;
    h.state = 'ready';
    this.ready.push(h);
  }

  private begin(h: Held): void {
    h.state = 'running';
    this.slots.acquire();
    const startedAt = performance.now();
    const task = h.task!;
    h.startedAt = startedAt;
    this.tally.started(task, startedAt - h.claimedAt!);
    const timeout = task.body.timeout ?? this.options.taskTimeout;
    let execution: Execution | Promise<Execution>;
    try {
      execution = this.executor.run({ spool: this.layout.root, task, claimedPath: h.path, bytes: h.bytes!, timeoutMs: timeout > 0 ? timeout : undefined });
    } catch (err) {
      execution = { kind: 'rescheduled', error: err };
    }
    // A task that ended synchronously is settled here, in this dispatch round, with no promise.
    if (!(execution instanceof Promise)) return this.ended(h, execution, startedAt);
    execution.then(
      (outcome) => this.ended(h, outcome, startedAt),
      (err: unknown) => this.ended(h, { kind: 'rescheduled', error: err }, startedAt),
    );
  }

  /** A task's run is over: apply its outcome to its file and free its slot. */
  private ended(h: Held, outcome: Execution, startedAt: number): void {
    h.bytes = undefined;
    if (h.revoked === true) return this.endedRevoked(h, outcome);
    const runMs = performance.now() - startedAt;
    if (outcome.kind !== 'released') this.tally.ran(h.task!, runMs, outcome.kind === 'rescheduled' && outcome.error !== undefined);
    try {
      if (this.untrusted) this.log.error('a spool folder was replaced: the outcome of this task is not recorded; it stays claimed', { file: h.fileName, outcome: outcome.kind });
      else if (outcome.kind === 'released') this.releaseInterrupted(h, outcome.reason);
      else if (outcome.kind === 'settled-by-runner') this.settledByRunner(h, outcome);
      else this.settle(h, h.task!, outcome);
    } catch (err) {
      this.log.error('unexpected error while running a task; it stays claimed until this daemon stops', { file: h.fileName, err });
    }
    this.runMsAverage += 0.2 * (runMs - this.runMsAverage);
    if (h.state === 'running') this.owned.delete(h.fileName);
    this.slots.release();
  }

  /** A task whose claim was lost while it ran: its file is no longer ours to settle (ownerLost()). */
  private endedRevoked(h: Held, outcome: Execution): void {
    this.log.warn('a task whose claim was lost has ended; its outcome is ignored (another daemon may have run it too)', { file: h.fileName, outcome: outcome.kind });
    this.slots.release();
  }

  /** A task interrupted through no fault of its own: back to incoming/, no attempt counted. */
  private releaseInterrupted(h: Held, reason: string): void {
    const returned = (moved: boolean) => {
      if (!moved) return this.lose(h.fileName, 'the claim was taken over before the task was returned');
      this.queue.add(h.fileName, 'incoming', this.clock.now());
      this.log.warn('task returned to the spool without counting an attempt', { file: h.fileName, reason });
    };
    this.moveClaimed(h, 'return an interrupted task to incoming/', { reason }, () => release(h.path, this.layout), returned);
  }

  /** A processed or skipped task whose worker process removed (or archived) its file itself. */
  private settledByRunner(h: Held, settled: SettledByRunner): void {
    if (settled.file === 'missing') return this.lose(h.fileName, 'the claim was taken over before the task finished');
    if (settled.outcome === undefined) {
      // Its worker died after the task returned and its file was removed, before the report left.
      const task = h.task!;
      this.log.info('task finished in a worker process that ended before reporting it; its file was already removed, so it is done (counted as processed)', {
        task: task.name,
        id: task.id,
        attempt: task.attempts,
      });
      h.outcome = { kind: 'processed' };
    } else {
      h.outcome = settled.outcome;
    }
    this.finished(h);
  }

  /** Applies an outcome to the claimed file. */
  private settle(h: Held, task: TaskFile, outcome: TaskOutcome): void {
    const fields = { task: task.name, id: task.id, attempt: task.attempts };
    try {
      switch (outcome.kind) {
        case 'processed':
        case 'skipped':
          h.outcome = outcome;
          if (this.options.archive) {
            const archived = (moved: boolean) => (moved ? this.finished(h) : this.lose(h.fileName, 'the claim was taken over before the task finished'));
            return this.moveClaimed(h, 'move a finished task to archive/', fields, () => finish(h.path, this.layout, true), archived);
          }
          // Deleted in a batch by the file-ops lane; the task counts as done once its file is gone.
          h.state = 'finishing';
          this.unlinkQueue.push(h);
          if (this.unlinkQueue.length >= UNLINK_BATCH) this.flushUnlinks();
          else if (!this.unlinkScheduled) {
            this.unlinkScheduled = true;
            // Batch only while claimed tasks wait (a drain); otherwise delete at the end of this turn.
            if (this.readyHead < this.ready.length) setTimeout(() => this.flushUnlinks(), UNLINK_DELAY_MS);
            else setImmediate(() => this.flushUnlinks());
          }
          return;
        case 'rescheduled':
          return this.reschedule(h, task, outcome, fields);
      }
    } catch (err) {
      // The file stays claimed; if this daemon cannot move it, the next one reclaims it after we are gone.
      this.log.error('cannot record the outcome of a task; it stays claimed', { ...fields, outcome: outcome.kind, err });
    }
  }

  private flushUnlinks(): void {
    this.unlinkScheduled = false;
    if (this.unlinkQueue.length === 0) return;
    const batch = this.unlinkQueue;
    this.unlinkQueue = [];
    this.track(
      this.lane.unlink(this.claimDirHandle?.path ?? this.owner!.dir, joinNames(batch), batch.length).then((reply) => {
        for (let i = 0; i < batch.length; i++) {
          const h = batch[i]!;
          // releaseAll() (a second signal) may have dealt with it meanwhile.
          if (this.owned.get(h.fileName) !== h) continue;
          this.owned.delete(h.fileName);
          if (reply.status[i] === UnlinkStatus.Done) this.finished(h);
          else if (reply.status[i] === UnlinkStatus.Missing) this.lose(h.fileName, 'the claim was taken over before the task finished');
          else {
            const fields = { task: h.task!.name, id: h.task!.id, outcome: h.outcome!.kind };
            const removed = (gone: boolean) => (gone ? this.finished(h) : this.lose(h.fileName, 'the claim was taken over before the task finished'));
            this.stuckClaimed(h, 'delete a finished task', fields, () => removeClaimed(h.path), removed, reply.reasons[i]);
          }
        }
      }),
    );
  }

  /** Counts and logs a processed or skipped task whose file is gone (or archived). */
  private finished(h: Held): void {
    const task = h.task!;
    if (h.outcome!.kind === 'processed') {
      this.stats.processed++;
      this.tally.processed(task);
      if (this.log.enabled('debug')) this.log.debug('task processed', { task: task.name, id: task.id, attempt: task.attempts });
    } else {
      this.stats.skipped++;
      this.tally.skipped(task);
      this.log.info('task skipped', { task: task.name, id: task.id, attempt: task.attempts, reason: h.outcome!.reason ?? 'no reason given' });
    }
  }

  private reschedule(h: Held, task: TaskFile, outcome: Extract<TaskOutcome, { kind: 'rescheduled' }>, fields: Record<string, unknown>): void {
    const failures = task.attempts + 1;
    const retry = task.body.retry ?? DEFAULT_RETRY;
    const error = describeError(outcome.error ?? outcome.reason ?? 'rescheduled by the task');
    if (failures > retry.limit) return this.buryTask(h, task, failures, error, fields, retry.limit);
    const delay = outcome.delay ?? backoffDelay(retry.backoff ?? DEFAULT_RETRY.backoff!, failures);
    const due = this.clock.stampNow() + delay;
    let next: string | undefined;
    const rescheduled = (moved: boolean) => {
      if (!moved) return this.lose(h.fileName, 'the claim was taken over before the task was rescheduled');
      this.stats.rescheduled++;
      this.tally.rescheduled(task);
      this.queue.add(next!, 'pending', this.clock.now());
      // One line per retry: the stack goes to the dead letter's record (and here only at debug),
      // or a run where a tenth of the tasks fail once writes thousands of stacks.
      const level = outcome.error === undefined ? 'info' : 'warn';
      const stack = outcome.error !== undefined && this.log.enabled('debug') ? error.stack : undefined;
      this.log[level]('task rescheduled', { ...fields, inMs: delay, nextTry: new Date(due).toISOString(), retriesLeft: retry.limit - failures, error: error.message, stack });
    };
    const move = () => (next = retryLater(h.path, this.layout, due)) !== undefined;
    this.moveClaimed(h, 'move a task to pending/ for its retry', fields, move, rescheduled);
  }

  /** Moves a task out of retries to dead/, its error recorded in state/<id>.json. */
  private buryTask(h: Held, task: TaskFile, attempts: number, error: ReturnType<typeof describeError>, fields: Record<string, unknown>, retries: number): void {
    const record = { id: task.id, name: task.name, attempts, at: this.clock.now(), error };
    const buried = (moved: boolean) => {
      if (!moved) return this.lose(task.fileName, 'the claim was taken over before the task was buried');
      this.stats.dead++;
      this.tally.dead(task);
      this.log.warn('task is a dead letter: out of retries', { ...fields, retries, error: error.message, stack: error.stack });
    };
    const move = () => {
      this.folders.check('state', 'dead');
      return bury(h.path, this.layout, record) !== undefined;
    };
    this.moveClaimed(h, 'move a task to dead/ (its failure record first)', fields, move, buried);
  }

  /**
   * Makes a move of a claimed task (true: moved; false: its file was gone) and
   * then `settled`; a move that throws is left to stuckClaimed() instead.
   */
  private moveClaimed(h: Held, what: string, fields: Record<string, unknown>, move: () => boolean, settled: (moved: boolean) => void): void {
    let moved: boolean;
    try {
      moved = move();
    } catch (err) {
      return this.stuckClaimed(h, what, fields, move, settled, err);
    }
    settled(moved);
  }

  /**
   * A move of a claimed task failed (a full disk, a directory that cannot grow):
   * the task stays claimed and held, and the move is tried again with a backoff
   * until it succeeds or the file is gone (stuck-moves.ts).
   */
  private stuckClaimed(h: Held, what: string, fields: Record<string, unknown>, attempt: () => boolean, settled: (moved: boolean) => void, err: unknown): void {
    h.state = 'stuck';
    this.owned.set(h.fileName, h);
    const move: StuckMove = {
      fileName: h.fileName,
      what,
      fields,
      attempt,
      settled: (moved) => {
        if (this.owned.get(h.fileName) === h) this.owned.delete(h.fileName);
        settled(moved);
        this.slots.wake();
      },
    };
    this.stuck.add(move, err);
  }

  private lose(fileName: string, why: string): void {
    this.stats.lost++;
    this.log.warn(`${why}; another daemon reclaimed it and will run it again`, { file: fileName });
  }

  /** Moves a file that is not a valid task to quarantine/; `h` when it is claimed (in our claim directory). */
  private quarantine(path: string, fileName: string, reason: string, from: string, h?: Held): void {
    let to: string | undefined;
    const quarantined = (moved: boolean) => {
      if (!moved) return;
      this.stats.quarantined++;
      this.log.warn('quarantined a file that is not a valid task', { file: fileName, reason, to });
    };
    const move = () => {
      this.folders.check('quarantine');
      return (to = quarantine(this.layout, path, fileName, reason, from, this.clock.now())) !== undefined;
    };
    let moved: boolean;
    try {
      moved = move();
    } catch (err) {
      const what = 'quarantine an invalid file';
      if (h !== undefined) return this.stuckClaimed(h, what, { reason }, move, quarantined, err);
      // Still in incoming/: considerBadName() leaves it to the retries meanwhile.
      return this.stuck.add({ fileName, what, fields: { reason }, attempt: move, settled: quarantined }, err);
    }
    quarantined(moved);
  }
}

/** The file names of a batch, as a file-ops request carries them. */
function joinNames(batch: readonly Held[]): string {
  return batch.map((h) => h.fileName).join(NAME_SEPARATOR);
}

function describeError(error: unknown): { name?: string; message: string; stack?: string } {
  if (error instanceof Error) return { name: error.name, message: error.message, ...(error.stack !== undefined && { stack: error.stack }) };
  return { message: typeof error === 'string' ? error : `non-Error thrown: ${safeString(error)}` };
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
