/**
 * `spool rm <id…>`, `spool rm -` (ids on stdin), `spool rm --state dead --older-than 7d`:
 * revoke tasks, or delete dead letters, quarantined files and archived tasks.
 * Safe while daemons run (spool/bulk.ts): the task is taken with the same
 * atomic rename a daemon claims with, so either the daemon or rm gets it,
 * never both. A running task is never touched.
 */
import type { Command } from 'commander';
import { removeTasks } from '../../spool/bulk.js';
import type { TaskState } from '../../spool/layout.js';
import { printable } from '../../spool/printable.js';
import { bulkCommand, count, runWithProgress, selectTasks, type BulkOptions } from '../bulk.js';
import { CliError, EXIT } from '../exit-codes.js';
import { spoolFrom } from '../find-task.js';

/** What rm may be told to remove; running tasks cannot be. */
const REMOVABLE: TaskState[] = ['due', 'scheduled', 'invalid', 'dead', 'quarantined', 'archived'];
/** What filters remove unless --state says otherwise: all but archived (as `spool ls`) and running. */
const DEFAULT_STATES: TaskState[] = ['due', 'scheduled', 'invalid', 'dead', 'quarantined'];

export function rmCommand(): Command {
  return bulkCommand('rm', REMOVABLE, 'only tasks in these states (default: all but archived; running tasks are never removed)')
    .description('revoke tasks, or delete dead letters, quarantined files and archived tasks; never a running one (exit 5)')
    .action((refs: string[], options: BulkOptions) => {
      const layout = spoolFrom(options);
      const selection = selectTasks(layout, 'rm', refs, options, DEFAULT_STATES);
      let failure = selection.failure;
      let removed = 0;
      let gone = 0;
      let running = 0;
      runWithProgress('rm', selection.entries, options.quiet === true, (onProgress) => removeTasks(layout, selection.entries, { onProgress }), (o, out) => {
        const label = printable(o.label);
        switch (o.kind) {
          case 'removed':
            removed++;
            if (selection.byRef && !options.quiet) out.line(`removed ${label}`);
            return;
          case 'running':
            running++;
            out.error(`spool rm: ${label} is running on ${printable(o.owner)}; it cannot be revoked (to stop it: spool cancel ${label})`);
            failure ??= new CliError('', EXIT.RUNNING);
            return;
          case 'gone':
            gone++;
            // Asked for by id, it is missing; chosen by a filter, it has simply left the spool meanwhile.
            if (selection.byRef) {
              out.error(`spool rm: ${label} left the spool meanwhile (processed, or removed by someone else)`);
              failure ??= new CliError('', EXIT.NOT_FOUND);
            }
            return;
          case 'stranded':
            out.error(`spool rm: ${label} was taken out of the spool but could not be deleted (${printable(o.error.message)}); delete ${printable(o.path)} by hand`);
            failure ??= new CliError('', EXIT.ERROR);
            return;
          default:
            throw new Error(`unexpected outcome ${o.kind}`);
        }
      });
      if (!selection.byRef && !options.quiet) {
        const notes = [running > 0 && `${running} running (left alone)`, gone > 0 && `${gone} left the spool meanwhile`].filter(Boolean);
        process.stdout.write(`removed ${count(removed, 'task')}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}\n`);
      }
      if (failure) throw new CliError(selection.byRef ? 'some tasks were not removed' : `${count(running, 'task')} could not be removed`, failure.exitCode);
    });
}
