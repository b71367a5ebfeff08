/**
 * Running one task in this process, inside its task context (runtime/context.ts):
 * the same code serves the daemon itself (--processes 0) and each worker process.
 */
import { runInTaskContext, type TaskContext, type TaskLogger } from '../../runtime/context.js';
import type { TaskOutcome } from '../../runtime/results.js';
import { Spooler } from '../../runtime/spooler.js';
import type { TaskFile } from '../../spool/task-file.js';
import { describeRegistered, findHandler, invoke, UnknownTaskError } from './execute.js';
import type { Logger } from '../logger.js';

const spoolers = new Map<string, Spooler>();

/**
 * A task being run: its context, built lazily (most tasks never look at their
 * logger or signal, and a drain of no-op tasks should not pay for them).
 */
export class TaskRun implements TaskContext {
  private controller: AbortController | undefined;
  private abortReason: unknown;
  private logger: TaskLogger | undefined;

  constructor(
    readonly spoolDir: string,
    readonly task: TaskFile,
    private readonly daemonLog: Logger,
  ) {}

  get id(): string {
    return this.task.id;
  }
  get name(): string {
    return this.task.name;
  }
  get attempt(): number {
    return this.task.attempts;
  }
  get fileName(): string {
    return this.task.fileName;
  }
  get parent(): string | undefined {
    return this.task.body.parent;
  }
  get spooler(): Spooler {
    let spooler = spoolers.get(this.spoolDir);
    if (spooler === undefined) spoolers.set(this.spoolDir, (spooler = Spooler.open(this.spoolDir)));
    return spooler;
  }
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }
  get log(): TaskLogger {
    return (this.logger ??= this.daemonLog.child({ task: this.task.name, id: this.task.id, attempt: this.task.attempts }));
  }

  /** Fires the task's AbortSignal (once). */
  abort(reason: unknown): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.controller?.abort(reason);
  }

  /**
   * Runs the registered code for the task; a throw, a rejection or no code at all
   * becomes a rescheduled outcome. The outcome of a task that settled
   * synchronously comes back as a value, not a promise (invoke()).
   */
  execute(): TaskOutcome | Promise<TaskOutcome> {
    const handler = findHandler(this.spoolDir, this.task);
    if (handler === undefined) {
      const error = new UnknownTaskError(`no task named "${this.task.name}" (type ${this.task.body.type}) is registered; ${describeRegistered(this.spoolDir)}`);
      return { kind: 'rescheduled', error };
    }
    return runInTaskContext(this, () => invoke(handler, this.task));
  }
}
