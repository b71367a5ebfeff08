/**
 * The task context (runtime/context.ts) of a task run by the inline test mode
 * (runtime/inline.ts): what taskContext() returns inside it. The same fields as
 * in the daemon; its log goes to the inline runner's records (inline.logs).
 */
import { TaskCancelledError, type TaskContext, type TaskLogger } from './context.js';
import type { Spooler } from './spooler.js';
import type { TaskFile } from '../spool/task-file.js';
import { checkProgress } from './progress.js';
import type { Progress } from '../spool/progress.js';
import type { ChildStep, InlineChildren } from './inline-children.js';
import type { TaskHandle } from './spooler.js';
import type { WaitOptions } from './wait.js';

/** One log record a task (or the inline runner, about a task) wrote. */
export interface InlineLogRecord {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  task: string;
  id: string;
  attempt: number;
  [field: string]: unknown;
}

export class InlineTaskRun implements TaskContext {
  private readonly controller = new AbortController();
  private abortReason: unknown;
  readonly log: TaskLogger;

  constructor(
    readonly task: TaskFile,
    readonly spooler: Spooler,
    write: (record: InlineLogRecord) => void,
    private readonly reported: (progress: Progress) => void,
    private readonly family: InlineChildren,
  ) {
    const at = (level: InlineLogRecord['level']) => (msg: string, fields?: Record<string, unknown>) =>
      write({ ...fields, level, msg, task: task.name, id: task.id, attempt: task.attempts });
    this.log = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  }

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
  get signal(): AbortSignal {
    return this.controller.signal;
  }
  get cancelled(): boolean {
    return this.abortReason instanceof TaskCancelledError;
  }

  /** Every value reaches the runner (no 200 ms throttle inline: a test sees each one). */
  progress(fraction: number, message?: string): void {
    const kept = checkProgress(fraction, message);
    this.reported(kept === undefined ? { fraction, at: Date.now() } : { fraction, message: kept, at: Date.now() });
  }

  /** Enqueues a child of this task (runtime/inline-children.ts). */
  enqueueChild(step: ChildStep): Promise<TaskHandle> {
    return this.family.enqueueChild(this.id, step);
  }

  /** Enqueues children; with `limit`, at most that many of them have started and not ended at once. */
  enqueueChildren(steps: readonly ChildStep[], options?: { limit?: number }): Promise<TaskHandle[]> {
    return this.family.enqueueChildren(this.id, steps, options);
  }

  /** Enqueues a child keyed by its task name and arguments: a second call adds nothing (`existing: true`). */
  enqueueChildOnce(step: ChildStep): Promise<TaskHandle> {
    return this.family.enqueueChildOnce(this.id, step);
  }

  /** Waits for every child this task enqueued: their values in order; throws as handle.result() does. */
  waitForChildren(options?: WaitOptions): Promise<unknown[]> {
    return this.family.waitForChildren(this.id, options);
  }

  /** The continuation: enqueued once, with the children's endings first, once this task is processed and every child has ended. */
  afterChildren(step: ChildStep): void {
    this.family.afterChildren(this.id, step);
  }

  /** Fires the task's AbortSignal (once): its timeout, or a cancel. */
  abort(reason: unknown): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.controller.abort(reason);
  }
}
