/** `spool ls`: tasks in execution order, one line each. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { readLastError } from '../../spool/failure-record.js';
import type { SpoolEntry } from '../../spool/entries.js';
import { locationsOf, TASK_STATES, type SpoolLayout, type TaskState } from '../../spool/layout.js';
import { listFirst, startListing } from '../../spool/listing.js';
import { printable } from '../../spool/printable.js';
import { entryJsonText } from '../entry-json.js';
import { progressNotes } from '../progress-notes.js';
import { pauseHeader, pauseNotes, readPauseView } from '../pause-notes.js';
import { handlerNotes, limitNotes } from '../handlers.js';
import { CliError, EXIT } from '../exit-codes.js';
import { spoolFrom, withDirOption, type DirOption } from '../find-task.js';
import { CHUNK_CHARS, formatTime, jsonArrayChunks, TimeTexts, toJson, writeStdout, writeStdoutBytes } from '../output.js';
import { readNames } from '../../spool/read-names.js';
import { listResults, TASK_ENDINGS, type ResultRecord } from '../../spool/results.js';

interface LsOptions extends DirOption {
  state?: string[];
  task?: string[];
  json?: boolean;
  check: boolean;
  limit?: string;
}

const DEFAULT_STATES: TaskState[] = TASK_STATES.filter((s) => s !== 'archived');

/**
 * States of finished tasks, listed from their result records (results/): only
 * tasks that keep a result, while it is kept. `dead` alongside one of them
 * means result records of dead letters; alone, the files in dead/.
 */
const FINISHED_STATES: readonly string[] = TASK_ENDINGS.filter((e) => e !== 'dead');
const ALL_STATES: readonly string[] = [...TASK_STATES, ...FINISHED_STATES];

/** --state: its values as completion offers them (argChoices), parsed by parseStates (commander's choices() would refuse "a,b"). */
function stateOption(flags: string, description: string): Option {
  const option = new Option(flags, description).argParser(parseStates);
  option.argChoices = [...ALL_STATES];
  return option;
}

/** --state takes several values, each as its own argument or comma-separated. */
function parseStates(text: string, previous: string[] | undefined): string[] {
  const added = text.split(',').filter(Boolean);
  for (const s of added) if (!ALL_STATES.includes(s)) throw new InvalidArgumentError(`state ${JSON.stringify(s)} is not one of ${ALL_STATES.join(', ')}`);
  return [...(previous ?? []), ...added];
}

export function lsCommand(): Command {
  return withDirOption(new Command('ls'))
    .description('list tasks in execution order: running, then due (by priority), then scheduled (by due time), then the rest')
    .addOption(
      stateOption(
        '-s, --state <state...>',
        `only these states, comma-separated or repeated (default: all but archived): ${TASK_STATES.join(', ')}; or finished tasks that keep a result: ${TASK_ENDINGS.join(', ')}`,
      ),
    )
    .option('-t, --task <name...>', 'only tasks with these names')
    .option('--limit <n>', 'print at most n tasks (n ≥ 1); opens only the files it prints')
    .option('--no-check', 'do not open task files; list by name only (faster; invalid bodies go unnoticed)')
    .option('--json', 'print a JSON array (see README for the fields)')
    .action((options: LsOptions) => {
      const layout = spoolFrom(options);
      if (options.state?.some((s) => FINISHED_STATES.includes(s))) return listFinished(layout, options);
      const states = new Set<TaskState>(options.state?.length ? (options.state as TaskState[]) : DEFAULT_STATES);
      const locations = locationsOf(states);
      const now = Date.now();
      const names = options.task ? new Set(options.task) : undefined;
      let limit: number | undefined;
      if (options.limit !== undefined) {
        limit = Number(options.limit);
        // 0 would print "no tasks" (or []) about a spool that has some.
        if (!/^\d+$/.test(options.limit) || !Number.isSafeInteger(limit) || limit < 1) {
          throw new CliError(`--limit must be a whole number ≥ 1, got ${JSON.stringify(options.limit)}`, EXIT.USAGE);
        }
      }
      const accept = (e: SpoolEntry): boolean => states.has(e.state) && (names === undefined || (e.task !== undefined && names.has(e.task.name)));
      // Tasks no live daemon runs are noted as waiting for a handler (cli/handlers.ts).
      const waiting = states.has('due') || states.has('scheduled');
      // Paused tasks (spool pause) are marked, and said in a header line above the table.
      const pause = waiting ? readPauseView(layout) : undefined;
      const notePaused = pause === undefined ? undefined : pauseNotes(pause);
      const header = pause === undefined || options.json ? undefined : pauseHeader(pause);
      if (header !== undefined) writeStdout(header);
      const noteHandlers = notesFor(layout, states, now);
      // Running tasks' progress (progress/: ctx.progress()), in the NOTE column and the JSON's "progress".
      const noteProgress = states.has('active') ? progressNotes(layout, now) : undefined;
      const select = (all: SpoolEntry[]): SpoolEntry[] => {
        const filtered = all.filter(accept);
        const chosen = limit === undefined ? filtered : filtered.slice(0, limit);
        notePaused?.(chosen);
        noteHandlers?.(chosen);
        noteProgress?.(chosen);
        return chosen;
      };
      // The last error of each dead letter (state/<id>.json), for the ERROR column; --no-check opens no files.
      const errors = options.check && !options.json ? (e: SpoolEntry) => lastErrorText(layout, e) : undefined;
      if (limit !== undefined && limit <= EARLY_STOP_LIMIT) {
        // Stops early: reads only the folders it needs and opens only the files it prints.
        const first = listFirst(layout, limit, accept, { locations, checkBodies: options.check, now });
        notePaused?.(first);
        noteHandlers?.(first);
        noteProgress?.(first);
        const text = options.json ? jsonArrayChunks(first.length, (i) => entryJsonText(first[i]!)) : tableChunks(first, now, errors);
        for (let chunk = text.next(); chunk.done !== true; chunk = text.next()) writeStdout(chunk.value);
        return;
      }
      const listing = startListing(layout, { locations, checkBodies: options.check, now });
      // EntryJson holds only strings, numbers and nulls: its JSON.stringify text, made safe for a terminal, is toJson's (entryJsonText).
      const textOf = (entries: SpoolEntry[]): Iterator<string> =>
        options.json ? jsonArrayChunks(entries.length, (i) => entryJsonText(entries[i]!)) : tableChunks(entries, now, errors);
      let text = textOf(select(listing.entries));
      // While other threads still check bodies, the text is made ahead (up to HELD_BYTES of it) and
      // held; it is written once the checks are in, or thrown away if they changed the listing.
      const held: Buffer[] = [];
      if (listing.pending) {
        for (let bytes = 0; bytes < HELD_BYTES; ) {
          const chunk = text.next();
          if (chunk.done === true) break;
          const encoded = Buffer.from(chunk.value, 'utf8');
          held.push(encoded);
          bytes += encoded.length;
        }
      }
      const final = listing.finish();
      if (final.changed) {
        held.length = 0;
        text = textOf(select(final.entries));
      }
      for (const bytes of held) writeStdoutBytes(bytes);
      for (let chunk = text.next(); chunk.done !== true; chunk = text.next()) writeStdout(chunk.value);
    });
}

/** The notes from live daemons' status files: tasks waiting for a handler, or held back by a limit. */
function notesFor(layout: SpoolLayout, states: Set<TaskState>, now: number): ((entries: SpoolEntry[]) => void) | undefined {
  const handlers = states.has('due') || states.has('scheduled') ? handlerNotes(layout, now) : undefined;
  const limits = states.has('due') ? limitNotes(layout, now) : undefined;
  if (limits === undefined) return handlers;
  if (handlers === undefined) return limits;
  return (entries) => {
    handlers(entries);
    limits(entries);
  };
}

/** `spool ls --state processed,...`: finished tasks from their result records, oldest ending first. */
function listFinished(layout: SpoolLayout, options: LsOptions): void {
  const wanted = new Set(options.state);
  const mixed = [...wanted].filter((s) => !(TASK_ENDINGS as readonly string[]).includes(s));
  if (mixed.length > 0) {
    throw new CliError(`finished tasks (${TASK_ENDINGS.join(', ')}) are listed from their results, apart from tasks in the spool: list ${mixed.join(', ')} in another spool ls`, EXIT.USAGE);
  }
  const names = options.task ? new Set(options.task) : undefined;
  let records: ResultRecord[] = [];
  try {
    records = listResults(layout, readNames(layout.results));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  records = records.filter((r) => wanted.has(r.ending) && (names === undefined || names.has(r.name)));
  if (options.limit !== undefined) records = records.slice(0, Math.max(1, Number(options.limit) || 1));
  if (options.json) {
    const chunks = jsonArrayChunks(records.length, (i) => toJson({ ...records[i]!, state: records[i]!.ending }));
    for (let chunk = chunks.next(); chunk.done !== true; chunk = chunks.next()) writeStdout(chunk.value);
    return;
  }
  if (records.length === 0) return writeStdout('no finished tasks kept\n');
  // ATT third: alignedLine right-aligns columns 2 and 5 (5 is a time of fixed width).
  const header = ['ID', 'TASK', 'ATT', 'STATE', 'FINISHED', 'KEPT UNTIL', 'NOTE'];
  const rows = records.map((r) => [r.id, printable(r.name), numberText(r.attempts), r.ending, formatTime(r.finishedAt), formatTime(r.keepUntil), printable(noteOf(r))]);
  const width = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
  let text = alignedLine(header, width);
  for (const row of rows) text += alignedLine(row, width);
  writeStdout(text);
}

/** A finished task's note: its value (JSON, cut), its reason, or its error's first line. */
function noteOf(r: ResultRecord): string {
  let text = r.error !== undefined ? `${r.error.name ?? 'Error'}: ${r.error.message.split('\n', 1)[0]!}` : r.reason ?? r.valueError ?? (r.value === undefined ? '' : toJson(r.value));
  if (text.length > ERROR_WIDTH) text = text.slice(0, ERROR_WIDTH - 1) + '…';
  return text;
}

/**
 * Up to this --limit, `ls` lists by name and opens only the files it prints
 * (listFirst); above it, the whole listing with its body checks on several
 * threads is faster.
 */
const EARLY_STOP_LIMIT = 10_000;

/** The first line of a dead letter's last error, cut to a width that keeps the table readable. */
function lastErrorText(layout: SpoolLayout, e: SpoolEntry): string | undefined {
  if (e.state !== 'dead' || e.task === undefined) return undefined;
  const error = readLastError(layout, e.task.id);
  if (error === undefined) return undefined;
  let text = printable(`${error.name !== null && error.name !== 'Error' ? `${error.name}: ` : ''}${error.message.split('\n', 1)[0]!}`);
  if (text.length > ERROR_WIDTH) text = text.slice(0, ERROR_WIDTH - 1) + '…';
  return text;
}

const ERROR_WIDTH = 72;

/** How much of the text is made ahead and held in memory while bodies are still being checked. */
const HELD_BYTES = 12 * 1024 * 1024;

/**
 * The table, a chunk of text at a time. Column widths are measured in a first
 * pass that formats only the cells whose width varies; the second pass builds
 * each line as one string. A listing of a million tasks thus never holds all
 * its text (the command holds at most HELD_BYTES of it), or a million arrays of
 * cells, in memory. The texts of relative times
 * and ages repeat (a listing has a few hundred different ones), so they are
 * made once each (TimeTexts).
 */
function* tableChunks(entries: SpoolEntry[], now: number, errorOf?: (e: SpoolEntry) => string | undefined): Generator<string, void, undefined> {
  if (entries.length === 0) {
    yield 'no tasks\n';
    return;
  }
  const withReason = entries.some((e) => e.reason !== undefined);
  // Read once here (only dead letters have one), used twice below.
  const errors = new Map<SpoolEntry, string>();
  if (errorOf !== undefined) {
    for (const e of entries) {
      if (e.state !== 'dead') continue;
      const text = errorOf(e);
      if (text !== undefined) errors.set(e, text);
    }
  }
  const header = ['ID', 'TASK', 'PRI', 'DUE', '', 'ATT', 'STATE', 'AGE'];
  if (withReason) header.push('NOTE');
  const errorColumn = errors.size > 0 ? header.push('ERROR') - 1 : -1;
  const width = header.map((h) => h.length);
  const times = new TimeTexts(now);
  const widen = (column: number, length: number): void => {
    if (length > width[column]!) width[column] = length;
  };
  for (const e of entries) {
    const t = e.task;
    widen(0, t ? t.id.length : 1);
    widen(1, t ? t.name.length : printable(e.fileName).length);
    widen(2, t ? digits(t.priority) : 1);
    widen(3, t ? DUE_WIDTH : 1);
    if (t) widen(4, times.relative(t.due).length);
    widen(5, t ? digits(t.attempts) : 1);
    widen(6, e.owner ? e.state.length + 1 + printable(e.owner).length : e.state.length);
    widen(7, t ? times.span(Math.max(0, now - t.created)).length : 1);
    // NOTE is padded only when ERROR follows it.
    if (withReason && errorColumn > 0) widen(8, e.reason === undefined ? 0 : printable(e.reason).length);
  }
  let chunk = alignedLine(header, width);
  const cells = new Array<string>(header.length);
  for (const e of entries) {
    const t = e.task;
    if (t !== undefined) {
      cells[0] = t.id;
      cells[1] = t.name;
      cells[2] = numberText(t.priority);
      cells[3] = formatTime(t.due);
      cells[4] = times.relative(t.due);
      cells[5] = numberText(t.attempts);
      cells[7] = times.span(Math.max(0, now - t.created));
    } else {
      cells[0] = '-';
      cells[1] = printable(e.fileName);
      cells[2] = '-';
      cells[3] = '-';
      cells[4] = '';
      cells[5] = '-';
      cells[7] = '-';
    }
    cells[6] = e.owner ? `${e.state}@${printable(e.owner)}` : e.state;
    if (withReason) cells[8] = e.reason === undefined ? '' : printable(e.reason);
    if (errorColumn > 0) cells[errorColumn] = errors.get(e) ?? '';
    chunk += alignedLine(cells, width);
    if (chunk.length >= CHUNK_CHARS) {
      yield chunk;
      chunk = '';
    }
  }
  yield chunk;
}

/**
 * One line of the table: the cells two spaces apart, each padded to its
 * column's width, left-aligned but for PRI and ATT (columns 2 and 5); the last
 * cell is not padded, and the line does not end in white space. The same text
 * as padding every cell, joining them and trimming the end (trimEnd), built
 * without the padding that trimming would take off again.
 */
export function alignedLine(cells: readonly string[], width: readonly number[]): string {
  const last = cells.length - 1;
  // Cells after the last non-empty one add nothing but spaces, which trimming takes off.
  let end = last;
  while (end >= 0 && cells[end]!.length === 0) end--;
  if (end < 0) return '\n';
  let text = '';
  let pad = 0;
  for (let c = 0; c <= end; c++) {
    const cell = cells[c]!;
    if (c > 0) pad += 2;
    if (c === 2 || c === 5) {
      pad += width[c]! - cell.length;
      text += pad > 0 ? spaces(pad) + cell : cell;
      pad = 0;
    } else {
      text += pad > 0 ? spaces(pad) + cell : cell;
      pad = c === last ? 0 : width[c]! - cell.length;
    }
  }
  // A line that ends in a printable character other than a space has nothing to trim. (The line
  // ends as its last non-empty cell does; asking the cell does not flatten the line.)
  const lastCell = cells[end]!;
  const code = lastCell.charCodeAt(lastCell.length - 1);
  return (code > 0x20 && code < 0x7f ? text : text.trimEnd()) + '\n';
}

const SPACES: string[] = [''];

/** n spaces (n > 0), from a table. */
function spaces(n: number): string {
  let s = SPACES[n];
  if (s === undefined) {
    s = ' '.repeat(n);
    if (n < 1024) SPACES[n] = s;
  }
  return s;
}

const NUMBER_TEXT: string[] = [];

/** String(n), remembered for the small whole numbers priorities and attempts are. */
function numberText(n: number): string {
  if (!(n >= 0 && n < 1000 && Number.isInteger(n))) return String(n);
  return (NUMBER_TEXT[n] ??= String(n));
}

/** formatTime()'s width for years 0000–9999. */
const DUE_WIDTH = '2026-11-22 08:00:00Z'.length;

function digits(n: number): number {
  return numberText(n).length;
}
