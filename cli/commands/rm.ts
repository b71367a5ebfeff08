/**
 * `spool rm <id…>`: revoke tasks. Safe while daemons run: the task is taken with
 * the same atomic rename a daemon uses to claim it (into tmp/, then unlinked),
 * so either the daemon or rm gets it, never both. A task that is already
 * running cannot be revoked.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import type { SpoolLayout } from '../../spool/layout.js';
import { QUARANTINE_REASON_SUFFIX } from '../../spool/listing.js';
import { printable } from '../../spool/printable.js';
import { removeTree } from '../../spool/remove-tree.js';
import { CliError, EXIT } from '../exit-codes.js';
import { findEntry, spoolFrom, withDirOption, type DirOption } from '../find-task.js';

export function rmCommand(): Command {
  return withDirOption(new Command('rm'))
    .description('revoke pending tasks (or delete dead and quarantined ones); exit 5 if one is running')
    .argument('<id...>', 'task ids, unique prefixes, or file names')
    .option('-q, --quiet', 'print nothing on success')
    .action((refs: string[], options: DirOption & { quiet?: boolean }) => {
      const layout = spoolFrom(options);
      let failure: CliError | undefined;
      for (const ref of refs) {
        try {
          const removed = revoke(layout, ref);
          if (!options.quiet) process.stdout.write(`removed ${printable(removed)}\n`);
        } catch (err) {
          if (!(err instanceof CliError)) throw err;
          process.stderr.write(`spool rm: ${printable(err.message)}\n`);
          failure ??= err;
        }
      }
      if (failure) throw new CliError('some tasks were not removed', failure.exitCode);
    });
}

/**
 * Takes the task `ref` names out of the spool (see above); returns its id.
 * Throws CliError when it is running, archived, unknown or ambiguous. Also the
 * dashboard's remove button (cli/dashboard/server.ts).
 */
export function revoke(layout: SpoolLayout, ref: string): string {
  // tmp/ may not exist yet in a spool a foreign producer started (SPOOL-FORMAT.md, "Layout").
  mkdirSync(layout.tmp, { recursive: true });
  // Two tries: a daemon may move a task from incoming/ to pending/ between our listing and our rename.
  for (let attempt = 0; attempt < 2; attempt++) {
    const entry = findEntry(layout, ref, { checkBodies: false });
    if (entry.state === 'active') {
      throw new CliError(`${entry.task?.id ?? entry.fileName} is running on ${entry.owner}; it cannot be revoked`, EXIT.CONFLICT);
    }
    if (entry.state === 'archived') throw new CliError(`${entry.fileName} was already processed (it is in archive/)`, EXIT.CONFLICT);
    // Not named after the entry: a quarantined name may take all 255 bytes a name can have.
    const graveyard = join(layout.tmp, `.revoked-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      renameSync(entry.path, graveyard);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    if (entry.location === 'quarantine') unlinkQuietly(entry.path + QUARANTINE_REASON_SUFFIX);
    try {
      // A quarantined entry may be a directory (dropped into incoming/ whole), possibly still written into.
      removeTree(graveyard);
    } catch (err) {
      throw new CliError(
        `${entry.fileName} was taken out of the spool but could not be deleted (${(err as Error).message}); delete ${graveyard} by hand`,
        EXIT.ERROR,
      );
    }
    return entry.task?.id ?? entry.fileName;
  }
  // Gone twice: claimed by a daemon or removed by someone else. Say which.
  const entry = findEntry(layout, ref, { checkBodies: false });
  throw new CliError(`${entry.task?.id ?? entry.fileName} is ${entry.state}${entry.owner ? ` on ${entry.owner}` : ''}; it cannot be revoked`, EXIT.CONFLICT);
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // No reason file: nothing to clean.
  }
}
