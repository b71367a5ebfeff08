/**
 * `spool retry <id…>`, `spool retry -`, `spool retry --all [--task NAME…]`: put
 * dead letters back. Each is renamed from dead/ into incoming/ with its
 * attempts reset to 0 and due now (spool/bulk.ts), so it gets its whole retry
 * budget again and every daemon sees it at once.
 */
import type { Command } from 'commander';
import { NotASpoolError, retryTasks } from '../../spool/bulk.js';
import { printable } from '../../spool/printable.js';
import { assertRealFolder } from '../../spool/trust.js';
import { bulkCommand, count, runWithProgress, selectTasks, type BulkOptions } from '../bulk.js';
import { CliError, EXIT } from '../exit-codes.js';
import { spoolFrom } from '../find-task.js';

export function retryCommand(): Command {
  return bulkCommand('retry', ['dead'], 'only dead letters (the default, and the only state retry acts on)')
    .description('put dead letters back into the spool with a fresh retry budget')
    .action((refs: string[], options: BulkOptions) => {
      const layout = spoolFrom(options);
      // Checked before anything is listed: a folder that is not a spool has nothing to retry, and must not say it retried 0.
      if (assertRealFolder(layout.incoming) === undefined) throw new CliError(`${layout.root} has no incoming/ folder; is it a spool?`, EXIT.ERROR);
      const selection = selectTasks(layout, 'retry', refs, options, ['dead']);
      let failure = selection.failure;
      let retried = 0;
      let gone = 0;
      try {
        runWithProgress('retry', selection.entries, options.quiet === true, (onProgress) => retryTasks(layout, selection.entries, { onProgress }), (o, out) => {
          const label = printable(o.label);
          switch (o.kind) {
            case 'retried':
              retried++;
              if (selection.byRef && !options.quiet) out.line(`retrying ${label}`);
              return;
            case 'running':
              out.error(`spool retry: ${label} is running on ${printable(o.owner)}, not a dead letter`);
              failure ??= new CliError('', EXIT.RUNNING);
              return;
            case 'wrong-state':
              out.error(`spool retry: ${label} is ${o.entry.state}, not a dead letter${o.entry.state === 'dead' ? ' with a task name (spool rm removes it)' : ''}`);
              failure ??= new CliError('', EXIT.WRONG_STATE);
              return;
            case 'gone':
              gone++;
              if (selection.byRef) {
                out.error(`spool retry: ${label} left dead/ meanwhile (retried or removed by someone else)`);
                failure ??= new CliError('', EXIT.NOT_FOUND);
              }
              return;
            default:
              throw new Error(`unexpected outcome ${o.kind}`);
          }
        });
      } catch (err) {
        if (err instanceof NotASpoolError) throw new CliError(err.message, EXIT.ERROR);
        throw err;
      }
      if (!selection.byRef && !options.quiet) {
        process.stdout.write(`retrying ${count(retried, 'dead letter')}${gone > 0 ? ` (${gone} left dead/ meanwhile)` : ''}\n`);
      }
      if (failure) throw new CliError('some tasks were not retried', failure.exitCode);
    });
}
