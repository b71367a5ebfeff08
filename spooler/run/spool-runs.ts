/**
 * The claim/run/settle half of serving one spool, on the daemon's main
 * thread: due names go from the queue to this spool's runner, and the
 * runner's reports come back into the counters, the queue and the run slots.
 * The runner itself claims, reads, decodes, runs and settles (task-path.ts);
 * nothing here touches a task file except what a dead runner left behind
 * (orphaned()) and the stop (releaseAll()).
 *
 * A task held here:
 *
 *   (queued) --give()--> running --report--> (done: counted; a reschedule queued under its new name)
 *                           |  '--report Stuck--> stuck (slot freed; its runner retries the move) --report--> (done)
 *                           '--its runner died--> orphaned(): settled here from its claim directory (process-runners.ts)
 *
 * A runner serves one owner: when the owner is lost (revoke()) every task it
 * held is forgotten at once and its runner's later reports are ignored.
 *
 * Paused tasks (control/pause.json, pause(): the gate): while every task is
 * paused nothing is given; while some names are, a name of theirs that the
 * queue gives is dropped (its file stays where it is; discovery keeps such
 * names out of the queue, and lists again on resume), and the runner gives
 * back those it holds unstarted (reported Unclaimed, not queued again). On the
 * per-task path this costs one test of a field that is undefined while
 * nothing is paused.
 */
import { basename, sep } from 'node:path';
import { ClaimLostError, TaskTimeoutError } from '../../runtime/context.js';
import type { SpoolClock } from '../../spool/clock.js';
import type { SpoolLayout, Subdir } from '../../spool/layout.js';
import { parseTaskName } from '../../spool/name.js';
import { taskNameOfFileName } from '../task-names.js';
import { existsNoFollow, release } from '../../spool/protocol.js';
import type { DirHandle } from '../dir-handles.js';
import type { Logger } from '../logger.js';
import type { Tally } from '../observer.js';
import type { DaemonOptions } from '../options.js';
import type { PendingDir, TaskQueue } from '../order/task-queue.js';
import { InProcessRunner } from './in-process-runner.js';
import { describeName, ProcessSite, type Orphan, type ProcessRunners, type RunnerDeath } from './process-runners.js';
import { WorkerCrashedError, type SiteRunner } from './runners.js';
import { Code, TaskPath, type Item, type Report, type Site } from './task-path.js';
import type { LimitGate } from '../limits/gate.js';
import { freeHolds, ownerHolds, runnerHold } from '../../spool/limits.js';

/** What the daemon gives each spool: a way to ask for a run slot and to say one is free. */
export interface Slots {
  /** How many more names could be given now (0 while the runners take none). */
  free(): number;
  /** Whether the runners take names at all now (false while every runner process is being replaced). */
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
  /** Cancelled while running (spool cancel, spooler.cancel()). */
  cancelled: number;
  /** Claimed past their `expires` time: never run. */
  expired: number;
  quarantined: number;
  reclaimed: number;
  lost: number;
  /** Claims another daemon won first (a lost race costs a round trip on a network filesystem). */
  claimRaces: number;
}

/** What the rest of the spool's coordinator provides (discovery, peers, folders). */
export interface RunsHost {
  readonly layout: SpoolLayout;
  readonly queue: TaskQueue;
  readonly stats: SpoolStats;
  readonly tally: Tally;
  readonly clock: SpoolClock;
  readonly log: Logger;
  readonly options: DaemonOptions;
  readonly slots: Slots;
  /** Names to leave alone until a spool time (possibly still being written). */
  readonly held: Map<string, number>;
  /** Names this process moved out of incoming/: the watch event their departure causes is not an arrival. */
  readonly departed: Set<string>;
  /** Whether another daemon serves (or served) this spool: batches start at a random place. */
  sharedSpool(): boolean;
  /** Another daemon won a claim: the owners may have changed. */
  lookForPeers(): void;
  /** A claim failed (not a lost race): back off, then queue it again. */
  claimFailed(fileName: string, from: PendingDir, reason: string | undefined, now: number): void;
  /** A name's claim went through (or it is gone): its failed-claim backoff, if any, is over. */
  claimSettled(fileName: string): void;
  /** Our claim directory is gone: the owner was taken for dead. */
  ownerGone(): void;
  /** The task `id` ended as cancelled: its request is done with. */
  cancelled?(id: string): void;
  /** Whether the coordinator is stopping (names that come back are not queued again). */
  stopping(): boolean;
  check(...subs: Subdir[]): void;
  checkedId(path: string): { dev: number; ino: number } | undefined;
}

/**
 * A task this process holds, from the moment its name is given to a runner to its report:
 *   running  given to a runner (claimed when the runner starts it; holds a slot)
 *   stuck    a move of its file failed; the runner tries it again until it succeeds (no slot)
 */
interface Held {
  fileName: string;
  /** Its path in our claim directory. */
  path: string;
  /** Where the queue last saw it. */
  from: PendingDir;
  state: 'running' | 'stuck';
  /** performance.now() when it was given (status-file.ts). */
  startedAt: number;
  /** A cancel was passed to its runner. */
  cancelling?: boolean;
}

/** Tally.started() observes the wait only. */
const ANY_TASK = { name: '' };

export class SpoolRuns {
  /** Every task given to this spool's runner and not yet reported, by file name. */
  private readonly owned = new Map<string, Held>();
  private runner: SiteRunner | undefined;
  private ownerDir = '';
  /** Every task is paused: nothing is given. */
  private pausedAll = false;
  /** The task names paused (while not all are); undefined while none is. */
  private pausedTasks: ReadonlySet<string> | undefined;
  /** Concurrency and rate limits (limits/gate.ts); undefined while no task served here has any (then nothing of it runs). */
  gate: LimitGate | undefined;

  constructor(
    private readonly host: RunsHost,
    /** --processes N: the runner processes every spool shares; undefined with --processes 0 (this thread runs the tasks). */
    private readonly processRunners: ProcessRunners | undefined,
  ) {}

  /** Tasks held in active/<owner>/: given to the runner, or whose move is stuck. */
  get heldCount(): number {
    return this.owned.size;
  }

  heldNames(): IterableIterator<string> {
    return this.owned.keys();
  }

  /** Whether `fileName` is given to the runner (or its move is stuck): a listing must not queue it again. */
  holds(fileName: string): boolean {
    return this.owned.has(fileName) || (this.gate !== undefined && this.gate.holds(fileName));
  }

  /** The tasks given to the runner now, at most `limit`, as their names say (the body stays with the runner). */
  runningTasks(limit: number): Array<{ id: string; name: string; attempt: number; startedAt: number }> {
    const out: Array<{ id: string; name: string; attempt: number; startedAt: number }> = [];
    for (const h of this.owned.values()) {
      if (out.length >= limit) break;
      if (h.state !== 'running') continue;
      const n = parseTaskName(h.fileName);
      if (n !== undefined) out.push({ id: n.id, name: n.name, attempt: n.attempts, startedAt: Math.round(performance.timeOrigin + h.startedAt) });
    }
    return out;
  }

  /**
   * A new owner (start, or a rejoin): its runner claims into `claimDir` (a
   * handle's path on a network filesystem, else `ownerDir`). Reports of an
   * earlier owner's runner are ignored from now on.
   */
  open(ownerDir: string, claimDir: string, sourceHandles: { incoming: DirHandle; pending: DirHandle } | undefined): void {
    const host = this.host;
    const { layout, options } = host;
    this.ownerDir = ownerDir + sep;
    const site: Site = {
      layout,
      root: layout.root,
      sources: sourceHandles !== undefined ? { incoming: sourceHandles.incoming.path, pending: sourceHandles.pending.path } : layout,
      claimDir,
      claimDirPath: ownerDir,
      maxBytes: options.maxBytes,
      settle: options.settle,
      archive: options.archive,
      keepResults: options.keepResults,
      taskTimeout: options.taskTimeout,
      clock: host.clock,
      check: (...subs) => host.check(...subs),
      log: host.log,
    };
    let runner: SiteRunner;
    const report = (r: Report) => {
      if (this.runner === runner) this.onReport(r);
    };
    const pool = this.processRunners;
    if (pool === undefined) {
      this.runner = runner = new InProcessRunner(site, report, options.killGrace);
      return;
    }
    const id = (path: string): [number, number] => {
      const f = host.checkedId(path)!;
      return [f.dev, f.ino];
    };
    const checked = (['incoming', 'pending', 'state', 'results', 'dead', 'quarantine', 'archive', 'flows'] as const).map((sub) => [sub, ...id(layout[sub])] as [Subdir, number, number]);
    const key = pool.serve(
      {
        root: layout.root,
        incoming: layout.incoming,
        pending: layout.pending,
        claimDir: ownerDir,
        claimDirId: id(ownerDir),
        checked,
      },
      { report, orphaned: (names, death) => runner === this.runner && this.orphaned(names, death) },
    );
    this.runner = runner = new ProcessSite(pool, key, new TaskPath(site, { report }));
    if (this.pausedAll || this.pausedTasks !== undefined) runner.pause(this.pausedAll, this.pausedTasks);
  }

  /**
   * What is paused from now on (pause-watch.ts): every task (`all`), or the
   * tasks named. Names given to the runner and not started yet come back
   * unclaimed; tasks running go on.
   */
  pause(all: boolean, tasks: ReadonlySet<string>): void {
    this.pausedAll = all;
    this.pausedTasks = all || tasks.size === 0 ? undefined : tasks;
    this.runner?.pause(all, this.pausedTasks);
  }

  /** Whether the task of `fileName` is paused now. */
  isPaused(fileName: string): boolean {
    return this.pausedAll || (this.pausedTasks !== undefined && this.pausedTasks.has(taskNameOfFileName(fileName)));
  }

  /**
   * Gives the next due tasks to the runner, as many as it and the daemon's
   * free slots take: each is claimed, read, run and settled by the runner (on
   * this thread, a synchronous task before give() returns). Returns how many.
   */
  give(limit: number): number {
    const runner = this.runner;
    const host = this.host;
    if (runner === undefined || this.pausedAll || !host.slots.accepting()) return 0;
    const want = Math.min(limit, host.slots.free(), runner.room());
    if (want <= 0) return 0;
    const now = host.clock.now();
    const started = performance.now();
    const batch: Item[] = [];
    const paused = this.pausedTasks;
    const gate = this.gate;
    while (batch.length < want) {
      // Names a freed limit slot woke go first (gate.ts); then the queue's.
      const next = (gate !== undefined ? gate.nextWoken() : undefined) ?? host.queue.take(now);
      if (next === undefined) break;
      // A late watch event (its `departed` entry cleared by a scan meanwhile) can queue a task this process
      // still holds; claim()'s NFS check would then find the file in our claim directory and run it twice.
      if (this.owned.has(next.fileName)) continue;
      // Queued before its pause (or a retry's new name): left where it is; the listing on resume finds it.
      if (paused !== undefined && paused.has(taskNameOfFileName(next.fileName))) continue;
      // Held back by a concurrency limit: parked (gate.ts), never handed to a runner ahead.
      if (gate !== undefined && !gate.admits(next.fileName, next.dir)) continue;
      if (next.dir === 'incoming') host.departed.add(next.fileName);
      this.owned.set(next.fileName, { fileName: next.fileName, path: this.ownerDir + next.fileName, from: next.dir, state: 'running', startedAt: started });
      host.slots.acquire();
      // Claimed when it starts, at once or after the names given before it: the claim-to-start wait is 0.
      host.tally.started(ANY_TASK, 0);
      batch.push({ name: next.fileName, dir: next.dir });
    }
    if (batch.length === 0) return 0;
    // Beside other daemons, from a random place in the batch (then round to its start): daemons sharing a spool
    // list the same due tasks in the same order; had each claimed from the head, the fastest would win every
    // race and the others none (seen over a network filesystem: one host ran 600 of 600).
    if (host.sharedSpool() && batch.length > 1) rotate(batch, Math.floor(Math.random() * batch.length));
    runner.give(batch);
    return batch.length;
  }

  /**
   * Cancels those of the tasks `ids` this process runs (given to its runner),
   * in one pass over what it holds. Returns the ids it runs (also those asked
   * before): their requests stay until the task has ended.
   */
  cancel(ids: ReadonlySet<string>): Set<string> {
    const found = new Set<string>();
    const runner = this.runner;
    if (runner === undefined) return found;
    for (const h of this.owned.values()) {
      if (h.state !== 'running') continue;
      const id = parseTaskName(h.fileName)?.id;
      if (id === undefined || !ids.has(id)) continue;
      found.add(id);
      if (h.cancelling === true) continue;
      h.cancelling = true;
      this.host.log.info('cancelling a running task', { ...describeName(h.fileName), killGraceMs: this.host.options.killGrace });
      runner.cancel(h.fileName);
    }
    return found;
  }

  /**
   * The owner was lost: its runner's running tasks get their signals fired
   * (ClaimLostError), their outcomes are ignored and nothing they held is
   * moved; every name it held is forgotten and its slot freed now. Returns
   * how many were running and held.
   */
  revoke(): { running: number; held: number } {
    let running = 0;
    for (const h of this.owned.values()) if (h.state === 'running') running++;
    const held = this.owned.size;
    for (let i = 0; i < running; i++) this.host.slots.release();
    this.owned.clear();
    // Its slots in limits/ are the reclaim's to free (never this process's: it lost them).
    this.gate?.clear();
    this.runner?.revoke(new ClaimLostError());
    this.runner = undefined;
    return { running, held };
  }

  /**
   * The stop: puts every task still claimed back into incoming/ unchanged (no
   * attempt counted). Synchronous file moves, so it is safe from a second
   * signal's handler. Returns how many went back.
   */
  releaseAll(): number {
    const { log, layout } = this.host;
    let returned = 0;
    let unstarted = 0;
    // A last try for the moves that failed; what still fails stays where it is.
    this.runner?.stop(true);
    for (const h of this.owned.values()) {
      try {
        if (h.state === 'stuck') {
          // Its function may have returned: running it again from incoming/ without counting the attempt would be wrong.
          log.error('a task whose file could not be moved stays claimed; the next daemon reclaims it after the stale time', { file: h.fileName });
        } else if (release(h.path, layout)) {
          // Claimed: it had started (a runner claims a task when it starts it).
          returned++;
          log.warn('task returned to the spool unfinished; it will run again', { file: h.fileName });
        } else {
          unstarted++;
        }
      } catch (err) {
        log.error('cannot return a task to the spool; it stays claimed and is reclaimed after the stale time', { file: h.fileName, err });
      }
    }
    if (unstarted > 0) log.debug('tasks given to runners that had not started stay where they were', { tasks: unstarted });
    this.owned.clear();
    if (this.gate !== undefined) {
      this.gate.clear();
      // The tasks went back unfinished: the slots they held in limits/ are free again.
      try {
        freeHolds(layout.limits, ownerHolds(basename(this.ownerDir)));
      } catch (err) {
        log.error('cannot free the concurrency slots of this daemon in limits/; they are freed when the next daemon reclaims this owner', { err });
      }
    }
    return returned;
  }

  /** What a runner says became of a name it was given: the counters, the queue and the slots follow. */
  private onReport(r: Report): void {
    const h = this.owned.get(r.name);
    if (h === undefined) return; // dealt with already (a second signal's releaseAll())
    if (this.gate !== undefined) this.gate.reported(r);
    const { stats, tally, slots, queue, clock } = this.host;
    if (h.state === 'running' && (r.ms !== undefined || r.failed === true)) {
      // A task its runner died with has no run time of its own: the time since it was given.
      tally.ran({ name: r.task! }, r.ms ?? performance.now() - h.startedAt, r.failed === true);
    }
    if (r.code === Code.Stuck) {
      // Its slot is free; the runner reports again once the move is done.
      if (h.state === 'running') slots.release();
      h.state = 'stuck';
      return;
    }
    this.owned.delete(r.name);
    if (h.state === 'running') slots.release();
    if (r.code !== Code.ClaimFailed) this.host.claimSettled(r.name);
    const task = { name: r.task ?? '' };
    switch (r.code) {
      case Code.Processed:
        stats.processed++;
        return tally.processed(task);
      case Code.Skipped:
        stats.skipped++;
        return tally.skipped(task);
      case Code.Rescheduled:
        stats.rescheduled++;
        tally.rescheduled(task);
        return void queue.add(r.next!, 'pending', clock.now());
      case Code.Dead:
        stats.dead++;
        return tally.dead(task);
      case Code.Cancelled: {
        stats.cancelled++;
        const id = parseTaskName(r.name)?.id;
        if (id !== undefined) this.host.cancelled?.(id);
        return;
      }
      case Code.Expired:
        stats.expired++;
        return;
      case Code.Quarantined:
        stats.quarantined++;
        return;
      case Code.Race:
        stats.claimRaces++;
        return this.host.lookForPeers();
      case Code.TakenOver:
        stats.lost++;
        return;
      case Code.Held:
        this.host.held.set(r.name, r.until!);
        return;
      case Code.ClaimFailed:
        return this.host.claimFailed(h.fileName, h.from, r.reason, clock.now());
      case Code.OwnerGone:
        return this.host.ownerGone();
      case Code.Unclaimed:
        // A paused task's name given back stays out of the queue (on disk) until its resume lists it again.
        if (!this.host.stopping() && (this.pausedTasks === undefined || !this.pausedTasks.has(taskNameOfFileName(r.name)))) queue.add(r.name, r.from ?? h.from, clock.now());
        return;
      case Code.Revoked:
        return;
      case Code.Limited:
        // Parked by the gate; without one (no limits known here), left alone a second like a young file.
        if (this.gate === undefined) this.host.held.set(r.name, r.until ?? clock.now() + 1000);
        return;
    }
  }

  /**
   * A runner process died with these names given (process-runners.ts has the
   * table): its claim directory tells which it had started; the rest were
   * never claimed.
   */
  private orphaned(names: Orphan[], death: RunnerDeath): void {
    const runner = this.runner!;
    const { layout, log, options } = this.host;
    const started: Orphan[] = [];
    for (const o of names) {
      const h = this.owned.get(o.name);
      if (h === undefined) continue;
      if (existsNoFollow(h.path)) started.push(o);
      else if (existsNoFollow(layout.incoming + sep + o.name) || existsNoFollow(layout.pending + sep + o.name)) this.onReport({ name: o.name, code: Code.Unclaimed, from: o.dir });
      else {
        // Ended and its file settled by the runner, which died before the report left: done.
        const n = parseTaskName(o.name);
        log.info('task finished in a worker process that ended before reporting it; its file was already removed, so it is done (counted as processed)', { task: n?.name, id: n?.id, attempt: n?.attempts });
        this.onReport({ name: o.name, code: Code.Processed, ...(n !== undefined && { task: n.name }) });
      }
    }
    if (death.crashed) {
      const running = started.map((o) => describeName(o.name));
      log.error('a worker process died; the tasks it was running are rescheduled with their attempt counted', { worker: death.pid, code: death.code, signal: death.signal, running });
    }
    if (this.gate !== undefined && started.length > 0) this.freeOrphanSlots(death.pid);
    for (const { name, dir, cause, timeoutMs } of started) {
      const h = this.owned.get(name)!;
      try {
        if (cause === 'cancelled') {
          runner.settleOrphan(name, dir, { kind: 'cancelled' });
          continue;
        }
        if (cause === 'killed') {
          this.owned.delete(name);
          this.host.slots.release();
          if (release(h.path, layout)) {
            this.host.queue.add(name, 'incoming', this.host.clock.now());
            log.warn('task returned to the spool without counting an attempt', { file: name, reason: `its worker process (pid ${death.pid}) was killed to stop a task that outlived its timeout` });
          }
          continue;
        }
        const others = started.length - 1;
        const error =
          cause === 'timed-out'
            ? new TaskTimeoutError(timeoutMs ?? options.taskTimeout, `, nor within ${options.killGrace} ms after its AbortSignal fired; its worker process (pid ${death.pid}) was killed`)
            : new WorkerCrashedError(`its worker process (pid ${death.pid}) died (${death.how}) while running it${others > 0 ? ` and ${others} other task(s)` : ''}`);
        runner.settleOrphan(name, dir, { kind: 'rescheduled', error });
      } catch (err) {
        log.error('cannot settle a task of a worker process that died; it stays claimed until this daemon stops', { file: name, err });
      }
    }
  }

  /** The slots that tasks of a dead runner process held (its hold file, spool/limits.ts) are freed here, on the main thread. */
  private freeOrphanSlots(pid: number): void {
    try {
      this.gate!.freed(freeHolds(this.host.layout.limits, runnerHold(basename(this.ownerDir), String(pid))));
    } catch (err) {
      this.host.log.error('cannot free the concurrency slots of a worker process that died; they are freed when this daemon stops', { worker: pid, err });
    }
  }
}

/** Rotates `items` in place so that it starts at `start` (then round to the start). */
function rotate<T>(items: T[], start: number): void {
  if (start === 0) return;
  const head = items.splice(0, start);
  items.push(...head);
}
