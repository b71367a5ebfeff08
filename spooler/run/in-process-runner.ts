/**
 * --processes 0: the per-task path (task-path.ts) on the daemon's own thread.
 * The cheapest runner (no message crosses a thread or a process: a name goes
 * in, its claim, read, decode, run, and the removal of its file happen in one
 * synchronous call for a synchronous task) and the only one without
 * isolation: a task that blocks the event loop blocks the daemon, and nothing
 * here can stop it. Timeouts still fire the task's AbortSignal; a task that
 * has not settled `killGrace` ms later is counted as failed (rescheduled by
 * its backoff, attempt counted) and its slot freed, although its code may
 * still be running. A revoked task (the owner was lost) keeps its slot until
 * its code ends.
 *
 * A runner's life (one per spool and owner; a new owner gets a new one):
 *
 *   serving --revoke()--> revoked (its running tasks' signals fired; reports Revoked as they end)
 *      '------stop()---> stopped (gives nothing more; running tasks end and report as usual)
 */
import type { TaskOutcome } from '../../runtime/results.js';
import type { Logger } from '../logger.js';
import { registeredInThisProcess, type RegisteredTasks } from '../task-names.js';
import type { PendingDir } from '../order/task-queue.js';
import type { Runners, SiteRunner } from './runners.js';
import { Code, TaskPath, type Item, type PathHooks, type Report, type Site } from './task-path.js';

type RunnerState = 'serving' | 'revoked' | 'stopped';

const NEXT: Record<RunnerState, readonly RunnerState[]> = {
  serving: ['revoked', 'stopped'],
  revoked: ['stopped'],
  stopped: [],
};

export class InProcessRunner implements SiteRunner {
  private state: RunnerState = 'serving';
  private readonly path: TaskPath;

  constructor(
    site: Site,
    private readonly report: (r: Report) => void,
    killGrace: number,
  ) {
    const hooks: PathHooks = { report, graceExpired: { killGrace } };
    this.path = new TaskPath(site, hooks);
  }

  room(): number {
    return this.state === 'serving' ? Infinity : 0;
  }

  private go(to: RunnerState): void {
    if (!NEXT[this.state].includes(to)) throw new Error(`in-process runner: cannot go from ${this.state} to ${to}`);
    this.state = to;
  }

  /**
   * Runs each task now (claim, read, decode, run; settled at once if it is
   * synchronous). A report can revoke this runner midway (its claim directory
   * was gone): the rest go back unclaimed.
   */
  give(items: Item[]): void {
    for (const item of items) {
      if (this.state === 'serving') this.path.start(item);
      else this.report({ name: item.name, code: Code.Unclaimed, from: item.dir });
    }
  }

  /** The owner was lost: fires the running tasks' AbortSignals; their outcomes are ignored and their files left alone. */
  revoke(reason: Error): void {
    this.go('revoked');
    this.path.stopStuck(false);
    this.path.revoke(reason);
  }

  /** No more tasks (a stop); with `lastTry`, stuck moves are tried once more first. */
  stop(lastTry: boolean): void {
    if (this.state !== 'stopped') this.go('stopped');
    this.path.stopStuck(lastTry);
  }

  cancel(name: string): void {
    this.path.cancel(name);
  }

  settleOrphan(name: string, from: PendingDir, outcome: TaskOutcome): void {
    this.path.settleOrphan(name, from, outcome);
  }

  /** Nothing to give back: a name given here starts (or is reported) before give() returns. */
  pause(): void {}
}

/** --processes 0 as the daemon sees it: the task modules were imported into this process by the CLI. */
export class InProcessRunners implements Runners {
  constructor(private readonly log: Logger) {}
  async start(): Promise<void> {
    this.log.debug('tasks run on the daemon\'s own thread (--processes 0)');
  }
  accepting(): boolean {
    return true;
  }
  registered(): RegisteredTasks {
    return registeredInThisProcess();
  }
  drain(): void {}
  async stop(): Promise<void> {}
  forceStop(): void {}
  describe(): Record<string, unknown> {
    return { processes: 0 };
  }
}
