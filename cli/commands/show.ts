/**
 * `spool show <id>`: one task as JSON: its decoded body, its history
 * (spool/history.ts), its last error with the stack, and its result record
 * if one is kept. A finished task whose file is gone is shown from its result.
 */
import { Command } from 'commander';
import type { SpoolEntry } from '../../spool/entries.js';
import { readLastError, type LastError } from '../../spool/failure-record.js';
import { taskHistory } from '../../spool/history.js';
import type { SpoolLayout } from '../../spool/layout.js';
import { TASK_ID_PATTERN } from '../../spool/name.js';
import { readResult, type ResultRecord } from '../../spool/results.js';
import { entryJson } from '../entry-json.js';
import { CliError, EXIT } from '../exit-codes.js';
import { findEntry, spoolFrom, withDirOption, type DirOption } from '../find-task.js';
import { toJson } from '../output.js';
import { pauseNotes, readPauseView } from '../pause-notes.js';
import { chainJson, finishedChainJson } from '../chain-place.js';

export function showCommand(): Command {
  return withDirOption(new Command('show'))
    .description(
      'print one task (by id, the start or end of one, or file name) as JSON: its decoded body; its history ' +
        '(enqueued, claimed by which daemon, each failed attempt with its error and time, rescheduled until when, how it ended); ' +
        'its last error with the stack ("error"; null if it never failed); and its result ("result", for tasks that keep one: ' +
        'a finished task is found by its whole id while its result is kept); exit 4 if the file is not a valid task',
    )
    .argument('<id>', 'task id, a unique start or end of one (e.g. the last 6 characters), or a file name')
    .option('--json', 'print JSON (the default, and the only format)')
    .action((ref: string, options: DirOption) => {
      const layout = spoolFrom(options);
      let entry: SpoolEntry;
      try {
        entry = findEntry(layout, ref, { keepBodies: true });
      } catch (err) {
        // Its file is gone: a finished task is still known by its result while it is kept.
        const finished = err instanceof CliError && err.exitCode === EXIT.NOT_FOUND && TASK_ID_PATTERN.test(ref) ? readResult(layout, ref) : undefined;
        if (finished === undefined || !finished.ok) throw err;
        return void process.stdout.write(toJson(finishedJson(layout, finished.record), 2) + '\n');
      }
      const id = entry.task?.id;
      // A waiting task that is paused says so ("paused"); its reason stays what makes a file invalid.
      if (entry.reason === undefined) {
        pauseNotes(readPauseView(layout))?.([entry]);
        entry.reason = undefined;
      }
      // state/<id>.json holds each failed attempt and the last error, kept while the task is retried and once it is dead.
      const error = id === undefined ? undefined : readLastError(layout, id);
      const kept = id === undefined ? undefined : readResult(layout, id);
      const result = kept?.ok ? kept.record : undefined;
      const history = id === undefined ? [] : taskHistory(layout, id, entry, error, result);
      const chain = entry.task !== undefined && entry.body !== undefined ? chainJson(layout, { id: entry.task.id, body: entry.body }) : undefined;
      process.stdout.write(toJson({ ...entryJson(entry), body: entry.body ?? null, history, error: lastErrorJson(error), result: result ?? null, ...(chain !== undefined && { chain }) }, 2) + '\n');
      if (entry.reason !== undefined) {
        throw new CliError(`${entry.fileName} is not a valid task: ${entry.reason}`, EXIT.INVALID);
      }
    });
}

/** A task whose file is gone, from its result record: the fields of a task entry it can fill, the rest null. */
function finishedJson(layout: SpoolLayout, r: ResultRecord): Record<string, unknown> {
  const error = readLastError(layout, r.id);
  return {
    id: r.id,
    name: r.name,
    state: r.ending,
    priority: null,
    due: null,
    created: Number(r.id.slice(0, 13)),
    attempts: r.attempts,
    encoding: null,
    location: 'results',
    owner: r.owner ?? null,
    file: null,
    path: null,
    reason: r.reason ?? null,
    body: null,
    history: taskHistory(layout, r.id, undefined, error, r),
    error: error !== undefined ? lastErrorJson(error) : r.error === undefined ? null : { name: r.error.name ?? null, message: r.error.message, stack: r.error.stack ?? null, at: r.finishedAt, attempts: r.attempts },
    result: r,
    ...finishedChainJson(layout, r.id),
  };
}

/** The last error as `spool show` prints it: its failed attempts are in `history`, not repeated here. */
function lastErrorJson(error: LastError | undefined): Omit<LastError, 'history'> | null {
  if (error === undefined) return null;
  const { history: _attempts, ...last } = error;
  return last;
}
