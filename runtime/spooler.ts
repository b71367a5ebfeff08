/**
 * The producer side of a spool: `Spooler` turns function calls and messages into
 * task files, and keeps the registry of task functions that a daemon looks up.
 *
 *   const spooler = Spooler.open('./spool');
 *   export const sendEmail = spooler.task(async function sendEmail(to: string) { ... }, { retries: 5 });
 *   await sendEmail('a@example.com');               // enqueues; resolves to { id, path, ... }
 *   await sendEmail.with({ postpone: '10m' })('b@example.com');
 */
import { realpathSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { TASK_TYPE_PATTERN, UNIQUE_KEY_MAX, type TaskBody } from '../spool/body.js';
import { sampleClockSync, SpoolClock } from '../spool/clock.js';
import { BatchNotEnqueuedError, InvalidOptionError, TaskNameCollisionError } from '../spool/errors.js';
import { SpoolLayout } from '../spool/layout.js';
import { listByName, type SpoolEntry } from '../spool/entries.js';
import { checkPriority, checkTaskName, parseTaskName, PRIORITY_DEFAULT, TASK_ID_PATTERN, type Encoding } from '../spool/name.js';
import { cancelTask, type CancelResult } from '../spool/cancel.js';
import { DEFAULT_MAX_BYTES } from '../spool/safe-read.js';
import { encodeTask, readTaskFile, type EncodedTask, type TaskFile } from '../spool/task-file.js';
import type { PlainValue } from '../spool/wire.js';
import { filesystemKind } from '../spool/fs-kind.js';
import { discardStagedSync, fsyncDirSync, publishStagedSync, stageTaskSync, withdrawPublishedSync, writeTask, writeTaskSync } from '../spool/protocol.js';
import { toRetrySpec, type BackoffOptions } from './backoff.js';
import { enqueueUnique, UNIQUE_MODES, type UniqueMode } from './unique-enqueue.js';
import { currentTask } from './context.js';
import { toDueTime, toMs, type Duration, type Postpone } from './duration.js';
import { FCALL, MESSAGE, type TaskTypeHandler } from './task-types.js';
import { resultWatch, waitForResult, type WaitOptions } from './wait.js';
import type { ResultRecord } from '../spool/results.js';
import { checkBehaviourOptions, checkHooks, DEFAULT_HOOK_TIMEOUT_MS, type Behaviour, type BehaviourOptions, type TaskHooks } from './task-behaviour.js';
import type { BackoffKind } from '../spool/body.js';
import { checkSchedule, type CatchUp, type ScheduleSpec, type ScheduleTaskFields } from '../spool/schedule.js';
import { encodeWire, toWire } from '../spool/wire.js';
import { toTaskLimits, type LimitOptions, type TaskLimits } from './limits.js';
import { chainedFunction, chainOn, REQUEST_SPOOLER, type ChainedFunction, type ChainRequest } from './chains.js';
import type { Step } from './steps.js';
import { callConverted, compileConversion, type ConversionOptions } from './converters.js';
import { progressWatch, type ProgressListener } from './progress-watch.js';
import { readProgress, type Progress } from '../spool/progress.js';
import { InlineRunner, type InlineOptions } from './inline.js';

export interface SpoolerOptions {
  /** Encoding of new task files (default 'msgpack'). */
  encoding?: Encoding;
  /** Flush every task file to disk before enqueue resolves (default false; ~1 ms per task). */
  fsync?: boolean;
  /** Largest task file accepted or read (default 16 MiB). */
  maxBytes?: number;
  /** Lifecycle hooks for every task run from this spooler (after each task's own); more with addHooks(). */
  hooks?: TaskHooks;
  /** How long a hook is waited for before it is abandoned (default 10 s); a task's own hookTimeout wins. */
  hookTimeout?: Duration;
}

/** Options that a call may override. */
export interface EnqueueOptions {
  /** 0 (runs first) to 99; default 50. */
  priority?: number;
  /** Run no earlier than this: a delay (ms or "30s") or a Date. */
  postpone?: Postpone;
  /** Retries after the first failed attempt; default: the daemon's (3). */
  retries?: number;
  backoff?: BackoffOptions | BackoffKind;
  /** Run-time limit. */
  timeout?: Duration;
  encoding?: Encoding;
  /** Producer annotations carried in the body. */
  meta?: { [key: string]: PlainValue };
  /** Id of the task this one is enqueued from; default: the running task's id when enqueued from inside a task. */
  parent?: string;
  /**
   * Keep how the task ended (its value, skip reason or final error) in results/ this long after it ends,
   * for handle.result() and spool wait; default: the daemon's --keep-results (none unless set). 0 keeps none.
   */
  keepResult?: Duration;
  /**
   * Unique key (per task name): while a task with this key waits (or, with uniqueWhileRunning, until it has
   * ended), another enqueue with it adds nothing and returns that task's handle (`existing: true`). In
   * spooler.task() options it may be a function of the call's arguments.
   */
  unique?: string | UniqueKeyOf;
  /** What an enqueue does when the key is held by a waiting task: keep it (default), replace it, or replace it and keep its due time. */
  uniqueMode?: UniqueMode;
  /** Hold the key until the task has ended, not only while it waits. */
  uniqueWhileRunning?: boolean;
  /** A task not started by then is not run: it ends as expired. A delay from now (ms or "10m") or a Date. */
  expires?: Postpone;
}

/** A unique key computed from a call's arguments. */
export type UniqueKeyOf = (...args: never[]) => string;

/**
 * Options of spooler.task(): how calls are enqueued, run (hooks, retry filter, limits) and
 * converted (params, converters, validate, returns: runtime/converters.ts).
 */
export interface TaskOptions extends EnqueueOptions, BehaviourOptions, LimitOptions, ConversionOptions {
  /** Task name; default the function's name. */
  name?: string;
}

/**
 * spooler.periodic(): when the task runs by itself (exactly one of every and cron), and what it is given.
 * Only a daemon (spoolerd) that imports the module enqueues the slots; any other process only defines them.
 */
export interface PeriodicOptions extends Omit<TaskOptions, 'postpone' | 'meta' | 'parent' | 'encoding'> {
  /** A period: a slot at every multiple of it since the Unix epoch (every '10m': :00, :10, …). At least 1s. */
  every?: Duration;
  /** A cron expression (5 fields, or 6 with seconds first), e.g. '0 3 * * *'. */
  cron?: string;
  /** The cron expression's IANA time zone, e.g. 'Europe/Berlin' (default UTC). */
  tz?: string;
  /** Slots that passed while no daemon ran: none enqueued (default), the newest one, or all of them (the newest catchUpLimit). */
  catchUp?: CatchUp;
  /** With catchUp 'all': at most this many (default 100). */
  catchUpLimit?: number;
  /** The arguments each run is given (default none). */
  args?: readonly unknown[];
  /** The schedule's name (spool schedules, spool pause --schedule); default the task's name. */
  schedule?: string;
}

export interface MessageOptions extends EnqueueOptions {
  /** Task type (default 'message'); a handler for it is registered with registerTaskType(). */
  type?: string;
  /** Free-form data for the handler. */
  payload?: PlainValue;
}

/** Where an enqueued task went. */
export interface TaskHandle {
  id: string;
  name: string;
  fileName: string;
  path: string;
  priority: number;
  /** Due time, ms since the epoch. */
  due: number;
  /** True when a unique key was held: this is the handle of the task that held it, and nothing was added. */
  existing?: boolean;
  /**
   * The task's value once a daemon has processed it (runtime/wait.ts). Rejects with TaskFailedError (a dead
   * letter: the remote error's name, message and stack), TaskSkippedError, TaskWasCancelledError or
   * TaskExpiredError, and ResultTimeoutError after `timeout`. Needs a kept result (keepResult, --keep-results).
   */
  result(options?: WaitOptions): Promise<unknown>;
  /** The last progress the task reported while it runs (ctx.progress()), or undefined (none, or not running). */
  progress(): Promise<Progress | undefined>;
}

/** A TaskHandle: its fields, and result() on the prototype (a bulk enqueue makes one per task). */
class EnqueuedTask implements TaskHandle {
  readonly #spooler: Spooler;
  /** Set only on the handle of a task that held a unique key (an own property only then). */
  declare readonly existing?: boolean;
  constructor(
    spooler: Spooler,
    readonly id: string,
    readonly name: string,
    readonly fileName: string,
    readonly path: string,
    readonly priority: number,
    readonly due: number,
    existing?: true,
  ) {
    this.#spooler = spooler;
    if (existing) (this as { existing?: boolean }).existing = true;
  }

  result(options: WaitOptions = {}): Promise<unknown> {
    return this.#spooler.wait(this.id, options);
  }

  progress(): Promise<Progress | undefined> {
    return Promise.resolve(this.#spooler.progressOf(this.id));
  }
}

/** One task of a bulk enqueue. */
export interface TaskRequest {
  name: string;
  args?: readonly unknown[];
  options?: EnqueueOptions;
}

/** The wrapper spooler.task() returns: calling it enqueues the function with these arguments. */
export interface TaskFunction<A extends unknown[], R> {
  (...args: A): Promise<TaskHandle>;
  /** Enqueue with per-call options. */
  with(options: EnqueueOptions): (...args: A) => Promise<TaskHandle>;
  /** A request for spooler.enqueueMany(), and a step or the first task of a chain. */
  request(...args: A): TaskRequest;
  /**
   * A chain (runtime/chains.ts): calling the result enqueues this task with these arguments, and once it is
   * processed `next` with its value as first argument; `.then()` adds more steps, `.onError()` a callback.
   * (So a wrapper is not to be awaited or returned from an async function: it would be taken for a promise.)
   */
  then(next: Step): ChainedFunction<A>;
  /**
   * A request for a later step of a chain (or a callback): its arguments after the first, which is the value of
   * the step before (or the failure, for onError). `fn.step(10)` is `fn.request(10)` typed for that.
   */
  step(...args: A extends [unknown, ...infer Rest] ? Rest : unknown[]): TaskRequest;
  readonly taskName: string;
  readonly spooler: Spooler;
  /** The original function, to call directly. */
  readonly fn: (...args: A) => R;
  readonly options: Readonly<TaskOptions>;
}

interface RegisteredTask {
  fn: (...args: never[]) => unknown;
  /** How it is called with arguments: the function itself, or through its converters (runtime/converters.ts). */
  call: (args: readonly unknown[]) => unknown;
  /** The same for a task file, made once here so that the runner makes no closure per task. */
  handler: (task: TaskFile) => unknown;
  options: TaskOptions;
  /** Concurrency and rate limits (runtime/limits.ts), if any. */
  limits?: TaskLimits;
}

/**
 * Kept on globalThis so that a task module which resolves its own copy of
 * spoolerd still registers where the daemon looks.
 */
const REGISTRY = Symbol.for('spoolerd.spoolers');
const spoolers: Map<string, Spooler> = ((globalThis as Record<symbol, unknown>)[REGISTRY] ??= new Map()) as Map<string, Spooler>;
/**
 * How many hooks and retry filters were registered in this process (shared like
 * the registry): while it is 0 a run looks up no behaviour at all, so tasks
 * without hooks pay nothing for them.
 */
const BEHAVIOUR = Symbol.for('spoolerd.behaviourCount');
const behaviourCount = ((globalThis as Record<symbol, unknown>)[BEHAVIOUR] ??= { n: 0 }) as { n: number };

/** Whether any task or spooler in this process has hooks or a retry filter. */
export function anyBehaviour(): boolean {
  return behaviourCount.n !== 0;
}
/** Larger task files are written through the thread pool, never blocking the producer's event loop for long (writeOne()). */
const INLINE_WRITE_MAX_BYTES = 64 * 1024;

/** The registry as a list, rebuilt when it changes: the daemon reads it for every task. */
let spoolerList: readonly Spooler[] = [...spoolers.values()];

export class Spooler {
  readonly layout: SpoolLayout;
  readonly options: Readonly<Required<Pick<SpoolerOptions, 'encoding' | 'fsync' | 'maxBytes'>>>;
  private readonly tasks = new Map<string, RegisteredTask>();
  private readonly taskTypeHandlers = new Map<string, TaskTypeHandler>();
  /** Schedules defined with periodic(), by schedule name. */
  private readonly scheduleSpecs = new Map<string, ScheduleSpec>();
  private readonly spoolerHooks: TaskHooks[] = [];
  private hookTimeoutMs = DEFAULT_HOOK_TIMEOUT_MS;
  /** Behaviour by task name ('' for tasks of other types), rebuilt when hooks change. */
  private readonly behaviours = new Map<string, Behaviour | null>();
  /**
   * The spool clock (spool/clock.ts), sampled at the first enqueue and again
   * after CLOCK_RESAMPLE_MS, by an enqueue (a file created and removed in tmp/):
   * ids and due times are spool time, so a producer on a host whose clock is
   * off neither makes tasks due early nor late.
   */
  private readonly clock = new SpoolClock();
  private clockSampleDue = 0;
  /** Whether one enqueue writes its file with blocking calls (writeOne()); decided at the first enqueue. */
  private writesInline: boolean | undefined;
  /** Set in the inline test mode (runtime/inline.ts): tasks run in this process, nothing touches the directory. */
  private inlineRunner: InlineRunner | undefined;

  private constructor(dir: string, options: SpoolerOptions) {
    this.layout = new SpoolLayout(dir);
    this.options = Object.freeze({
      encoding: options.encoding ?? 'msgpack',
      fsync: options.fsync ?? false,
      maxBytes: options.maxBytes ?? DEFAULT_MAX_BYTES,
    });
    this.configureHooks(options);
  }

  private configureHooks(options: SpoolerOptions): void {
    checkBehaviourOptions({ hooks: options.hooks, hookTimeout: options.hookTimeout }, `Spooler.open(${this.layout.root})`);
    if (options.hookTimeout !== undefined) this.hookTimeoutMs = toMs(options.hookTimeout, 'hookTimeout');
    if (options.hooks !== undefined) this.addHooks(options.hooks);
  }

  /**
   * Adds lifecycle hooks for every task run from this spooler (runtime/task-behaviour.ts
   * says when each is called). Returns a function that removes them again.
   */
  addHooks(hooks: TaskHooks): () => void {
    checkHooks(hooks, `spooler.addHooks() on ${this.dir}`);
    this.spoolerHooks.push(hooks);
    behaviourCount.n++;
    this.behaviours.clear();
    return () => {
      const i = this.spoolerHooks.indexOf(hooks);
      if (i < 0) return;
      this.spoolerHooks.splice(i, 1);
      behaviourCount.n--;
      this.behaviours.clear();
    };
  }

  /**
   * What runs around `task` besides its function (hooks, retry filter), or
   * undefined when nothing does; for the runner. Undefined also when this
   * spooler did not register the task.
   */
  behaviourOf(task: Pick<TaskFile, 'name' | 'body'>): Behaviour | undefined {
    const key = task.body.type === FCALL ? task.name : '';
    let b = this.behaviours.get(key);
    if (b === undefined) {
      const own = task.body.type === FCALL ? this.tasks.get(task.name)?.options : undefined;
      const hooks = [...(own?.hooks !== undefined ? [own.hooks] : []), ...this.spoolerHooks];
      b =
        hooks.length === 0 && own?.retryOn === undefined && own?.noRetryOn === undefined
          ? null
          : {
              retryOn: own?.retryOn,
              noRetryOn: own?.noRetryOn,
              hooks,
              hookTimeoutMs: own?.hookTimeout !== undefined ? toMs(own.hookTimeout, 'hookTimeout') : this.hookTimeoutMs,
            };
      this.behaviours.set(key, b);
    }
    return b ?? undefined;
  }

  /** Whether this spooler registered code for `task` (a function by its name, or a handler for its type). */
  runs(task: Pick<TaskFile, 'name' | 'body'>): boolean {
    return task.body.type === FCALL ? this.tasks.has(task.name) : this.taskTypeHandlers.has(task.body.type);
  }

  /**
   * The spooler over `dir`, created (with its directories) on first use. Every
   * path to the same directory gives the same Spooler; options apply on creation.
   */
  static open(dir: string, options: SpoolerOptions = {}): Spooler {
    if (inlineFromEnv()) return Spooler.openInline(resolve(dir), resolve(dir), options);
    const layout = new SpoolLayout(dir).ensure();
    const key = realpathSync(layout.root);
    let spooler = spoolers.get(key);
    if (spooler === undefined) {
      spooler = new Spooler(key, options);
      spoolers.set(key, spooler);
      spoolerList = [...spoolers.values()];
    }
    return spooler;
  }

  /**
   * A spooler with no directory, in the inline test mode (runtime/inline.ts):
   * its tasks run in this process. Each call makes a new one.
   */
  static inline(options: SpoolerOptions & InlineOptions = {}): Spooler {
    inlineSpoolers++;
    return Spooler.openInline(`inline:${inlineSpoolers}`, resolve(`.spoolerd-inline-${process.pid}-${inlineSpoolers}`), options);
  }

  /** The inline spooler registered under `key` (made inline on first use): its directory is never created. */
  private static openInline(key: string, dir: string, options: SpoolerOptions & InlineOptions): Spooler {
    let spooler = spoolers.get(key);
    if (spooler === undefined) {
      spooler = new Spooler(dir, options);
      spoolers.set(key, spooler);
      spoolerList = [...spoolers.values()];
    }
    spooler.runInline(options);
    return spooler;
  }

  /**
   * Switches this spooler to the inline test mode (runtime/inline.ts): from now
   * on its enqueues run the tasks in this process, result(), wait() and
   * cancel() answer from memory, and its directory is not touched (nor needs
   * to exist). Returns the runner (idle(), history, logs); called again, the
   * same runner with the options changed.
   */
  runInline(options: InlineOptions = {}): InlineRunner {
    if (this.inlineRunner !== undefined) return this.inlineRunner.configure(options);
    return (this.inlineRunner = new InlineRunner(this, options));
  }

  /** The inline runner, when this spooler is in the inline test mode. */
  get inline(): InlineRunner | undefined {
    return this.inlineRunner;
  }

  /** Inline test mode: resolves once every task enqueued (and every task they enqueued) has ended (InlineRunner.idle()). */
  drain(options: WaitOptions = {}): Promise<void> {
    if (this.inlineRunner === undefined) return Promise.reject(new InvalidOptionError(`spooler.drain() is for the inline test mode (spooler.runInline()); ${this.dir} is served by daemons`));
    return this.inlineRunner.idle(options);
  }

  /** The spooler over $SPOOL_DIR, or ./spool. spoolerd sets SPOOL_DIR for the modules it imports. */
  static fromEnv(options: SpoolerOptions = {}): Spooler {
    return Spooler.open(process.env.SPOOL_DIR || './spool', options);
  }

  /** All spoolers opened in this process, in the order they were opened. */
  static getSpoolers(): readonly Spooler[] {
    // Another copy of spoolerd in this process may have added to the shared map.
    if (spoolerList.length !== spoolers.size) spoolerList = [...spoolers.values()];
    return spoolerList;
  }

  /** The first spooler whose directory's base name is `name` (e.g. "mail" for /var/spool/mail). */
  static getByBasename(name: string): Spooler | undefined {
    for (const spooler of spoolers.values()) if (spooler.basename === name) return spooler;
    return undefined;
  }

  /** Reads and checks any task file. Throws InvalidTaskFileError with the reason. */
  static readTaskFile(path: string, maxBytes: number = DEFAULT_MAX_BYTES): TaskFile {
    return readTaskFile(resolve(path), maxBytes);
  }

  get dir(): string {
    return this.layout.root;
  }

  get basename(): string {
    return basename(this.layout.root);
  }

  /**
   * Registers `fn` as a task and returns a wrapper whose calls enqueue it. The
   * name defaults to the function's name; another function under the same name
   * on this spooler is a TaskNameCollisionError.
   */
  task<A extends unknown[], R>(fn: (...args: A) => R, options: TaskOptions = {}): TaskFunction<A, R> {
    const name = options.name ?? fn.name;
    if (!name) throw new InvalidOptionError('the task function has no name; pass one with spooler.task(fn, { name: "..." })');
    checkTaskName(name);
    validateEnqueueOptions(options);
    checkBehaviourOptions(options, `task "${name}"`);
    const limits = toTaskLimits(options, `task "${name}"`);
    const conversion = compileConversion(name, options);
    const existing = this.tasks.get(name);
    if (existing !== undefined && existing.fn !== fn) throw new TaskNameCollisionError(name, this.dir);
    if (existing === undefined && hasBehaviour(options)) behaviourCount.n++;
    const plain = fn as (...args: unknown[]) => unknown;
    // A task without conversion is called as it is: nothing is added to its run.
    const call = conversion === undefined ? (args: readonly unknown[]) => plain(...args) : (args: readonly unknown[]) => callConverted(conversion, plain, args);
    const handler = conversion === undefined ? (t: TaskFile) => plain(...(t.body.args ?? [])) : (t: TaskFile) => callConverted(conversion, plain, t.body.args ?? []);
    this.tasks.set(name, { fn: fn as RegisteredTask['fn'], call, handler, options, ...(limits !== undefined && { limits }) });
    this.behaviours.delete(name);

    const enqueueWith = (overrides: EnqueueOptions) => (...args: A) =>
      this.enqueue({ name, args, options: { ...options, ...overrides } });
    const wrapper = enqueueWith({}) as TaskFunction<A, R>;
    Object.defineProperties(wrapper, {
      with: { value: (overrides: EnqueueOptions) => (validateEnqueueOptions(overrides), enqueueWith(overrides)) },
      // Marked (not enumerably) with its spooler, so that chain(request, …) knows where to enqueue.
      request: { value: (...args: A): TaskRequest => Object.defineProperty({ name, args, options }, REQUEST_SPOOLER, { value: this }) },
      then: { value: (next: Step) => thenOf(wrapper, next) },
      step: { value: (...args: unknown[]): TaskRequest => Object.defineProperty({ name, args, options }, REQUEST_SPOOLER, { value: this }) },
      taskName: { value: name },
      spooler: { value: this },
      fn: { value: fn },
      options: { value: Object.freeze({ ...options }) },
    });
    return wrapper;
  }

  /**
   * Registers `fn` as a task (as task() does; a wrapper task() returned is taken
   * as it is) and a schedule that enqueues it at each slot: `{ every: '10m' }` or
   * `{ cron: '0 3 * * *', tz: 'Europe/Berlin' }`. Every daemon that imports the
   * module runs the schedule, and each slot is enqueued exactly once among them
   * (SPOOL-FORMAT.md, "Schedules"). Returns the task's wrapper, to enqueue it by hand too.
   */
  periodic<A extends unknown[], R>(fn: ((...args: A) => R) | TaskFunction<A, R>, options: PeriodicOptions): TaskFunction<A, R> {
    const { every, cron, tz, catchUp, catchUpLimit, args, schedule, ...taskOptions } = options;
    const wrapper = isTaskFunction<A, R>(fn) ? fn : this.task(fn, taskOptions);
    if (wrapper.spooler !== this) throw new InvalidOptionError(`spooler.periodic(): task "${wrapper.taskName}" is registered on another spool (${wrapper.spooler.dir})`);
    const own = wrapper.options;
    const spec = checkSchedule(
      { name: schedule, task: wrapper.taskName, every, cron, tz, catchUp, catchUpLimit, args: args === undefined ? undefined : trimTrailingUndefined(args), priority: own.priority },
      `spooler.periodic(${wrapper.taskName})`,
      toMs,
    );
    const fields = scheduleTaskFields(own);
    if (fields !== undefined) spec.fields = fields;
    // Checked here, so that a value that cannot be stored fails at import rather than at the first slot.
    encodeWire(toWire(spec.args, 'msgpack', `spooler.periodic(${wrapper.taskName}) args`), 'msgpack');
    const existing = this.scheduleSpecs.get(spec.name);
    if (existing !== undefined && JSON.stringify(existing) !== JSON.stringify(spec)) {
      throw new InvalidOptionError(`schedule "${spec.name}" is defined twice on ${this.dir}, differently; give one of them another name with { schedule: "..." }`);
    }
    this.scheduleSpecs.set(spec.name, spec);
    return wrapper;
  }

  /** The schedules defined with periodic(), for the daemon (plain JSON). */
  get schedules(): ScheduleSpec[] {
    return [...this.scheduleSpecs.values()];
  }

  /** The function registered under `name`, for the daemon. */
  getTaskFunction(name: string): ((...args: unknown[]) => unknown) | undefined {
    return this.tasks.get(name)?.fn as ((...args: unknown[]) => unknown) | undefined;
  }

  /**
   * How the runner calls the task registered under `name` with a task file's
   * arguments: the function itself, or (with params, converters, validate or
   * returns) through its conversion (runtime/converters.ts). For the daemon and inline runs.
   */
  getTaskCall(name: string): ((args: readonly unknown[]) => unknown) | undefined {
    return this.tasks.get(name)?.call;
  }

  /** getTaskCall() taking a task file (its body's args), for the daemon's runners. */
  getTaskHandler(name: string): TaskTypeHandler | undefined {
    return this.tasks.get(name)?.handler;
  }

  /** The concurrency and rate limits of the tasks that have any (runtime/limits.ts), for the daemon and its runners. */
  taskLimits(): Array<[name: string, limits: TaskLimits]> {
    const out: Array<[string, TaskLimits]> = [];
    for (const [name, t] of this.tasks) if (t.limits !== undefined) out.push([name, t.limits]);
    return out;
  }

  /** Names of the registered task functions. */
  get taskNames(): string[] {
    return [...this.tasks.keys()];
  }

  /** Registers the handler for tasks of a type other than fcall (e.g. 'message'). */
  registerTaskType(type: string, handler: TaskTypeHandler): void {
    if (type === FCALL) throw new InvalidOptionError('"fcall" is built in; register functions with spooler.task()');
    checkTaskType(type);
    if (this.taskTypeHandlers.has(type)) throw new InvalidOptionError(`task type "${type}" already has a handler on ${this.dir}`);
    this.taskTypeHandlers.set(type, handler);
  }

  /** Task types other than fcall that have a handler here (registerTaskType()). */
  get taskTypes(): string[] {
    return [...this.taskTypeHandlers.keys()];
  }

  getTaskTypeHandler(type: string): TaskTypeHandler | undefined {
    return this.taskTypeHandlers.get(type);
  }

  /** Enqueues a non-function task: a message (and payload) for the handler of its type. */
  async sendMessageRaw(message: string, options: MessageOptions = {}): Promise<TaskHandle> {
    if (typeof message !== 'string') throw new InvalidOptionError('the message must be a string; put structured data in { payload }');
    const type = options.type ?? MESSAGE;
    checkTaskType(type);
    if (type === FCALL) throw new InvalidOptionError('sendMessageRaw() cannot send "fcall" tasks; call the wrapper that spooler.task() returned');
    const body: Omit<TaskBody, 'version'> = { type, message };
    if (options.payload !== undefined) body.payload = options.payload;
    if (this.inlineRunner !== undefined) return this.enqueueInline(type, [], options, (due) => this.encode(type, body, options, due));
    if (options.unique !== undefined) return this.enqueueUnique(type, [], options, (due) => this.encode(type, body, options, due));
    const encoded = this.encode(type, body, options);
    return this.handle(encoded, type, options, await this.writeOne(encoded));
  }

  /** Enqueues one function call by task name (the wrapper from task() calls this). */
  async enqueue(request: TaskRequest): Promise<TaskHandle> {
    const options = request.options ?? {};
    if (this.inlineRunner !== undefined) return this.enqueueInline(request.name, request.args ?? [], options, (due) => this.encodeRequest(request, due));
    if (options.unique !== undefined) return this.enqueueUnique(request.name, request.args ?? [], options, (due) => this.encodeRequest(request, due));
    const encoded = this.encodeRequest(request);
    const path = await this.writeOne(encoded);
    return this.handle(encoded, request.name, options, path);
  }

  /** An enqueue in the inline test mode: the task's handle (it has no file: path ''), or a unique key's holder's. */
  private async enqueueInline(name: string, args: readonly unknown[], options: EnqueueOptions, encode: (due?: number) => EncodedTask): Promise<TaskHandle> {
    const key = options.unique === undefined ? undefined : uniqueKeyOf(options.unique, args, name);
    const added = this.inlineRunner!.enqueue(name, key, options.uniqueMode ?? 'keep', encode);
    if (added.added) return this.handle(added.encoded, name, options, '');
    const held = added.holder;
    return new EnqueuedTask(this, held.id, name, held.fileName, '', held.priority, held.due, true);
  }

  /**
   * A chain on this spool (runtime/chains.ts): `first` (fn.request(...args)), then each of `next`
   * (a request or a task wrapper) with the value of the step before it as first argument.
   * `.onError(step)` adds a callback for a step that ends dead; `.enqueue()` writes the first task.
   */
  chain(first: TaskRequest, ...next: Step[]): ChainRequest {
    return chainOn(this, first, next);
  }

  /** Enqueues one function call whose body also carries `chain` and `onError` (runtime/chains.ts; not for unique keys). */
  async enqueueFlow(request: TaskRequest, flow: Pick<TaskBody, 'chain' | 'onError'>): Promise<TaskHandle> {
    const options = request.options ?? {};
    if (this.inlineRunner !== undefined) return this.enqueueInline(request.name, request.args ?? [], { ...options, unique: undefined }, (due) => this.encodeRequest(request, due, flow));
    const encoded = this.encodeRequest(request, undefined, flow);
    const path = await this.writeOne(encoded);
    return this.handle(encoded, request.name, options, path);
  }

  /** An enqueue with a unique key (runtime/unique-enqueue.ts): the new task's handle, or the holder's. */
  private async enqueueUnique(name: string, args: readonly unknown[], options: EnqueueOptions, encode: (due?: number) => EncodedTask): Promise<TaskHandle> {
    const key = uniqueKeyOf(options.unique!, args, name);
    const outcome = await enqueueUnique({
      layout: this.layout,
      taskName: name,
      key,
      mode: options.uniqueMode ?? 'keep',
      while: options.uniqueWhileRunning === true ? 'running' : 'pending',
      encode,
      write: this.options,
    });
    if (outcome.added) return this.handle(outcome.encoded, name, options, outcome.path);
    const held = parseTaskName(outcome.holder.file)!;
    return new EnqueuedTask(this, held.id, name, outcome.holder.file, join(this.layout.incoming, outcome.holder.file), held.priority, held.due, true);
  }

  /**
   * Writes one task file: tmp/, then rename into incoming/ (spool/protocol.ts).
   * On a local filesystem, a small file without fsync is written with blocking
   * calls: open, write, close and rename take microseconds each there, while
   * four trips through libuv's thread pool cost more than the calls and are
   * most of a task's pickup time through the runtime (BENCHMARKS.md, "Pickup,
   * stage by stage"). With fsync, a large body, or a network filesystem (where
   * each call waits on a server), the event loop is not blocked.
   */
  private writeOne(encoded: EncodedTask): Promise<string> | string {
    this.writesInline ??= !this.options.fsync && filesystemKind(this.layout.root)?.remote === false;
    if (this.writesInline && encoded.bytes.length <= INLINE_WRITE_MAX_BYTES) return writeTaskSync(this.layout, encoded.fileName, encoded.bytes, this.options);
    return writeTask(this.layout, encoded.fileName, encoded.bytes, this.options);
  }

  /**
   * Enqueues many tasks at once, for high rates. Every request is checked and
   * encoded before the first file is written, so a bad argument enqueues nothing.
   * All or nothing: every file is written under tmp/ first, then all are renamed
   * into incoming/; if any write or rename fails (a full disk), the batch is
   * withdrawn and BatchNotEnqueuedError says so (and names any task a daemon
   * took meanwhile). Blocking calls in slices, yielding to the event loop
   * between slices.
   */
  async enqueueMany(requests: readonly TaskRequest[]): Promise<TaskHandle[]> {
    for (const r of requests) if (r.options?.unique !== undefined) throw new InvalidOptionError(`enqueueMany() cannot take unique keys (task ${r.name}); enqueue tasks with a key one by one`);
    const encoded = requests.map((request) => this.encodeRequest(request));
    if (this.inlineRunner !== undefined) return this.enqueueManyInline(requests, encoded);
    const slice = 512;
    const yieldEvery = async (i: number) => {
      if (i > 0 && i % slice === 0) await new Promise<void>((done) => setImmediate(done));
    };
    let staged = 0;
    try {
      for (; staged < encoded.length; staged++) {
        await yieldEvery(staged);
        stageTaskSync(this.layout, encoded[staged]!.fileName, encoded[staged]!.bytes, this.options);
      }
    } catch (err) {
      for (let j = 0; j < staged; j++) discardStagedSync(this.layout, encoded[j]!.fileName);
      throw new BatchNotEnqueuedError(encoded.length, [], err);
    }
    const handles: TaskHandle[] = [];
    try {
      for (let j = 0; j < encoded.length; j++) {
        await yieldEvery(j);
        const e = encoded[j]!;
        const request = requests[j]!;
        handles.push(this.handle(e, request.name, request.options ?? {}, publishStagedSync(this.layout, e.fileName)));
      }
    } catch (err) {
      const taken: string[] = [];
      for (const h of handles) if (!withdrawPublishedSync(this.layout, h.fileName)) taken.push(h.id);
      for (let j = handles.length; j < encoded.length; j++) discardStagedSync(this.layout, encoded[j]!.fileName);
      throw new BatchNotEnqueuedError(encoded.length, taken, err);
    }
    if (this.options.fsync) fsyncDirSync(this.layout.incoming);
    return handles;
  }

  /** enqueueMany() inline: every request was checked and encoded (all or nothing); now each is added. */
  private async enqueueManyInline(requests: readonly TaskRequest[], encoded: EncodedTask[]): Promise<TaskHandle[]> {
    return encoded.map((e, j) => {
      this.inlineRunner!.enqueue(requests[j]!.name, undefined, 'keep', () => e);
      return this.handle(e, requests[j]!.name, requests[j]!.options ?? {}, '');
    });
  }

  /**
   * The value of task `id` once a daemon has processed it, from any process (see TaskHandle.result()).
   * All waiters of a process share one watch on results/.
   */
  wait(id: string, options: WaitOptions = {}): Promise<unknown> {
    if (this.inlineRunner !== undefined) return this.inlineRunner.wait(id, options);
    if (options.onProgress === undefined) return waitForResult(this.layout, id, options);
    const stop = this.onProgress(id, options.onProgress);
    return waitForResult(this.layout, id, options).finally(stop);
  }

  /**
   * Calls `listener` with each progress task `id` reports (ctx.progress()), from any process; the
   * value there now at once. Returns the function that stops it. All listeners of a process share
   * one watch on progress/ (runtime/progress-watch.ts); it does not keep the process alive.
   */
  onProgress(id: string, listener: ProgressListener): () => void {
    if (this.inlineRunner !== undefined) return this.inlineRunner.onProgress(id, listener);
    return progressWatch(this.layout).follow(id, listener);
  }

  /** The last progress task `id` reported, while it runs; undefined when it reported none or is not running. */
  progressOf(id: string): Progress | undefined {
    if (typeof id !== 'string' || !TASK_ID_PATTERN.test(id)) throw new InvalidOptionError(`spooler.progressOf(): ${JSON.stringify(id)} is not a task id`);
    if (this.inlineRunner !== undefined) return this.inlineRunner.progressOf(id);
    return readProgress(this.layout, id);
  }

  /** The result record of task `id` once there is one, whatever the ending (spool wait uses it). */
  waitRecord(id: string, options: WaitOptions = {}): Promise<ResultRecord> {
    if (this.inlineRunner !== undefined) return this.inlineRunner.waitRecord(id, options);
    return resultWatch(this.layout).record(id, options);
  }

  /**
   * Cancels the task `id`. A waiting task is revoked (it never runs): 'revoked'.
   * A running one gets a request in cancel/ that the daemon holding it acts on
   * within a fraction of a second (its AbortSignal fires with a
   * TaskCancelledError; it is killed --kill-grace later if it has not
   * stopped; it ends as cancelled, not retried): 'requested'. 'not-found' when
   * no task with that id waits or runs (it finished, is a dead letter, or never was).
   * Its children (ctx.enqueueChild…) that have not ended are cancelled too, recursively, and its continuation is
   * never enqueued; for a task that has ended but has children: { kind: 'children', children: how many were cancelled }.
   */
  cancel(id: string): CancelResult {
    if (typeof id !== 'string' || !TASK_ID_PATTERN.test(id)) throw new InvalidOptionError(`spooler.cancel(): ${JSON.stringify(id)} is not a task id (the id of a TaskHandle)`);
    if (this.inlineRunner !== undefined) return this.inlineRunner.cancel(id);
    return cancelTask(this.layout, id);
  }

  /** Pending tasks (incoming/ and pending/), in execution order, by name only. */
  getTasks(): SpoolEntry[] {
    if (this.inlineRunner !== undefined) return this.inlineRunner.waitingTasks().map((t) => ({ state: t.due > Date.now() ? 'scheduled' : 'due', location: 'incoming', fileName: t.fileName, path: '', task: t, body: t.body }));
    return listByName(this.layout, ['incoming', 'pending']);
  }

  /**
   * @internal For children of a flow (runtime/children.ts): `request` encoded
   * under a known id with the flow's body fields. Unique keys do not apply
   * (enqueueChildOnce is keyed by its id).
   */
  encodeChild(request: TaskRequest, id: string, extra: Pick<TaskBody, 'flow' | 'flowPool' | 'keepResult'>): EncodedTask {
    checkTaskName(request.name);
    const { unique: _u, uniqueMode: _m, uniqueWhileRunning: _w, keepResult: _k, ...options } = request.options ?? {};
    const args = trimTrailingUndefined(request.args ?? []);
    return this.encode(request.name, { type: FCALL, args: args as TaskBody['args'], ...extra }, options, undefined, id);
  }

  /** @internal Writes a task encoded by encodeChild() into incoming/; its handle. */
  async publishEncoded(encoded: EncodedTask, request: TaskRequest): Promise<TaskHandle> {
    return this.handle(encoded, request.name, request.options ?? {}, await this.writeOne(encoded));
  }

  /** @internal The handle of a task enqueued before (a child enqueued once): its file name is not known here. */
  handleOfExisting(id: string, name: string, priority = PRIORITY_DEFAULT, existing = true): TaskHandle {
    return new EnqueuedTask(this, id, name, '', '', priority, Number(id.slice(0, 13)), existing ? true : undefined);
  }

  private encodeRequest(request: TaskRequest, due?: number, flow?: Pick<TaskBody, 'chain' | 'onError'>): EncodedTask {
    checkTaskName(request.name);
    const options = request.options ?? {};
    const args = trimTrailingUndefined(request.args ?? []);
    return this.encode(request.name, { type: FCALL, args: args as TaskBody['args'], ...flow }, options, due);
  }

  /** `dueOverride`: a due time in spool time (preserve-due), instead of the postpone option's. */
  private encode(name: string, base: Omit<TaskBody, 'version'>, options: EnqueueOptions, dueOverride?: number, id?: string): EncodedTask {
    const priority = options.priority ?? PRIORITY_DEFAULT;
    checkPriority(priority);
    const clock = this.spoolClock();
    const now = clock.now();
    const body: Omit<TaskBody, 'version'> = { ...base };
    const retry = toRetrySpec(options.retries, options.backoff);
    if (retry !== undefined) body.retry = retry;
    if (options.timeout !== undefined) body.timeout = positiveMs(options.timeout, 'timeout');
    const parent = options.parent ?? currentTask()?.id;
    if (parent !== undefined) body.parent = parent;
    if (options.meta !== undefined) body.meta = options.meta;
    if (options.keepResult !== undefined) body.keepResult = toMs(options.keepResult, 'keepResult');
    if (options.unique !== undefined) {
      body.unique = uniqueKeyOf(options.unique, (base.args ?? []) as readonly unknown[], name);
      if (options.uniqueWhileRunning === true) body.uniqueWhile = 'running';
    }
    if (options.expires !== undefined) body.expires = dueTime(options.expires, clock, now);
    return encodeTask(
      { name, priority, due: dueOverride ?? dueTime(options.postpone, clock, now), body, encoding: options.encoding ?? this.options.encoding, now, ...(id !== undefined && { id }) },
      this.options.maxBytes,
    );
  }

  private spoolClock(): SpoolClock {
    const t = performance.now();
    // Inline, nothing is written: this host's clock is the spool's.
    if (t >= this.clockSampleDue && this.inlineRunner === undefined) {
      this.clockSampleDue = t + CLOCK_RESAMPLE_MS;
      try {
        this.clock.add(sampleClockSync(this.layout.tmp));
      } catch {
        // tmp/ not writable: the enqueue itself fails with a clear error. Until then, the last estimate (or this host's clock).
      }
    }
    return this.clock;
  }

  private handle(encoded: EncodedTask, name: string, options: EnqueueOptions, path: string): TaskHandle {
    return new EnqueuedTask(this, encoded.id, name, encoded.fileName, path, options.priority ?? PRIORITY_DEFAULT, encoded.due);
  }
}

/** How many inline spoolers Spooler.inline() made in this process (each gets its own registry key). */
let inlineSpoolers = 0;

/** SPOOLERD_INLINE=1 (or true, yes): Spooler.open() gives inline spoolers and creates no folder (the inline test mode). */
function inlineFromEnv(): boolean {
  const v = process.env.SPOOLERD_INLINE;
  return v !== undefined && ['1', 'true', 'yes'].includes(v.toLowerCase());
}

/** How often a Spooler samples the spool clock again (at an enqueue): offsets drift slowly. */
const CLOCK_RESAMPLE_MS = 60_000;

/**
 * A task's due time in spool time. Now (no postpone) is the judging time, which
 * is never ahead of the server's; a postponed task's due time is stamped with
 * the upper bound so that it never falls due early. A Date is a time on this
 * host's clock, converted like the rest.
 */
function dueTime(postpone: Postpone | undefined, clock: SpoolClock, now: number): number {
  if (postpone === undefined) return now;
  if (postpone instanceof Date) return toDueTime(new Date(clock.toSpoolStamp(postpone.getTime())), now);
  return toDueTime(postpone, clock.stampAt(now));
}

/** Checks options when a task is defined, so mistakes surface at import time rather than at the first call. */
function validateEnqueueOptions(options: EnqueueOptions): void {
  if (options.priority !== undefined) checkPriority(options.priority);
  if (options.postpone !== undefined) toDueTime(options.postpone, Date.now());
  toRetrySpec(options.retries, options.backoff);
  if (options.timeout !== undefined) positiveMs(options.timeout, 'timeout');
  if (options.keepResult !== undefined) toMs(options.keepResult, 'keepResult');
  if (options.expires !== undefined) toDueTime(options.expires, Date.now());
  if (options.unique !== undefined && typeof options.unique !== 'function') checkUniqueKey(options.unique, 'unique');
  if (options.uniqueMode !== undefined && !UNIQUE_MODES.includes(options.uniqueMode)) throw new InvalidOptionError(`uniqueMode must be one of ${UNIQUE_MODES.join(', ')}, got ${JSON.stringify(options.uniqueMode)}`);
  if (options.uniqueMode !== undefined && options.unique === undefined) throw new InvalidOptionError('uniqueMode needs a unique key (the unique option)');
}

/** The unique key of a call: the option itself, or what its function makes of the arguments. */
function uniqueKeyOf(unique: string | UniqueKeyOf, args: readonly unknown[], taskName: string): string {
  const key = typeof unique === 'function' ? (unique as (...a: unknown[]) => unknown)(...args) : unique;
  return checkUniqueKey(key, typeof unique === 'function' ? `the unique key function of task ${taskName}` : 'unique');
}

function checkUniqueKey(key: unknown, what: string): string {
  if (typeof key !== 'string' || key.length === 0 || [...key].length > UNIQUE_KEY_MAX) {
    throw new InvalidOptionError(`${what} must give a key: a string of 1 to ${UNIQUE_KEY_MAX} characters, got ${typeof key === 'string' ? `${key.length} characters` : typeof key}`);
  }
  return key;
}

function hasBehaviour(options: TaskOptions): boolean {
  return options.hooks !== undefined || options.retryOn !== undefined || options.noRetryOn !== undefined;
}

function checkTaskType(type: string): void {
  if (!TASK_TYPE_PATTERN.test(type)) {
    throw new InvalidOptionError(`task type ${JSON.stringify(type)} must be a lowercase identifier: a-z first, then a-z, 0-9, "_" or "-", at most 64 characters`);
  }
}

function positiveMs(value: Duration, what: string): number {
  const ms = toMs(value, what);
  if (ms <= 0) throw new InvalidOptionError(`${what} must be more than 0 ms`);
  return ms;
}

/** `f(a, undefined)` and `f(a)` are the same call in JavaScript; store the shorter. */
function trimTrailingUndefined(args: readonly unknown[]): readonly unknown[] {
  let end = args.length;
  while (end > 0 && args[end - 1] === undefined) end--;
  return end === args.length ? args : args.slice(0, end);
}

/** fn.then(next); called by a promise's resolution instead (the wrapper was awaited), says what went wrong. */
function thenOf<A extends unknown[]>(fn: TaskFunction<A, unknown>, next: Step): ChainedFunction<A> {
  if (typeof next === 'function' && typeof (next as { taskName?: unknown }).taskName !== 'string') {
    throw new InvalidOptionError(`task ${fn.taskName}'s wrapper was awaited or returned from an async function; it has a then() method (chains) and so looks like a promise: call it (await ${fn.taskName}(...)) instead, or wrap it in an object`);
  }
  return chainedFunction(fn, [], undefined).then(next);
}

function isTaskFunction<A extends unknown[], R>(fn: unknown): fn is TaskFunction<A, R> {
  return typeof fn === 'function' && typeof (fn as Partial<TaskFunction<A, R>>).taskName === 'string' && (fn as Partial<TaskFunction<A, R>>).spooler instanceof Spooler;
}

/** The body fields a periodic task's options give each of its tasks (as encode() would). */
function scheduleTaskFields(options: Readonly<TaskOptions>): ScheduleTaskFields | undefined {
  const fields: ScheduleTaskFields = {};
  const retry = toRetrySpec(options.retries, options.backoff);
  if (retry !== undefined) fields.retry = retry as ScheduleTaskFields['retry'];
  if (options.timeout !== undefined) fields.timeout = positiveMs(options.timeout, 'timeout');
  if (options.keepResult !== undefined) fields.keepResult = toMs(options.keepResult, 'keepResult');
  return Object.keys(fields).length > 0 ? fields : undefined;
}
