/**
 * Spawning the real `spoolerd` binary (dist/cli/spoolerd.js, built by `npm
 * test` before vitest runs) on real directories, with task modules from
 * test/fixtures/tasks/.
 *
 * A daemon is started with --log-format json; every JSON line it writes to
 * stderr is kept in `logs`, so a test can wait for a line (waitForLog) or look
 * back at all of them. Every daemon started here is remembered until it exits:
 * call killLeftoverDaemons() in afterEach so a failed test never leaves one
 * running.
 *
 * Task fixtures append one JSON line per run to the file named by
 * $SPOOLERD_TEST_RECORDS (see test/fixtures/tasks/_record.mjs); readRecords()
 * parses it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { ROOT } from './cli.js';

export const SPOOLERD_BIN = join(ROOT, 'dist/cli/spoolerd.js');
export const TASK_FIXTURES = join(ROOT, 'test/fixtures/tasks');

/** The path of a task fixture: `fixture('basic')` is test/fixtures/tasks/basic.mjs. */
export function fixture(name: string): string {
  return isAbsolute(name) ? name : join(TASK_FIXTURES, name.endsWith('.mjs') ? name : `${name}.mjs`);
}

/** One JSON log line of the daemon. */
export interface LogLine {
  time: string;
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  [field: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface DaemonStartOptions {
  /** --dir (repeated for several); leave out for no --dir at all. */
  dir?: string | string[];
  /** --import: fixture names (see fixture()) or absolute paths; leave out for none. */
  imports?: string[];
  /** Further command-line arguments, e.g. ['--concurrency', '1']. */
  args?: string[];
  /** $SPOOLERD_TEST_RECORDS for the fixtures. */
  records?: string;
  /** Extra environment. SPOOL_DIR and SPOOLERD_* of the test's own environment are never passed on. */
  env?: NodeJS.ProcessEnv;
  /** Working directory (default: the repository). */
  cwd?: string;
  /** Pass --create (default true: most tests serve a spool that does not exist yet); false to test without it. */
  create?: boolean;
  /** Default 'json'; pass null for no --log-format option. */
  logFormat?: 'json' | 'pretty' | null;
  /**
   * A command prefix to run the daemon under, e.g. a host of the multi-host rig
   * (test/helpers/hosts.ts). Each part must exec the next, so that the spawned
   * pid is the daemon's own.
   */
  wrap?: string[];
}

const live = new Set<DaemonProcess>();

export class DaemonProcess {
  readonly child: ChildProcess;
  /** Every JSON line from stderr, in order. */
  readonly logs: LogLine[] = [];
  /** stderr lines that are not JSON (Node warnings, crashes). */
  readonly rawStderr: string[] = [];
  stdout = '';
  /** Resolves when the process has exited. */
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;
  readonly args: string[];
  private stderrRest = '';
  private readonly listeners = new Set<() => void>();

  constructor(options: DaemonStartOptions) {
    const args: string[] = [];
    for (const d of options.dir === undefined ? [] : Array.isArray(options.dir) ? options.dir : [options.dir]) args.push('--dir', d);
    for (const m of options.imports ?? []) args.push('--import', fixture(m));
    const format = options.logFormat === undefined ? 'json' : options.logFormat;
    if (format !== null) args.push('--log-format', format);
    if (options.create !== false) args.push('--create');
    args.push(...(options.args ?? []));
    this.args = args;

    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (k !== 'SPOOL_DIR' && !k.startsWith('SPOOLERD_')) env[k] = v;
    if (options.records !== undefined) env.SPOOLERD_TEST_RECORDS = options.records;
    Object.assign(env, options.env);

    const command = [...(options.wrap ?? []), process.execPath, SPOOLERD_BIN, ...args];
    this.child = spawn(command[0]!, command.slice(1), { env, cwd: options.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this);
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.stdout += d;
      this.notify();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => this.onStderr(d));
    this.exited = new Promise((done) => {
      this.child.on('close', (code, signal) => {
        this.onStderr('\n'); // flush a last line without a newline
        this.exit = { code, signal };
        live.delete(this);
        this.notify();
        done(this.exit);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The owner id the daemon logged when it started serving (its claim directory is active/<owner>/). */
  get owner(): string {
    const line = this.logs.find((l) => l.msg === 'serving spool');
    if (!line) throw new Error(`the daemon has not logged "serving spool" yet\n${this.describe()}`);
    return line.owner as string;
  }

  /**
   * Resolves with the first log line (from the start, or from index `from`)
   * that matches; rejects on timeout or if the daemon exits first.
   */
  waitForLog(match: (line: LogLine) => boolean, options: { timeoutMs?: number; from?: number; what?: string } = {}): Promise<LogLine> {
    const from = options.from ?? 0;
    const find = () => this.logs.slice(from).find(match);
    return this.waitUntil(find, { timeoutMs: options.timeoutMs ?? 20_000, what: options.what ?? `a log line matching ${match.toString()}` });
  }

  /**
   * Waits until the daemon has finished `n` reconciliation scans that began
   * after this call (the daemon must run with `--log-level debug`). Proof that it
   * listed the spool again, in place of sleeping for scan intervals.
   */
  async waitForScans(n: number, timeoutMs = 20_000): Promise<void> {
    const started = (l: LogLine) => l.msg === 'reconciliation scan finished';
    // A scan under way now may have listed before the call: it does not count.
    let from = this.logs.length;
    await this.waitForLog(started, { from, timeoutMs, what: 'a reconciliation scan to finish' });
    for (let i = 0; i < n; i++) {
      from = this.logs.findIndex((l, at) => at >= from && started(l)) + 1;
      await this.waitForLog(started, { from, timeoutMs, what: `reconciliation scan ${i + 1} of ${n} to finish` });
    }
  }

  /** Waits for the "serving spool" line (one per --dir). */
  async waitUntilServing(spools = 1, timeoutMs = 20_000): Promise<this> {
    await this.waitUntil(() => this.logs.filter((l) => l.msg === 'serving spool').length >= spools || undefined, {
      timeoutMs,
      what: `${spools} "serving spool" line(s)`,
    });
    return this;
  }

  /** Log lines with this message. */
  logsWith(msg: string): LogLine[] {
    return this.logs.filter((l) => l.msg === msg);
  }

  /** Sends a signal (no wait). */
  signal(signal: NodeJS.Signals): void {
    if (this.exit === undefined) this.child.kill(signal);
  }

  /** Sends `signal` and waits for the exit; rejects if it takes longer than timeoutMs. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<Exit> {
    this.signal(signal);
    return this.waitForExit(timeoutMs);
  }

  /** kill -9, and wait for the process to be gone. */
  async kill9(): Promise<Exit> {
    this.signal('SIGKILL');
    return this.waitForExit(10_000);
  }

  /** Waits for the exit; rejects (leaving the process running) after timeoutMs. */
  async waitForExit(timeoutMs = 30_000): Promise<Exit> {
    if (this.exit) return this.exit;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, fail) => {
      timer = setTimeout(() => fail(new Error(`spoolerd (pid ${this.pid}) did not exit within ${timeoutMs} ms\n${this.describe()}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The last log lines and raw stderr, for failure messages. */
  describe(lines = 40): string {
    const tail = this.logs.slice(-lines).map((l) => JSON.stringify(l));
    return [
      `spoolerd ${this.args.join(' ')} (pid ${this.pid}, ${this.exit ? `exited ${JSON.stringify(this.exit)}` : 'running'})`,
      `last ${tail.length} of ${this.logs.length} log lines:`,
      ...tail,
      ...(this.rawStderr.length ? ['raw stderr:', ...this.rawStderr.slice(-lines)] : []),
      ...(this.stdout ? ['stdout:', this.stdout.slice(-4000)] : []),
    ].join('\n');
  }

  private waitUntil<T>(find: () => T | undefined, options: { timeoutMs: number; what: string }): Promise<T> {
    const found = find();
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((done, fail) => {
      const finish = (error?: Error, value?: T) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        if (error) fail(error);
        else done(value as T);
      };
      const check = () => {
        const v = find();
        if (v !== undefined) return finish(undefined, v);
        if (this.exit) finish(new Error(`spoolerd exited before ${options.what}\n${this.describe()}`));
      };
      const timer = setTimeout(() => finish(new Error(`timed out after ${options.timeoutMs} ms waiting for ${options.what}\n${this.describe()}`)), options.timeoutMs);
      this.listeners.add(check);
      check();
    });
  }

  private onStderr(chunk: string): void {
    const text = this.stderrRest + chunk;
    const lines = text.split('\n');
    this.stderrRest = lines.pop()!;
    for (const line of lines) {
      if (line.trim() === '') continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = undefined;
      }
      if (parsed !== null && typeof parsed === 'object' && typeof (parsed as LogLine).msg === 'string') this.logs.push(parsed as LogLine);
      else this.rawStderr.push(line);
    }
    this.notify();
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }
}

/** Spawns spoolerd (does not wait for it to start serving). */
export function startDaemon(options: DaemonStartOptions): DaemonProcess {
  return new DaemonProcess(options);
}

/** Spawns spoolerd and waits until it logs "serving spool" for each of its spools. */
export async function startServing(options: DaemonStartOptions): Promise<DaemonProcess> {
  const d = startDaemon(options);
  const spools = options.dir === undefined ? 1 : Array.isArray(options.dir) ? options.dir.length : 1;
  return d.waitUntilServing(spools);
}

/** SIGKILLs every daemon started by this file that has not exited, and waits for them. For afterEach. */
export async function killLeftoverDaemons(): Promise<void> {
  const left = [...live];
  for (const d of left) d.signal('SIGKILL');
  await Promise.all(left.map((d) => d.waitForExit(10_000).catch(() => undefined)));
}

/**
 * Polls `check` until it returns something other than undefined/false, and
 * resolves with that. Rejects after timeoutMs with `what` (and `explain()`'s
 * text) in the message.
 */
export async function waitFor<T>(
  check: () => T | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number; what: string; explain?: () => string },
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${options.timeoutMs ?? 20_000} ms waiting for ${options.what}${options.explain ? `\n${options.explain()}` : ''}`);
    }
    await new Promise((done) => setTimeout(done, options.intervalMs ?? 25));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

/** One run of a fixture task (see test/fixtures/tasks/_record.mjs). */
export interface TaskRecord {
  task: string;
  pid: number;
  time: number;
  args?: unknown[];
  key?: string;
  phase?: string;
  ok?: boolean;
  /** The claimed file's name, id and attempt (null when the fixture could not tell). */
  file?: string | null;
  id?: string | null;
  attempt?: number | null;
  [field: string]: unknown;
}

/**
 * The records written so far (none when the file does not exist yet). A last
 * line without its newline is a record still being appended (a reader can see
 * part of another process's write) and is left for the next read.
 */
export function readRecords(path: string): TaskRecord[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.pop(); // '' after the last newline, or a line not yet complete
  return lines.filter((l) => l !== '').map((l) => JSON.parse(l) as TaskRecord);
}

/** A directory's entries, sorted; none when it does not exist. */
export function ls(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/** Every file under active/<owner>/, as "<owner>/<file>". */
/** ls() without the serving daemons' status files (state/daemon-<owner>.json, SPOOL-FORMAT.md "Daemon status files"). */
/** The records in state/: not the daemons' status files, nor a record being staged (.record-*, a status file's included) at this instant. */
export function lsRecords(dir: string): string[] {
  return ls(dir).filter((n) => !/^daemon-.*\.json$/.test(n) && !n.startsWith('.record-'));
}

export function lsActive(spool: string): string[] {
  return ls(join(spool, 'active')).flatMap((owner) => ls(join(spool, 'active', owner)).map((f) => `${owner}/${f}`));
}

/** What the spool holds where, for failure messages. */
export function describeSpool(spool: string): string {
  const parts = ['tmp', 'incoming', 'pending', 'dead', 'quarantine', 'archive', 'state', 'locks'].map((d) => `${d}/: ${JSON.stringify(ls(join(spool, d)))}`);
  return [...parts, `active/: ${JSON.stringify(lsActive(spool))}`].join('\n');
}

/** The fields of a task file name, or undefined: the one parser, spool/name.ts's. */
export { parseTaskName as parseName } from '../../spool/name.js';
