#!/usr/bin/env node
/** The `spool` command: inspect and manage a spool. */
import { resolve } from 'node:path';
import { Command, CommanderError } from 'commander';
import { SpoolError } from '../spool/errors.js';
import { printable } from '../spool/printable.js';
import { CliError, EXIT, EXIT_HELP } from './exit-codes.js';
import { explainSystemError } from './system-errors.js';
import { VERSION } from './version.js';

const program = new Command('spool')
  .description('Inspect and manage a spoolerd spool directory.')
  .version(VERSION)
  .addHelpText('after', EXIT_HELP)
  .exitOverride()
  .showHelpAfterError('(add --help for usage)');

/** The subcommands, in the order help lists them, each loaded only when it is needed. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  ls: async () => (await import('./commands/ls.js')).lsCommand(),
  show: async () => (await import('./commands/show.js')).showCommand(),
  add: async () => (await import('./commands/add.js')).addCommand(),
  rm: async () => (await import('./commands/rm.js')).rmCommand(),
  cancel: async () => (await import('./commands/cancel.js')).cancelCommand(),
  retry: async () => (await import('./commands/retry.js')).retryCommand(),
  wait: async () => (await import('./commands/wait.js')).waitCommand(),
  purge: async () => (await import('./commands/purge.js')).purgeCommand(),
  stats: async () => (await import('./commands/stats.js')).statsCommand(),
  schedules: async () => (await import('./commands/schedules.js')).schedulesCommand(),
  pause: async () => (await import('./commands/pause.js')).pauseCommand(),
  resume: async () => (await import('./commands/pause.js')).resumeCommand(),
  completion: async () => (await import('./commands/completion.js')).completionCommand(),
  top: async () => (await import('./commands/top.js')).topCommand(),
  dashboard: async () => (await import('./commands/dashboard.js')).dashboardCommand(),
};
// `spool <command> …` needs only that command (`spool ls` then loads nothing of `add`'s runtime);
// anything else (no command, help, --version, a mistyped name, `completion`, which describes them) gets them all.
const named = process.argv[2];
const wanted = named !== undefined && named !== 'completion' && Object.hasOwn(COMMANDS, named) ? [named] : Object.keys(COMMANDS);
for (const command of await Promise.all(wanted.map((name) => COMMANDS[name]!()))) program.addCommand(command.exitOverride().addHelpText('after', EXIT_HELP));

/** What each command was doing, for a system error that names no path. */
const DOING: Record<string, string> = {
  ls: 'list the tasks',
  show: 'read the task',
  add: 'write the task file',
  rm: 'remove the task',
  cancel: 'cancel the task',
  retry: 'move the dead letters back',
  wait: 'wait for the results',
  stats: 'count the tasks',
  schedules: 'list the schedules',
  top: 'watch the spool',
  dashboard: 'serve the dashboard',
  pause: 'write control/pause.json',
  resume: 'write control/pause.json',
};

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.exitCode = exitCodeFor(err);
}

/** Prints the error, as one line without control characters (they may come from file names), and gives the exit code. */
function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) {
    // Commander has printed its message (or the help/version) already.
    return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  }
  if (err instanceof CliError) {
    process.stderr.write(`spool: ${printable(err.message)}\n`);
    return err.exitCode;
  }
  // Full disk, read-only filesystem, no permission: the user's to fix, said plainly.
  const explained = explainSystemError(err, systemErrorContext());
  if (explained !== undefined) {
    process.stderr.write(`spool${named !== undefined && Object.hasOwn(DOING, named) ? ` ${named}` : ''}: ${printable(explained.message)}\n`);
    return explained.exitCode;
  }
  if (err instanceof SpoolError) {
    process.stderr.write(`spool: ${printable(err.message)}\n`);
    return err.code === 'SPOOL_BAD_OPTION' || err.code === 'SPOOL_UNENCODABLE' ? EXIT.USAGE : EXIT.ERROR;
  }
  // A bug: the stack is what a report needs.
  process.stderr.write(`spool: unexpected error: ${((err as Error)?.stack ?? String(err)).split('\n').map(printable).join('\n')}\n`);
  return EXIT.ERROR;
}

/** The command and spool that failed (the command line has been parsed by now). */
function systemErrorContext(): { spool?: string; doing?: string; command?: string } {
  if (named === undefined || !Object.hasOwn(DOING, named)) return {};
  // `top` and `dashboard` take --dir more than once: the first names the spool.
  const given = program.commands.find((c) => c.name() === named)?.opts<{ dir?: string | string[] }>().dir;
  const dir = (Array.isArray(given) ? given[0] : given) ?? process.env.SPOOL_DIR;
  return { ...(dir ? { spool: resolve(dir) } : {}), doing: DOING[named]!, command: `spool ${named}` };
}
