/**
 * One spool served by the daemon: discovering tasks, claiming them, running
 * them and recording how they ended. Concurrency is the daemon's (daemon.ts);
 * the file moves are claim.ts's.
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
 * Discovery: the watcher on incoming/ (watch.ts), plus a scan every
 * scanInterval that re-reads incoming/ (missed events), re-reads pending/ when
 * its mtime changed (other daemons' moves), reclaims the claims of dead owners
 * and sweeps debris from tmp/.
 */
import { lstatSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { join, sep } from 'node:path';
import { DEFAULT_RETRY, backoffDelay } from '../runtime/backoff.js';
import { ClaimLostError } from '../runtime/context.js';
import type { TaskOutcome } from '../runtime/results.js';
import { sampleClock, SpoolClock, type ClockEstimate } from '../spool/clock.js';
import type { SpoolLayout } from '../spool/layout.js';
import { folderMode } from '../spool/trust.js';
import { compactDrainedFolder } from '../spool/compact-folder.js';
import { dueOfTaskName, explainBadName } from '../spool/name.js';
import { eachName, readNames } from '../spool/read-names.js';
import { decodeTask, type TaskFile } from '../spool/task-file.js';
import { accept, bury, finish, reclaimOwner, release, removeClaimed, retryLater } from './claim.js';
import { ownShare } from './order/claim-shares.js';
import { openDirHandle, wantsDirHandles, type DirHandle } from './dir-handles.js';
import type { Execution, Executor, SettledByRunner } from './executor.js';
import { ClaimStatus, NAME_SEPARATOR, UnlinkStatus, type ClaimReply } from './file-ops.js';
import type { FileOpsLane } from './file-ops-lane.js';
import { SpoolFolders } from './folders.js';
import type { Logger } from './logger.js';
import type { DaemonOptions } from './options.js';
import { Tally } from './observer.js';
import { isOwnerAlive, Owner, removeOwnerLock } from './owner.js';
import { quarantine, RECORD_STAGING_PREFIX } from './records.js';
import { removeStatusFile } from './status-file.js';
import { StuckMoves, type StuckMove } from './stuck-moves.js';
import { roughDue, TaskQueue, windowFromTestKnob, type PendingDir } from './order/task-queue.js';
import { pollSettingsFor } from './poll.js';
import { directoryStamp, ListingGate, type PollSettings } from './poll-policy.js';
import { watchDirectory, type DirectoryWatch } from './watch.js';
import { UnmatchedNames, type RegisteredTasks } from './task-names.js';

/**
 * Above this many files in incoming/, the watcher waits: on activity chokidar
 * re-reads (and lstats) the whole directory once a second, which a large
 * backlog makes expensive. Until then the daemon scans incoming/ itself.
 */
const WATCH_MAX_BACKLOG = 1000;
/**
 * While incoming/ is unwatched and its last listing found new tasks, list it
 * again quickly once fewer than this many due tasks are queued (scheduleScan()).
 */
const QUICK_SCAN_BELOW = 1000;
const QUICK_SCAN_MIN_MS = 10;
/** A watched incoming/ whose mtime has not moved is still listed this often (incomingMayHaveChanged()). */
const INCOMING_FULL_SCAN_MS = 60_000;
/** Staging files older than this are debris of crashed producers. */
const TMP_DEBRIS_AGE = 3_600_000;
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
/** Beside other daemons, a lost claim race makes the daemon look at the owners serving the spool again, at most this often. */
const PEER_LOOK_MIN_MS = 1000;
/**
 * Beside other daemons, a listing of incoming/ of at most this many names also
 * drops from the queue the tasks it no longer holds (claimed by another daemon).
 */
const PRUNE_MAX_NAMES = 200_000;
/** Beside other daemons, before claiming others' tasks, incoming/ is listed again if its last listing is older than this (refreshBeforeStealing()). */
const STEAL_LISTING_MIN_AGE_MS = 250;
/** Backoff of a claim that failed (not a lost race): from the first, doubling up to the most. */
const CLAIM_RETRY_FIRST_MS = 500;
const CLAIM_RETRY_MAX_MS = 30_000;

export class SpoolService {
  readonly layout: SpoolLayout;
  readonly queue: TaskQueue;
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
  private watcher: DirectoryWatch | undefined;
  /** How incoming/ is watched: polled on this schedule (network filesystems), or with inotify when undefined. */
  private poll: PollSettings | undefined;
  private scanTimer: NodeJS.Timeout | undefined;
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
  private pendingMtime = -1;
  /** Whether another daemon has served this spool since pending/ was last read: only then can pending/ hold tasks we do not know. */
  private otherOwnersSeen = false;
  /** Another daemon's claim directory was seen here once: claim batches start at a random place. */
  private sharedSpool = false;
  /** The owners serving this spool as last seen, ours included, sorted: they split the due tasks into claim shares (claim-shares.ts). */
  private peers: string[] = [];
  /** Owners the last scan found dead (their lock stale or gone), left out of `peers` until their directory goes. */
  private readonly deadPeers = new Set<string>();
  private lastPeerLook = 0;
  /**
   * On a network filesystem, handles of incoming/ and pending/ and of our claim
   * directory, through which claims, reads and unlinks go (dir-handles.ts);
   * undefined elsewhere. Held for the daemon's life, but a lost owner's is
   * closed once no batch can use it any more.
   */
  private sourceHandles: { incoming: DirHandle; pending: DirHandle } | undefined;
  private claimDirHandle: DirHandle | undefined;
  private nextPendingScan = 0;
  private lastTmpSweep = 0;
  private lastRecordSweep = 0;
  /** Tasks the last listing of incoming/ queued, and when the last full scan ran (scheduleScan()). */
  private lastScanAdded = 0;
  private lastFullScan = 0;
  /** incoming/'s stamp just before each listing, and whether it proves that nothing changed since (incomingMayHaveChanged()). */
  private readonly incomingGate = new ListingGate();
  private lastIncomingScan = 0;
  /** How long the last scan of incoming/ took (ms), to space scans out while incoming/ is unwatched. */
  private incomingScanCost = 0;
  /** A scan is under way (it schedules the next one when it ends), or when the scheduled one fires. */
  private scanning = false;
  private scanDueAt = Infinity;
  /** Warns about task names nothing registered (set before start()). */
  private unmatched: UnmatchedNames | undefined;
  /** Whether the first pause of the watcher (pauseWatching()) was logged: later ones go to debug. */
  private crowdedSaid = false;
  /** Whether moveFutureOutOfIncoming() is under way. */
  private moving = false;
  /** Whether the spool is on a local filesystem, where a drained folder may be recreated (compactIncomingIfDrained()). */
  private localFolders: boolean | undefined;
  /** How many names the last listing of incoming/ found not due within a scan interval (moveFutureOutOfIncoming()). */
  private futureInIncoming = 0;
  /** The queue asked for a refill and it has not run yet (refillQueueSoon()). */
  private refillPending = false;
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
    // The queue holds a window of the next tasks; when it runs low it asks for a refill (refillQueue()).
    this.queue = new TaskQueue(() => slots.wake(), () => this.clock.now(), { window: windowFromTestKnob(), wantsRefill: () => this.refillQueueSoon() });
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
    return this.lastFullScan;
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
    const incoming = this.loadBacklog(this.clock.now());
    // Counted before the first await: from then on, claims may already be taking tasks from the queue.
    const due = this.queue.readyCount;
    const scheduled = this.queue.size - due;
    await this.reclaimDeadOwners();
    this.poll = pollSettingsFor(this.layout.incoming, this.options, this.log);
    if (incoming <= WATCH_MAX_BACKLOG) await this.startWatching();
    else this.moveFutureOutOfIncoming();
    this.log.info('serving spool', {
      owner: this.owner.id,
      due,
      scheduled,
      ms: Date.now() - started,
      watching: this.watcher !== undefined,
      discovery: this.poll === undefined ? 'inotify' : 'poll',
    });
    this.servingSince = Date.now();
    this.slots.wake();
    this.scheduleScan();
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
    clearTimeout(this.scanTimer);
    this.queue.close();
    await this.watcher?.close();
    this.watcher = undefined;
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

  // --- discovery --------------------------------------------------------------

  /**
   * Start-up: the best task names of pending/ and incoming/ into the queue's
   * window, the directories streamed (never one array of a million names: the
   * queue keeps what it has room for). Returns how many entries incoming/ has.
   */
  private loadBacklog(now: number): number {
    let incoming = 0;
    const horizon = now + this.options.scanInterval;
    let future = 0;
    const counted = function* (names: Iterable<string>): Generator<string> {
      for (const n of names) {
        incoming++;
        if (roughDue(n) > horizon) future++;
        yield n;
      }
    };
    this.pendingMtime = statSync(this.layout.pending).mtimeMs;
    this.nextPendingScan = Date.now() + this.options.scanInterval;
    const rejected = this.queue.refill(
      [
        [eachName(this.layout.pending), 'pending'],
        [counted(eachName(this.layout.incoming)), 'incoming'],
      ],
      now,
    );
    for (const [n, dir] of rejected) this.considerBadName(this.layout[dir] + sep + n, n, dir, undefined);
    this.unmatched?.checkAll(this.queue.inDir('pending'));
    this.unmatched?.checkAll(this.queue.inDir('incoming'));
    this.futureInIncoming = future;
    return incoming;
  }

  /**
   * The queue's window ran low while tasks wait on disk beyond it
   * (order/task-queue.ts): list both directories again, soon but not inside
   * the claim loop that noticed, and give the queue the best names it has
   * room for. Tasks this process holds or holds back are not queued again.
   */
  private refillQueueSoon(): void {
    if (this.refillPending) return;
    this.refillPending = true;
    const refill = () => {
      if (this.stopping || this.untrusted) return void (this.refillPending = false);
      const started = Date.now();
      const now = this.clock.now();
      try {
        this.queue.refill(
          [
            [eachName(this.layout.pending), 'pending'],
            [eachName(this.layout.incoming), 'incoming'],
          ],
          now,
          (n) => this.owned.has(n) || this.departed.has(n) || (this.held.get(n) ?? -Infinity) > now,
        );
      } catch (err) {
        // Still pending: asked again right away, it would fail again at once.
        this.log.error('cannot list the spool to refill the queue; trying again', { err, inMs: this.options.scanInterval });
        setTimeout(refill, this.options.scanInterval).unref();
        return;
      }
      this.refillPending = false;
      this.log.debug('queue refilled from the listings', { ms: Date.now() - started, held: this.queue.size, due: this.queue.readyCount });
      this.slots.wake();
    };
    setImmediate(refill);
  }

  /** Reads incoming/ and considers every entry. Returns how many entries it holds. */
  private scanIncoming(): number {
    const started = Date.now();
    this.lastIncomingScan = started;
    // Beside other daemons the names are kept (up to PRUNE_MAX_NAMES) to forget what they claimed since the last listing.
    const kept: string[] | undefined = this.peers.length > 1 ? [] : undefined;
    let count = 0;
    let future = 0;
    const known = this.queue.size;
    try {
      // Before the listing: a file that arrives after it moves the stamp, or shares its timestamp tick (the gate lists again then).
      this.incomingGate.listed(directoryStamp(statSync(this.layout.incoming)), started);
      this.departed.clear();
      const now = this.clock.now();
      const horizon = now + this.options.scanInterval;
      future = 0;
      // Names only, streamed: a file's type is checked when it is claimed (safe-read.ts), which also catches a
      // file swapped after listing; a million Dirents would cost ~200 MB, and a million names in one array ~100 MB
      // (the queue keeps only its window of them).
      for (const name of eachName(this.layout.incoming)) {
        count++;
        if (kept !== undefined && count <= PRUNE_MAX_NAMES) kept.push(name);
        if (roughDue(name) > horizon) future++;
        this.consider(name, now);
      }
    } catch (err) {
      this.log.error('cannot read incoming/', { err });
      return 0;
    }
    // Beside other daemons: what they claimed since the last listing is gone from it; a claim of it would be lost.
    if (kept !== undefined && count <= PRUNE_MAX_NAMES) this.queue.forgetAbsent('incoming', new Set(kept));
    this.lastScanAdded = this.queue.size - known;
    this.futureInIncoming = future;
    // Listing included: on a crowded incoming/ it is most of the cost.
    this.incomingScanCost = Date.now() - started;
    if (count > 0) this.slots.wake();
    else this.compactIncomingIfDrained();
    return count;
  }

  /**
   * incoming/ was listed empty: if it grew large (ext4 never shrinks a
   * directory), recreate it empty so that every later listing is cheap again
   * (spool/compact-folder.ts). Only while watched (the watch is re-armed on the
   * new folder), alone on the spool (another daemon would take the new folder
   * for a stranger's swap and stop serving), and not on a network filesystem.
   */
  private compactIncomingIfDrained(): void {
    const watcher = this.watcher;
    if (watcher === undefined || this.sharedSpool || this.stopping || this.untrusted) return;
    this.localFolders ??= !wantsDirHandles(this.layout.root);
    if (!this.localFolders) return;
    let result;
    try {
      result = compactDrainedFolder(this.layout.incoming, this.layout.state, this.folders.checkedId(this.layout.incoming)!);
    } catch (err) {
      this.log.warn('cannot recreate the drained incoming/; its listings stay as costly as its largest backlog', { err });
      return;
    }
    if (!result.done) return;
    this.folders.adoptReplaced('incoming', result.id);
    this.log.info('incoming/ had drained: recreated it empty, so that listing it is cheap again');
    // The watch was on the old folder, which is gone: watch the new one (startWatching lists it for what came meanwhile).
    this.watcher = undefined;
    watcher.close().catch((err: unknown) => this.log.error('cannot close the watcher', { err }));
    this.startWatching().catch((err: unknown) => this.log.error('cannot watch incoming/ again; relying on scans', { err }));
  }

  /**
   * A watch event names a file that arrived in incoming/ or left it. Our own
   * departures are in `departed`; anything else is queued, and a departure by
   * another daemon then costs one failed claim, which is cheaper than an lstat
   * of every arrival.
   */
  private onWatchEvent(fileName: string | undefined): void {
    if (this.stopping) return;
    if (fileName === undefined) {
      this.scanIncoming();
      if (this.queue.incomingCount > WATCH_MAX_BACKLOG) this.pauseWatching();
      return;
    }
    if (this.departed.delete(fileName)) return;
    this.consider(fileName, this.clock.now());
    this.slots.wake();
    if (this.queue.incomingCount > WATCH_MAX_BACKLOG) this.pauseWatching();
  }

  /**
   * Producers are outrunning the daemon: stop watching incoming/ and scan it
   * instead, until a scan finds it small again (scan()). chokidar answers every
   * burst of events by re-reading the whole directory with an lstat per entry,
   * which on a crowded incoming/ took most of the daemon's time and throughput
   * fell to a few hundred tasks/s (BENCHMARKS.md, side by side, "sustained").
   */
  private pauseWatching(): void {
    const watcher = this.watcher;
    if (watcher === undefined) return;
    this.watcher = undefined;
    watcher.close().catch((err: unknown) => this.log.error('cannot close the watcher', { err }));
    // Normal operation under load, and it may come and go many times a minute: said once, at info.
    const fields = { queued: this.queue.incomingCount, threshold: WATCH_MAX_BACKLOG };
    if (this.crowdedSaid) this.log.debug('incoming/ is crowded again; watching paused', fields);
    else {
      this.crowdedSaid = true;
      this.log.info('incoming/ is crowded; watching paused, scanning it instead until it is small again', {
        ...fields,
        reason: 'a watcher re-reads the whole folder on every burst of arrivals, which costs more than scanning it; this is said once, later pauses are logged at debug',
      });
    }
    clearTimeout(this.scanTimer);
    this.scheduleScan();
    this.moveFutureOutOfIncoming();
  }

  /** Decides what to do with a name in incoming/: queue it, move it to pending/, hold it or quarantine it. */
  private consider(fileName: string, now: number): void {
    if (fileName.charCodeAt(0) === 46 /* "." */ || this.queue.has(fileName) || this.queue.beyondWindow(fileName, now)) return;
    const heldUntil = this.held.get(fileName);
    if (heldUntil !== undefined) {
      if (now < heldUntil) return;
      this.held.delete(fileName);
    }
    const due = dueOfTaskName(fileName);
    if (due === undefined) {
      this.considerBadName(join(this.layout.incoming, fileName), fileName, 'incoming', undefined);
      return;
    }
    this.unmatched?.check(fileName);
    // Not due for a while and incoming/ is watched: move it out of the watched directory now.
    // While incoming/ is too large to watch, moveFutureOutOfIncoming() does this in the background.
    if (due > now + this.options.scanInterval && this.watcher !== undefined) {
      this.departed.add(fileName);
      let accepted = false;
      try {
        accepted = accept(this.layout, fileName);
      } catch (err) {
        this.log.error('cannot move a task to pending/; it waits in incoming/', { file: fileName, err });
        this.departed.delete(fileName);
        this.queue.add(fileName, 'incoming', now);
        return;
      }
      if (accepted) this.queue.add(fileName, 'pending', now);
      else this.departed.delete(fileName);
      return;
    }
    this.queue.add(fileName, 'incoming', now);
  }

  /**
   * Start-up with a backlog in incoming/ (producers filled it while no daemon
   * ran): moves the tasks not due soon to pending/ a slice at a time, between
   * dispatches, so that incoming/ becomes small enough to watch. Due tasks are
   * claimed straight from incoming/ meanwhile.
   */
  private moveFutureOutOfIncoming(): void {
    // A pass lists the whole of incoming/: not for nothing (a backlog of due tasks has none to move).
    if (this.moving || this.stopping || this.futureInIncoming === 0) return;
    this.moving = true;
    // The listing itself, streamed: the queue holds only a window of the names, the rest are on disk.
    let candidates: Iterator<string>;
    try {
      candidates = eachName(this.layout.incoming);
    } catch (err) {
      this.log.error('cannot list incoming/ to move future tasks to pending/; it is scanned instead', { err });
      return void (this.moving = false);
    }
    const done = () => {
      candidates.return?.(undefined);
      this.moving = false;
    };
    const step = () => {
      if (this.stopping) return done();
      const until = Date.now() + 20;
      const horizon = this.clock.now() + this.options.scanInterval;
      try {
        for (let r = candidates.next(); ; r = candidates.next()) {
          if (r.done) return done();
          const fileName = r.value;
          // The cheap look at the name (NaN for what is not shaped like a task name, never moved): a pass reads every name.
          if (fileName.charCodeAt(0) !== 46 /* "." */ && roughDue(fileName) > horizon && !this.owned.has(fileName) && accept(this.layout, fileName)) this.queue.setDir(fileName, 'pending');
          if (Date.now() >= until) break;
        }
      } catch (err) {
        this.log.error('cannot move tasks to pending/; incoming/ stays unwatched and is scanned instead', { err });
        return done();
      }
      // Leave the rest of this turn to dispatching and I/O.
      setTimeout(step, 5);
    };
    step();
  }

  /** A name that is not a task name: quarantine it once it has settled (a producer may rename it yet). */
  private considerBadName(path: string, fileName: string, from: string, mtimeMs: number | undefined): void {
    if (this.stuck.has(fileName)) return;
    let mtime = mtimeMs;
    if (mtime === undefined) {
      try {
        mtime = lstatSync(path).mtimeMs;
      } catch {
        return;
      }
    }
    const now = this.clock.now();
    if (now - mtime < this.options.settle) {
      this.held.set(fileName, mtime + this.options.settle);
      return;
    }
    this.quarantine(path, fileName, `bad file name: ${explainBadName(fileName)}`, from);
  }

  private async startWatching(): Promise<void> {
    this.watcher = await watchDirectory(
      this.layout.incoming,
      { poll: this.poll },
      (fileName) => this.onWatchEvent(fileName),
      (err) => this.log.error('watcher error; relying on scans until it recovers', { err }),
    );
    // Anything that arrived between the scan and the watch being in place.
    this.scanIncoming();
  }

  private scheduleScan(): void {
    // A scan under way schedules the next one when it ends.
    if (this.stopping || this.scanning) return;
    let interval = this.options.scanInterval;
    let quick = false;
    if (this.watcher === undefined) {
      if (this.starvedForIncoming()) {
        interval = this.quickScanDelay();
        quick = true;
      } else {
        // While incoming/ is too large to watch, scanning it is the only way to see arrivals: scan at
        // least every second, but keep scanning under 2% of the time (a million names take ~0.5 s).
        interval = Math.max(Math.min(1000, this.options.scanInterval), 50 * this.incomingScanCost);
      }
    }
    this.armScan(interval, quick);
  }

  private armScan(interval: number, quick: boolean): void {
    clearTimeout(this.scanTimer);
    // Reclaims, pending/ and tmp/ keep the reconciliation period however often incoming/ is listed.
    const full = !quick || Date.now() + interval - this.lastFullScan >= this.options.scanInterval;
    this.scanDueAt = Date.now() + interval;
    this.scanTimer = setTimeout(() => {
      this.scanning = true;
      this.scanDueAt = Infinity;
      (full ? this.scan() : this.scanUnwatchedIncoming())
        .catch((err: unknown) => this.log.error('scan failed', { err }))
        .finally(() => {
          this.scanning = false;
          this.scheduleScan();
        });
    }, interval);
  }

  /**
   * Producers are filling the unwatched incoming/ (its last listing found new
   * tasks) and the daemon has (almost) run out of the due tasks it knows: it
   * should list incoming/ again as soon as the last listing's cost allows, or
   * it idles while tasks wait.
   */
  private starvedForIncoming(): boolean {
    return this.watcher === undefined && this.lastScanAdded > 0 && this.queue.readyCount < QUICK_SCAN_BELOW;
  }

  private quickScanDelay(): number {
    return Math.max(QUICK_SCAN_MIN_MS, 2 * this.incomingScanCost);
  }

  /**
   * Brings the next scan forward when the daemon runs low on due tasks between
   * scans. The delay is chosen when a scan ends; a listing that found 400,000
   * new tasks schedules the next one ~20 s later, and once those were done the
   * daemon sat idle (seconds at a time in a sustained flood) with incoming/ full.
   */
  private hurryScanIfStarved(): void {
    if (this.scanning || this.stopping || !this.starvedForIncoming()) return;
    const delay = this.quickScanDelay();
    if (this.scanDueAt > Date.now() + delay) this.armScan(delay, true);
  }

  /**
   * Whether the watched incoming/ needs re-reading by the reconciliation scan
   * (which is there for events the watcher missed): only if its stamp moved
   * since the last listing or that listing came within the stamp's timestamp
   * tick (a whole second on sshfs: poll-policy.ts; on a local disk that costs
   * one more listing after a burst), while files are held, or once every
   * INCOMING_FULL_SCAN_MS. An ext4 directory keeps the size of the largest
   * backlog it ever held: an empty incoming/ that once held a million names
   * took ~37 ms to list, every 5 s, 0.75% of a core on an idle daemon.
   */
  private incomingMayHaveChanged(now: number): boolean {
    if (this.held.size > 0 || now - this.lastIncomingScan >= INCOMING_FULL_SCAN_MS) return true;
    try {
      return this.incomingGate.decide(directoryStamp(statSync(this.layout.incoming)), now).list;
    } catch {
      return true;
    }
  }

  /** Lists the unwatched incoming/, then watches it again if it has become small. */
  private async scanUnwatchedIncoming(): Promise<void> {
    if (this.stopping) return;
    const incoming = this.scanIncoming();
    if (this.watcher !== undefined || this.stopping) return;
    if (incoming <= WATCH_MAX_BACKLOG) {
      await this.startWatching();
      this.log.debug('incoming/ is small again; watching it', { queued: incoming });
    } else this.moveFutureOutOfIncoming();
  }

  /** The periodic reconciliation scan. */
  private async scan(): Promise<void> {
    if (this.stopping || !this.foldersStillTrusted()) return;
    const local = Date.now();
    const now = this.clock.now();
    this.lastFullScan = local;
    for (const [name, until] of this.held) if (until < now - 10 * this.options.settle) this.held.delete(name);
    if (this.watcher === undefined) await this.scanUnwatchedIncoming();
    else if (this.incomingMayHaveChanged(local)) this.scanIncoming();
    this.rescanPendingIfChanged();
    if (this.failedClaims.size > 0) this.retryFailedClaims(now);
    await this.reclaimDeadOwners();
    this.sweepTmp();
  }

  /**
   * Re-checks every folder checked at start-up (one lstat each, once per scan).
   * A folder replaced meanwhile (by a link, or another directory) ends the
   * serving of this spool: no more claims, moves or deletes here; running
   * tasks finish, and their files stay claimed for a daemon that checked its
   * folders to reclaim.
   */
  private foldersStillTrusted(): boolean {
    const problems = this.folders.checkAll();
    if (problems.length === 0) return true;
    for (const p of problems) this.log.error(p.message);
    this.log.error('a spool folder was replaced while spoolerd ran: this spool is no longer served; restore the folder and restart spoolerd');
    this.untrusted = true;
    // Nothing more is moved here, failed moves included: they stay where they are.
    this.stuck.stop();
    void this.stopDiscovery();
    return false;
  }

  /**
   * pending/ is written only by daemons; it holds tasks we do not know only when
   * another daemon serves the same spool. Re-read it only then, only if its
   * mtime moved, and no more often than 50 times the last read's cost, so a
   * million idle files cost nothing.
   */
  private rescanPendingIfChanged(): void {
    const now = Date.now();
    if (now < this.nextPendingScan || !this.otherOwnersSeen) return;
    const mtime = statSync(this.layout.pending).mtimeMs;
    if (mtime === this.pendingMtime) return;
    this.pendingMtime = mtime;
    this.otherOwnersSeen = false;
    const started = Date.now();
    const spoolNow = this.clock.now();
    let added = 0;
    for (const n of eachName(this.layout.pending)) {
      if (n.charCodeAt(0) !== 46 && this.queue.add(n, 'pending', spoolNow)) {
        added++;
        this.unmatched?.check(n);
      }
    }
    const cost = Date.now() - started;
    this.nextPendingScan = Date.now() + Math.max(this.options.scanInterval, 50 * cost);
    if (added > 0) {
      this.log.debug('found tasks in pending/ moved there by another daemon', { added });
      this.slots.wake();
    }
  }

  /** Returns the claims of owners whose liveness lock is stale or gone to incoming/. */
  private async reclaimDeadOwners(): Promise<void> {
    let owners: string[];
    try {
      this.folders.check('active', 'incoming', 'locks');
      owners = readdirSync(this.layout.active);
    } catch (err) {
      this.log.error('claims of dead daemons are not reclaimed', { err: (err as Error).message });
      return;
    }
    this.deadPeers.clear();
    for (const id of owners) {
      if (id === this.owner?.id || this.stopping) continue;
      this.otherOwnersSeen = true;
      this.sharedSpool = true;
      if (await isOwnerAlive(this.layout, id, this.options.staleAfter, this.clock)) continue;
      this.deadPeers.add(id);
      const dir = join(this.layout.active, id);
      // Never followed: a link or a foreign directory here is refused (logged once), and the
      // directory listed must still be the one checked when its files are moved.
      const checked = this.folders.claimDir(dir, this.log);
      if (checked === undefined) continue;
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        continue;
      }
      if (!this.folders.sameFolder(dir, checked)) continue;
      const reclaimed = reclaimOwner(this.layout, dir, names, this.clock.now());
      removeOwnerLock(this.layout, id);
      try {
        this.folders.check('state');
        removeStatusFile(this.layout, id);
      } catch {
        // state/ replaced: the scan's folder check reports it.
      }
      if (reclaimed.length === 0) continue;
      this.stats.reclaimed += reclaimed.length;
      this.log.warn('reclaimed tasks of a daemon that died; their attempt is counted', { owner: id, tasks: reclaimed.length });
      const now = this.clock.now();
      for (const n of reclaimed) this.queue.add(n, 'incoming', now);
      this.unmatched?.checkAll(reclaimed);
      this.slots.wake();
    }
    this.setPeers(owners);
  }

  /**
   * Another daemon won a claim of ours: the owners may have changed since we
   * last looked (one started), so look again, at most once a second (one
   * listing of active/). Owners found dead by the last scan stay out.
   */
  private lookForPeers(): void {
    const now = Date.now();
    if (now - this.lastPeerLook < PEER_LOOK_MIN_MS || this.stopping) return;
    try {
      this.setPeers(readNames(this.layout.active));
    } catch (err) {
      this.log.debug('cannot list active/ for the owners serving this spool', { err: (err as Error).message });
    }
  }

  /** Splits the due tasks into claim shares among the live owners in `ids` (claim-shares.ts). */
  private setPeers(ids: readonly string[]): void {
    this.lastPeerLook = Date.now();
    const me = this.owner?.id;
    if (me === undefined) return;
    const live = ids.filter((id) => !this.deadPeers.has(id) && id.charCodeAt(0) !== 46 /* "." */);
    if (!live.includes(me)) live.push(me);
    live.sort();
    if (live.length === this.peers.length && live.every((id, i) => id === this.peers[i])) return;
    this.peers = live;
    if (live.length > 1) this.sharedSpool = true;
    this.queue.setShare(ownShare(live, me));
    this.log.debug('owners serving this spool changed; claiming from this share first', { owners: live.length, share: live.indexOf(me) });
  }

  /** Deletes staging debris of crashed producers, at most once a minute. */
  private sweepTmp(): void {
    const now = this.clock.now();
    if (Date.now() - this.lastTmpSweep < 60_000) return;
    this.lastTmpSweep = Date.now();
    try {
      this.folders.check('tmp');
    } catch (err) {
      this.log.error('tmp/ is not swept', { err: (err as Error).message });
      return;
    }
    for (const n of readdirSync(this.layout.tmp)) {
      const path = join(this.layout.tmp, n);
      try {
        if (now - lstatSync(path).mtimeMs > TMP_DEBRIS_AGE) unlinkSync(path);
      } catch {
        // Renamed by its producer meanwhile, or not ours to delete.
      }
    }
    this.sweepRecordDebris(now);
  }

  /**
   * Records are staged beside their target (records.ts), out of the producers'
   * tmp/; a daemon killed between the write and the rename leaves a `.record-*`
   * file there. At the first sweep and then hourly (state/ may hold many records),
   * those older than an hour go.
   */
  private sweepRecordDebris(now: number): void {
    if (Date.now() - this.lastRecordSweep < TMP_DEBRIS_AGE) return;
    this.lastRecordSweep = Date.now();
    for (const sub of ['state', 'quarantine'] as const) {
      try {
        this.folders.check(sub);
        for (const n of readNames(this.layout[sub])) {
          if (!n.startsWith(RECORD_STAGING_PREFIX)) continue;
          const path = join(this.layout[sub], n);
          try {
            const st = lstatSync(path);
            if (st.isFile() && now - st.mtimeMs > TMP_DEBRIS_AGE) unlinkSync(path);
          } catch {
            // Renamed into place meanwhile.
          }
        }
      } catch (err) {
        this.log.error(`${sub}/ is not swept of unfinished records`, { err: (err as Error).message });
      }
    }
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
