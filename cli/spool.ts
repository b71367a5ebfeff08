#!/usr/bin/env node
/** The `spool` command: inspect and manage a spool. */
import { Command, CommanderError } from 'commander';
import { SpoolError } from '../spool/errors.js';
import { addCommand } from './commands/add.js';
import { lsCommand } from './commands/ls.js';
import { retryCommand } from './commands/retry.js';
import { rmCommand } from './commands/rm.js';
import { showCommand } from './commands/show.js';
import { statsCommand } from './commands/stats.js';
import { CliError, EXIT } from './exit-codes.js';
import { VERSION } from './version.js';

const program = new Command('spool')
  .description('Inspect and manage a spoolerd spool directory.')
  .version(VERSION)
  .addHelpText('after', '\nExit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 invalid task file, 5 task is running.')
  .exitOverride()
  .showHelpAfterError('(add --help for usage)');

for (const command of [lsCommand(), showCommand(), addCommand(), rmCommand(), retryCommand(), statsCommand()]) {
  program.addCommand(command.exitOverride());
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.exitCode = exitCodeFor(err);
}

function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) {
    // Commander has printed its message (or the help/version) already.
    return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  }
  if (err instanceof CliError) {
    process.stderr.write(`spool: ${err.message}\n`);
    return err.exitCode;
  }
  if (err instanceof SpoolError) {
    process.stderr.write(`spool: ${err.message}\n`);
    return err.code === 'SPOOL_BAD_OPTION' || err.code === 'SPOOL_UNENCODABLE' ? EXIT.USAGE : EXIT.ERROR;
  }
  process.stderr.write(`spool: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
  return EXIT.ERROR;
}
