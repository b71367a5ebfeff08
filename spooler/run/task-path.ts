/**
 * The per-task path, owned by a runner (uWSGI's model: the process that runs a
 * task also claims, reads and settles it, so no body crosses a thread or a
 * process): claim → read → decode → run → settle. The same code serves the
 * daemon's own thread (--processes 0, in-process-runner.ts) and each worker
 * process. The main thread hands names in and gets one small Report per name
 * back (a code, the task's name and run time for the tally, the new name of a
 * rescheduled task so its queue can hold it); it never sees a body.
 *
 * The file moves are spool/protocol.ts's (the crash table of
 * SPOOL-FORMAT.md holds whatever happens here). A task inside a runner:
 *
 *   given --claim--> claimed --read, decode--> running --ended--> settling --moved--> reported
 *     |                 |                         |                   '--move failed--> stuck --moved or gone--> reported
 *     |                 |                         '--revoke()--> revoked --ended--> reported (Revoked; nothing moved)
 *     |                 '--unreadable, bad body, over its retry limit--> quarantined | held | dead (reported)
 *     '--lost race, claim failed, claim directory gone--> reported
 *   claimed --past its expires time--> settling (expired: never run)
 *
 * A task with a unique key (spool/unique.ts) releases it here: at the claim
 * (uniqueWhile pending, the default), or after its last move (uniqueWhile
 * running; a retry keeps it). Tasks without a key or an expiry pay one
 * property test for each. So do tasks without `chain` or `onError`: a task
 * with either enqueues its next step or its onError task once (flows.ts)
 * after its result is kept and before its file is finished or buried.
 *
 * A task is claimed when it starts, not ahead of it: after a runner dies, the
 * files its outstanding names left in the claim directory are exactly the
 * tasks it had started (its supervisor counts their attempt, WorkerCrashedError),
 * and the names it never claimed are still in incoming/ or pending/.
 */
import { DEFAULT_RETRY } from '../../runtime/backoff.js';
import { TaskCancelledError, TaskTimeoutError } from '../../runtime/context.js';
import { describeError, failedError, nextAttempt, rescheduledError, retryLimitOf, type TaskOutcome } from '../../runtime/results.js';
import type { RemoteErrorInfo } from '../../spool/results.js';
import type { RunEnd } from '../../runtime/task-behaviour.js';
import type { SpoolLayout, Subdir } from '../../spool/layout.js';
import { readClaimedFile } from '../../spool/safe-read.js';
import { removeFailureRecord } from '../../spool/failure-record.js';
import { decodeTask, type TaskFile } from '../../spool/task-file.js';
import { bury, claim, finish, quarantine, release, retryLater, type ClaimSources } from '../../spool/protocol.js';
import type { Logger } from '../logger.js';
import { TaskRun } from './run-task.js';
import { settleFlow } from './child-flow.js';
import { historyWithLast, keepEnding, keepMsOf, noteFailure } from './result-store.js';
import { StuckMoves } from '../stuck-moves.js';
import { removeProgress } from '../../spool/progress.js';
import { keyFileName, removeKey } from '../../spool/unique.js';
import type { PendingDir } from '../order/task-queue.js';
import { RunnerLimits, type Entry } from '../limits/runner-limits.js';
import { TaskFlows, type PreparedStep } from './flows.js';

/** What became of a name handed to a runner: one per name, reported once (Stuck: twice, the second time with its final code). */
export const enum Code {
  /** Ran, returned; its file is removed (or archived). */
  Processed = 0,
  Skipped = 1,
  /** Moved to pending/ under `next` (due later, one more attempt). */
  Rescheduled = 2,
  /** Out of retries: moved to dead/, its failure recorded in state/. */
  Dead = 3,
  /** Not a valid task: moved to quarantine/ with its reason. */
  Quarantined = 4,
  /** Another process claimed it first (or it was removed): nothing happened here. */
  Race = 5,
  /** Claimed, then its claimed file was gone before it could be settled: another daemon reclaimed it. */
  TakenOver = 6,
  /** Its body does not decode yet and it is young (possibly still being written): put back in incoming/, leave it alone until `until`. */
  Held = 7,
  /** The claim failed (permissions, full disk): the file stays where it was; `reason` says why. */
  ClaimFailed = 8,
  /** Our claim directory is gone: the owner was taken for dead. */
  OwnerGone = 9,
  /** A move of its file failed (a full disk): the runner tries again until it succeeds, then reports its final code. Frees the slot. */
  Stuck = 10,
  /** It ran after the owner it was claimed under was lost: its outcome is ignored and its file left alone. */
  Revoked = 11,
  /** Handed over but never claimed (a stop, a revoke): still where the queue saw it. */
  Unclaimed = 12,
  /** Cancelled (spool cancel, spooler.cancel()): its file is removed (or archived), no retry. */
  Cancelled = 13,
  /** Claimed after its `expires` time: never run, its file removed (or archived). */
  Expired = 14,
  /** Held back by a concurrency or rate limit (`limits` names the full scope; a rate scope: `until` its window's end): put back in incoming/, unrun. */
  Limited = 15,
}

export interface Report {
  name: string;
  code: Code;
  /** The task's registered name (the tally's key), once decoded. */
  task?: string;
  /** How long it ran (ms), when it ran. */
  ms?: number;
  /** The run ended in an error (an attempt counted). */
  failed?: boolean;
  /** Rescheduled: its new name in pending/. */
  next?: string;
  /** Held: leave the name alone until this spool time. */
  until?: number;
  /** ClaimFailed: why. */
  reason?: string;
  /** Where it was claimed from (Rescheduled/Held/Unclaimed: where the queue should look for it). */
  from?: PendingDir;
  /** Limited: the scope that is full; a task's last report: the concurrency scopes it freed (space-separated; spool/limits.ts). */
  limits?: string;
}

/** A name as the queue last saw it. */
export interface Item {
  name: string;
  dir: PendingDir;
}

/** One spool as a runner serves it: where its files are and how its outcomes are applied. */
export interface Site {
  layout: SpoolLayout;
  /** The spool's root as the daemon names it (task functions open their Spooler on it). */
  root: string;
  /** Where claims take tasks from: plain paths, or directory handles' on a network filesystem (dir-handles.ts). */
  sources: ClaimSources;
  /** The claim directory claims rename into (a handle's path on a network filesystem). */
  claimDir: string;
  /** Its real path (only it says whether the directory is gone). */
  claimDirPath: string;
  maxBytes: number;
  /** A young file that does not decode is left alone until its mtime is this old (ms). */
  settle: number;
  archive: boolean;
  /** --keep-results (ms; 0: keep no result unless the task asks, result-store.ts). */
  keepResults: number;
  /** --task-timeout (ms, 0: none) for tasks that set none. */
  taskTimeout: number;
  /** The spool clock: judging due times and mtimes (now) and stamping new names (stampNow). */
  clock: { now(): number; stampNow(): number };
  /** Throws unless these folders are still the ones the daemon checked (folders.ts); before the rare moves into them. */
  check(...subs: Subdir[]): void;
  log: Logger;
}

export interface PathHooks {
  /** A name's fate is known (or, with Stuck, its slot is free while its move is retried). */
  report(r: Report): void;
  /** A task with a run-time limit starts now; its supervisor kills the runner `timeoutMs` + kill grace later if it is still running. */
  timed?(name: string, timeoutMs: number): void;
  /**
   * A timed task ignored its AbortSignal for the kill grace. Undefined in a
   * worker process (its supervisor kills the process); in the daemon's own
   * thread nothing can kill it, and it is counted as failed (in-process-runner.ts).
   */
  graceExpired?: { killGrace: number };
}

/** A task that runs (or whose move is stuck): what revoke() and the stop need. */
interface Running {
  name: string;
  run: TaskRun;
  task: TaskFile;
  path: string;
  from: PendingDir;
  startedAt: number;
  state: 'running' | 'settling' | 'stuck' | 'revoked';
  timer?: NodeJS.Timeout;
  grace?: NodeJS.Timeout;
  /** Reported already (the grace expired in-process): its later end is ignored. */
  done?: boolean;
  /** Cancelled while it ran: it ends as cancelled whatever it returns. */
  cancelled?: boolean;
}

const NEXT_STATE: Record<Running['state'], readonly Running['state'][]> = {
  running: ['settling', 'revoked'],
  settling: ['stuck'],
  stuck: [],
  revoked: [],
};

function move(r: Running, to: Running['state']): void {
  if (!NEXT_STATE[r.state].includes(to)) throw new Error(`task path: ${r.name} cannot go from ${r.state} to ${to}`);
  r.state = to;
}

export class TaskPath {
  /** Tasks whose code runs (not synchronous ones) and stuck moves, by file name. */
  private readonly running = new Map<string, Running>();
  private readonly stuck: StuckMoves;
  private readonly hooks: PathHooks;
  /** Concurrency and rate limits (limits/runner-limits.ts); undefined while no task registered here has any. */
  private readonly limits: RunnerLimits | undefined;
  /** Chains and onError tasks (flows.ts); made at the first task that has one. */
  private taskFlows: TaskFlows | undefined;

  constructor(
    readonly site: Site,
    hooks: PathHooks,
  ) {
    this.stuck = new StuckMoves(site.log);
    const limits = (this.limits = RunnerLimits.forSite(site));
    if (limits === undefined) {
      this.hooks = hooks;
    } else {
      // A task's last report releases its slots (its file has made its last move), and says which scopes it freed.
      // A lost claim (Revoked, TakenOver) releases nothing: the reclaim of this owner frees them, never this process.
      const report = hooks.report;
      this.hooks = {
        ...hooks,
        report: (r) => {
          if (r.code !== Code.Stuck && r.code !== Code.Limited && limits.size > 0) {
            const scopes = limits.leave(r.name, r.code !== Code.Revoked && r.code !== Code.TakenOver);
            if (scopes !== undefined && scopes.length > 0) r = { ...r, limits: scopes.join(' ') };
          }
          report(r);
        },
      };
    }
  }

  /** Tasks started here whose code has not ended yet. */
  get runningCount(): number {
    let n = 0;
    for (const r of this.running.values()) if (r.state === 'running' || r.state === 'revoked') n++;
    return n;
  }

  /**
   * Claims, reads, decodes and runs one task. A synchronous task is settled
   * and reported before this returns; an asynchronous one when it ends.
   * Returns whether a task started running (false: reported already).
   */
  start(item: Item, cancelled = false): boolean {
    const site = this.site;
    let claimed;
    try {
      claimed = claim(site.sources, site.claimDir, item.name, item.dir, site.claimDirPath);
    } catch (err) {
      this.hooks.report({ name: item.name, code: Code.ClaimFailed, reason: (err as Error).message, from: item.dir });
      return false;
    }
    if (!claimed.claimed) {
      this.hooks.report({ name: item.name, code: claimed.ownerGone ? Code.OwnerGone : Code.Race });
      return false;
    }
    const path = site.claimDirPath === site.claimDir ? claimed.path : site.claimDirPath + '/' + item.name;
    const opPath = claimed.path;
    const read = readClaimedFile(opPath, site.maxBytes);
    if (!read.ok) {
      if (read.reason.startsWith('it disappeared')) this.lose(item.name, 'the claimed file vanished');
      else this.quarantine(opPath, item.name, read.reason, claimed.from);
      return false;
    }
    const decoded = decodeTask(item.name, read.bytes);
    if (!decoded.ok) {
      const mtime = read.mtimeMs ?? 0;
      if (site.clock.now() - mtime < site.settle) return this.holdYoung(opPath, item.name, mtime + site.settle, decoded.reason);
      this.quarantine(opPath, item.name, decoded.reason, claimed.from);
      return false;
    }
    const task = decoded.task;
    const body = task.body;
    // A reclaimed chain step whose function had returned is finished, not run again (nor buried as a crash loop).
    if (body.chain !== undefined && task.attempts > 0 && body.chain.length > 0 && this.finishIfReturned(task, opPath, claimed.from)) return false;
    if (body.unique !== undefined && body.uniqueWhile !== 'running') this.releaseKey(task);
    if (body.expires !== undefined && body.expires <= site.clock.now()) {
      this.expire(task, opPath, claimed.from);
      return false;
    }
    const limit = body.retry?.limit ?? DEFAULT_RETRY.limit;
    if (task.attempts > limit) {
      // Only reclaims get a task here: its daemon died with it `attempts` times. Do not run a crash loop again.
      const error = new Error(`the task was interrupted ${task.attempts} times (daemons died or were killed while running it), over its retry limit of ${limit}`);
      this.buryTask(opPath, task, task.attempts, describeError(error), limit, undefined);
      return false;
    }
    void path;
    if (cancelled) {
      // Cancelled before it started (a name a runner held in its inbox): it never runs.
      this.settle(task, opPath, claimed.from, { kind: 'cancelled' }, 0);
      return true;
    }
    if (this.limits !== undefined) {
      const entered = this.enterLimits(this.limits, task, opPath, claimed.from);
      if (entered !== undefined) return entered;
    }
    return this.run(task, opPath, claimed.from);
  }

  private get flows(): TaskFlows {
    return (this.taskFlows ??= new TaskFlows(this.site));
  }

  /**
   * A reclaimed chain step whose function returned before its daemon died
   * (flows.ts, finishedBefore): not run again; its next step is enqueued
   * (once) and its file finished. False: it did not return, run it.
   */
  private finishIfReturned(task: TaskFile, path: string, from: PendingDir): boolean {
    let before;
    try {
      before = this.flows.finishedBefore(task);
    } catch (err) {
      this.site.log.warn('cannot tell whether a reclaimed chain step had returned; it runs again', { task: task.name, id: task.id, err: (err as Error).message });
      return false;
    }
    if (before === undefined) return false;
    const base = { name: task.fileName, task: task.name };
    const done = (moved: boolean) => {
      if (!moved) return this.lose(task.fileName, 'the claim was taken over before the task finished', base);
      this.site.log.info('a reclaimed chain step had returned before its daemon died: not run again; its next step is enqueued once', { task: task.name, id: task.id, attempt: task.attempts });
      this.hooks.report({ ...base, code: Code.Processed });
    };
    const what = this.site.archive ? 'move a finished task to archive/' : 'delete a finished task';
    this.moveClaimed(task, from, what, () => (this.flows.enqueue(task, before.prepared), finish(path, this.site.layout, this.site.archive)), done, base);
    return true;
  }

  /**
   * Takes the task's concurrency slots and rate token. Undefined: it may run;
   * else it was dealt with (held back, or failed for a bad key) and reported.
   */
  private enterLimits(limits: RunnerLimits, task: TaskFile, path: string, from: PendingDir): boolean | undefined {
    let entry: Entry;
    try {
      entry = limits.enter(task);
    } catch (err) {
      this.site.log.error('cannot take a concurrency slot or rate token in limits/; the task goes back to incoming/ and is tried again in a second', { task: task.name, id: task.id, err });
      return this.holdBack(task, path, '', this.site.clock.now() + 1000);
    }
    switch (entry.kind) {
      case 'go':
        return undefined;
      case 'full':
        return this.holdBack(task, path, entry.scope, entry.until);
      case 'bad-key':
        this.settle(task, path, from, { kind: 'failed', reason: entry.reason, error: entry.error }, 0);
        return true;
    }
  }

  /** A task held back by a full limit: back to incoming/ unrun (no attempt counted), reported Limited. */
  private holdBack(task: TaskFile, path: string, scope: string, until: number | undefined): false {
    const name = task.fileName;
    const report = (moved: boolean) => {
      if (!moved) return this.lose(name, 'the claim was taken over before a task held back by a limit went back');
      if (this.site.log.enabled('debug')) this.site.log.debug(until === undefined ? 'task waits for a concurrency slot' : 'task waits for its rate window', { task: task.name, id: task.id, scope, ...(until !== undefined && { until: new Date(until).toISOString() }) });
      this.hooks.report({ name, code: Code.Limited, task: task.name, limits: scope, ...(until !== undefined && { until }), from: 'incoming' });
    };
    this.moveClaimed(task, 'incoming', 'return a task held back by a limit to incoming/', () => release(path, this.site.layout), report, { name });
    return false;
  }

  private run(task: TaskFile, path: string, from: PendingDir): boolean {
    const run = new TaskRun(this.site.root, task, this.site.log);
    const startedAt = performance.now();
    const timeout = task.body.timeout ?? this.site.taskTimeout;
    if (timeout > 0) this.hooks.timed?.(task.fileName, timeout);
    let outcome: TaskOutcome | Promise<TaskOutcome>;
    try {
      outcome = run.execute();
    } catch (error) {
      outcome = { kind: 'rescheduled', error };
    }
    if (!(outcome instanceof Promise)) {
      this.settle(task, path, from, outcome, performance.now() - startedAt, run);
      return true;
    }
    const r: Running = { name: task.fileName, run, task, path, from, startedAt, state: 'running' };
    this.running.set(r.name, r);
    if (timeout > 0) this.arm(r, timeout);
    outcome.then(
      (o) => this.ended(r, o),
      (error: unknown) => this.ended(r, { kind: 'rescheduled', error }),
    );
    return true;
  }

  /** The task's own timer: its AbortSignal fires at its timeout; in the daemon's own thread, the kill grace later it is counted as failed. */
  private arm(r: Running, timeoutMs: number): void {
    r.timer = setTimeout(() => {
      r.run.abort(new TaskTimeoutError(timeoutMs));
      const grace = this.hooks.graceExpired;
      if (grace === undefined) return;
      r.grace = setTimeout(() => {
        if (r.state !== 'running') return;
        const fields = { task: r.task.name, id: r.task.id, attempt: r.task.attempts, timeoutMs, killGraceMs: grace.killGrace };
        this.site.log.error('a task ignored its AbortSignal after its timeout; with --processes 0 it cannot be killed and may still be running in the daemon; it is counted as failed (run with --processes 1 or more to have such tasks killed)', fields);
        r.done = true;
        const error = new TaskTimeoutError(timeoutMs, `, nor within ${grace.killGrace} ms after its AbortSignal fired; it could not be killed (--processes 0) and may still be running`);
        this.settleRunning(r, { kind: 'rescheduled', error });
      }, grace.killGrace);
    }, timeoutMs);
  }

  private ended(r: Running, outcome: TaskOutcome): void {
    clearTimeout(r.timer);
    clearTimeout(r.grace);
    if (r.done === true) return void this.running.delete(r.name);
    if (r.cancelled === true && r.state === 'running') outcome = { kind: 'cancelled' };
    if (r.state === 'revoked') {
      this.running.delete(r.name);
      r.run.endProgress(false);
      this.site.log.warn('a task whose claim was lost has ended; its outcome is ignored (another daemon may have run it too)', { file: r.name, outcome: outcome.kind });
      return this.hooks.report({ name: r.name, code: Code.Revoked, task: r.task.name });
    }
    this.settleRunning(r, outcome);
  }

  private settleRunning(r: Running, outcome: TaskOutcome): void {
    move(r, 'settling');
    this.running.delete(r.name);
    this.settle(r.task, r.path, r.from, outcome, performance.now() - r.startedAt, r.run);
  }

  /**
   * Cancels the running task `name`: fires its AbortSignal with a
   * TaskCancelledError; whatever it returns, it ends as cancelled. In the
   * daemon's own thread (graceExpired set), one still running the kill grace
   * later is settled as cancelled although its code may still run; in a
   * worker process the supervisor kills the process. False when it is not
   * running here (ended already, or not started).
   */
  cancel(name: string): boolean {
    const r = this.running.get(name);
    if (r === undefined || r.state !== 'running') return false;
    if (r.cancelled === true) return true;
    r.cancelled = true;
    clearTimeout(r.timer);
    clearTimeout(r.grace);
    r.run.abort(new TaskCancelledError());
    const grace = this.hooks.graceExpired;
    if (grace !== undefined) {
      r.grace = setTimeout(() => {
        if (r.state !== 'running') return;
        this.site.log.error('a cancelled task ignored its AbortSignal; with --processes 0 it cannot be killed and may still be running in the daemon; it is settled as cancelled (run with --processes 1 or more to have such tasks killed)', {
          task: r.task.name,
          id: r.task.id,
          attempt: r.task.attempts,
          killGraceMs: grace.killGrace,
        });
        r.done = true;
        this.settleRunning(r, { kind: 'cancelled' });
      }, grace.killGrace);
    }
    return true;
  }

  /** Fires the AbortSignal of every task running here; their outcomes are ignored and their files left alone. */
  revoke(reason: Error): number {
    let n = 0;
    for (const r of this.running.values()) {
      if (r.state !== 'running') continue;
      move(r, 'revoked');
      clearTimeout(r.timer);
      clearTimeout(r.grace);
      r.run.abort(reason);
      n++;
    }
    return n;
  }

  /** The supervisor's decision for a task whose runner died with it claimed (read again here, on the main thread). */
  settleOrphan(name: string, from: PendingDir, outcome: TaskOutcome): void {
    const path = this.site.claimDir + '/' + name;
    const read = readClaimedFile(path, this.site.maxBytes);
    if (!read.ok) {
      if (read.reason.startsWith('it disappeared')) return this.lose(name, 'the claimed file vanished');
      return this.quarantine(path, name, read.reason, from);
    }
    const decoded = decodeTask(name, read.bytes);
    if (!decoded.ok) return this.quarantine(path, name, decoded.reason, from);
    // Its runner died: a progress record it wrote is an orphan now (rare path: an unlink, ENOENT for most).
    removeOrphanProgress(this.site, decoded.task.id);
    this.settle(decoded.task, path, from, outcome, undefined);
  }

  /** Stops retrying stuck moves (their files stay where they are: stuck-moves.ts); with `lastTry`, tries each once more first. */
  stopStuck(lastTry: boolean): void {
    if (lastTry && this.stuck.size > 0) this.stuck.retry(true);
    this.stuck.stop();
  }

  /**
   * Reports `r` once the run's hooks for its ending are done (at once for a
   * task without hooks, the common case: `end` is not even built).
   */
  private tell(run: TaskRun | undefined, r: Report, end: () => RunEnd): void {
    const hooks = run?.behaviour === undefined ? undefined : run.settled(end());
    if (hooks === undefined) return this.hooks.report(r);
    void hooks.then(() => this.hooks.report(r));
  }

  /**
   * Applies an outcome to the claimed file and reports it. Every ending writes
   * one log event with the task's name, id, attempt and run time (durationMs):
   * `task processed` at debug (one line per task would make a drain of short
   * tasks a logging benchmark), the rarer endings at info or warn.
   */
  private settle(task: TaskFile, path: string, from: PendingDir, outcome: TaskOutcome, ms: number | undefined, run?: TaskRun): void {
    // Its progress record first (only a run that reported one has any): whoever sees the ending sees no progress left.
    run?.endProgress();
    const failed = (outcome.kind === 'rescheduled' && outcome.error !== undefined) || outcome.kind === 'failed';
    const base = { name: task.fileName, task: task.name, ms, failed };
    const durationMs = ms === undefined ? undefined : Math.round(ms);
    try {
      switch (outcome.kind) {
        case 'processed':
        case 'skipped':
        case 'cancelled': {
          const done = (moved: boolean) => {
            if (!moved) return this.lose(task.fileName, 'the claim was taken over before the task finished', base);
            // A task that failed before and keeps no result leaves no record of its failed attempts behind
            // (with a result kept, the result sweep removes it when the result expires).
            if (task.attempts > 0 && keepMsOf(task, this.site) <= 0) removeFailureRecord(this.site.layout, task.id);
            if (outcome.kind === 'processed') {
              if (this.site.log.enabled('debug')) this.site.log.debug('task processed', { task: task.name, id: task.id, attempt: task.attempts, durationMs });
              // The common case (no hooks) builds no closure for them.
              if (run?.behaviour === undefined) this.hooks.report({ ...base, code: Code.Processed });
              else this.tell(run, { ...base, code: Code.Processed }, () => ({ outcome: 'processed', durationMs: durationMs ?? 0, value: outcome.value }));
            } else if (outcome.kind === 'skipped') {
              this.site.log.info('task skipped', { task: task.name, id: task.id, attempt: task.attempts, durationMs, reason: outcome.reason ?? 'no reason given' });
              this.tell(run, { ...base, code: Code.Skipped }, () => ({ outcome: 'skipped', durationMs: durationMs ?? 0, ...(outcome.reason !== undefined && { reason: outcome.reason }) }));
            } else {
              this.site.log.info('task cancelled', { task: task.name, id: task.id, attempt: task.attempts, durationMs });
              this.tell(run, { ...base, code: Code.Cancelled }, () => ({ outcome: 'cancelled', durationMs: durationMs ?? 0 }));
            }
          };
          // Its key, then its result, then its file: whoever sees the ending can take the key again.
          if (task.body.unique !== undefined) this.endKey(task);
          // Its next step made ready first, so that its result can say if it cannot be (SPOOL-FORMAT.md, "Chains").
          let next: PreparedStep | undefined;
          if (task.body.chain !== undefined && outcome.kind === 'processed' && task.body.chain.length > 0) next = this.flows.prepareNext(task, outcome.value);
          // Its result first (a crash between leaves both: SPOOL-FORMAT.md, "State changes", keep result).
          if (keepMsOf(task, this.site) > 0) {
            if (outcome.kind === 'processed') keepEnding(this.site, task, { ending: 'processed', value: outcome.value, attempts: task.attempts + 1, ...(next !== undefined && 'problem' in next && { nextError: next.problem }) });
            else if (outcome.kind === 'skipped') keepEnding(this.site, task, { ending: 'skipped', ...(outcome.reason !== undefined && { reason: outcome.reason }), attempts: task.attempts + 1 });
            else keepEnding(this.site, task, { ending: 'cancelled', attempts: task.attempts + 1 });
          }
          // A child of a flow, a parent that used children or afterChildren(), a cancelled task: their part in the flow (flow.ts).
          if (task.body.flow !== undefined || run?.flow !== undefined || outcome.kind === 'cancelled') settleFlow(this.site, task, run, outcome.kind);
          const what = this.site.archive ? 'move a finished task to archive/' : 'delete a finished task';
          if (next === undefined) return this.moveClaimed(task, from, what, () => finish(path, this.site.layout, this.site.archive), done, base);
          this.flows.crashPoint('kept');
          return this.moveClaimed(task, from, what, () => (this.flows.enqueue(task, next), finish(path, this.site.layout, this.site.archive)), done, base);
        }
        case 'rescheduled':
          return this.reschedule(task, path, from, outcome, base, run);
        case 'failed': {
          // Failed for good: a dead letter now, whatever retries are left. The reason is the record's message.
          return this.buryTask(path, task, task.attempts + 1, failedError(outcome), retryLimitOf(task.body.retry), base, run, outcome);
        }
      }
    } catch (err) {
      // The file stays claimed; if this daemon cannot move it, the next one reclaims it after we are gone.
      this.site.log.error('cannot record the outcome of a task; it stays claimed', { task: task.name, id: task.id, outcome: outcome.kind, err });
      this.hooks.report({ ...base, code: Code.Stuck });
    }
  }

  private reschedule(task: TaskFile, path: string, from: PendingDir, outcome: Extract<TaskOutcome, { kind: 'rescheduled' }>, base: Omit<Report, 'code'>, run: TaskRun | undefined): void {
    const error = rescheduledError(outcome);
    const next = nextAttempt(task.attempts, task.body.retry, outcome.delay);
    if (!next.retry) return this.buryTask(path, task, next.failures, error, next.limit, base, run, outcome);
    const { delay, failures, retriesLeft } = next;
    const due = this.site.clock.stampNow() + delay;
    // A failed attempt is noted in state/<id>.json (a requested reschedule is no failure).
    if (outcome.error !== undefined) noteFailure(this.site, task, error, due);
    const fields = { task: task.name, id: task.id, attempt: task.attempts };
    let nextName: string | undefined;
    const rescheduled = (moved: boolean) => {
      if (!moved) return this.lose(task.fileName, 'the claim was taken over before the task was rescheduled', base);
      // One line per retry: the stack goes to the dead letter's record (and here only at debug),
      // or a run where a tenth of the tasks fail once writes thousands of stacks.
      const level = outcome.error === undefined ? 'info' : 'warn';
      const stack = outcome.error !== undefined && this.site.log.enabled('debug') ? error.stack : undefined;
      const durationMs = base.ms === undefined ? undefined : Math.round(base.ms);
      this.site.log[level]('task rescheduled', { ...fields, durationMs, inMs: delay, nextTry: new Date(due).toISOString(), retriesLeft, error: error.message, stack });
      this.tell(run, { ...base, code: Code.Rescheduled, next: nextName! }, () => ({
        outcome: 'rescheduled',
        durationMs: durationMs ?? 0,
        delayMs: delay,
        ...(outcome.error !== undefined && { error: outcome.error }),
        ...(outcome.reason !== undefined && { reason: outcome.reason }),
      }));
    };
    this.moveClaimed(task, from, 'move a task to pending/ for its retry', () => (nextName = retryLater(path, this.site.layout, due)) !== undefined, rescheduled, base);
  }

  /**
   * Moves a task to dead/, its error recorded in state/<id>.json: out of
   * retries, or (`outcome` failed) failed for good with its reason.
   */
  private buryTask(
    path: string,
    task: TaskFile,
    attempts: number,
    error: RemoteErrorInfo,
    retries: number,
    base: Omit<Report, 'code'> | undefined,
    run?: TaskRun,
    outcome?: TaskOutcome,
  ): void {
    const permanent = outcome?.kind === 'failed';
    const record = { id: task.id, name: task.name, attempts, at: this.site.clock.now(), error, history: historyWithLast(this.site, task, error, attempts), ...(permanent && { reason: outcome.reason }) };
    const b = base ?? { name: task.fileName, task: task.name };
    // Its key, then its result first, as for a finished task.
    if (task.body.unique !== undefined) this.endKey(task);
    if (keepMsOf(task, this.site) > 0) keepEnding(this.site, task, { ending: 'dead', error, attempts });
    if (task.body.flow !== undefined) settleFlow(this.site, task, run, 'dead');
    // Its onError task, once, before the file is buried (SPOOL-FORMAT.md, "Chains").
    let onError: PreparedStep | undefined;
    if (task.body.onError !== undefined) {
      onError = this.flows.prepareError(task, attempts, error);
      this.flows.crashPoint('kept');
    }
    const buried = (moved: boolean) => {
      if (!moved) return this.lose(task.fileName, 'the claim was taken over before the task was buried', b);
      const durationMs = b.ms === undefined ? undefined : Math.round(b.ms);
      const fields = { task: task.name, id: task.id, attempt: task.attempts, durationMs, error: error.message, stack: error.stack };
      if (permanent) this.site.log.warn('task is a dead letter: it failed for good (no retry)', { ...fields, reason: outcome.reason });
      else this.site.log.warn('task is a dead letter: out of retries', { ...fields, retries });
      const thrown = outcome !== undefined && 'error' in outcome ? outcome.error : undefined;
      this.tell(run, { ...b, code: Code.Dead }, () => ({
        outcome: 'dead',
        durationMs: durationMs ?? 0,
        error: thrown ?? error,
        ...(outcome !== undefined && 'reason' in outcome && outcome.reason !== undefined && { reason: outcome.reason }),
      }));
    };
    const moveIt = () => {
      this.site.check('state', 'dead');
      if (onError !== undefined) this.flows.enqueue(task, onError);
      return bury(path, this.site.layout, record) !== undefined;
    };
    this.moveClaimed(task, 'incoming', 'move a task to dead/ (its failure record first)', moveIt, buried, b);
  }

  /** A task claimed past its `expires` time: not run; its result kept if it keeps one, its file finished. */
  private expire(task: TaskFile, path: string, from: PendingDir): void {
    const base = { name: task.fileName, task: task.name };
    const expiredAt = new Date(task.body.expires!).toISOString();
    const reason = `not started by ${expiredAt}`;
    try {
      if (task.body.unique !== undefined) this.endKey(task);
      if (keepMsOf(task, this.site) > 0) keepEnding(this.site, task, { ending: 'expired', reason, attempts: task.attempts });
      if (task.body.flow !== undefined) settleFlow(this.site, task, undefined, 'expired');
      const expired = (moved: boolean) => {
        if (!moved) return this.lose(task.fileName, 'the claim was taken over before the expired task was removed', base);
        this.site.log.info('task expired: not run', { task: task.name, id: task.id, attempt: task.attempts, expiredAt });
        this.hooks.report({ ...base, code: Code.Expired });
      };
      const what = this.site.archive ? 'move an expired task to archive/' : 'delete an expired task';
      this.moveClaimed(task, from, what, () => finish(path, this.site.layout, this.site.archive), expired, base);
    } catch (err) {
      this.site.log.error('cannot record the expiry of a task; it stays claimed', { task: task.name, id: task.id, err });
      this.hooks.report({ ...base, code: Code.Stuck });
    }
  }

  /**
   * A uniqueWhile-running task has ended (any ending but a retry): its key goes, before its result is kept and
   * its file moved, so that whoever sees the ending can take the key again (the task is still in active/, so
   * the sweep leaves the key alone until then). A crash before the last move reruns the task without its key.
   */
  private endKey(task: TaskFile): void {
    if (task.body.uniqueWhile === 'running') this.releaseKey(task);
  }

  /** Releases the task's unique key if it still holds it (spool/unique.ts, removeKey). Never throws: a key left behind is swept. */
  private releaseKey(task: TaskFile): void {
    const log = this.site.log;
    try {
      removeKey(this.site.layout, keyFileName(task.name, task.body.unique!), task.id, (holder) =>
        log.error('a unique key was released and taken by two tasks at once; both are enqueued', { task: task.name, key: task.body.unique, id: task.id, other: holder.id }),
      );
    } catch (err) {
      log.error("cannot release a task's unique key; the minute sweep removes it once the task has left", { task: task.name, id: task.id, err: (err as Error).message });
    }
  }

  /**
   * Makes a move of a claimed file (true: moved; false: its file was gone),
   * then `settled`. A move that throws (a full disk) reports Stuck, which
   * frees the slot, and is tried again until it succeeds (stuck-moves.ts);
   * `settled` then reports the final code.
   */
  private moveClaimed(task: TaskFile | undefined, _from: PendingDir, what: string, attempt: () => boolean, settled: (moved: boolean) => void, base: Omit<Report, 'code'>): void {
    let moved: boolean;
    try {
      moved = attempt();
    } catch (err) {
      this.hooks.report({ ...base, code: Code.Stuck });
      const fields = task === undefined ? {} : { task: task.name, id: task.id, attempt: task.attempts };
      this.stuck.add({ fileName: base.name, what, fields, attempt, settled }, err);
      return;
    }
    settled(moved);
  }

  /** A young file that does not decode: back to incoming/, left alone until it has settled. */
  private holdYoung(path: string, name: string, until: number, reason: string): false {
    const report = () => this.hooks.report({ name, code: Code.Held, until, from: 'incoming' });
    this.moveClaimed(undefined, 'incoming', 'return a task file that does not decode yet to incoming/', () => release(path, this.site.layout), report, { name, until });
    this.site.log.debug('task file does not decode yet; holding it while it may still be written', { file: name, reason });
    return false;
  }

  private lose(name: string, why: string, base?: Omit<Report, 'code'>): void {
    this.site.log.warn(`${why}; another daemon reclaimed it and will run it again`, { file: name });
    this.hooks.report({ ...(base ?? { name }), code: Code.TakenOver });
  }

  /** Moves a claimed file that is not a valid task to quarantine/, with its reason. */
  private quarantine(path: string, name: string, reason: string, from: PendingDir): void {
    let to: string | undefined;
    const quarantined = (moved: boolean) => {
      if (!moved) return this.hooks.report({ name, code: Code.TakenOver });
      this.site.log.warn('quarantined a file that is not a valid task', { file: name, reason, to });
      this.hooks.report({ name, code: Code.Quarantined });
    };
    const moveIt = () => {
      this.site.check('quarantine');
      return (to = quarantine(this.site.layout, path, name, reason, from, this.site.clock.now())) !== undefined;
    };
    this.moveClaimed(undefined, from, 'quarantine an invalid file', moveIt, quarantined, { name });
  }
}

function removeOrphanProgress(site: Site, id: string): void {
  try {
    removeProgress(site.layout, id);
  } catch (err) {
    site.log.warn('cannot remove the progress record of a task whose runner died; the orphan sweep will', { id, err: (err as Error).message });
  }
}
