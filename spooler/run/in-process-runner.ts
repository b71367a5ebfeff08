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
import type { Item, PathHooks, Report, Site } from './task-path.js';
import { TaskPath } from './task-path.js';

type RunnerState = 'serving' | 'revoked' | 'stopped';

const NEXT: Record<RunnerState, readonly RunnerState[]> = {
  serving: ['revoked', 'stopped'],
  revoked: ['stopped'],
  stopped: [],
};

export class InProcessRunner {
  private state: RunnerState = 'serving';
  private readonly path: TaskPath;

  constructor(site: Site, report: (r: Report) => void, killGrace: number) {
    const hooks: PathHooks = { report, graceExpired: { killGrace } };
    this.path = new TaskPath(site, hooks);
  }

  private go(to: RunnerState): void {
    if (!NEXT[this.state].includes(to)) throw new Error(`in-process runner: cannot go from ${this.state} to ${to}`);
    this.state = to;
  }

  /** Runs one task now (claim, read, decode, run; settled at once if it is synchronous). */
  give(item: Item): void {
    if (this.state !== 'serving') throw new Error(`in-process runner: given a task while ${this.state}`);
    this.path.start(item);
  }

  /** The owner was lost: fires the running tasks' AbortSignals; their outcomes are ignored and their files left alone. */
  revoke(reason: Error): number {
    this.go('revoked');
    this.path.stopStuck(false);
    return this.path.revoke(reason);
  }

  /** No more tasks (a stop); with `lastTry`, stuck moves are tried once more first. */
  stop(lastTry: boolean): void {
    if (this.state !== 'stopped') this.go('stopped');
    this.path.stopStuck(lastTry);
  }

  /** A task whose claimed file the supervisor must settle itself (read again here). */
  settleOrphan(...args: Parameters<TaskPath['settleOrphan']>): void {
    this.path.settleOrphan(...args);
  }
}
