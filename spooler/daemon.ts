/**
 * The daemon: serves one or more spools with one pool of run slots, and stops
 * gracefully. Discovery, claiming and running live in SpoolService.
 *
 * Shutdown: stop() stops discovery and claiming, lets running tasks finish for
 * up to the grace period, then returns whatever is still running to incoming/
 * (no attempt counted) and releases the liveness locks. forceStop() does the
 * returning at once, synchronously, for a second signal.
 */
import type { DaemonOptions } from './options.js';
import { SpoolService, type Slots, type SpoolStats } from './spool-service.js';

/** Tasks started per spool per turn, so several spools share the slots fairly. */
const DISPATCH_BATCH = 64;
const PROGRESS_EVERY_MS = 60_000;

export class Daemon {
  readonly services: SpoolService[];
  private running = 0;
  private wakeScheduled = false;
  private stopped = false;
  private drained: (() => void) | undefined;
  private progressTimer: NodeJS.Timeout | undefined;
  private lastProgress = '';

  constructor(private readonly options: DaemonOptions) {
    const slots: Slots = {
      available: () => this.running < options.concurrency,
      acquire: () => void this.running++,
      release: () => {
        this.running--;
        if (this.running === 0) this.drained?.();
        this.wake();
      },
      wake: () => this.wake(),
    };
    this.services = options.dirs.map((dir) => new SpoolService(dir, options, slots));
  }

  async start(): Promise<void> {
    for (const service of this.services) await service.start();
    this.progressTimer = setInterval(() => this.logProgress(), PROGRESS_EVERY_MS);
    this.progressTimer.unref();
    this.wake();
  }

  /** Dispatch soon, once, however many times it is asked before then. */
  wake(): void {
    if (this.wakeScheduled || this.stopped) return;
    this.wakeScheduled = true;
    setImmediate(() => {
      this.wakeScheduled = false;
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (let progress = true; progress && this.running < this.options.concurrency; ) {
      progress = false;
      for (const service of this.services) if (service.dispatch(DISPATCH_BATCH) > 0) progress = true;
    }
  }

  /** Graceful stop. Resolves when every spool is released. */
  async stop(): Promise<{ finished: boolean; returned: number }> {
    this.stopped = true;
    clearInterval(this.progressTimer);
    await Promise.all(this.services.map((s) => s.stopDiscovery()));
    const finished = this.running === 0 || (await this.waitForRunning(this.options.grace));
    const returned = this.services.reduce((n, s) => n + s.releaseAll(), 0);
    await Promise.all(this.services.map((s) => s.releaseOwner()));
    this.logProgress(true);
    return { finished, returned };
  }

  /** Immediate stop: returns running tasks synchronously. The caller exits the process. */
  forceStop(): number {
    this.stopped = true;
    return this.services.reduce((n, s) => n + s.releaseAll(), 0);
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
    const totals: SpoolStats = { processed: 0, skipped: 0, rescheduled: 0, dead: 0, quarantined: 0, reclaimed: 0, lost: 0 };
    for (const s of this.services) for (const k of Object.keys(totals) as (keyof SpoolStats)[]) totals[k] += s.stats[k];
    const text = JSON.stringify(totals);
    if (!final && text === this.lastProgress) return;
    this.lastProgress = text;
    const memory = process.memoryUsage();
    this.options.log.info(final ? 'stopped' : 'progress', {
      ...totals,
      running: this.running,
      pending: this.services.reduce((n, s) => n + s.queue.size, 0),
      rssMb: Math.round(memory.rss / 1048576),
      heapMb: Math.round(memory.heapUsed / 1048576),
    });
  }
}
