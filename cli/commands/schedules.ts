/** `spool schedules`: each schedule of the spool with its last and next slot, and whether it is paused. */
import { Command } from 'commander';
import { isSchedulePaused, readPauseState } from '../../spool/pause.js';
import { describeWhen, ScheduleSlots, type ScheduleSpec } from '../../spool/schedule.js';
import { lastRun, listScheduleNames, readScheduleRecord, type MarkerState } from '../../spool/schedules.js';
import { spoolFrom, withDirOption, type DirOption } from '../find-task.js';
import { formatRelative, formatTime, table, toJson } from '../output.js';

/** One schedule as `spool schedules --json` prints it. */
export interface ScheduleListing {
  name: string;
  task: string;
  every?: number;
  cron?: string;
  tz?: string;
  catchUp: ScheduleSpec['catchUp'];
  paused: boolean;
  /** The newest slot that enqueued a task (ms), and where that task is: in-spool (waiting, running, retried, dead or archived) or ended. */
  last: { slot: number; state: Exclude<MarkerState, 'skipped'> } | null;
  /** The next slot after now (ms); null when the expression has no more. */
  next: number | null;
  /** When a daemon first served it, when its record was last written, and by which daemon. */
  since: number;
  updated: number;
  by: string;
}

export function schedulesCommand(): Command {
  return withDirOption(new Command('schedules'))
    .description('list the schedules of periodic tasks: last and next run, paused or not')
    .option('--json', 'print a JSON array: [{"name", "task", "every" | "cron", "tz", "catchUp", "paused", "last": {"slot", "state"}, "next", ...}]')
    .action(async (options: DirOption & { json?: boolean }) => {
      const layout = spoolFrom(options);
      const pause = await readPauseState(layout.root);
      const now = Date.now();
      const listings: ScheduleListing[] = [];
      for (const name of listScheduleNames(layout)) {
        const record = readScheduleRecord(layout, name);
        if (record === undefined) continue;
        const spec = record.spec;
        const last = lastRun(layout, name);
        let next: number | null = null;
        try {
          next = new ScheduleSlots(spec).next(now) ?? null;
        } catch {
          // A record written by a newer version: shown without its next slot.
        }
        listings.push({
          name,
          task: spec.task,
          ...(spec.every !== undefined ? { every: spec.every } : {}),
          ...(spec.cron !== undefined ? { cron: spec.cron } : {}),
          ...(spec.tz !== undefined ? { tz: spec.tz } : {}),
          catchUp: spec.catchUp,
          paused: isSchedulePaused(pause, name),
          last: last === undefined || last.state === 'skipped' ? null : { slot: last.slot, state: last.state },
          next,
          since: record.since,
          updated: record.updated,
          by: record.by,
        });
      }
      if (options.json) {
        process.stdout.write(toJson(listings) + '\n');
        return;
      }
      if (listings.length === 0) {
        process.stdout.write('no schedules (a daemon writes one in schedules/ when it first serves it)\n');
        return;
      }
      const rows = listings.map((l) => [
        l.name,
        l.task,
        describeWhen(l),
        l.last === null ? '-' : `${formatTime(l.last.slot)} (${formatRelative(l.last.slot, now)}${l.last.state === 'in-spool' ? ', in spool' : ''})`,
        l.paused ? 'paused' : l.next === null ? '-' : `${formatTime(l.next)} (${formatRelative(l.next, now)})`,
        l.paused ? 'paused' : 'active',
      ]);
      process.stdout.write(table(['SCHEDULE', 'TASK', 'WHEN', 'LAST RUN', 'NEXT RUN', 'STATE'], rows));
    });
}
