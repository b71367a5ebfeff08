/**
 * --processes N (the default): N runner processes (runner-main.ts), each
 * owning the per-task path of the names it is given (task-path.ts), and the
 * supervision of them, which stays on the daemon's main thread: run slots,
 * timeouts, crashed runners, revokes and the stop.
 *
 * Names, not bodies: the daemon gives a runner names (with where the queue
 * last saw each) and gets one small report per name back. Each runner runs at
 * most its share of --concurrency at once (`slots`, --concurrency split over
 * the ready runners) and, while tasks are short, holds max(AHEAD_MIN, slots)
 * names more unclaimed (`ahead`), so that it never waits a round trip for its
 * next names and names and reports travel 64 at a time. Those unclaimed names
 * are the price: a task of higher priority that arrives meanwhile starts
 * after them, at most `ahead` × a short task's time (a few ms) later; and a claim is made only when a task starts, so after a
 * runner dies the files of its names left in the claim directory are exactly
 * the tasks it had started.
 *
 * A runner's life is runner-process.ts's state diagram; ProcessSite
 * (process-site.ts) is one spool's view of the pool.
 *
 * When a runner exits with names given, each goes to its site's supervisor
 * (orphaned()), which looks at the claim directory:
 *
 *   its file is claimed        started and unfinished: killed for its own timeout → failed (TaskTimeoutError);
 *                              killed for another task → released (no attempt counted);
 *                              died by itself → failed (WorkerCrashedError, attempt counted: a task that
 *                              always crashes its runner ends as a dead letter)
 *   still in incoming/pending  never claimed: back to the queue
 *   gone from both             it ended and its file was removed, the report never left: done
 *
 * A runner that dies soon after it started is replaced after a growing delay
 * (supervise/restart-backoff.ts), so one that cannot start does not spin.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseTaskName } from '../../spool/name.js';
import type { Logger } from '../logger.js';
import type { WorkerOptions } from '../options.js';
import type { RegisteredTasks } from '../task-names.js';
import type { PendingDir } from '../order/task-queue.js';
import { existsNoFollow } from '../../spool/protocol.js';
import { fromWire, NAME_SEPARATOR, WORKER_ENV, type FromRunner, type ToRunner, type WireSite } from './runner-protocol.js';
import type { Runners } from './runners.js';
import { Code, type Item, type Report } from './task-path.js';
import { orphansBySite, RunnerProcess, type Given, type Orphan, type RunnerDeath, type RunnerState } from './runner-process.js';
import { describeName } from './process-site.js';
import { RestartBackoff } from '../supervise/restart-backoff.js';

export { describeName, ProcessSite } from './process-site.js';
export type { Orphan, OrphanCause, RunnerDeath } from './runner-process.js';

const RUNNER_MAIN = fileURLToPath(new URL('./runner-main.js', import.meta.url));
/** On a graceful stop, how long idle runners get to exit before they are killed. */
const EXIT_WAIT_MS = 5000;
/** Unclaimed names a runner holds beyond its slots while tasks are short (see the module comment). */
const AHEAD_MIN = 128;
/** Tasks are short (names are given ahead) while their average run time is under this. */
const SHORT_TASK_MS = 1;

export interface ProcessRunnersOptions {
  processes: number;
  /** --concurrency: tasks running at once over all runners. */
  concurrency: number;
  /** What each runner process is sent (options.ts, the entries marked `worker`). */
  worker: WorkerOptions;
  maxTasks: number;
  /** Bytes (0: never). */
  maxMemory: number;
  killGrace: number;
  log: Logger;
  /** Called when runners can take names again. */
  wake: () => void;
}

/** The runners could not be started (a task module does not import, or a runner died at start-up). */
export class WorkerStartError extends Error {
  override name = 'WorkerStartError';
  constructor(
    message: string,
    readonly detail?: string,
  ) {
    super(message);
  }
}

export type WorkerRestartReason = 'crashed' | 'killed' | 'max-tasks' | 'max-memory';

/** What a site's supervisor (the spool's coordinator) does with what its runners say. */
export interface SiteSink {
  report(r: Report): void;
  orphaned(names: Orphan[], death: RunnerDeath): void;
}

export class ProcessRunners implements Runners {
  private readonly runners = new Set<RunnerProcess>();
  private readonly sites = new Map<number, { wire: WireSite; sink: SiteSink; pause?: ToRunner }>();
  private nextKey = 1;
  private slot = 0;
  private stopping = false;
  private started = false;
  private readonly restartBackoff = new RestartBackoff();
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  private readonly log: Logger;
  private replacements = 0;
  readonly restarts: Record<WorkerRestartReason, number> = { crashed: 0, killed: 0, 'max-tasks': 0, 'max-memory': 0 };
  private registeredTasks: RegisteredTasks | undefined;
  private readonly finishedBy = new Map<number, number>();
  /** Average run time of recent tasks (ms), to decide whether to give names ahead. */
  private runMsAverage = 10 * SHORT_TASK_MS;

  constructor(private readonly options: ProcessRunnersOptions) {
    this.log = options.log;
  }

  async start(): Promise<void> {
    const first = Array.from({ length: this.options.processes }, () => this.spawn());
    try {
      await Promise.all(first.map((w) => w.ready));
    } catch (err) {
      this.forceStop();
      throw err;
    }
    this.started = true;
    this.log.info('worker processes ready', { processes: first.length, pids: first.map((w) => w.pid) });
  }

  registered(): RegisteredTasks {
    return this.registeredTasks ?? { tasks: [], types: [] };
  }

  accepting(): boolean {
    for (const w of this.runners) if (w.state === 'ready') return true;
    return false;
  }

  /** A spool as one owner serves it: every runner opens it. Returns its key. */
  serve(site: Omit<WireSite, 'key'>, sink: SiteSink): number {
    const wire = { ...site, key: this.nextKey++ };
    this.sites.set(wire.key, { wire, sink });
    for (const w of this.runners) w.send({ t: 'site', site: wire });
    return wire.key;
  }

  /** How many names the runners take now: each ready one its slots, plus `ahead` while tasks are short, less what it holds. */
  free(): number {
    let free = 0;
    for (const w of this.runners) if (w.state === 'ready') free += Math.max(0, this.room(w));
    return free;
  }

  private room(w: RunnerProcess): number {
    // With --concurrency below --processes some runners get no slot: names given to one would never start.
    if (w.slots === 0) return 0;
    const ahead = this.runMsAverage < SHORT_TASK_MS ? Math.max(w.slots, AHEAD_MIN) : 0;
    return w.slots + ahead - w.given.size;
  }

  /** Gives names of site `key` to the runners with room, most room first. `clock`: the spool clock's offsets. */
  give(key: number, items: readonly Item[], clock: { judge: number; stamp: number }): void {
    let at = 0;
    while (at < items.length) {
      let best: RunnerProcess | undefined;
      let bestRoom = 0;
      for (const w of this.runners) {
        if (w.state !== 'ready') continue;
        const room = this.room(w);
        if (room > bestRoom) [best, bestRoom] = [w, room];
      }
      if (best === undefined) {
        // No room after all (the caller asked free() first): back to the supervisor unclaimed.
        const sink = this.sites.get(key)?.sink;
        for (; at < items.length; at++) sink?.report({ name: items[at]!.name, code: Code.Unclaimed, from: items[at]!.dir });
        return;
      }
      const end = Math.min(items.length, at + bestRoom);
      let names = '';
      let dirs = '';
      for (let i = at; i < end; i++) {
        const item = items[i]!;
        best.given.set(item.name, { key, dir: item.dir });
        names += i === at ? item.name : NAME_SEPARATOR + item.name;
        dirs += item.dir === 'pending' ? 'p' : 'i';
      }
      best.tasksGiven += end - at;
      at = end;
      best.send({ t: 'give', key, names, dirs, slots: best.slots, judge: clock.judge, stamp: clock.stamp });
      if (this.options.maxTasks > 0 && best.tasksGiven >= this.options.maxTasks) this.retire(best, 'max-tasks');
    }
  }

  /** The owner of site `key` was lost: every runner fires the signals of its tasks there; one that has not ended them `killGrace` later is killed. */
  revoke(key: number, reason: Error): void {
    for (const w of this.runners) {
      let any = false;
      for (const g of w.given.values()) {
        if (g.key !== key) continue;
        g.revoked = true;
        clearTimeout(g.timer);
        any = true;
      }
      w.send({ t: 'revoke', key, message: reason.message });
      if (any && w.revokeTimer === undefined) w.revokeTimer = setTimeout(() => this.killForRevoked(w), this.options.killGrace);
    }
  }

  /**
   * Cancels the task `name` of site `key`: its runner fires its signal; if it
   * is still running (its file claimed) the kill grace later, its runner is
   * killed, as for a timeout. False when no runner holds the name.
   */
  cancel(key: number, name: string): boolean {
    for (const w of this.runners) {
      const g = w.given.get(name);
      if (g === undefined || g.key !== key) continue;
      if (g.cancelled === true) return true;
      g.cancelled = true;
      w.send({ t: 'cancel', key, name });
      g.cancelTimer = setTimeout(() => this.killForCancel(w, name, g), this.options.killGrace);
      return true;
    }
    return false;
  }

  private killForCancel(w: RunnerProcess, name: string, g: Given): void {
    if (w.given.get(name) !== g || w.state === 'exited' || w.state === 'killed') return;
    const site = this.sites.get(g.key);
    if (site === undefined || !existsNoFollow(site.wire.claimDir + '/' + name)) return;
    w.go('killed');
    this.log.warn('a cancelled task did not stop within the kill grace after its AbortSignal: killing its worker process', {
      ...describeName(name),
      killGraceMs: this.options.killGrace,
      worker: w.pid,
      alsoRunning: this.startedBesides(w, (other) => other !== name),
    });
    w.child.kill('SIGKILL');
  }

  private killForRevoked(w: RunnerProcess): void {
    w.revokeTimer = undefined;
    const left = [...w.given].filter(([, g]) => g.revoked === true);
    if (left.length === 0 || w.state === 'exited' || w.state === 'killed') return;
    w.go('killed');
    this.log.warn('a task whose claim was lost did not stop within the kill grace after its AbortSignal: killing its worker process', {
      tasks: left.map(([name]) => describeName(name)),
      killGraceMs: this.options.killGrace,
      worker: w.pid,
      alsoRunning: this.startedBesides(w, (_, g) => g.revoked !== true),
    });
    w.child.kill('SIGKILL');
  }

  /**
   * Every task of site `key` (`all`), or the tasks named, are paused from now
   * on: every runner gives back the names of theirs it has not started
   * (reported Unclaimed) and starts none. Runners started later are told too.
   */
  pause(key: number, all: boolean, tasks: ReadonlySet<string> | undefined): void {
    const site = this.sites.get(key);
    if (site === undefined) return;
    const message: ToRunner = { t: 'pause', key, all, tasks: tasks === undefined ? [] : [...tasks] };
    site.pause = message;
    for (const w of this.runners) w.send(message);
  }

  /** A stop: every runner gives back the names it has not started and starts nothing more. */
  drain(): void {
    for (const w of this.runners) w.send({ t: 'drain' });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.restartTimers) clearTimeout(t);
    const all = [...this.runners];
    for (const w of all) {
      if (w.given.size === 0 && (w.state === 'ready' || w.state === 'retiring')) w.send({ t: 'retire' });
      else w.child.kill('SIGKILL');
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((done) => (timer = setTimeout(done, EXIT_WAIT_MS)));
    await Promise.race([Promise.all(all.map((w) => w.exited)), late]);
    clearTimeout(timer);
    for (const w of all) if (w.state !== 'exited') w.child.kill('SIGKILL');
  }

  forceStop(): void {
    this.stopping = true;
    for (const t of this.restartTimers) clearTimeout(t);
    for (const w of this.runners) w.child.kill('SIGKILL');
  }

  describe(): Record<string, unknown> {
    let running = 0;
    for (const w of this.runners) running += w.given.size;
    return { processes: this.options.processes, processesAlive: this.runners.size, workersReplaced: this.replacements, running, tasksByWorker: Object.fromEntries(this.finishedBy) };
  }

  // --- runners ---------------------------------------------------------------

  private spawn(): RunnerProcess {
    const child = fork(RUNNER_MAIN, [], {
      execArgv: process.execArgv,
      serialization: 'json',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, [WORKER_ENV]: String(++this.slot) },
    });
    const w = new RunnerProcess(child);
    this.runners.add(w);
    child.on('message', (m: FromRunner) => this.onMessage(w, m));
    child.on('error', (err) => this.log.debug('worker process channel error', { worker: w.pid, err }));
    child.on('exit', (code, signal) => this.onExit(w, code, signal));
    w.send({ t: 'init', options: this.options.worker });
    for (const { wire, pause } of this.sites.values()) {
      w.send({ t: 'site', site: wire });
      if (pause !== undefined) w.send(pause);
    }
    this.log.debug('worker process started', { worker: w.pid });
    return w;
  }

  /**
   * --concurrency split over the ready runners, exactly. The remainder (and,
   * with --concurrency below --processes, every slot) goes first to the
   * runners that hold names, so that none holds names it has no slot to start.
   */
  private splitSlots(): void {
    const ready = [...this.runners].filter((w) => w.state === 'ready').sort((a, b) => b.given.size - a.given.size);
    const each = Math.floor(this.options.concurrency / Math.max(1, ready.length));
    let rest = this.options.concurrency - each * ready.length;
    for (const w of ready) w.slots = each + (rest-- > 0 ? 1 : 0);
  }

  private onMessage(w: RunnerProcess, m: FromRunner): void {
    switch (m.t) {
      case 'ready':
        if (w.state !== 'starting') return;
        w.go('ready');
        this.registeredTasks ??= m.registered;
        this.splitSlots();
        w.markReady();
        this.options.wake();
        return;
      case 'import-failed':
        w.importError = m.message;
        w.importStack = m.stack;
        return;
      case 'timed': {
        const g = w.given.get(m.name);
        if (g === undefined || g.revoked === true) return;
        g.timeoutMs = m.timeoutMs;
        g.timer = setTimeout(() => this.killForTimeout(w, m.name, g, m.timeoutMs), m.timeoutMs + this.options.killGrace);
        return;
      }
      case 'done':
        return this.onDone(w, m);
      case 'rss':
        return this.onRss(w, m.rss);
    }
  }

  private onDone(w: RunnerProcess, m: Extract<FromRunner, { t: 'done' }>): void {
    const sink = this.sites.get(m.key)?.sink;
    // Tasks this runner ran (a report with a run time); names it gave back unrun (a race, a hold, a stop) do not count.
    let ran = 0;
    for (const wire of m.reports) {
      const r = fromWire(wire);
      const g = w.given.get(r.name);
      if (g !== undefined) {
        w.given.delete(r.name);
        clearTimeout(g.timer);
        clearTimeout(g.cancelTimer);
        if (r.ms !== undefined) ran++;
      }
      if (r.ms !== undefined) this.runMsAverage += 0.2 * (r.ms - this.runMsAverage);
      sink?.report(r);
    }
    if (ran > 0) this.finishedBy.set(w.pid, (this.finishedBy.get(w.pid) ?? 0) + ran);
    // A runner that finishes tasks is healthy: the next crash restarts it without delay.
    this.restartBackoff.healthy();
    if (m.rss !== undefined) this.onRss(w, m.rss);
    if (w.state === 'retiring' && w.given.size === 0) w.send({ t: 'retire' });
    this.options.wake();
  }

  private onRss(w: RunnerProcess, rss: number): void {
    w.rss = rss;
    if (this.options.maxMemory > 0 && rss > this.options.maxMemory) this.retire(w, 'max-memory');
  }

  private retire(w: RunnerProcess, reason: 'max-tasks' | 'max-memory'): void {
    if (w.state !== 'ready' || this.stopping) return;
    w.go('retiring');
    w.replaced = true;
    this.replacements++;
    this.restarts[reason]++;
    this.splitSlots();
    this.log.info('replacing a worker process once its tasks are done', {
      worker: w.pid,
      reason,
      tasks: w.tasksGiven,
      rssMb: Math.round(w.rss / 1048576),
      ...(reason === 'max-memory' && { maxMemoryMb: Math.round(this.options.maxMemory / 1048576) }),
    });
    this.spawn();
    if (w.given.size === 0) w.send({ t: 'retire' });
  }

  private killForTimeout(w: RunnerProcess, name: string, g: Given, timeoutMs: number): void {
    if (w.given.get(name) !== g || w.state === 'exited' || w.state === 'killed') return;
    g.timedOut = true;
    w.go('killed');
    this.log.warn('a task did not stop within the kill grace after its timeout: killing its worker process', {
      ...describeName(name),
      timeoutMs,
      killGraceMs: this.options.killGrace,
      worker: w.pid,
      alsoRunning: this.startedBesides(w, (other) => other !== name),
    });
    w.child.kill('SIGKILL');
  }

  /** The other tasks `w` had started (their files are in their claim directories), for the kill's log line: rare, so the lstats are cheap. */
  private startedBesides(w: RunnerProcess, which: (name: string, g: Given) => boolean): Array<{ task: string; id: string }> {
    const out: Array<{ task: string; id: string }> = [];
    for (const [other, g] of w.given) {
      const site = this.sites.get(g.key);
      if (!which(other, g) || site === undefined || !existsNoFollow(site.wire.claimDir + '/' + other)) continue;
      const n = parseTaskName(other);
      if (n !== undefined) out.push({ task: n.name, id: n.id });
    }
    return out;
  }

  private onExit(w: RunnerProcess, code: number | null, signal: NodeJS.Signals | null): void {
    const state = w.state;
    w.go('exited');
    this.runners.delete(w);
    clearTimeout(w.revokeTimer);
    this.splitSlots();
    w.markExited();
    const how = signal !== null ? `killed by ${signal}` : `exit code ${code}`;
    if (state === 'starting') w.markFailed(new WorkerStartError(w.importError ?? `a worker process exited while starting (${how}); see the lines above`, w.importStack));
    for (const g of w.given.values()) {
      clearTimeout(g.timer);
      clearTimeout(g.cancelTimer);
    }
    // On stop the daemon releases what was claimed; before start() succeeded, start() reports the failure.
    if (this.stopping || !this.started) return;
    const bySite = orphansBySite(w.given, state);
    const had = w.given.size;
    w.given.clear();
    if (state === 'starting' && w.importError !== undefined) {
      this.log.error('a replacement worker process cannot import the task modules', { worker: w.pid, error: w.importError, stack: w.importStack });
    } else if (state !== 'killed' && had === 0 && (state !== 'retiring' || code !== 0)) {
      // With names given, each site's supervisor says it, naming the tasks that were running (it looks at its claim directory).
      this.log.error('a worker process died; the tasks it was running are rescheduled with their attempt counted', { worker: w.pid, code, signal, running: [] });
    } else if (state === 'retiring' && had === 0) {
      this.log.debug('worker process retired', { worker: w.pid });
    }
    const death: RunnerDeath = { pid: w.pid, code, signal, how, crashed: state !== 'killed' };
    for (const [key, names] of bySite) this.sites.get(key)?.sink.orphaned(names, death);
    if (!w.replaced) this.replace(w, state);
    this.options.wake();
  }

  private replace(w: RunnerProcess, state: RunnerState): void {
    this.replacements++;
    this.restarts[state === 'killed' ? 'killed' : 'crashed']++;
    const lived = Date.now() - w.spawnedAt;
    const delay = this.restartBackoff.delayAfter({ killed: state === 'killed', starting: state === 'starting', livedMs: lived });
    if (delay > 0) this.log.warn('a worker process died soon after it started; starting another after a delay', { worker: w.pid, livedMs: lived, delayMs: delay });
    if (delay === 0) return void this.spawn();
    const timer = setTimeout(() => {
      this.restartTimers.delete(timer);
      if (!this.stopping) this.spawn();
    }, delay);
    this.restartTimers.add(timer);
  }
}


