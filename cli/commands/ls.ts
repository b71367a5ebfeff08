/** `spool ls`: tasks in execution order, one line each. */
import { Command, Option } from 'commander';
import type { TaskLocation } from '../../spool/layout.js';
import { listSpool, TASK_STATES, type SpoolEntry, type TaskState } from '../../spool/listing.js';
import { entryJson } from '../entry-json.js';
import { CliError, EXIT } from '../exit-codes.js';
import { spoolFrom, withDirOption, type DirOption } from '../find-task.js';
import { CHUNK_CHARS, formatRelative, formatSpan, formatTime, writeJsonArray, writeStdout } from '../output.js';

interface LsOptions extends DirOption {
  state?: string[];
  task?: string[];
  json?: boolean;
  check: boolean;
  limit?: string;
}

/** Which directories hold which states, so a filter reads only what it needs. */
const LOCATIONS_OF: Record<TaskState, TaskLocation[]> = {
  active: ['active'],
  due: ['incoming', 'pending'],
  scheduled: ['incoming', 'pending'],
  invalid: ['incoming', 'pending'],
  dead: ['dead'],
  quarantined: ['quarantine'],
  archived: ['archive'],
};
const DEFAULT_STATES: TaskState[] = ['active', 'due', 'scheduled', 'invalid', 'dead', 'quarantined'];

export function lsCommand(): Command {
  return withDirOption(new Command('ls'))
    .description('list tasks in execution order: running, then due (by priority), then scheduled (by due time), then the rest')
    .addOption(
      new Option('-s, --state <state...>', `only these states (default: all but archived)`).choices([...TASK_STATES]),
    )
    .option('-t, --task <name...>', 'only tasks with these names')
    .option('--limit <n>', 'print at most n tasks')
    .option('--no-check', 'do not open task files; list by name only (faster; invalid bodies go unnoticed)')
    .option('--json', 'print a JSON array (see README for the fields)')
    .action((options: LsOptions) => {
      const layout = spoolFrom(options);
      const states = new Set<TaskState>(options.state?.length ? (options.state as TaskState[]) : DEFAULT_STATES);
      const locations = [...new Set([...states].flatMap((s) => LOCATIONS_OF[s]))];
      const now = Date.now();
      const names = options.task ? new Set(options.task) : undefined;
      let entries = listSpool(layout, { locations, checkBodies: options.check, now }).filter(
        (e) => states.has(e.state) && (names === undefined || (e.task !== undefined && names.has(e.task.name))),
      );
      if (options.limit !== undefined) {
        const limit = Number(options.limit);
        if (!Number.isSafeInteger(limit) || limit < 0) throw new CliError(`--limit must be a whole number, got ${options.limit}`, EXIT.USAGE);
        entries = entries.slice(0, limit);
      }
      const write = writeStdout;
      // EntryJson holds only strings, numbers and nulls: plain JSON.stringify is toJson here.
      if (options.json) writeJsonArray(write, entries.length, (i) => JSON.stringify(entryJson(entries[i]!)));
      else render(write, entries, now);
    });
}

/**
 * The table, written a chunk at a time. Column widths are measured in a first
 * pass that formats only the cells whose width varies; the second pass builds
 * each line as one string. A listing of a million tasks thus never holds its
 * text, or a million arrays of cells, in memory.
 */
function render(write: (chunk: string) => void, entries: SpoolEntry[], now: number): void {
  if (entries.length === 0) return write('no tasks\n');
  const withReason = entries.some((e) => e.reason !== undefined);
  const header = ['ID', 'TASK', 'PRI', 'DUE', '', 'ATT', 'STATE', 'AGE'];
  if (withReason) header.push('NOTE');
  const width = header.map((h) => h.length);
  const widen = (column: number, length: number): void => {
    if (length > width[column]!) width[column] = length;
  };
  for (const e of entries) {
    const t = e.task;
    widen(0, t ? t.id.length : 1);
    widen(1, t ? t.name.length : e.fileName.length);
    widen(2, t ? digits(t.priority) : 1);
    widen(3, t ? DUE_WIDTH : 1);
    if (t) widen(4, formatRelative(t.due, now).length);
    widen(5, t ? digits(t.attempts) : 1);
    widen(6, e.owner ? e.state.length + 1 + e.owner.length : e.state.length);
    widen(7, t ? formatSpan(Math.max(0, now - t.created)).length : 1);
  }
  const last = header.length - 1;
  // Cells are left-aligned but for PRI and ATT; the last cell is not padded, and no line ends in spaces.
  const line = (cells: string[]): string => {
    let text = '';
    for (let c = 0; c <= last; c++) {
      if (c > 0) text += '  ';
      text += c === 2 || c === 5 ? cells[c]!.padStart(width[c]!) : c === last ? cells[c]! : cells[c]!.padEnd(width[c]!);
    }
    return text.trimEnd() + '\n';
  };
  let chunk = line(header);
  const cells = new Array<string>(header.length);
  for (const e of entries) {
    const t = e.task;
    cells[0] = t ? t.id : '-';
    cells[1] = t ? t.name : e.fileName;
    cells[2] = t ? String(t.priority) : '-';
    cells[3] = t ? formatTime(t.due) : '-';
    cells[4] = t ? formatRelative(t.due, now) : '';
    cells[5] = t ? String(t.attempts) : '-';
    cells[6] = e.owner ? `${e.state}@${e.owner}` : e.state;
    cells[7] = t ? formatSpan(Math.max(0, now - t.created)) : '-';
    if (withReason) cells[8] = e.reason ?? '';
    chunk += line(cells);
    if (chunk.length >= CHUNK_CHARS) {
      write(chunk);
      chunk = '';
    }
  }
  write(chunk);
}

/** formatTime()'s width for years 0000–9999. */
const DUE_WIDTH = '2026-11-22 08:00:00Z'.length;

function digits(n: number): number {
  return String(n).length;
}
