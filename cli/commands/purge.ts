/**
 * `spool purge --state dead --older-than 7d`: deletes old dead letters (with
 * their failure records), archived tasks, quarantined files or waiting tasks,
 * by state and age, in one pass. Never a running task: `--state active` is
 * refused, and a task claimed meanwhile is left alone and counted. Each file
 * goes as `spool rm` removes it (spool/protocol.ts revoke: taken out of the
 * spool by one rename, then deleted with its record), so it is safe while
 * daemons run. A progress bar is drawn on a terminal; a count ends the run.
 * The daemon does the same on its own with --keep-dead and --keep-archive.
 */
import { Command, Option } from 'commander';
import { removeTasks, type Outcome } from '../../spool/bulk.js';
import { TASK_STATES, type TaskState } from '../../spool/layout.js';
import { printable } from '../../spool/printable.js';
import { count, runWithProgress, selectTasks, type BulkOptions } from '../bulk.js';
import { CliError, EXIT } from '../exit-codes.js';
import { spoolFrom, withDirOption } from '../find-task.js';
import { writeStdout } from '../output.js';

/** Purged unless --state says otherwise. */
const DEFAULT_STATES: TaskState[] = ['dead'];

interface PurgeOptions extends BulkOptions {
  dryRun?: boolean;
  json?: boolean;
}

export function purgeCommand(): Command {
  return withDirOption(new Command('purge'))
    .description('delete old dead letters (and their failure records), archived tasks, quarantined files or waiting tasks; never a running one')
    .addOption(new Option('-s, --state <state...>', 'the states to purge (default: dead; active, running tasks, is refused)').choices([...TASK_STATES]))
    .option('--older-than <duration>', 'only tasks created longer ago than this, e.g. 7d, 12h (files without a task name: by modification time)')
    .option('-t, --task <name...>', 'only tasks with these names')
    .option('-n, --dry-run', 'delete nothing: say what would be deleted')
    .option('--json', 'print the counts as JSON (and, with --dry-run, the tasks)')
    .option('-q, --quiet', 'print nothing on success, and no progress bar')
    .action((options: PurgeOptions) => {
      const states = options.state?.length ? options.state : DEFAULT_STATES;
      if (states.includes('active')) throw new CliError('running tasks (--state active) are never purged; cancel them, or wait until they end', EXIT.USAGE);
      const layout = spoolFrom(options);
      const selection = selectTasks(layout, 'purge', [], { ...options, state: states }, DEFAULT_STATES);
      const entries = selection.entries;
      if (options.dryRun) {
        if (options.json) {
          writeStdout(JSON.stringify({ dryRun: true, purged: entries.length, tasks: entries.map((e) => ({ id: e.task?.id ?? null, state: e.state, file: e.fileName })) }) + '\n');
        } else if (!options.quiet) {
          writeStdout(`would purge ${count(entries.length, 'task')} (${describe(states, options.olderThan)})\n`);
        }
        return;
      }
      const tally = { purged: 0, running: 0, gone: 0, stranded: 0 };
      // The bar goes on stderr, only when a person watches: stdout a terminal (not piped, not --json).
      const noBar = options.quiet === true || options.json === true || process.stdout.isTTY !== true;
      runWithProgress('purge', entries, noBar, (onProgress) => removeTasks(layout, entries, { onProgress }), (o: Outcome, out) => {
        switch (o.kind) {
          case 'removed':
            tally.purged++;
            return;
          case 'running':
            tally.running++;
            return;
          case 'gone':
            tally.gone++;
            return;
          case 'stranded':
            tally.stranded++;
            out.error(`spool purge: ${printable(o.label)} was taken out of the spool but could not be deleted (${printable(o.error.message)}); delete ${printable(o.path)} by hand`);
            return;
          default:
            throw new Error(`unexpected outcome ${o.kind}`);
        }
      });
      if (options.json) writeStdout(JSON.stringify({ dryRun: false, ...tally }) + '\n');
      else if (!options.quiet) {
        const notes = [tally.running > 0 && `${tally.running} running (left alone)`, tally.gone > 0 && `${tally.gone} left the spool meanwhile`].filter(Boolean);
        writeStdout(`purged ${count(tally.purged, 'task')}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}\n`);
      }
      if (tally.stranded > 0) throw new CliError(`${count(tally.stranded, 'task')} could not be deleted`, EXIT.ERROR);
    });
}

function describe(states: readonly TaskState[], olderThan: string | undefined): string {
  return `${states.join(', ')}${olderThan !== undefined ? `, created over ${olderThan} ago` : ''}`;
}
