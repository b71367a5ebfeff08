/**
 * One spool served by the daemon: discovering tasks, claiming them, running
 * them and recording how they ended. Concurrency is the daemon's (daemon.ts);
 * the file moves are claim.ts's.
 *
 * A task's life inside this process:
 *
 *   queued --claim()--> claimed --read+decode--> running --settle--> finishing --> done
 *      ^                   |                                             |
 *      '-- lost the race --'  (another daemon, or `spool rm`, got it)    '-- rename/unlink failed: logged, left for reclaim
 *
 * Discovery: the watcher on incoming/ (watch.ts), plus a scan every
 * scanInterval that re-reads incoming/ (missed events), re-reads pending/ when
 * its mtime changed (other daemons' moves), reclaims the claims of dead owners
 * and sweeps debris from tmp/.
 */
import { lstatSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { join, sep } from 'node:path';
import type { FSWatcher } from 'chokidar';
import { DEFAULT_RETRY, backoffDelay } from '../runtime/backoff.js';
import type { TaskOutcome } from '../runtime/results.js';
import { SpoolLayout } from '../spool/layout.js';
import { dueOfTaskName, explainBadName } from '../spool/name.js';
import { readNames } from '../spool/read-names.js';
import { readClaimedFile } from '../spool/safe-read.js';
import { decodeTask, type TaskFile } from '../spool/task-file.js';
import { accept, bury, claim, finish, reclaimOwner, release, retryLater } from './claim.js';
import type { Execution, Executor } from './executor.js';
import type { Logger } from './logger.js';
import type { DaemonOptions } from './options.js';
import { isOwnerAlive, Owner, removeOwnerLock } from './owner.js';
import { quarantine } from './records.js';
import { TaskQueue, type PendingDir, type QueuedTask } from './task-queue.js';
import { watchDirectory } from './watch.js';

/**
 * Above this many files in incoming/, the watcher waits: on activity chokidar
 * re-reads (and lstats) the whole directory once a second, which a large
 * backlog makes expensive. Until then the daemon scans incoming/ itself.
 */
const WATCH_MAX_BACKLOG = 1000;
/** Staging files older than this are debris of crashed producers. */
const TMP_DEBRIS_AGE = 3_600_000;

/** What the daemon gives each spool: a way to ask for a run slot and to say one is free. */
export interface Slots {
  /** Whether another task may start now. */
  available(): boolean;
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
}

interface Running {
  path: string;
  fileName: string;
  /** The directory it was claimed from, for quarantine records. */
  from: PendingDir;
  /** The task, once read and decoded. */
  task?: TaskFile;
}

export class SpoolService {
  readonly layout: SpoolLayout;
  readonly queue: TaskQueue;
  readonly stats: SpoolStats = { processed: 0, skipped: 0, rescheduled: 0, dead: 0, quarantined: 0, reclaimed: 0, lost: 0 };
  private owner: Owner | undefined;
  private watcher: FSWatcher | undefined;
  private scanTimer: NodeJS.Timeout | undefined;
  /** Names this process moved out of incoming/: the watch event their departure causes is not an arrival. */
  private readonly departed = new Set<string>();
  /** Files to leave alone until the given time (possibly still being written). */
  private readonly held = new Map<string, number>();
  private readonly running = new Map<string, Running>();
  private pendingMtime = -1;
  /** Whether another daemon has served this spool since pending/ was last read: only then can pending/ hold tasks we do not know. */
  private otherOwnersSeen = false;
  private nextPendingScan = 0;
  private lastTmpSweep = 0;
  /** How long the last scan of incoming/ took (ms), to space scans out while incoming/ is unwatched. */
  private incomingScanCost = 0;
  /** Whether moveFutureOutOfIncoming() is under way. */
  private moving = false;
  private stopping = false;
  private readonly log: Logger;

  constructor(
    dir: string,
    private readonly options: DaemonOptions,
    private readonly slots: Slots,
    private readonly executor: Executor,
  ) {
    this.layout = new SpoolLayout(dir).ensure();
    this.log = options.log.child({ spool: this.layout.root });
    this.queue = new TaskQueue(() => slots.wake());
  }

  get runningCount(): number {
    return this.running.size;
  }

  get ownerId(): string | undefined {
    return this.owner?.id;
  }

  async start(): Promise<void> {
    this.owner = await Owner.acquire(this.layout, this.options.staleAfter, this.log);
    const started = Date.now();
    const incoming = this.loadBacklog(started);
    await this.reclaimDeadOwners();
    if (incoming <= WATCH_MAX_BACKLOG) await this.startWatching();
    else this.moveFutureOutOfIncoming();
    this.log.info('serving spool', {
      owner: this.owner.id,
      pending: this.queue.size,
      due: this.queue.readyCount,
      ms: Date.now() - started,
      watching: this.watcher !== undefined,
    });
    this.slots.wake();
    this.scheduleScan();
  }

  /** Starts as many due tasks as the daemon has slots for. Returns how many started. */
  dispatch(limit: number): number {
    let started = 0;
    const now = Date.now();
    while (started < limit && !this.stopping && this.slots.available()) {
      const next = this.queue.take(now);
      if (next === undefined) break;
      if (this.start1(next)) started++;
    }
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

  /**
   * Puts every task still running back into incoming/ unchanged (no attempt
   * counted) and gives up the claim directory and lock. Synchronous file moves,
   * so it is safe from a second signal's handler.
   */
  releaseAll(): number {
    let released = 0;
    for (const r of this.running.values()) {
      if (release(r.path, this.layout)) {
        released++;
        this.log.warn('task returned to the spool unfinished; it will run again', { file: r.fileName });
      }
    }
    this.running.clear();
    return released;
  }

  async releaseOwner(): Promise<void> {
    await this.owner?.release();
  }

  // --- claiming and running -------------------------------------------------

  private start1(queued: QueuedTask): boolean {
    // A late watch event (its `departed` entry cleared by a scan meanwhile) can queue a task this process
    // is still running; claim()'s NFS check would then find the file in our claim directory and run it twice.
    if (this.running.has(this.owner!.dir + sep + queued.fileName)) return false;
    if (queued.dir === 'incoming') this.departed.add(queued.fileName);
    let result: ReturnType<typeof claim>;
    try {
      result = claim(this.layout, this.owner!.dir, queued.fileName, queued.dir);
    } catch (err) {
      // Not a lost race (that is ENOENT): permissions, a full disk, a broken filesystem. Leave the
      // file where it is and look at it again at the next scan rather than spinning on it.
      this.held.set(queued.fileName, Date.now() + this.options.scanInterval);
      this.log.error('cannot claim a task; will try again at the next scan', { file: queued.fileName, err });
      return false;
    }
    if (!result.claimed) return false;
    const r: Running = { path: result.path, fileName: queued.fileName, from: result.from };
    this.running.set(r.path, r);
    this.slots.acquire();
    this.run(r)
      .catch((err: unknown) => this.log.error('unexpected error while running a task; it stays claimed until this daemon stops', { file: r.fileName, err }))
      .finally(() => {
        this.running.delete(r.path);
        this.slots.release();
      });
    return true;
  }

  private async run(r: Running): Promise<void> {
    const now = Date.now();
    const read = readClaimedFile(r.path, this.options.maxBytes);
    if (!read.ok) {
      if (read.reason.startsWith('it disappeared')) this.lose(r, 'the claimed file vanished');
      else this.quarantine(r.path, r.fileName, read.reason, r.from);
      return;
    }
    const decoded = decodeTask(r.fileName, read.bytes);
    if (!decoded.ok) {
      if (now - read.mtimeMs < this.options.settle) {
        // Possibly a producer writing in place: put it back and look again once it has settled.
        this.held.set(r.fileName, read.mtimeMs + this.options.settle);
        release(r.path, this.layout);
        this.log.debug('task file does not decode yet; holding it while it may still be written', { file: r.fileName, reason: decoded.reason });
      } else {
        this.quarantine(r.path, r.fileName, decoded.reason, r.from);
      }
      return;
    }
    const task = decoded.task;
    r.task = task;
    const limit = task.body.retry?.limit ?? DEFAULT_RETRY.limit;
    if (task.attempts > limit) {
      // Only reclaims get a task here: its daemon died with it `attempts` times. Do not run a crash loop again.
      const error = new Error(`the task was interrupted ${task.attempts} times (daemons died or were killed while running it), over its retry limit of ${limit}`);
      this.buryTask(r, task, task.attempts, describeError(error), { task: task.name, id: task.id, attempt: task.attempts }, limit);
      return;
    }
    const timeout = task.body.timeout ?? this.options.taskTimeout;
    const outcome: Execution = await this.executor.run({ spool: this.layout.root, task, bytes: read.bytes, timeoutMs: timeout > 0 ? timeout : undefined });
    if (outcome.kind === 'released') this.releaseInterrupted(r, outcome.reason);
    else this.settle(r, task, outcome);
  }

  /** A task interrupted through no fault of its own: back to incoming/, no attempt counted. */
  private releaseInterrupted(r: Running, reason: string): void {
    try {
      if (!release(r.path, this.layout)) return this.lose(r, 'the claim was taken over before the task was returned');
    } catch (err) {
      this.log.error('cannot return an interrupted task to the spool; it stays claimed', { file: r.fileName, err });
      return;
    }
    this.queue.add(r.fileName, 'incoming', Date.now());
    this.log.warn('task returned to the spool without counting an attempt', { file: r.fileName, reason });
  }

  /** Applies an outcome to the claimed file. */
  private settle(r: Running, task: TaskFile, outcome: TaskOutcome): void {
    const fields = { task: task.name, id: task.id, attempt: task.attempts + 1 };
    try {
      switch (outcome.kind) {
        case 'processed':
        case 'skipped':
          if (!finish(r.path, this.layout, this.options.archive)) return this.lose(r, 'the claim was taken over before the task finished');
          if (outcome.kind === 'processed') {
            this.stats.processed++;
            if (this.log.enabled('debug')) this.log.debug('task processed', fields);
          } else {
            this.stats.skipped++;
            this.log.info('task skipped', { ...fields, reason: outcome.reason ?? 'no reason given' });
          }
          return;
        case 'rescheduled':
          return this.reschedule(r, task, outcome, fields);
      }
    } catch (err) {
      // The file stays claimed; if this daemon cannot move it, the next one reclaims it after we are gone.
      this.log.error('cannot record the outcome of a task; it stays claimed', { ...fields, outcome: outcome.kind, err });
    }
  }

  private reschedule(r: Running, task: TaskFile, outcome: Extract<TaskOutcome, { kind: 'rescheduled' }>, fields: Record<string, unknown>): void {
    const failures = task.attempts + 1;
    const retry = task.body.retry ?? DEFAULT_RETRY;
    const error = describeError(outcome.error ?? outcome.reason ?? 'rescheduled by the task');
    if (failures > retry.limit) return this.buryTask(r, task, failures, error, fields, retry.limit);
    const delay = outcome.delay ?? backoffDelay(retry.backoff ?? DEFAULT_RETRY.backoff!, failures);
    const due = Date.now() + delay;
    const next = retryLater(r.path, this.layout, due);
    if (next === undefined) return this.lose(r, 'the claim was taken over before the task was rescheduled');
    this.stats.rescheduled++;
    this.queue.add(next, 'pending', Date.now());
    const level = outcome.error === undefined ? 'info' : 'warn';
    this.log[level]('task rescheduled', { ...fields, inMs: delay, retriesLeft: retry.limit - failures, error: error.message, ...(level === 'warn' && { stack: error.stack }) });
  }

  /** Moves a task out of retries to dead/, its error recorded in state/<id>.json. */
  private buryTask(r: Running, task: TaskFile, attempts: number, error: ReturnType<typeof describeError>, fields: Record<string, unknown>, retries: number): void {
    const record = { id: task.id, name: task.name, attempts, at: Date.now(), error };
    try {
      if (!bury(r.path, this.layout, record)) return this.lose(r, 'the claim was taken over before the task was buried');
    } catch (err) {
      this.log.error('cannot move a task to dead/; it stays claimed', { ...fields, err });
      return;
    }
    this.stats.dead++;
    this.log.warn('task is a dead letter: out of retries', { ...fields, retries, error: error.message, stack: error.stack });
  }

  private lose(r: Running, why: string): void {
    this.stats.lost++;
    this.log.warn(`${why}; another daemon reclaimed it and will run it again`, { file: r.fileName });
  }

  private quarantine(path: string, fileName: string, reason: string, from: string): void {
    let moved: string | undefined;
    try {
      moved = quarantine(this.layout, path, fileName, reason, from, Date.now());
    } catch (err) {
      this.held.set(fileName, Date.now() + this.options.scanInterval);
      this.log.error('cannot quarantine an invalid file; will try again', { file: fileName, reason, err });
      return;
    }
    if (moved === undefined) return;
    this.stats.quarantined++;
    this.log.warn('quarantined a file that is not a valid task', { file: fileName, reason, to: moved });
  }

  // --- discovery --------------------------------------------------------------

  /**
   * Start-up: every task name in pending/ and incoming/ into the queue at once
   * (O(n), one listing of each directory). Returns how many entries incoming/ has.
   */
  private loadBacklog(now: number): number {
    const pending = readNames(this.layout.pending);
    const incoming = readNames(this.layout.incoming);
    this.pendingMtime = statSync(this.layout.pending).mtimeMs;
    this.nextPendingScan = now + this.options.scanInterval;
    const rejected = this.queue.load(
      [
        [pending, 'pending'],
        [incoming, 'incoming'],
      ],
      now,
    );
    for (const [n, dir] of rejected) this.considerBadName(this.layout[dir] + sep + n, n, dir, undefined);
    return incoming.length;
  }

  /** Reads incoming/ and considers every entry. Returns how many entries it holds. */
  private scanIncoming(): number {
    let names: string[];
    try {
      // Names only: a file's type is checked when it is claimed (safe-read.ts), which also
      // catches a file swapped after listing, and a million Dirents would cost ~200 MB.
      names = readNames(this.layout.incoming);
    } catch (err) {
      this.log.error('cannot read incoming/', { err });
      return 0;
    }
    this.departed.clear();
    const now = Date.now();
    for (const name of names) this.consider(name, now);
    this.incomingScanCost = Date.now() - now;
    if (names.length > 0) this.slots.wake();
    return names.length;
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
      return;
    }
    if (this.departed.delete(fileName)) return;
    this.consider(fileName, Date.now());
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
    this.log.info('incoming/ is crowded; watching paused, scanning it instead until it is small again', {
      queued: this.queue.incomingCount,
      threshold: WATCH_MAX_BACKLOG,
    });
    clearTimeout(this.scanTimer);
    this.scheduleScan();
    this.moveFutureOutOfIncoming();
  }

  /** Decides what to do with a name in incoming/: queue it, move it to pending/, hold it or quarantine it. */
  private consider(fileName: string, now: number): void {
    if (fileName.charCodeAt(0) === 46 /* "." */ || this.queue.has(fileName)) return;
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
    if (this.moving || this.stopping) return;
    this.moving = true;
    const candidates = this.queue.inDir('incoming');
    const step = () => {
      if (this.stopping) return void (this.moving = false);
      const until = Date.now() + 20;
      const horizon = Date.now() + this.options.scanInterval;
      for (let r = candidates.next(); ; r = candidates.next()) {
        if (r.done) return void (this.moving = false);
        const fileName = r.value;
        try {
          if (dueOfTaskName(fileName)! > horizon && accept(this.layout, fileName)) this.queue.setDir(fileName, 'pending');
        } catch (err) {
          this.log.error('cannot move tasks to pending/; incoming/ stays unwatched and is scanned instead', { err });
          return void (this.moving = false);
        }
        if (Date.now() >= until) break;
      }
      // Leave the rest of this turn to dispatching and I/O.
      setTimeout(step, 5);
    };
    step();
  }

  /** A name that is not a task name: quarantine it once it has settled (a producer may rename it yet). */
  private considerBadName(path: string, fileName: string, from: string, mtimeMs: number | undefined): void {
    let mtime = mtimeMs;
    if (mtime === undefined) {
      try {
        mtime = lstatSync(path).mtimeMs;
      } catch {
        return;
      }
    }
    const now = Date.now();
    if (now - mtime < this.options.settle) {
      this.held.set(fileName, mtime + this.options.settle);
      return;
    }
    this.quarantine(path, fileName, `bad file name: ${explainBadName(fileName)}`, from);
  }

  private async startWatching(): Promise<void> {
    this.watcher = await watchDirectory(
      this.layout.incoming,
      { poll: this.options.poll, pollInterval: this.options.pollInterval },
      (fileName) => this.onWatchEvent(fileName),
      (err) => this.log.error('watcher error; relying on scans until it recovers', { err }),
    );
    // Anything that arrived between the scan and the watch being in place.
    this.scanIncoming();
  }

  private scheduleScan(): void {
    if (this.stopping) return;
    // While incoming/ is too large to watch, scanning it is the only way to see arrivals: scan at
    // least every second, but keep scanning under 2% of the time (a million names take ~0.5 s).
    const interval =
      this.watcher === undefined ? Math.max(Math.min(1000, this.options.scanInterval), 50 * this.incomingScanCost) : this.options.scanInterval;
    this.scanTimer = setTimeout(() => {
      this.scan()
        .catch((err: unknown) => this.log.error('scan failed', { err }))
        .finally(() => this.scheduleScan());
    }, interval);
  }

  /** The periodic reconciliation scan. */
  private async scan(): Promise<void> {
    if (this.stopping) return;
    const now = Date.now();
    for (const [name, until] of this.held) if (until < now - 10 * this.options.settle) this.held.delete(name);
    const incoming = this.scanIncoming();
    if (this.watcher === undefined && !this.stopping) {
      if (incoming <= WATCH_MAX_BACKLOG) await this.startWatching();
      else this.moveFutureOutOfIncoming();
    }
    this.rescanPendingIfChanged();
    await this.reclaimDeadOwners();
    this.sweepTmp();
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
    let added = 0;
    for (const n of readNames(this.layout.pending)) {
      if (n.charCodeAt(0) !== 46 && this.queue.add(n, 'pending', started)) added++;
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
      owners = readdirSync(this.layout.active);
    } catch {
      return;
    }
    for (const id of owners) {
      if (id === this.owner?.id || this.stopping) continue;
      this.otherOwnersSeen = true;
      if (await isOwnerAlive(this.layout, id, this.options.staleAfter)) continue;
      const dir = join(this.layout.active, id);
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        continue;
      }
      const reclaimed = reclaimOwner(this.layout, dir, names, Date.now());
      removeOwnerLock(this.layout, id);
      if (reclaimed.length === 0) continue;
      this.stats.reclaimed += reclaimed.length;
      this.log.warn('reclaimed tasks of a daemon that died; their attempt is counted', { owner: id, tasks: reclaimed.length });
      const now = Date.now();
      for (const n of reclaimed) this.queue.add(n, 'incoming', now);
      this.slots.wake();
    }
  }

  /** Deletes staging debris of crashed producers, at most once a minute. */
  private sweepTmp(): void {
    const now = Date.now();
    if (now - this.lastTmpSweep < 60_000) return;
    this.lastTmpSweep = now;
    for (const n of readdirSync(this.layout.tmp)) {
      const path = join(this.layout.tmp, n);
      try {
        if (now - lstatSync(path).mtimeMs > TMP_DEBRIS_AGE) unlinkSync(path);
      } catch {
        // Renamed by its producer meanwhile, or not ours to delete.
      }
    }
  }
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
