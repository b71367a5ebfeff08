/**
 * The daemon: serves one or more spools with one pool of run slots, and stops
 * gracefully. Discovery, claiming and running live in ServedSpool.
 *
 * Shutdown: stop() stops discovery and claiming, lets running tasks finish for
 * up to the grace period, then returns whatever is still running to incoming/
 * (no attempt counted) and releases the liveness locks. forceStop() does the
 * returning at once, synchronously, for a second signal. Where tasks run is
 * the runners' business (run/runners.ts): on this thread, or in worker processes.
 */
import { workerOptions, type DaemonOptions } from './options.js';
import { InProcessRunners } from './run/in-process-runner.js';
import { ProcessRunners } from './run/process-runners.js';
import type { Runners } from './run/runners.js';
import { ServedSpool, type Slots, type SpoolStats } from './served-spool.js';
import { STATUS_EVERY_MS, StatusFile } from './status-file.js';
import { ServedTasks, type RegisteredTasks } from './task-names.js';
import type { Logger } from './logger.js';
import type { ScheduleSpec } from '../spool/schedule.js';

/** Tasks started per spool per turn, so several spools share the slots fairly. */
const DISPATCH_BATCH = 64;
const PROGRESS_EVERY_MS = 60_000;
/** Dispatch rounds chained through microtasks before the event loop gets a turn (wake()). */
const MICROTASK_ROUNDS = 64;

export class Daemon {
  readonly services: ServedSpool[];
  readonly executor: Runners;
  /** --processes N: the runner processes, shared by every spool; undefined with --processes 0. */
  private readonly processRunners: ProcessRunners | undefined;
  private running = 0;
  private wakeScheduled = false;
  /** Dispatch rounds run as microtasks since the last one run from the event loop (wake()). */
  private chainedRounds = 0;
  private stopped = false;
  private drained: (() => void) | undefined;
  private progressTimer: NodeJS.Timeout | undefined;
  private lastProgress = '';
  /** state/daemon-<owner>.json of each spool, rewritten by statusTimer (status-file.ts). */
  readonly statusFiles: StatusFile[];
  private statusTimer: NodeJS.Timeout | undefined;
  private statusDueAt = 0;
  /** The longest the status timer fired late recently (the event loop was blocked), and when it was seen. */
  private lastBlock = { ms: 0, at: 0 };
  /** Between start() having finished and stop() (readiness). */
  serving = false;

  constructor(private readonly options: DaemonOptions) {
    this.processRunners = createProcessRunners(options, () => this.wake());
    this.executor = this.processRunners ?? new InProcessRunners(options.log);
    const slots: Slots = {
      // With runner processes, names beyond the slots may be given ahead (process-runners.ts): the runners say how many.
      free: () => (this.processRunners !== undefined ? this.processRunners.free() : options.concurrency - this.running),
      accepting: () => this.executor.accepting(),
      acquire: () => void this.running++,
      release: () => {
        this.running--;
        if (this.running === 0) this.drained?.();
        this.wake();
      },
      wake: () => this.wake(),
    };
    this.services = options.dirs.map((dir) => new ServedSpool(dir, options, slots, this.processRunners));
    this.statusFiles = this.services.map((s) => new StatusFile(s, options.concurrency, options.log));
  }

  async start(): Promise<void> {
    await this.executor.start();
    const registered = this.executor.registered();
    if (registered.tasks.length === 0 && registered.types.length === 0) {
      this.options.log.warn('the task modules registered no tasks: this daemon claims none (does a module call spooler.task()?)', { modules: this.options.modules });
    } else {
      this.options.log.info('tasks registered', { tasks: registered.tasks, types: registered.types, modules: this.options.modules });
    }
    const served = ServedTasks.of(registered, this.options.tasks);
    if (this.options.tasks !== undefined && this.options.tasks.length > 0) this.options.log.info('claiming only the tasks named by --tasks', { tasks: served.sorted() });
    for (const service of this.services) {
      service.serveTasks(served, registered);
      service.serveSchedules(schedulesFor(service.layout.root, this.options.schedules ?? [], registered, this.options.log));
      await service.start();
    }
    this.progressTimer = setInterval(() => this.logProgress(), PROGRESS_EVERY_MS);
    this.progressTimer.unref();
    this.writeStatus();
    this.serving = !this.stopped;
    this.wake();
  }

  /** Rewrites every status file, then again in STATUS_EVERY_MS; notes how late the timer fired (a blocked event loop). */
  private writeStatus(): void {
    const now = Date.now();
    if (this.statusDueAt > 0 && now - this.statusDueAt > this.lastBlock.ms) this.lastBlock = { ms: now - this.statusDueAt, at: now };
    for (const f of this.statusFiles) f.write(now);
    this.statusDueAt = now + STATUS_EVERY_MS;
    this.statusTimer = setTimeout(() => this.writeStatus(), STATUS_EVERY_MS);
    this.statusTimer.unref();
  }

  /** How long the event loop was blocked at most in the last `withinMs` (ms; measured by the status timer). */
  blockedMs(withinMs: number): number {
    const now = Date.now();
    const late = this.statusDueAt > 0 ? now - this.statusDueAt : 0; // blocked right now, the timer not run yet
    return Math.max(late, now - this.lastBlock.at <= withinMs ? this.lastBlock.ms : 0);
  }

  /**
   * Dispatch soon, once, however many times it is asked before then. Soon is
   * a microtask while recent dispatches chained that way stay under
   * MICROTASK_ROUNDS (a task that settled frees its slot for the next claimed
   * one without waiting for the next event-loop turn: a drain of short tasks
   * runs several times as many per turn), then the next turn, so that timers
   * and I/O, the file-ops threads' replies among them, are never starved.
   */
  wake(): void {
    if (this.wakeScheduled || this.stopped) return;
    this.wakeScheduled = true;
    if (this.chainedRounds < MICROTASK_ROUNDS) {
      this.chainedRounds++;
      queueMicrotask(this.dispatchNow);
    } else {
      setImmediate(this.dispatchNextTurn);
    }
  }

  private readonly dispatchNow = (): void => {
    this.wakeScheduled = false;
    this.dispatch();
  };

  private readonly dispatchNextTurn = (): void => {
    this.chainedRounds = 0;
    this.dispatchNow();
  };

  private dispatch(): void {
    // Bounded: with --processes 0 a synchronous task ends inside dispatch() and frees its slot at once, so
    // `running` alone would never stop the loop before the queue is empty. The slots it freed woke the next round.
    let budget = Math.max(DISPATCH_BATCH, this.options.concurrency) * this.services.length;
    for (let progress = true; progress && budget > 0; ) {
      progress = false;
      for (const service of this.services) {
        const started = service.dispatch(DISPATCH_BATCH);
        if (started > 0) {
          progress = true;
          budget -= started;
        }
      }
    }
  }

  /** Graceful stop. Resolves when every spool is released. */
  async stop(): Promise<{ finished: boolean; returned: number }> {
    this.stopped = true;
    this.serving = false;
    clearInterval(this.progressTimer);
    await Promise.all(this.services.map((s) => s.stopDiscovery()));
    // Names given and not started come back (reported Unclaimed): only running tasks are waited for.
    this.executor.drain();
    const finished = this.running === 0 || (await this.waitForRunning(this.options.grace));
    // Stop what still runs before its file goes back, so no task runs here and elsewhere at once.
    await this.executor.stop();
    const returned = this.services.reduce((n, s) => n + s.releaseAll(), 0);
    this.removeStatusFiles();
    await Promise.all(this.services.map((s) => s.releaseOwner()));
    this.logProgress(true);
    return { finished, returned };
  }

  /** Immediate stop: returns running tasks synchronously. The caller exits the process. */
  forceStop(): number {
    this.stopped = true;
    this.serving = false;
    this.executor.forceStop();
    const returned = this.services.reduce((n, s) => n + s.releaseAll(), 0);
    this.removeStatusFiles();
    return returned;
  }

  private removeStatusFiles(): void {
    clearTimeout(this.statusTimer);
    this.statusDueAt = 0;
    for (const f of this.statusFiles) f.remove();
  }

  get runningCount(): number {
    return this.running;
  }

  private waitForRunning(ms: number): Promise<boolean> {
    return new Promise((done) => {
      const timer = setTimeout(() => done(false), ms);
      this.drained = () => {
        clearTimeout(timer);
        done(true);
      };
    });
  }

  private logProgress(final = false): void {
    const totals: SpoolStats = { processed: 0, skipped: 0, rescheduled: 0, dead: 0, cancelled: 0, expired: 0, quarantined: 0, reclaimed: 0, lost: 0, claimRaces: 0 };
    for (const s of this.services) for (const k of Object.keys(totals) as (keyof SpoolStats)[]) totals[k] += s.stats[k];
    const text = JSON.stringify(totals);
    if (!final && text === this.lastProgress) return;
    this.lastProgress = text;
    const memory = process.memoryUsage();
    this.options.log.info(final ? 'stopped' : 'progress', {
      ...totals,
      ...this.executor.describe(),
      // --io-threads is accepted but no longer used (runners claim, read and delete themselves): echoed as set.
      ioThreads: this.options.ioThreads,
      running: this.running,
      pending: this.services.reduce((n, s) => n + s.queue.size, 0),
      rssMb: Math.round(memory.rss / 1048576),
      heapMb: Math.round(memory.heapUsed / 1048576),
    });
  }
}

/**
 * The schedules a spool runs: the --schedule files' (every spool), then those
 * its task modules defined with spooler.periodic() on it. A name defined
 * twice runs the first definition; a different second one is warned about.
 */
function schedulesFor(root: string, fromFiles: readonly ScheduleSpec[], registered: RegisteredTasks, log: Logger): ScheduleSpec[] {
  const byName = new Map<string, ScheduleSpec>();
  const fromModules = (registered.schedules ?? []).filter((s) => s.spool === root).map(({ spool: _spool, ...spec }) => spec);
  for (const spec of [...fromFiles, ...fromModules]) {
    const first = byName.get(spec.name);
    if (first === undefined) byName.set(spec.name, spec);
    else if (JSON.stringify(first) !== JSON.stringify(spec)) log.warn('a schedule is defined twice, differently: the first definition runs (--schedule files come first)', { schedule: spec.name, spool: root });
  }
  return [...byName.values()];
}

function createProcessRunners(options: DaemonOptions, wake: () => void): ProcessRunners | undefined {
  if (options.processes === 0) return undefined;
  return new ProcessRunners({
    processes: options.processes,
    concurrency: options.concurrency,
    worker: workerOptions(options),
    maxTasks: options.maxTasks,
    maxMemory: options.maxMemory * 1048576,
    killGrace: options.killGrace,
    log: options.log,
    wake,
  });
}
