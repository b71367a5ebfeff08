/**
 * Waiting for a task's result in a process other than the daemon:
 * `handle.result()`, `spooler.wait(id)` and `spool wait` (cli/commands/wait.ts).
 *
 * One ResultWatch per results/ folder in a process, shared by every waiter:
 * one fs.watch (one inotify watch) on the folder however many results are
 * awaited, so 10,000 waiters cost 10,000 map entries and timers, not 10,000
 * watches. Where a watch cannot be had (inotify watches used up, a
 * filesystem without it) it polls instead. A watch misses what other hosts
 * write on a network filesystem, and the kernel may drop events, so a slow
 * rescan runs beside it. Never a busy loop:
 *
 *   idle --first waiter--> watching (fs.watch + rescan every RESCAN_MS)
 *                       '-> polling (watch refused: rescan every POLL_MS)
 *   watching --watch errors--> polling
 *   watching | polling --last waiter gone--> idle (watch closed, timer cleared)
 *
 * A rescan of a few waiters opens their records by name; of many, lists the
 * folder once. A record is read when its name appears (it is renamed into
 * place whole: spool/protocol.ts keepResult), and each waiter of that id settles.
 */
import { readdirSync, watch, type FSWatcher } from 'node:fs';
import type { SpoolLayout } from '../spool/layout.js';
import { SpoolError, InvalidOptionError } from '../spool/errors.js';
import { TASK_ID_PATTERN } from '../spool/name.js';
import { parseResultFileName, readResult, readResultFile, type RemoteErrorInfo, type ResultRecord, type TaskEnding } from '../spool/results.js';
import { toMs, type Duration } from './duration.js';
import type { Progress } from '../spool/progress.js';

export interface WaitOptions {
  /** Give up after this long (ms or "30s"): ResultTimeoutError. Default: wait as long as it takes. */
  timeout?: Duration;
  /** Called with each progress the task reports while it is waited for (ctx.progress(); runtime/progress-watch.ts). */
  onProgress?: (progress: Progress) => void;
}

/** The task did not end as processed: `ending` says how, `record` is its result record. */
export class TaskNotProcessedError extends SpoolError {
  constructor(
    code: string,
    message: string,
    readonly ending: TaskEnding,
    readonly record: ResultRecord,
  ) {
    super(code, message);
  }
}

/** The task became a dead letter: `remote` is its final error (name, message and stack as thrown in the daemon). */
export class TaskFailedError extends TaskNotProcessedError {
  readonly remote: RemoteErrorInfo;
  constructor(record: ResultRecord) {
    const remote = record.error ?? { message: record.reason ?? 'no error was recorded' };
    super('SPOOL_TASK_DEAD', `task ${record.name} ${record.id} is a dead letter after ${record.attempts} attempt(s): ${remote.name ?? 'Error'}: ${remote.message} (spool show ${record.id}; spool retry ${record.id} to run it again)`, 'dead', record);
    this.remote = remote;
    if (remote.stack !== undefined) this.stack = `${this.name}: ${this.message}\n    --- the task's error, in the daemon ---\n${remote.stack}`;
  }
}

export class TaskSkippedError extends TaskNotProcessedError {
  constructor(record: ResultRecord) {
    super('SPOOL_TASK_SKIPPED', `task ${record.name} ${record.id} was skipped${reasonText(record)}`, 'skipped', record);
  }
}

export class TaskWasCancelledError extends TaskNotProcessedError {
  constructor(record: ResultRecord) {
    super('SPOOL_TASK_CANCELLED', `task ${record.name} ${record.id} was cancelled${reasonText(record)}`, 'cancelled', record);
  }
}

export class TaskExpiredError extends TaskNotProcessedError {
  constructor(record: ResultRecord) {
    super('SPOOL_TASK_EXPIRED', `task ${record.name} ${record.id} expired before it ran${reasonText(record)}`, 'expired', record);
  }
}

/** Processed, but its value could not be kept (the record says why): the task ran and will not run again. */
export class ResultValueLostError extends TaskNotProcessedError {
  constructor(record: ResultRecord) {
    super('SPOOL_RESULT_VALUE_LOST', `task ${record.name} ${record.id} was processed, but its value was not kept: ${record.valueError ?? 'unknown reason'}`, 'processed', record);
  }
}

/** No result within the timeout: the task may still be waiting or running, or may keep no result. */
export class ResultTimeoutError extends SpoolError {
  constructor(
    readonly id: string,
    readonly timeoutMs: number,
  ) {
    super(
      'SPOOL_RESULT_TIMEOUT',
      `no result for task ${id} within ${timeoutMs} ms: it may still be waiting or running (spool show ${id}), or it keeps no result ` +
        '(a result is kept only for tasks enqueued with keepResult, or by a daemon run with --keep-results)',
    );
  }
}

const reasonText = (r: ResultRecord): string => (r.reason === undefined ? '' : `: ${r.reason}`);

/** The value of a processed task, or the typed error for any other ending. */
export function settleRecord(record: ResultRecord): { value: unknown } | { error: TaskNotProcessedError } {
  switch (record.ending) {
    case 'processed':
      return record.valueError === undefined ? { value: record.value } : { error: new ResultValueLostError(record) };
    case 'skipped':
      return { error: new TaskSkippedError(record) };
    case 'dead':
      return { error: new TaskFailedError(record) };
    case 'cancelled':
      return { error: new TaskWasCancelledError(record) };
    case 'expired':
      return { error: new TaskExpiredError(record) };
  }
}

/** Rescan period beside a working watch (other hosts' writes, dropped events). */
export const RESCAN_MS = 1000;
/** Rescan period where no watch could be had. */
export const POLL_MS = 250;
/** Up to this many waiters a rescan opens each record by name; above it lists the folder once. */
const OPEN_EACH_UP_TO = 64;

interface Waiter {
  resolve(record: ResultRecord): void;
  reject(error: Error): void;
  timer?: NodeJS.Timeout;
}

type Mode = 'idle' | 'watching' | 'polling';

/** The watch over one results/ folder, shared by all waiters of this process. */
export class ResultWatch {
  private readonly waiters = new Map<string, Waiter[]>();
  private mode: Mode = 'idle';
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly layout: SpoolLayout) {}

  /** How many tasks are awaited, and how (tests, the benchmark). */
  get stats(): { ids: number; mode: Mode } {
    return { ids: this.waiters.size, mode: this.mode };
  }

  /** The result record of task `id`, once there is one. */
  record(id: string, options: WaitOptions = {}): Promise<ResultRecord> {
    if (!TASK_ID_PATTERN.test(id)) return Promise.reject(new InvalidOptionError(`${JSON.stringify(id)} is not a task id (29 characters: 13 digits, then 16 hex digits)`));
    const timeoutMs = options.timeout === undefined ? undefined : toMs(options.timeout, 'timeout');
    return new Promise<ResultRecord>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject };
      let list = this.waiters.get(id);
      if (list === undefined) this.waiters.set(id, (list = []));
      list.push(waiter);
      // Watch first, then look: a record renamed in between is seen by one or the other.
      this.start();
      const found = readResult(this.layout, id);
      if (found.ok) return this.settle(id, found.record);
      if (timeoutMs !== undefined) {
        waiter.timer = setTimeout(() => {
          this.drop(id, waiter);
          reject(new ResultTimeoutError(id, timeoutMs));
        }, timeoutMs);
      }
    });
  }

  private start(): void {
    if (this.mode !== 'idle') return;
    try {
      this.watcher = watch(this.layout.results, { persistent: true }, (_event, fileName) => {
        if (typeof fileName === 'string') this.seen(fileName);
      });
      this.watcher.on('error', () => this.fallBackToPolling());
      this.setMode('watching', RESCAN_MS);
    } catch {
      this.setMode('polling', POLL_MS);
    }
  }

  private fallBackToPolling(): void {
    if (this.mode !== 'watching') return;
    this.watcher?.close();
    this.watcher = undefined;
    this.setMode('polling', POLL_MS);
  }

  private setMode(mode: Mode, every: number): void {
    const allowed: Record<Mode, Mode[]> = { idle: ['watching', 'polling'], watching: ['polling', 'idle'], polling: ['idle'] };
    if (!allowed[this.mode].includes(mode)) throw new Error(`result watch: cannot go from ${this.mode} to ${mode}`);
    this.mode = mode;
    clearInterval(this.timer);
    this.timer = mode === 'idle' ? undefined : setInterval(() => this.rescan(), every);
  }

  /** A name appeared (or changed) in results/. */
  private seen(fileName: string): void {
    const parsed = parseResultFileName(fileName);
    if (parsed === undefined || !this.waiters.has(parsed.id)) return;
    const r = readResultFile(this.layout.results + '/' + fileName, parsed.encoding);
    if (r.ok) this.settle(parsed.id, r.record);
  }

  private rescan(): void {
    if (this.waiters.size <= OPEN_EACH_UP_TO) {
      for (const id of [...this.waiters.keys()]) {
        const r = readResult(this.layout, id);
        if (r.ok) this.settle(id, r.record);
      }
      return;
    }
    let names: string[];
    try {
      names = readdirSync(this.layout.results);
    } catch {
      return;
    }
    for (const n of names) this.seen(n);
  }

  private settle(id: string, record: ResultRecord): void {
    const list = this.waiters.get(id);
    if (list === undefined) return;
    this.waiters.delete(id);
    for (const w of list) {
      clearTimeout(w.timer);
      w.resolve(record);
    }
    this.stopIfIdle();
  }

  private drop(id: string, waiter: Waiter): void {
    const list = this.waiters.get(id);
    if (list === undefined) return;
    const i = list.indexOf(waiter);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.waiters.delete(id);
    this.stopIfIdle();
  }

  private stopIfIdle(): void {
    if (this.waiters.size > 0 || this.mode === 'idle') return;
    this.watcher?.close();
    this.watcher = undefined;
    this.setMode('idle', 0);
  }
}

/** One watch per results/ folder in this process (by its path). */
const watches = new Map<string, ResultWatch>();

export function resultWatch(layout: SpoolLayout): ResultWatch {
  let w = watches.get(layout.results);
  if (w === undefined) watches.set(layout.results, (w = new ResultWatch(layout)));
  return w;
}

/** The value of task `id` once it is processed; rejects with a TaskNotProcessedError for any other ending, ResultTimeoutError after `timeout`. */
export async function waitForResult(layout: SpoolLayout, id: string, options: WaitOptions = {}): Promise<unknown> {
  const settled = settleRecord(await resultWatch(layout).record(id, options));
  if ('error' in settled) throw settled.error;
  return settled.value;
}
