/**
 * `spool retry <id…>` / `spool retry --all`: put dead letters back. Each is
 * renamed from dead/ into incoming/ with its attempts reset to 0 and due now,
 * so it gets its whole retry budget again and every daemon sees it at once.
 */
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import type { SpoolLayout } from '../../spool/layout.js';
import { listSpool, type SpoolEntry } from '../../spool/listing.js';
import { renameTask } from '../../spool/name.js';
import { printable } from '../../spool/printable.js';
import { CliError, EXIT } from '../exit-codes.js';
import { findEntry, spoolFrom, withDirOption, type DirOption } from '../find-task.js';

export function retryCommand(): Command {
  return withDirOption(new Command('retry'))
    .description('put dead letters back into the spool with a fresh retry budget')
    .argument('[id...]', 'dead task ids, unique prefixes, or file names')
    .option('-a, --all', 'every dead letter')
    .option('-t, --task <name...>', 'with --all: only tasks with these names')
    .option('-q, --quiet', 'print nothing on success')
    .action((refs: string[], options: DirOption & { all?: boolean; task?: string[]; quiet?: boolean }) => {
      const layout = spoolFrom(options);
      if (options.all === (refs.length > 0)) throw new CliError('give task ids or --all (not both)', EXIT.USAGE);
      let failure: CliError | undefined;
      const entries: SpoolEntry[] = [];
      if (options.all) {
        const names = options.task ? new Set(options.task) : undefined;
        entries.push(...listSpool(layout, { locations: ['dead'], checkBodies: false }).filter((e) => e.task && (!names || names.has(e.task.name))));
      } else {
        for (const ref of refs) {
          try {
            const entry = findEntry(layout, ref, { checkBodies: false });
            if (entry.state !== 'dead') throw new CliError(`${entry.task?.id ?? entry.fileName} is ${entry.state}, not a dead letter`, EXIT.CONFLICT);
            entries.push(entry);
          } catch (err) {
            if (!(err instanceof CliError)) throw err;
            process.stderr.write(`spool retry: ${printable(err.message)}\n`);
            failure ??= err;
          }
        }
      }
      let revived = 0;
      for (const entry of entries) {
        if (!entry.task) continue; // A file with a bad name in dead/ cannot be scheduled; spool rm removes it.
        if (revive(layout, entry)) {
          revived++;
          if (!options.quiet && !options.all) process.stdout.write(`retrying ${entry.task.id}\n`);
        }
      }
      if (options.all && !options.quiet) process.stdout.write(`retrying ${revived} dead letter${revived === 1 ? '' : 's'}\n`);
      if (failure) throw new CliError('some tasks were not retried', failure.exitCode);
    });
}

/**
 * Moves one dead letter back into incoming/, due now with attempts reset;
 * false if it was gone (retried or removed meanwhile). Also the dashboard's
 * retry button (cli/dashboard/server.ts).
 */
export function revive(layout: SpoolLayout, entry: SpoolEntry): boolean {
  const next = renameTask(entry.task!, { due: Date.now(), attempts: 0 });
  try {
    renameSync(entry.path, join(layout.incoming, next));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false; // Retried or removed by someone else meanwhile.
    throw err;
  }
}
