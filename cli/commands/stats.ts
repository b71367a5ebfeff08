/** `spool stats`: counts by state, priority and task name. */
import { Command } from 'commander';
import { TASK_STATES } from '../../spool/layout.js';
import { listSpool } from '../../spool/listing.js';
import { spoolFrom, withDirOption, type DirOption } from '../find-task.js';
import { table, toJson } from '../output.js';
import { isTaskPaused } from '../../spool/pause.js';
import { pauseHeader, readPauseView } from '../pause-notes.js';

export function statsCommand(): Command {
  return withDirOption(new Command('stats'))
    .description('count tasks by state, by priority and by task name')
    .option('--json', 'print JSON: {"total", "byState", "byPriority", "byTask", "paused"}')
    .option('--no-check', 'do not open task files (faster; invalid bodies count by their names)')
    .action((options: DirOption & { json?: boolean; check: boolean }) => {
      const layout = spoolFrom(options);
      const entries = listSpool(layout, { checkBodies: options.check });
      const byState: Record<string, number> = Object.fromEntries(TASK_STATES.filter((s) => s !== 'archived').map((s) => [s, 0]));
      const byPriority: Record<string, number> = {};
      const byTask: Record<string, number> = {};
      // What is paused (spool pause), and how many waiting tasks that holds back.
      const pause = readPauseView(layout);
      let waitingPaused = 0;
      for (const e of entries) {
        byState[e.state] = (byState[e.state] ?? 0) + 1;
        if ((e.state === 'due' || e.state === 'scheduled') && e.task !== undefined && isTaskPaused(pause.state, e.task.name)) waitingPaused++;
        if (e.task && e.state !== 'invalid' && e.state !== 'quarantined') {
          const p = String(e.task.priority).padStart(2, '0');
          byPriority[p] = (byPriority[p] ?? 0) + 1;
          byTask[e.task.name] = (byTask[e.task.name] ?? 0) + 1;
        }
      }
      // Sorted as entries: an object would put keys like "10" before "05" (integer-like keys come first).
      const priorities = Object.entries(byPriority).sort(([a], [b]) => (a < b ? -1 : 1));
      const tasks = Object.entries(byTask).sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1));
      if (options.json) {
        const paused = { all: pause.state.all, tasks: pause.state.tasks, schedules: pause.state.schedules, waiting: waitingPaused, problem: pause.problem ?? null };
        process.stdout.write(toJson({ total: entries.length, byState, byPriority: Object.fromEntries(priorities), byTask: Object.fromEntries(tasks), paused }) + '\n');
        return;
      }
      const section = (title: string, counts: [string, number][]) =>
        table([title, 'COUNT'], counts.map(([k, v]) => [k, String(v)]), new Set([1]));
      process.stdout.write(
        [
          `total ${entries.length}`,
          ...(pauseHeader(pause) === undefined ? [] : [`${pauseHeader(pause)!.trimEnd()}; ${waitingPaused} waiting task(s) held back`]),
          section('STATE', Object.entries(byState)),
          section('PRIORITY', priorities),
          section('TASK', tasks),
        ].join('\n'),
      );
    });
}
