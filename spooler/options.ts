/**
 * The daemon's options, declared once. Each entry of DAEMON_OPTIONS is one
 * option: its flag, its environment variable, how its text is parsed and
 * checked, its default, its help text, and whether a worker process needs it.
 * Everything else is made from this table:
 *
 *   spoolerd's command line, --help and shell completion   cli/spoolerd.ts (commanderOption), cli/completion.ts
 *   the environment variables                              the same commander options (.env)
 *   the keys of a --config file and --print-config         cli/config-file.ts: the long flags without "--"
 *   what the daemon runs with                              DaemonOptions (below)
 *   what a worker process is sent                          workerOptions(): the entries marked `worker`
 *
 * A parser throws InvalidOptionError with the problem; the command line shows
 * it beside the flag (or environment variable, or config key) and exits 2.
 */
import { availableParallelism } from 'node:os';
import { toMs } from '../runtime/duration.js';
import { InvalidOptionError } from '../spool/errors.js';
import { DEFAULT_MAX_BYTES } from '../spool/safe-read.js';
import { parseHttpAddress, type HttpAddress } from './http-address.js';
import type { ScheduleSpec } from '../spool/schedule.js';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type Logger, type LogLevel } from './logger.js';

/** The polling period while incoming/ changes (poll-policy.ts), or --poll-interval if that is shorter. */
export const POLL_FAST_MS = 25;

/** One option, as the command line, the environment and a config file give it. */
export interface OptionDeclaration<T> {
  /** As commander writes them: short and long flag, and the argument's name if it takes one (`-c, --concurrency <n>`). */
  readonly flags: string;
  readonly env: string;
  readonly help: string;
  /** Text to value (for a repeated option, with the value so far). Absent: a switch, or an argument taken as it is. */
  readonly parse?: (text: string, previous: T | undefined) => T;
  /** The only values allowed. */
  readonly choices?: readonly T[];
  readonly default?: T;
  /** How --help shows the default, where the value alone would not say it well (16777216, 0). */
  readonly defaultText?: string;
  /** A switch that also has its --no- form, with this help text (`--no-poll`). */
  readonly negation?: string;
  /** Sent to each worker process (workerOptions). */
  readonly worker?: boolean;
}

/** Carries the option's value type, `undefined` included where it has no default. */
declare const VALUE: unique symbol;
export interface Declared<V, W extends boolean> extends OptionDeclaration<NonNullable<V>> {
  readonly [VALUE]?: [V];
  readonly worker?: W;
}

function option<T, W extends boolean = false>(d: OptionDeclaration<T> & { default: T; worker?: W }): Declared<T, W>;
function option<T, W extends boolean = false>(d: OptionDeclaration<T> & { worker?: W }): Declared<T | undefined, W>;
function option(d: OptionDeclaration<unknown>): unknown {
  return d;
}

const list = (text: string, previous: string[] | undefined): string[] => [...(previous ?? []), ...text.split(',').filter(Boolean)];
const duration = (text: string): number => toMs(text);
/** A duration, or 0 / "none" for no limit. */
const durationOrNone = (text: string): number => (text === 'none' || text === '0' ? 0 : toMs(text));
const positiveInt = (text: string): number => {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidOptionError('must be a whole number ≥ 1');
  return n;
};
const wholeNumber = (text: string): number => {
  const n = Number(text);
  if (text.trim() === '' || !Number.isSafeInteger(n) || n < 0) throw new InvalidOptionError('must be a whole number ≥ 0');
  return n;
};
const httpAddress = (text: string): HttpAddress => {
  try {
    return parseHttpAddress(text);
  } catch (err) {
    throw new InvalidOptionError((err as Error).message);
  }
};

const CORES = availableParallelism();

/** In the order `spoolerd --help` lists them. */
export const DAEMON_OPTIONS = {
  dir: option({ flags: '-d, --dir <path>', env: 'SPOOL_DIR', help: 'spool directory to serve; repeat for several', parse: list }),
  import: option({
    flags: '-i, --import <module>',
    env: 'SPOOLERD_IMPORT',
    help: 'module that registers tasks with spooler.task(); repeat for several',
    parse: list,
    worker: true,
  }),
  tasks: option({
    flags: '--tasks <name>',
    env: 'SPOOLERD_TASKS',
    help: 'claim only these task names (comma-separated or repeated); default: every task the modules register. Others wait for a daemon that runs them',
    parse: list,
  }),
  schedule: option({
    flags: '--schedule <file>',
    env: 'SPOOLERD_SCHEDULE',
    help: 'JSON file of periodic tasks to enqueue on every spool served ({"schedules": [{"task": "reindex", "cron": "0 3 * * *"}]}; README, "Periodic tasks"); repeat for several',
    parse: (text: string, previous: string[] | undefined): string[] => [...(previous ?? []), text],
  }),
  unknownAfter: option({
    flags: '--unknown-after <duration>',
    env: 'SPOOLERD_UNKNOWN_AFTER',
    help: 'a task that no live daemon declares it runs is a dead letter once this long past its due time (0 or none: never)',
    parse: durationOrNone,
    default: 86_400_000,
    defaultText: '1d',
  }),
  keepDead: option({
    flags: '--keep-dead <duration>',
    env: 'SPOOLERD_KEEP_DEAD',
    help: 'delete dead letters (and their failure records) this long after they died (0 or none: keep them)',
    parse: durationOrNone,
    default: 0,
    defaultText: 'none, kept',
  }),
  keepArchive: option({
    flags: '--keep-archive <duration>',
    env: 'SPOOLERD_KEEP_ARCHIVE',
    help: 'delete archived tasks (--archive) this long after they finished (0 or none: keep them)',
    parse: durationOrNone,
    default: 0,
    defaultText: 'none, kept',
  }),
  concurrency: option({ flags: '-c, --concurrency <n>', env: 'SPOOLERD_CONCURRENCY', help: 'tasks run at once, over all worker processes', parse: positiveInt, default: 8 }),
  poll: option<boolean>({
    flags: '--poll',
    env: 'SPOOLERD_POLL',
    help: "poll the drop box instead of using inotify (default: only on a network filesystem, where inotify cannot see other hosts' files)",
    negation: "use inotify even on a network filesystem (only this host's drops are seen at once; others wait for a scan)",
  }),
  pollInterval: option({
    flags: '--poll-interval <duration>',
    env: 'SPOOLERD_POLL_INTERVAL',
    help: `longest polling period, reached while the drop box is quiet (it polls every ${POLL_FAST_MS}ms while tasks arrive)`,
    parse: duration,
    default: 250,
    defaultText: '250ms',
  }),
  scanInterval: option({
    flags: '--scan-interval <duration>',
    env: 'SPOOLERD_SCAN_INTERVAL',
    help: "reconciliation scan period (missed events, dead daemons' claims)",
    parse: duration,
    default: 5000,
    defaultText: '5s',
  }),
  staleAfter: option({
    flags: '--stale-after <duration>',
    env: 'SPOOLERD_STALE_AFTER',
    help: 'claims of a daemon silent this long are run again elsewhere',
    parse: duration,
    default: 30_000,
    defaultText: '30s',
  }),
  archive: option({
    flags: '--archive',
    env: 'SPOOLERD_ARCHIVE',
    help: 'keep processed and skipped tasks in archive/ instead of deleting them',
    default: false,
    // Workers remove (or archive) the files of the tasks they finished.
    worker: true,
  }),
  keepResults: option({
    flags: '--keep-results <duration>',
    env: 'SPOOLERD_KEEP_RESULTS',
    help: 'keep how every task ended (its value, reason or final error) in results/ this long, for spool wait and handle.result(); a task\'s own keepResult overrides it (0 or none: only tasks that ask)',
    parse: durationOrNone,
    default: 0,
    defaultText: 'none',
    // Runners write the results of the tasks they finish.
    worker: true,
  }),
  grace: option({ flags: '--grace <duration>', env: 'SPOOLERD_GRACE', help: 'on SIGTERM/SIGINT, time running tasks get to finish', parse: duration, default: 30_000, defaultText: '30s' }),
  settle: option({
    flags: '--settle <duration>',
    env: 'SPOOLERD_SETTLE',
    help: 'a file that does not decode is left alone until this old (it may be being written)',
    parse: duration,
    default: 5000,
    defaultText: '5s',
    // Runners claim, read, decode and time their tasks themselves.
    worker: true,
  }),
  maxBytes: option({
    flags: '--max-bytes <n>',
    env: 'SPOOLERD_MAX_BYTES',
    help: 'larger task files are quarantined unread',
    parse: positiveInt,
    default: DEFAULT_MAX_BYTES,
    defaultText: '16 MiB',
    // Runners claim, read, decode and time their tasks themselves.
    worker: true,
  }),
  processes: option({
    flags: '-p, --processes <n>',
    env: 'SPOOLERD_PROCESSES',
    help: 'worker processes that run tasks (0: run them in the daemon itself, no isolation)',
    parse: wholeNumber,
    default: CORES,
    defaultText: `${CORES}, the number of cores`,
  }),
  ioThreads: option({
    flags: '--io-threads <n>',
    env: 'SPOOLERD_IO_THREADS',
    help: 'accepted for compatibility, no effect: each runner claims, reads and deletes its own tasks\' files',
    parse: wholeNumber,
    default: 1,
  }),
  maxTasks: option({
    flags: '--max-tasks <n>',
    env: 'SPOOLERD_MAX_TASKS',
    help: 'replace a worker process after this many tasks (0: never)',
    parse: wholeNumber,
    default: 0,
    defaultText: '0, never',
  }),
  maxMemory: option({
    flags: '--max-memory <MB>',
    env: 'SPOOLERD_MAX_MEMORY',
    help: 'replace a worker process whose RSS passes this many MB, once its running tasks are done (0: never)',
    parse: wholeNumber,
    default: 0,
    defaultText: '0, never',
  }),
  taskTimeout: option({
    flags: '--task-timeout <duration>',
    env: 'SPOOLERD_TASK_TIMEOUT',
    help: 'run-time limit of tasks that set no timeout of their own (0 or none: no limit)',
    parse: durationOrNone,
    default: 0,
    defaultText: 'none',
    // Runners claim, read, decode and time their tasks themselves.
    worker: true,
  }),
  killGrace: option({
    flags: '--kill-grace <duration>',
    env: 'SPOOLERD_KILL_GRACE',
    help: "after a timeout fired the task's AbortSignal, time it gets to stop before its worker process is killed",
    parse: duration,
    default: 3000,
    defaultText: '3s',
  }),
  group: option<string>({
    flags: '--group <group>',
    env: 'SPOOL_GROUP',
    help: "producers' group (name or id): new tmp/ and incoming/ are made 3770 with it, the other new folders 0750; without it new folders are 0700, private to spoolerd's user",
  }),
  logLevel: option<LogLevel, true>({ flags: '--log-level <level>', env: 'SPOOLERD_LOG_LEVEL', help: 'least severe level logged', choices: LOG_LEVELS, default: 'info', worker: true }),
  logFormat: option<LogFormat, true>({
    flags: '--log-format <format>',
    env: 'SPOOLERD_LOG_FORMAT',
    help: 'json lines, or pretty lines for people (default: pretty on a terminal, json otherwise)',
    choices: LOG_FORMATS,
    worker: true,
  }),
  create: option({
    flags: '--create',
    env: 'SPOOLERD_CREATE',
    help: 'make spool directories that do not exist (without it, a mistyped --dir is an error)',
    default: false,
  }),
  http: option({
    flags: '--http <[host:]port>',
    env: 'SPOOLERD_HTTP',
    help: 'serve /metrics (Prometheus), /healthz and /readyz on this address (a port alone: 127.0.0.1)',
    parse: httpAddress,
  }),
};

type Table = typeof DAEMON_OPTIONS;
export type OptionName = keyof Table;

/** The options' values as parsed from the command line, the environment, a config file and the defaults. */
export type OptionValues = { -readonly [K in OptionName]: Table[K] extends { readonly [VALUE]?: [infer V] } ? V : never };

/** The options a worker process is sent (those declared with `worker: true`). */
export type WorkerOptionName = { [K in OptionName]: Table[K] extends { readonly worker?: true } ? K : never }[OptionName];

/** The defaults, by option. */
export const DEFAULTS = Object.fromEntries(
  Object.entries(DAEMON_OPTIONS as Record<string, OptionDeclaration<unknown>>).flatMap(([name, d]) => (d.default === undefined ? [] : [[name, d.default]])),
) as { [K in OptionName as undefined extends OptionValues[K] ? never : K]: OptionValues[K] };

/**
 * What the daemon runs with: the options, with what the command line makes of
 * some of them (the spools to serve, the modules to import with --demo's
 * added, the group resolved to its id, the log format decided) and the logger.
 * --create and --http are the command line's own business, and so is reading
 * the --schedule files (the daemon gets their schedules, checked).
 */
export interface DaemonOptions extends Omit<OptionValues, 'dir' | 'import' | 'tasks' | 'group' | 'logFormat' | 'create' | 'http' | 'schedule'> {
  /** --tasks: the task names to claim (undefined or empty: every registered one). */
  tasks?: string[];
  /** Spool directories to serve (--dir). */
  dirs: string[];
  /** Task modules to import in each worker (--import; with processes 0 the CLI imports them in the daemon). */
  modules: string[];
  /** The producers' group id: new tmp/ and incoming/ are 3770 with it, other new folders 0750 (spool/trust.ts). Undefined: a private spool (0700). */
  group?: number;
  logFormat: LogFormat;
  log: Logger;
  /** The schedules of the --schedule files, read and checked (the modules' own come from the runners: RegisteredTasks). */
  schedules?: ScheduleSpec[];
}

/** The options a worker process is sent, named as declared, with the values the daemon runs with. */
export type WorkerOptions = { [K in WorkerOptionName]: K extends keyof DaemonOptions ? DaemonOptions[K] : NonNullable<OptionValues[K]> };

/** The options of `daemon` that a worker process is sent. The type makes this list the one the table marks `worker`. */
export function workerOptions(daemon: DaemonOptions): WorkerOptions {
  return {
    import: daemon.modules,
    archive: daemon.archive,
    keepResults: daemon.keepResults,
    settle: daemon.settle,
    maxBytes: daemon.maxBytes,
    taskTimeout: daemon.taskTimeout,
    logLevel: daemon.logLevel,
    logFormat: daemon.logFormat,
  };
}
