/**
 * What a task records, in the Node consumers (spoolerd's task module and the
 * BullMQ worker); uwsgi_tasks.py does the same in Python.
 *
 * - every task: the process's completion count and first/last completion time,
 *   kept in memory and written to <report dir>/status-<pid> every 20 ms while
 *   it changes (one small file write per 20 ms, not per task);
 * - `stamp` tasks: "lat <ms>" appended to <report dir>/lat-<pid>, one write()
 *   on an fd kept open: the same per-task cost as the Python side.
 *
 * The report directory comes from BENCH_REPORT_DIR.
 */
import { closeSync, openSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { calibrateClock, wallNow } from './clock.js';

const dir = process.env.BENCH_REPORT_DIR;
if (!dir) throw new Error('BENCH_REPORT_DIR is not set');
calibrateClock();

let count = 0;
let first = 0;
let last = 0;
let written = -1;
let latFd: number | undefined;

function writeStatus(): void {
  if (written === count) return;
  written = count;
  // Write then rename, so the harness never reads half a line.
  const tmp = join(dir!, `.status-${process.pid}`);
  writeFileSync(tmp, `${count} ${first.toFixed(3)} ${last.toFixed(3)}\n`);
  renameSyncQuiet(tmp, join(dir!, `status-${process.pid}`));
}

function renameSyncQuiet(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch {
    // the report directory was removed: the run is over
  }
}

setInterval(writeStatus, 20).unref();
process.once('exit', () => {
  writeStatus();
  if (latFd !== undefined) closeSync(latFd);
});

export function taskDone(): void {
  const now = wallNow();
  count++;
  if (count === 1) first = now;
  last = now;
}

/** `since`: the producer's wall clock (ms) when the task became visible. */
export function taskStarted(since: number): void {
  const lat = wallNow() - since;
  latFd ??= openSync(join(dir!, `lat-${process.pid}`), 'a');
  writeSync(latFd, `lat ${lat.toFixed(3)}\n`);
}
