/**
 * `spool show <id>`: one task as JSON: its decoded body, its history
 * (spool/history.ts), its last error with the stack, and its result record
 * if one is kept. A finished task whose file is gone is shown from its result.
 * A parent lists its children with their states and its continuation, a child
 * names its parent (cli/children-view.ts).
 */
import { Command } from 'commander';
import type { SpoolEntry } from '../../spool/entries.js';
import { readLastError, type LastError } from '../../spool/failure-record.js';
import { taskHistory } from '../../spool/history.js';
import type { SpoolLayout } from '../../spool/layout.js';
import { TASK_ID_PATTERN } from '../../spool/name.js';
import { readResult, type ResultRecord } from '../../spool/results.js';
import { readProgress } from '../../spool/progress.js';
import { entryJson } from '../entry-json.js';
import { CliError, EXIT } from '../exit-codes.js';
import { findEntry, spoolFrom, withDirOption, type DirOption } from '../find-task.js';
import { toJson } from '../output.js';
import { flowView, parentOfChild, type FlowView } from '../children-view.js';
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
        if (finished !== undefined && finished.ok) return void process.stdout.write(toJson({ ...finishedJson(layout, finished.record), ...flowJson(layout, ref) }, 2) + '\n');
        // A parent that ended and kept no result is still known by its children.
        const flow = TASK_ID_PATTERN.test(ref) ? flowView(layout, ref) : undefined;
        if (flow === undefined) throw err;
        return void process.stdout.write(toJson({ id: ref, name: null, state: 'ended', location: null, body: null, ...flowJson(layout, ref, flow) }, 2) + '\n');
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
      const flow = id === undefined ? {} : flowJson(layout, id, undefined, entry.body?.flow ?? null);
      const chain = entry.task !== undefined && entry.body !== undefined ? chainJson(layout, { id: entry.task.id, body: entry.body }) : undefined;
      // A running task's last progress (ctx.progress()): the key is there only for a task that reported one.
      const progress = id !== undefined && entry.state === 'active' ? readProgress(layout, id) : undefined;
      if (progress !== undefined) entry.progress = progress;
      process.stdout.write(toJson({ ...entryJson(entry), body: entry.body ?? null, history, error: lastErrorJson(error), result: result ?? null, ...(chain !== undefined && { chain }), ...flow }, 2) + '\n');
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

/**
 * A task's place in a flow: `parent` (for a child), and for a parent its
 * `children` (id, name, state) and `continuation`; nothing for other tasks.
 */
function flowJson(layout: SpoolLayout, id: string, view: FlowView | undefined = flowView(layout, id), parent?: string | null): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  // undefined: not known from a body (its file is gone): looked for in children/.
  const p = parent === undefined ? parentOfChild(layout, id) : parent;
  if (p !== undefined && p !== null) out.parent = p;
  if (view !== undefined) {
    out.children = view.children;
    out.continuation = view.continuation;
    if (view.cancelled) out.flowCancelled = true;
  }
  return out;
}

/** The last error as `spool show` prints it: its failed attempts are in `history`, not repeated here. */
function lastErrorJson(error: LastError | undefined): Omit<LastError, 'history'> | null {
  if (error === undefined) return null;
  const { history: _attempts, ...last } = error;
  return last;
}
