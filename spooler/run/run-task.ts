/**
 * Running one task in this process, inside its task context (runtime/context.ts):
 * the same code serves the daemon itself (--processes 0) and each worker process.
 */
import { runInTaskContext, TaskCancelledError, type TaskContext, type TaskLogger } from '../../runtime/context.js';
import type { TaskOutcome } from '../../runtime/results.js';
import { anyBehaviour, Spooler, type TaskHandle } from '../../runtime/spooler.js';
import { FlowOfRun, type ChildrenOptions } from '../../runtime/children.js';
import type { Step } from '../../runtime/steps.js';
import type { WaitOptions } from '../../runtime/wait.js';
import { applyRetryFilter, callHooks, hooksFor, type Behaviour, type HookTrouble, type RunEnd } from '../../runtime/task-behaviour.js';
import type { TaskFile } from '../../spool/task-file.js';
import { describeRegistered, findBehaviour, findHandler, invoke, isThenable, UnknownTaskError } from '../../runtime/execute.js';
import type { TaskTypeHandler } from '../../runtime/task-types.js';
import type { Logger } from '../logger.js';
import { ProgressReporter } from '../../runtime/progress.js';
import { SpoolLayout } from '../../spool/layout.js';
import { removeProgress, writeProgress } from '../../spool/progress.js';

const spoolers = new Map<string, Spooler>();

/**
 * A task being run: its context, built lazily (most tasks never look at their
 * logger or signal, and a drain of no-op tasks should not pay for them).
 */
export class TaskRun implements TaskContext {
  private controller: AbortController | undefined;
  private abortReason: unknown;
  private logger: TaskLogger | undefined;
  /** Its hooks and retry filter; undefined for the common task that has none. */
  behaviour: Behaviour | undefined;
  /** Made at its first progress() call: most tasks never report any. */
  private reporter: ProgressReporter | undefined;

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

  get cancelled(): boolean {
    return this.abortReason instanceof TaskCancelledError;
  }

  /** Its children and continuation (runtime/children.ts); undefined until it uses them (most tasks never do). */
  flow: FlowOfRun | undefined;
  private get flowOfRun(): FlowOfRun {
    return (this.flow ??= new FlowOfRun(this));
  }
  enqueueChild(step: Step): Promise<TaskHandle> {
    return this.flowOfRun.enqueueChild(step);
  }
  enqueueChildren(steps: readonly Step[], options?: ChildrenOptions): Promise<TaskHandle[]> {
    return this.flowOfRun.enqueueChildren(steps, options);
  }
  enqueueChildOnce(step: Step): Promise<TaskHandle> {
    return this.flowOfRun.enqueueChildOnce(step);
  }
  waitForChildren(options?: WaitOptions): Promise<unknown[]> {
    return this.flowOfRun.waitForChildren(options);
  }
  afterChildren(step: Step): void {
    this.flowOfRun.afterChildren(step);
  }
  progress(fraction: number, message?: string): void {
    (this.reporter ??= this.newReporter()).report(fraction, message);
  }

  /**
   * The run has ended: no more progress writes, and its record is removed if it
   * wrote one (`remove` false: the claim was lost, and the record may be another
   * daemon's run's by now; the orphan sweep judges it).
   */
  endProgress(remove = true): void {
    if (this.reporter === undefined) return;
    if (remove) this.reporter.end();
    else this.reporter.stop();
  }

  private newReporter(): ProgressReporter {
    const layout = new SpoolLayout(this.spoolDir);
    const id = this.task.id;
    return new ProgressReporter(
      { write: (p) => writeProgress(layout, id, p), remove: () => void removeProgress(layout, id) },
      (err) => this.log.warn('cannot write the progress of the task to progress/; it goes on without', { error: (err as Error).message }),
    );
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
    if (anyBehaviour()) this.behaviour = findBehaviour(this.spoolDir, this.task);
    if (this.behaviour !== undefined) return this.executeWith(handler, this.behaviour);
    return runInTaskContext(this, () => invoke(handler, this.task));
  }

  /** execute() for a task with hooks or a retry filter: `before` hooks first, the filter on a thrown error after. */
  private executeWith(handler: TaskTypeHandler, b: Behaviour): TaskOutcome | Promise<TaskOutcome> {
    const run = () => {
      const outcome = runInTaskContext(this, () => invoke(handler, this.task));
      return isThenable(outcome) ? outcome.then((o) => applyRetryFilter(o, b)) : applyRetryFilter(outcome, b);
    };
    const before = this.callHooks(b, ['before'], undefined);
    return before === undefined ? run() : before.then(run);
  }

  /**
   * The task's file has been settled as `end`: calls its hooks for that ending.
   * Undefined when it has none (nothing to wait for); otherwise resolves, never
   * rejects, when they are done or abandoned (task-behaviour.ts).
   */
  settled(end: RunEnd): Promise<void> | undefined {
    const b = this.behaviour;
    return b === undefined ? undefined : this.callHooks(b, hooksFor(end), end);
  }

  private callHooks(b: Behaviour, names: Parameters<typeof callHooks>[1], end: RunEnd | undefined): Promise<void> | undefined {
    const call = (hook: (task: TaskContext, ...args: unknown[]) => unknown) => runInTaskContext(this, () => (end === undefined ? hook(this) : hook(this, end)));
    return callHooks(b, names, call, (t) => this.hookTrouble(t));
  }

  private hookTrouble(t: HookTrouble): void {
    if (t.timedOut !== undefined) {
      this.log.error('a task hook did not finish within its hookTimeout; it is no longer waited for (its code may still be running) and the outcome stands', { hook: t.hook, hookTimeoutMs: t.timedOut });
      return;
    }
    const e = t.error;
    this.log.warn('a task hook failed; the outcome stands', { hook: t.hook, error: e instanceof Error ? e.message : String(e), stack: e instanceof Error ? e.stack : undefined });
  }
}
