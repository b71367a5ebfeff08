#!/usr/bin/env node
/** The `spoolerd` command: run the tasks of one or more spools. */
import { statSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { InvalidOptionError, SpoolDirectoryError, SpoolError } from '../spool/errors.js';
import { resolveGroup } from '../spool/trust.js';
import { Daemon } from '../spooler/daemon.js';
import type { HttpAddress } from '../spooler/http-address.js';
import { DaemonHttpServer } from '../spooler/http-server.js';
import { createLogger, type Logger } from '../spooler/logger.js';
import { DAEMON_OPTIONS, type OptionDeclaration, type OptionValues } from '../spooler/options.js';
import { importTaskModule, TaskModuleError } from '../spooler/task-modules.js';
import { WorkerStartError } from '../spooler/run/process-runners.js';
import { readScheduleFile } from '../spooler/schedule/schedule-file.js';
import type { ScheduleSpec } from '../spool/schedule.js';
import { EXIT } from './exit-codes.js';
import { completionScript, SHELLS, type Shell } from './completion.js';
import { applyConfigFile, ConfigFileError, type ConfigApplied } from './config-file.js';
import { explainSystemError } from './system-errors.js';
import { VERSION } from './version.js';

/** The daemon's options (spooler/options.ts) and the command line's own. */
interface CliOptions extends OptionValues {
  demo: boolean;
  config?: string;
  printConfig: boolean;
}

/** A start-up problem the user can fix: printed as one line, without a stack. */
class StartupError extends Error {}

/** A command line that cannot work (no spool, nothing to run): exit 2, as for a bad option. */
class UsageError extends StartupError {}

const DEMO_DIR = './demo-spool';
const DEMO_TASKS = fileURLToPath(new URL('../examples/tasks.js', import.meta.url));

/** The commander option of a declared one: its parser's InvalidOptionError becomes commander's "argument is invalid" (exit 2). */
function commanderOption<T>(d: OptionDeclaration<T>): Option {
  const o = new Option(d.flags, d.help).env(d.env);
  const parse = d.parse;
  if (parse !== undefined) {
    o.argParser((text: string, previous: T | undefined) => {
      try {
        return parse(text, previous);
      } catch (err) {
        if (err instanceof InvalidOptionError) throw new InvalidArgumentError(err.message);
        throw err;
      }
    });
  }
  if (d.choices !== undefined) o.choices(d.choices as readonly string[]);
  if (d.default !== undefined) o.default(d.default, d.defaultText);
  return o;
}

const program = new Command('spoolerd')
  .description('Run the tasks of spool directories: watch, claim, run, and mark each task processed, skipped or rescheduled.')
  .version(VERSION);
/** The options a --config file may set and --print-config prints: the declared ones, by their long names. */
const configurable = new Map<string, Option>();
for (const d of Object.values(DAEMON_OPTIONS) as OptionDeclaration<unknown>[]) {
  const o = commanderOption(d);
  program.addOption(o);
  configurable.set(o.long!.slice(2), o);
  if (d.negation !== undefined) program.addOption(new Option(d.flags.replace('--', '--no-'), d.negation));
}
// The command line's own: not in a config file.
program
  .addOption(new Option('--demo', `serve ${DEMO_DIR} with the bundled example tasks, enqueueing a few first`).default(false))
  .addOption(new Option('--config <file>', 'JSON file of options, keyed by their long names ({"dir": "/var/spool/app", "scan-interval": "10s"}); flags and environment variables override it').env('SPOOLERD_CONFIG'))
  .addOption(new Option('--print-config', 'print the options in effect (from flags, environment, --config and defaults) as a config file, and exit').default(false))
  .addHelpText(
    'after',
    '\nEvery option can also be set from the environment variable shown, or in the --config file. Exit status: 0 after a graceful stop, 1 on a start-up error or a forced stop, 2 for a bad command line (as spool).\n' +
      '`spoolerd completion bash|zsh` prints a shell completion script (source <(spoolerd completion bash)).',
  )
  .exitOverride();

// `spoolerd completion <shell>`, the one thing spoolerd does besides serving.
if (process.argv[2] === 'completion') {
  const shell = process.argv[3];
  if (process.argv.length !== 4 || !(SHELLS as readonly string[]).includes(shell!)) {
    process.stderr.write(`spoolerd: usage: spoolerd completion ${SHELLS.join('|')}\n`);
    process.exit(EXIT.USAGE);
  }
  process.stdout.write(completionScript(program, shell as Shell));
  process.exit(0);
}

let options: CliOptions;
let configApplied: ConfigApplied | undefined;
try {
  options = program.parse(process.argv).opts<CliOptions>();
  if (options.config !== undefined) {
    try {
      configApplied = applyConfigFile(program, options.config, configurable);
    } catch (err) {
      if (err instanceof ConfigFileError) program.error(`error: ${err.message}`);
      throw err;
    }
    options = program.opts<CliOptions>();
  }
} catch (err) {
  // Commander has printed the problem (or the help or version). A bad command line exits 2, as it does for `spool`.
  process.exit(err instanceof CommanderError && err.exitCode === 0 ? 0 : EXIT.USAGE);
}
if (options.printConfig) {
  const effective: Record<string, unknown> = {};
  for (const [key, option] of configurable) {
    const value = program.getOptionValue(option.attributeName());
    if (value !== undefined) effective[key] = value;
  }
  process.stdout.write(JSON.stringify(effective, null, 2) + '\n');
  process.exit(0);
}

const log = createLogger({ level: options.logLevel, format: options.logFormat ?? (process.stderr.isTTY ? 'pretty' : 'json') });
if (configApplied !== undefined) log.info('config file read', { file: resolve(options.config!), ...configApplied });
await main(options, log).catch((err: unknown) => {
  // A full disk or a missing permission is the user's to fix: said plainly, without a stack.
  const explained = explainSystemError(err, { command: 'spoolerd' });
  if (explained !== undefined) log.error(`start-up failed: ${explained.message}`);
  else if (err instanceof TaskModuleError || err instanceof WorkerStartError) log.error(err.message, err.detail === undefined ? {} : { stack: err.detail });
  else if (err instanceof SpoolError || err instanceof StartupError) log.error(err.message);
  else log.error('start-up failed', { err });
  process.exit(err instanceof UsageError ? EXIT.USAGE : EXIT.ERROR);
});

async function main(options: CliOptions, log: Logger): Promise<void> {
  const dirs = options.demo && !options.dir?.length ? [DEMO_DIR] : (options.dir ?? []);
  const modules = options.demo ? [...(options.import ?? []), DEMO_TASKS] : (options.import ?? []);
  if (dirs.length === 0) throw new UsageError('no spool given: pass --dir <path> (or set SPOOL_DIR); try --demo for an example');
  if (modules.length === 0) throw new UsageError('nothing to run: pass --import <module> with the module that registers your tasks');
  // A mistyped path must not silently become a new, empty spool that nobody produces into.
  if (!options.create && !options.demo) for (const dir of dirs) assertSpoolExists(dir);
  const schedules = readScheduleFiles(options.schedule ?? []);
  // Modules that open Spooler.fromEnv() get the (first) spool this daemon serves.
  process.env.SPOOL_DIR = resolve(dirs[0]!);
  // With worker processes, the workers import the task modules (the daemon starts them and reports a failure).
  if (options.processes === 0) for (const m of modules) await importTaskModule(m);
  const demoSay = (line: string) => log.info(`demo: ${line}`);
  if (options.demo) await (await import('../examples/demo.js')).enqueueExamples(demoSay);

  const logFormat = options.logFormat ?? (process.stderr.isTTY ? 'pretty' : 'json');
  const group = options.group ? resolveGroup(options.group) : undefined;
  const daemon = new Daemon({ ...options, group, dirs, modules, log, logFormat, schedules });
  if (options.processes === 0 && (options.maxTasks > 0 || options.maxMemory > 0)) {
    log.warn('--max-tasks and --max-memory replace worker processes; with --processes 0 there are none, so they do nothing');
  }
  if (options.processes === 0) {
    log.info('running tasks in the daemon process (--processes 0): a task that blocks the event loop (e.g. a synchronous infinite loop) blocks the daemon and cannot be stopped by its timeout; use --processes 1 or more to have such tasks killed', { taskTimeoutMs: options.taskTimeout || null });
  }
  if (options.http !== undefined) {
    // Bound before the daemon claims anything: an address in use is a start-up error, not a daemon without its probes.
    const server = new DaemonHttpServer(daemon, options.scanInterval, log);
    let bound: HttpAddress;
    try {
      bound = await server.listen(options.http);
    } catch (err) {
      throw new StartupError(`--http ${options.http.host}:${options.http.port}: cannot listen: ${(err as Error).message}`);
    }
    const host = bound.host.includes(':') ? `[${bound.host}]` : bound.host;
    log.info('serving metrics and health checks over http', { url: `http://${host}:${bound.port}`, paths: ['/metrics', '/healthz', '/readyz'] });
  }
  // Handled from before the start: a signal that comes while the daemon starts stops it once started.
  const started = daemon.start();
  handleSignals(daemon, log, started);
  await started;
  if (options.demo) {
    const where = options.processes === 0 ? 'in this process' : `in ${options.processes} worker processes`;
    demoSay(`running the tasks of ${shortPath(modules.at(-1)!)} ${where}; each task prints the pid of the process that ran it.`);
    demoSay(`in another terminal: ${spoolCommand()} ls --dir ${dirs[0]}   (the scheduled tasks);  ${spoolCommand()} add greet '"you"' --dir ${dirs[0]}   (one more task)`);
    demoSay('Ctrl-C stops the daemon; its last line counts the tasks it ran, by process (tasksByWorker).');
  }
}

/** A path relative to the working directory when it is under it, else absolute. */
function shortPath(path: string): string {
  const rel = relative(process.cwd(), resolve(path));
  return rel.startsWith('..') || isAbsolute(rel) ? resolve(path) : rel;
}

/** How to run `spool` from here: the built file in a clone of spoolerd, `npx spool` where it is installed as a package. */
function spoolCommand(): string {
  const rel = relative(process.cwd(), fileURLToPath(new URL('./spool.js', import.meta.url)));
  return rel.startsWith('..') || isAbsolute(rel) || rel.split(sep).includes('node_modules') ? 'npx spool' : `node ${rel}`;
}

/** The schedules of the --schedule files; a bad file is a bad command line (exit 2). */
function readScheduleFiles(files: readonly string[]): ScheduleSpec[] {
  try {
    return files.flatMap((f) => readScheduleFile(f));
  } catch (err) {
    if (err instanceof InvalidOptionError) throw new UsageError(err.message);
    throw err;
  }
}

/** Throws unless `dir` exists (its subdirectories are made on start, as for any spool). */
function assertSpoolExists(dir: string): void {
  let stat;
  try {
    stat = statSync(dir);
  } catch {
    throw new SpoolDirectoryError(resolve(dir), 'does not exist; check the path, or pass --create to make a new spool there');
  }
  if (!stat.isDirectory()) throw new SpoolDirectoryError(resolve(dir), 'exists but is not a directory; choose another path with --dir or SPOOL_DIR');
}

function handleSignals(daemon: Daemon, log: Logger, started: Promise<void>): void {
  let stopping = false;
  let running = false;
  started.then(
    () => (running = true),
    () => {},
  );
  const onSignal = (signal: NodeJS.Signals) => {
    if (!running) {
      // Still starting: stop as soon as it has started (a failed start exits on its own).
      started.then(
        () => onSignal(signal),
        () => {},
      );
      return;
    }
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
