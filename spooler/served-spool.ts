/**
 * One spool served by the daemon: the few parts that serve it, wired together.
 *
 *   discover/   finds tasks (watching or listing incoming/, the reconciliation
 *               scan, dead owners, peers, debris) and feeds the queue
 *   TaskQueue   orders them: priority, then due time, then id; one timer for the future ones
 *   run/        gives due names to a runner, which claims, reads, decodes, runs
 *               and settles each itself and reports a code per name (spool-runs.ts)
 *   supervise/  the ownership (liveness lock, claim directory, a lost ownership
 *               and the rejoin) and the spool clock's samples
 *   PauseWatch  control/pause.json: paused tasks are kept out of the queue and
 *               not given to runners (pause-watch.ts)
 *
 * Concurrency over all spools and the stop sequence are the daemon's
 * (daemon.ts); every move of a task file is spool/protocol.ts's.
 */
import type { SpoolLayout } from '../spool/layout.js';
import { quarantine } from '../spool/protocol.js';
import { SpoolClock } from '../spool/clock.js';
import { Departures } from './discover/departures.js';
import { Discovery } from './discover/discovery.js';
import { SpoolFolders } from './folders.js';
import type { Logger } from './logger.js';
import { Tally } from './observer.js';
import type { DaemonOptions } from './options.js';
import { FailedClaims } from './run/failed-claims.js';
import type { ProcessRunners } from './run/process-runners.js';
import { SpoolRuns, type Slots, type SpoolStats } from './run/spool-runs.js';
import { CancelRequests } from './cancel-requests.js';
import { PauseWatch } from './pause-watch.js';
import { StuckMoves } from './stuck-moves.js';
import { ClockSampler } from './supervise/clock-sampler.js';
import { Ownership } from './supervise/ownership.js';
import { RetentionSweep } from './retention.js';
import { ServedTasks, taskNameOfFileName, UnmatchedNames, type RegisteredTasks } from './task-names.js';
import { UnknownTasks } from './unknown-tasks.js';
import { TaskQueue, windowFromTestKnob } from './order/task-queue.js';
import type { PauseState } from '../spool/pause.js';
import type { ScheduleSpec } from '../spool/schedule.js';
import { REAL_TIMERS, Scheduler, slotCrashHookFromEnv } from './schedule/scheduler.js';
import { LimitGate } from './limits/gate.js';

export type { Slots, SpoolStats } from './run/spool-runs.js';

/** Beside other daemons, before claiming others' tasks, incoming/ is listed again if its last listing is older than this (refreshBeforeStealing()). */
const STEAL_LISTING_MIN_AGE_MS = 250;

export class ServedSpool {
  readonly layout: SpoolLayout;
  readonly queue: TaskQueue;
  /**
   * The spool clock (spool/clock.ts): the filesystem server's time, sampled at
   * start and at every liveness refresh. Everything compared with a due time in
   * a name, a file's mtime or another daemon's lock goes by it; durations and
   * the daemon's own timers go by the local clock.
   */
  readonly clock = new SpoolClock();
  readonly stats: SpoolStats = { processed: 0, skipped: 0, rescheduled: 0, dead: 0, cancelled: 0, expired: 0, quarantined: 0, reclaimed: 0, lost: 0, claimRaces: 0 };
  /** Counts by task name and timings, for the metrics and the status file (observer.ts). */
  readonly tally = new Tally();
  /** When start() finished (ms epoch; 0 before), for readiness (http-server.ts). */
  servingSince = 0;
  private readonly log: Logger;
  /** The folders checked at start-up, re-checked before rare moves and at every scan. */
  private readonly folders: SpoolFolders;
  private readonly discovery: Discovery;
  /** The claim/run/settle half: names to this spool's runner, reports back. */
  private readonly runs: SpoolRuns;
  /** Requests in cancel/ to cancel a task this process runs. */
  private readonly cancels: CancelRequests;
  /** control/pause.json: what is paused. */
  private readonly pauses: PauseWatch;
  /** Task names the queue refused (paused by name) since discovery last listed the spool for them. */
  private keptOut = new Set<string>();
  private readonly ownership: Ownership;
  private readonly sampler: ClockSampler;
  private readonly failedClaims: FailedClaims;
  /** File moves that failed (a full disk) and are tried again until they succeed. */
  private readonly stuck: StuckMoves;
  /** Names this process moved out of incoming/: the watch event their departure causes is not an arrival. */
  private readonly departed = new Departures();
  /** Files to leave alone until the given time (possibly still being written, or a claim that failed). */
  private readonly held = new Map<string, number>();
  /** Warns about task names nothing registered (set before start()). */
  private unmatched: UnmatchedNames | undefined;
  /** The task names this daemon claims (set before start()); the others are never queued. */
  private served: ServedTasks | undefined;
  /** Dead-letters tasks no live daemon runs, after --unknown-after. */
  private readonly unknown: UnknownTasks;
  /** --keep-dead, --keep-archive. */
  private readonly retention: RetentionSweep;
  /** Enqueues the slots of the schedules served here (schedule/scheduler.ts); undefined without schedules. */
  private scheduler: Scheduler | undefined;
  private stopping = false;
  /** A spool folder was replaced while we ran (folders.ts): nothing more is moved here, outcomes included. */
  private untrusted = false;

  constructor(
    dir: string,
    options: DaemonOptions,
    private readonly slots: Slots,
    /** --processes N: the runner processes every spool shares; undefined with --processes 0 (each spool runs on this thread). */
    processRunners: ProcessRunners | undefined,
  ) {
    this.folders = SpoolFolders.open(dir, { gid: options.group }, options.log);
    this.layout = this.folders.layout;
    this.log = options.log.child({ spool: this.layout.root });
    this.stuck = new StuckMoves(this.log);
    // The queue holds a window of the next tasks; when it runs low, discovery refills it from the listings.
    this.queue = new TaskQueue(() => slots.wake(), () => this.clock.now(), { window: windowFromTestKnob(), wantsRefill: () => this.discovery.refillSoon() });
    this.failedClaims = new FailedClaims(this.queue, this.held, this.log);
    this.sampler = new ClockSampler(this.clock, this.layout, this.folders, this.log);
    this.discovery = new Discovery(
      {
        layout: this.layout,
        folders: this.folders,
        options,
        log: this.log,
        clock: this.clock,
        queue: this.queue,
        wake: () => slots.wake(),
        ownerId: () => this.ownership.id,
        unmatched: () => this.unmatched,
        holds: (fileName) => this.runs.holds(fileName),
        moveUnderWay: (fileName) => this.stuck.has(fileName),
        quarantine: (path, fileName, reason, from) => this.quarantine(path, fileName, reason, from),
        retryFailedClaims: (now) => {
          if (this.failedClaims.size > 0 && this.failedClaims.retry(now)) slots.wake();
        },
        reclaimed: (tasks) => void (this.stats.reclaimed += tasks),
        sweepRetention: (now) => {
          this.unknown.sweep(now);
          this.retention.sweep(now);
          this.runs.gate?.sweep(now);
        },
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
    const check = (...subs: Parameters<SpoolFolders['check']>) => this.folders.check(...subs);
    this.unknown = new UnknownTasks({
      layout: this.layout,
      log: this.log,
      unknownAfterMs: options.unknownAfter,
      scanIntervalMs: options.scanInterval,
      served: () => this.served,
      ownerId: () => this.ownership.id,
      liveOwners: () => this.discovery.peers.ids,
      check,
      buried: () => void this.stats.dead++,
    });
    this.retention = new RetentionSweep({
      layout: this.layout,
      log: this.log,
      keepMs: { dead: options.keepDead, archive: options.keepArchive },
      scanIntervalMs: options.scanInterval,
      check,
    });
    this.runs = new SpoolRuns(
      {
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
        sharedSpool: () => this.discovery.peers.shared,
        lookForPeers: () => this.discovery.peers.lookAgain(),
        claimFailed: (fileName, from, reason, now) => this.failedClaims.failed(fileName, from, reason, now),
        claimSettled: (fileName) => this.failedClaims.settled(fileName),
        ownerGone: () => this.ownership.claimDirGone(),
        cancelled: (id) => this.cancels.done(id),
        stopping: () => this.stopping,
        check: (...subs) => this.folders.check(...subs),
        checkedId: (path) => this.folders.checkedId(path),
      },
      processRunners,
    );
    this.cancels = new CancelRequests({
      layout: this.layout,
      log: this.log,
      cancel: (ids) => this.runs.cancel(ids),
      check: () => this.folders.check('cancel'),
      // While stopping too: running tasks go on during the grace period, and may be cancelled.
      active: () => !this.untrusted && this.ownership.owning,
    });
    this.pauses = new PauseWatch({
      layout: this.layout,
      log: this.log,
      check: () => this.folders.check('control'),
      apply: (state) => this.applyPause(state),
    });
    this.ownership = new Ownership({
      layout: this.layout,
      folders: this.folders,
      clock: this.clock,
      sampler: this.sampler,
      options,
      log: this.log,
      opened: (ownerDir, claimDir, sources) => this.runs.open(ownerDir, claimDir, sources),
      revoke: () => this.runs.revoke(),
      wake: () => slots.wake(),
      stopping: () => this.stopping,
    });
  }

  /**
   * Before start(): what the task modules registered, narrowed by `only`
   * (--tasks). Only those tasks are queued and claimed here; the others wait
   * for a daemon that runs them (a warning per name, unknown-tasks.ts).
   */
  serveTasks(served: ServedTasks, registered: RegisteredTasks): void {
    this.served = served;
    this.unmatched = new UnmatchedNames(registered, this.log, served);
    this.runs.gate = LimitGate.of(registered.limits, {
      dir: this.layout.limits,
      log: this.log,
      now: () => this.clock.now(),
      wake: () => this.slots.wake(),
      check: () => this.folders.check('limits'),
    });
    this.discovery.feed.serveOnly(
      (fileName) => served.serves(fileName),
      (fileName) => this.unknown.noted(fileName),
    );
  }

  /** Before start(): the schedules to run on this spool (the --schedule files' and those its modules defined). */
  serveSchedules(schedules: readonly ScheduleSpec[]): void {
    if (schedules.length === 0) return;
    const log = this.log.child({ component: 'scheduler' });
    this.scheduler = new Scheduler(
      {
        layout: this.layout,
        log,
        clock: { now: () => this.clock.now(), after: REAL_TIMERS.after },
        ownerId: () => this.ownership.id ?? '',
        check: () => this.folders.check('schedules', 'incoming'),
        // What the pause watch last read (it looks four times a second): no second reader of control/pause.json.
        readPause: async () => this.pauses.current,
        fsync: false,
        afterStep: slotCrashHookFromEnv(log),
      },
      schedules,
    );
  }

  /** The task names this daemon claims, sorted (its status file declares them); undefined before serveTasks(). */
  get servedNames(): string[] | undefined {
    return this.servedSorted ??= this.served?.sorted();
  }
  private servedSorted: string[] | undefined;

  get ownerId(): string | undefined {
    return this.ownership.id;
  }

  /** Why this spool is not served now (readiness, http-server.ts), or undefined while it is. */
  get notServingReason(): string | undefined {
    if (this.untrusted) return 'a spool folder was replaced while spoolerd ran; restore it and restart spoolerd';
    if (this.stopping) return 'stopping';
    if (this.servingSince === 0) return 'starting';
    if (!this.ownership.owning) return 'lost its claims (stalled past --stale-after); rejoining as a new owner';
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

  /** Tasks held back by a concurrency or rate limit, by scope (at most `max` scopes); undefined when no task served here has a limit. */
  parkedByScope(max: number): Record<string, number> | undefined {
    return this.runs.gate?.parkedByScope(max);
  }

  /** Names given to a runner and not yet reported (being claimed, run or settled). */
  get heldCount(): number {
    return this.runs.heldCount;
  }

  /** The file names of the tasks given to a runner (a census, not per task). */
  heldNames(): IterableIterator<string> {
    return this.runs.heldNames();
  }

  /** The tasks running now, at most `limit`, with their start as ms epoch (status-file.ts; walked once a second, not per task). */
  runningTasks(limit: number): Array<{ id: string; name: string; attempt: number; startedAt: number }> {
    return this.runs.runningTasks(limit);
  }

  async start(): Promise<void> {
    // Before anything is queued: paused tasks never enter the queue.
    this.pauses.load();
    // Before the lock is stamped and anything is judged due.
    await this.sampler.sample(true);
    const owner = await this.ownership.acquire();
    const started = Date.now();
    const { due, scheduled } = await this.discovery.start();
    this.log.info('serving spool', {
      owner: owner.id,
      due,
      scheduled,
      ms: Date.now() - started,
      watching: this.discovery.incoming.watching,
      discovery: this.discovery.incoming.how,
    });
    this.servingSince = Date.now();
    this.cancels.start();
    await this.scheduler?.start();
    this.slots.wake();
  }

  /** Gives as many due tasks to the runners as there are free slots (at most `limit`). Returns how many. */
  dispatch(limit: number): number {
    let given = 0;
    if (!this.stopping && !this.untrusted && this.ownership.owning) {
      if (this.discovery.peers.ids.length > 1) this.refreshBeforeStealing(this.clock.now());
      given = this.runs.give(limit);
    }
    this.discovery.incoming.hurry();
    return given;
  }

  /** Stops discovery and claiming; running tasks go on. */
  async stopDiscovery(): Promise<void> {
    this.stopping = true;
    this.scheduler?.stop();
    this.pauses.stop();
    await this.discovery.stop();
  }

  /**
   * Puts every task this process still holds back where it was, unchanged (no
   * attempt counted). Synchronous file moves, so it is safe from a second
   * signal's handler. Returns how many running tasks went back.
   */
  releaseAll(): number {
    this.cancels.stop();
    if (this.untrusted) return 0; // left claimed: reclaimed after the stale time by a daemon that checked its folders
    // A last try for the moves that failed; what still fails stays where it is.
    if (this.stuck.size > 0) this.stuck.retry(true);
    this.stuck.stop();
    return this.runs.releaseAll();
  }

  async releaseOwner(): Promise<void> {
    await this.ownership.release();
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
    if (now - this.discovery.incoming.lastListedAt < Math.max(STEAL_LISTING_MIN_AGE_MS, 10 * this.discovery.incoming.lastListingCost)) return;
    this.discovery.incoming.list();
  }

  /** What is paused now (control/pause.json; every task while the file cannot be used), and why the file cannot be used, if it cannot. */
  get paused(): { state: PauseState; problem: string | undefined } {
    return { state: this.pauses.current, problem: this.pauses.problem };
  }

  /**
   * A new pause state (pause-watch.ts): names of paused tasks are kept out of
   * the queue (all paused: the queue stays, nothing is given), runners give
   * back those they hold unstarted; names resumed are listed again at once.
   */
  private applyPause(state: PauseState): void {
    // While every task is paused the queue keeps its names (nothing is given): only names paused one by one are kept out.
    const tasks = state.all ? new Set<string>() : new Set(state.tasks);
    this.discovery.feed.holdBack(tasks.size > 0 ? (fileName) => tasks.has(taskNameOfFileName(fileName)) : undefined);
    this.runs.pause(state.all, tasks);
    // Names kept out of the queue since the last listing and not now: on disk only, so list them again.
    for (const name of tasks) this.keptOut.add(name);
    for (const name of this.keptOut) {
      if (tasks.has(name)) continue;
      if (this.servingSince > 0) this.discovery.relist();
      this.keptOut = new Set(tasks);
      break;
    }
    this.slots.wake();
  }

  /** Moves a file that is not a valid task (found by discovery, still where it was dropped) to quarantine/. */
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
