#!/usr/bin/env node
/** The `spoolerd` command: run the tasks of one or more spools. */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { toMs } from '../runtime/duration.js';
import { SpoolError } from '../spool/errors.js';
import { Daemon } from '../spooler/daemon.js';
import { createLogger, LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel, type Logger } from '../spooler/logger.js';
import { DEFAULTS } from '../spooler/options.js';
import { VERSION } from './version.js';

interface CliOptions {
  dir: string[];
  import: string[];
  concurrency: number;
  poll: boolean;
  pollInterval: number;
  scanInterval: number;
  staleAfter: number;
  archive: boolean;
  grace: number;
  settle: number;
  maxBytes: number;
  logLevel: LogLevel;
  logFormat?: LogFormat;
  demo: boolean;
}

/** A start-up problem the user can fix: printed as one line, without a stack. */
class StartupError extends Error {}

const DEMO_DIR = './demo-spool';
const DEMO_TASKS = fileURLToPath(new URL('../examples/tasks.js', import.meta.url));

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), ...value.split(',').filter(Boolean)];
const duration = (value: string): number => {
  try {
    return toMs(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};
const positiveInt = (value: string): number => {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number ≥ 1');
  return n;
};

const program = new Command('spoolerd')
  .description('Run the tasks of spool directories: watch, claim, run, and mark each task processed, skipped or rescheduled.')
  .version(VERSION)
  .addOption(new Option('-d, --dir <path>', 'spool directory to serve; repeat for several').env('SPOOL_DIR').argParser(collect))
  .addOption(new Option('-i, --import <module>', 'module that registers tasks with spooler.task(); repeat for several').env('SPOOLERD_IMPORT').argParser(collect))
  .addOption(new Option('-c, --concurrency <n>', 'tasks run at once').env('SPOOLERD_CONCURRENCY').argParser(positiveInt).default(DEFAULTS.concurrency))
  .addOption(new Option('--poll', 'poll the drop box instead of using inotify (network filesystems)').env('SPOOLERD_POLL').default(false))
  .addOption(new Option('--poll-interval <duration>', 'polling period').env('SPOOLERD_POLL_INTERVAL').argParser(duration).default(DEFAULTS.pollInterval, '1s'))
  .addOption(new Option('--scan-interval <duration>', 'reconciliation scan period (missed events, dead daemons\' claims)').env('SPOOLERD_SCAN_INTERVAL').argParser(duration).default(DEFAULTS.scanInterval, '5s'))
  .addOption(new Option('--stale-after <duration>', 'claims of a daemon silent this long are run again elsewhere').env('SPOOLERD_STALE_AFTER').argParser(duration).default(DEFAULTS.staleAfter, '30s'))
  .addOption(new Option('--archive', 'keep processed and skipped tasks in archive/ instead of deleting them').env('SPOOLERD_ARCHIVE').default(false))
  .addOption(new Option('--grace <duration>', 'on SIGTERM/SIGINT, time running tasks get to finish').env('SPOOLERD_GRACE').argParser(duration).default(DEFAULTS.grace, '30s'))
  .addOption(new Option('--settle <duration>', 'a file that does not decode is left alone until this old (it may be being written)').env('SPOOLERD_SETTLE').argParser(duration).default(DEFAULTS.settle, '5s'))
  .addOption(new Option('--max-bytes <n>', 'larger task files are quarantined unread').env('SPOOLERD_MAX_BYTES').argParser(positiveInt).default(DEFAULTS.maxBytes, '16 MiB'))
  .addOption(new Option('--log-level <level>', 'least severe level logged').env('SPOOLERD_LOG_LEVEL').choices(LOG_LEVELS).default('info'))
  .addOption(new Option('--log-format <format>', 'json lines, or pretty lines for people (default: pretty on a terminal, json otherwise)').env('SPOOLERD_LOG_FORMAT').choices(LOG_FORMATS))
  .addOption(new Option('--demo', `serve ${DEMO_DIR} with the bundled example tasks, enqueueing a few first`).default(false))
  .addHelpText('after', '\nEvery option can also be set from the environment variable shown. Exit status: 0 after a graceful stop, 1 on a start-up error or a forced stop.')
  .exitOverride();

let options: CliOptions;
try {
  options = program.parse(process.argv).opts<CliOptions>();
} catch (err) {
  process.exit(err instanceof CommanderError && err.exitCode === 0 ? 0 : 1);
}

const log = createLogger({ level: options.logLevel, format: options.logFormat ?? (process.stderr.isTTY ? 'pretty' : 'json') });
await main(options, log).catch((err: unknown) => {
  if (err instanceof SpoolError || err instanceof StartupError) log.error(err.message);
  else log.error('start-up failed', { err });
  process.exit(1);
});

async function main(options: CliOptions, log: Logger): Promise<void> {
  const dirs = options.demo && !options.dir?.length ? [DEMO_DIR] : (options.dir ?? []);
  const modules = options.demo ? [...(options.import ?? []), DEMO_TASKS] : (options.import ?? []);
  if (dirs.length === 0) throw new StartupError('no spool given: pass --dir <path> (or set SPOOL_DIR); try --demo for an example');
  if (modules.length === 0) throw new StartupError('nothing to run: pass --import <module> with the module that registers your tasks');
  // Modules that open Spooler.fromEnv() get the (first) spool this daemon serves.
  process.env.SPOOL_DIR = resolve(dirs[0]!);
  for (const m of modules) await importTaskModule(m);
  if (options.demo) await (await import('../examples/demo.js')).enqueueExamples();

  const daemon = new Daemon({ ...options, dirs, log });
  await daemon.start();
  handleSignals(daemon, log);
}

async function importTaskModule(specifier: string): Promise<void> {
  const isPath = specifier.startsWith('.') || isAbsolute(specifier) || existsSync(specifier);
  const url = isPath ? pathToFileURL(resolve(specifier)).href : specifier;
  try {
    await import(url);
  } catch (err) {
    throw new StartupError(`cannot import task module ${specifier}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
}

function handleSignals(daemon: Daemon, log: Logger): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      const returned = daemon.forceStop();
      log.warn('second signal: stopping now', { signal, returnedUnfinished: returned });
      process.exit(1);
    }
    stopping = true;
    log.info('stopping: no new tasks are claimed; running ones may finish', { signal, running: daemon.runningCount, graceMs: options.grace });
    daemon.stop().then(
      ({ finished, returned }) => {
        if (!finished) log.warn('grace period over: unfinished tasks were returned to the spool', { returned });
        process.exit(0);
      },
      (err: unknown) => {
        log.error('error while stopping', { err });
        daemon.forceStop();
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

process.on('uncaughtException', (err) => {
  // A task threw from a callback. The process state is unknown: exit without returning claimed
  // tasks, so they are reclaimed with their attempt counted and a crash loop ends as a dead letter.
  log.error('uncaught exception (most likely thrown by a task outside its promise); exiting', { err });
  process.exit(70);
});
process.on('unhandledRejection', (reason) => {
  log.error('unhandled promise rejection (most likely from a task); ignored', { err: reason });
});
