/**
 * One spool served by the daemon: discovering tasks, claiming them, running
 * them and recording how they ended. Concurrency is the daemon's (daemon.ts);
 * the file moves are spool/protocol.ts's.
 *
 * A task's life here is short: its name is taken from the queue and given to
 * a runner (run/), which claims, reads, decodes, runs and settles it and
 * reports what became of it (run/task-path.ts); this side keeps the counts,
 * the queue and the slots in step with the reports (onReport()):
 *
 *   queued --given--> running --reported--> done (counted; a reschedule queued under its new name)
 *                        '--reported Stuck--> stuck (slot free; the runner retries the move) --reported--> done
 *
 * A runner that dies leaves its names to orphaned() (run/process-runners.ts
 * says what becomes of each).
 *
 * Discovery (watching or listing incoming/, the reconciliation scan, dead
 * owners, peers, debris) is discover/discovery.ts's; it feeds `queue`.
 */
import { lstatSync } from 'node:fs';
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
import { WorkerCrashedError } from './run/runners.js';
import { SpoolFolders } from './folders.js';
import type { Logger } from './logger.js';
import type { DaemonOptions } from './options.js';
import { Tally } from './observer.js';
import { Owner } from './owner.js';
import { StuckMoves, type StuckMove } from './stuck-moves.js';
import { TaskQueue, type PendingDir } from './task-queue.js';
import { Discovery } from './discover/discovery.js';
import { UnmatchedNames, type RegisteredTasks } from './task-names.js';
import type { ProcessRunners } from './run/process-runners.js';
import { SpoolRuns, type RunsHost, type Slots, type SpoolStats } from './run/spool-runs.js';

/** A host clock off the spool clock by more than this is warned about (the daemon goes by the spool clock either way). */
const CLOCK_WARN_MS = 1000;
/** The measured offset is logged again when it moves by this much. */
const CLOCK_LOG_STEP_MS = 250;

export type { Slots, SpoolStats } from './run/spool-runs.js';


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
  /** The claim/run/settle half: names to this spool's runner, reports back (run/spool-runs.ts). */
  private readonly runs: SpoolRuns;
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
    /** --processes N: the runner processes every spool shares; undefined with --processes 0 (each spool runs on this thread). */
    private readonly processRunners: ProcessRunners | undefined,
  ) {
    this.folders = SpoolFolders.open(dir, { gid: options.group }, options.log);
    this.layout = this.folders.layout;
    this.log = options.log.child({ spool: this.layout.root });
    this.stuck = new StuckMoves(this.log);
    this.queue = new TaskQueue(() => slots.wake(), () => this.clock.now());
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

    const host: RunsHost = {
      layout: this.layout,
      queue: this.queue,
      stats: this.stats,
      tally: this.tally,
      clock: this.clock,
      log: this.log,
      options,
      slots,
      held: this.held,
      departed: this.departed,
      sharedSpool: () => this.sharedSpool,
      lookForPeers: () => this.lookForPeers(),
      claimFailed: (fileName, from, reason, now) => this.claimFailed(fileName, from, reason, now),
      claimSettled: (fileName) => void (this.failedClaims.size > 0 && this.failedClaims.delete(fileName)),
      ownerGone: () => this.owner !== undefined && this.ownerLost(this.owner, 'its claim directory is gone (a claim into it failed)'),
      stopping: () => this.stopping,
      check: (...subs) => this.folders.check(...subs),
      checkedId: (path) => this.folders.checkedId(path),
    };
    this.runs = new SpoolRuns(host, processRunners);
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
    return this.runs.heldCount;
  }

  /** Claimed tasks waiting for a run slot: none (a runner claims a task when it starts it). */
  get readyCount(): number {
    return 0;
  }

  /** The file names of the tasks held in active/<owner>/ (a census, not per task). */
  heldNames(): IterableIterator<string> {
    return this.runs.heldNames();
  }

  /** The tasks running now, at most `limit`, with their start as ms epoch (status-file.ts; walked once a second, not per task). */
  runningTasks(limit: number): Array<{ id: string; name: string; attempt: number; startedAt: number }> {
    return this.runs.runningTasks(limit);
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
      this.runs.open(acquired.dir, this.claimDirHandle?.path ?? acquired.dir, this.sourceHandles);
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
    // Runners on this thread may still use it for revoked tasks' last steps (none move files): closed at the next turn.
    if (handle !== undefined) setImmediate(() => handle.close());
    // Every name it held is forgotten and its slot freed now; the reports that still come for them are ignored.
    const { running, held } = this.runs.revoke();
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

  /** Gives as many due tasks to the runners as there are free slots (at most `limit`). Returns how many. */
  dispatch(limit: number): number {
    let given = 0;
    if (!this.stopping && !this.untrusted && this.owner !== undefined) {
      if (this.peers.length > 1) this.refreshBeforeStealing(this.clock.now());
      given = this.runs.give(limit);
    }
    this.hurryScanIfStarved();
    return given;
  }

  /** Stops discovery and claiming; running tasks go on. */
  async stopDiscovery(): Promise<void> {
    this.stopping = true;
    await this.discovery.stop();
  }

  /** Nothing to wait for: runners settle their tasks' files themselves (kept for the daemon's stop sequence). */
  async settleFileOps(): Promise<void> {}

  /**
   * Puts every task this process still holds back into incoming/ unchanged (no
   * attempt counted): running ones, and those claimed ahead that never started.
   * Processed ones still waiting for their unlink are deleted. Synchronous file
   * moves, so it is safe from a second signal's handler. Returns how many
   * running tasks went back.
   */
  releaseAll(): number {
    if (this.untrusted) return 0; // left claimed: reclaimed after the stale time by a daemon that checked its folders
    // A last try for the moves that failed; what still fails stays where it is.
    if (this.stuck.size > 0) this.stuck.retry(true);
    this.stuck.stop();
    return this.runs.releaseAll();
  }


  async releaseOwner(): Promise<void> {
    await this.owner?.release();
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
  /**
   * Not a lost race: permissions, a full disk, a claim directory that cannot
   * grow. The file stays where it is; scans queue it again after a backoff
   * (retryFailedClaims()), and only the first failure is logged as an error.
   */
  private claimFailed(fileName: string, from: PendingDir, reason: string | undefined, now: number): void {
    const entry = this.failedClaims.get(fileName) ?? { dir: from, tries: 0, retryAt: 0 };
    entry.tries++;
    const delay = Math.min(CLAIM_RETRY_FIRST_MS * 2 ** (entry.tries - 1), CLAIM_RETRY_MAX_MS);
    entry.retryAt = now + delay;
    this.failedClaims.set(fileName, entry);
    // A watch event or a scan of incoming/ must not queue it again before then.
    this.held.set(fileName, entry.retryAt);
    if (entry.tries === 1) this.log.error('cannot claim a task; will try again until it succeeds', { file: fileName, retryInMs: delay, err: reason });
    else this.log.debug('still cannot claim a task', { file: fileName, tries: entry.tries, retryInMs: delay, err: reason });
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
  private lose(fileName: string, why: string): void {
    this.stats.lost++;
    this.log.warn(`${why}; another daemon reclaimed it and will run it again`, { file: fileName });
  }
  /** Moves a file that is not a valid task to quarantine/; `h` when it is claimed (in our claim directory). */
  private quarantine(path: string, fileName: string, reason: string, from: string): void {
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
      // Still in incoming/: considerBadName() leaves it to the retries meanwhile.
      return this.stuck.add({ fileName, what, fields: { reason }, attempt: move, settled: quarantined }, err);
    }
    quarantined(moved);
  }
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Rotates `items` in place so that it starts at `start` (then round to the start). */
function rotate<T>(items: T[], start: number): void {
  if (start === 0) return;
  const head = items.splice(0, start);
  items.push(...head);
}
