/** `spool ls`: tasks in execution order, one line each. */
import { Command, Option } from 'commander';
import type { TaskLocation } from '../../spool/layout.js';
import { listSpool, TASK_STATES, type SpoolEntry, type TaskState } from '../../spool/listing.js';
import { entryJson } from '../entry-json.js';
import { CliError, EXIT } from '../exit-codes.js';
import { spoolFrom, withDirOption, type DirOption } from '../find-task.js';
import { formatRelative, formatSpan, formatTime, table, toJson } from '../output.js';

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
      process.stdout.write(options.json ? toJson(entries.map(entryJson)) + '\n' : render(entries, now));
    });
}

function render(entries: SpoolEntry[], now: number): string {
  if (entries.length === 0) return 'no tasks\n';
  const withReason = entries.some((e) => e.reason !== undefined);
  const header = ['ID', 'TASK', 'PRI', 'DUE', '', 'ATT', 'STATE', 'AGE'];
  if (withReason) header.push('NOTE');
  const rows = entries.map((e) => {
    const t = e.task;
    const row = [
      t?.id ?? '-',
      t?.name ?? e.fileName,
      t ? String(t.priority) : '-',
      t ? formatTime(t.due) : '-',
      t ? formatRelative(t.due, now) : '',
      t ? String(t.attempts) : '-',
      e.owner ? `${e.state}@${e.owner}` : e.state,
      t ? formatSpan(Math.max(0, now - t.created)) : '-',
    ];
    if (withReason) row.push(e.reason ?? '');
    return row;
  });
  return table(header, rows, new Set([2, 5]));
}
