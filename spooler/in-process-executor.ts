/**
 * --processes 0: tasks run in the daemon's own event loop. The cheapest way to
 * run a task (no message crosses a process boundary), and the only one without
 * isolation: a task that blocks the event loop (`while (true) {}`) blocks the
 * daemon, and nothing in the process can stop it. Timeouts still fire the
 * task's AbortSignal; a task that has not settled `killGrace` ms later is
 * counted as failed (rescheduled by its backoff, attempt counted) and its slot
 * is freed, although its code may still be running: nothing can kill it here.
 * A task whose claim the daemon lost (revoke()) gets its signal fired too, and
 * keeps its slot until its code ends.
 */
import { TaskTimeoutError } from '../runtime/context.js';
import type { Execution, Executor, Job } from './executor.js';
import type { Logger } from './logger.js';
import { TaskRun } from './run-task.js';
import { registeredInThisProcess, type RegisteredTasks } from './task-names.js';

export class InProcessExecutor implements Executor {
  private running = 0;
  /** Tasks whose code still runs (those that did not end synchronously), for revoke(). */
  private readonly flights = new Set<{ spool: string; run: TaskRun }>();

  constructor(
    private readonly log: Logger,
    private readonly killGrace: number,
  ) {}

  async start(): Promise<void> {}

  registered(): RegisteredTasks {
    // The CLI imported the task modules into this process before the daemon started.
    return registeredInThisProcess();
  }

  accepting(): boolean {
    return true;
  }

  run(job: Job): Execution | Promise<Execution> {
    const run = new TaskRun(job.spool, job.task, this.log);
    const settled = run.execute();
    // Ended already (a synchronous task): no timer could have fired meanwhile.
    if (!(settled instanceof Promise)) return settled;
    this.running++;
    const flight = { spool: job.spool, run };
    this.flights.add(flight);
    const outcome = settled.finally(() => {
      this.running--;
      this.flights.delete(flight);
    });
    const timeoutMs = job.timeoutMs;
    if (timeoutMs === undefined) return outcome;
    return new Promise((settle) => {
      let grace: NodeJS.Timeout | undefined;
      const timer = setTimeout(() => {
        run.abort(new TaskTimeoutError(timeoutMs));
        grace = setTimeout(() => {
          const fields = { task: job.task.name, id: job.task.id, attempt: job.task.attempts, timeoutMs, killGraceMs: this.killGrace };
          this.log.error('a task ignored its AbortSignal after its timeout; with --processes 0 it cannot be killed and may still be running in the daemon; it is counted as failed (run with --processes 1 or more to have such tasks killed)', fields);
          settle({ kind: 'rescheduled', error: new TaskTimeoutError(timeoutMs, `, nor within ${this.killGrace} ms after its AbortSignal fired; it could not be killed (--processes 0) and may still be running`) });
        }, this.killGrace);
      }, timeoutMs);
      void outcome.then((o) => {
        clearTimeout(timer);
        clearTimeout(grace);
        settle(o);
      });
    });
  }

  revoke(spool: string, reason: Error): void {
    for (const flight of this.flights) if (flight.spool === spool) flight.run.abort(reason);
  }

  async stop(): Promise<void> {}

  forceStop(): void {}

  describe(): Record<string, unknown> {
    return { processes: 0, running: this.running };
  }
}
