/**
 * What a task records, in the Node consumers (spoolerd's task module and the
 * BullMQ worker); uwsgi_tasks.py does the same in Python.
 *
 * - every task: the process's completion count and first/last completion time,
 *   kept in memory and written over <report dir>/status-<pid> 20 ms after a
 *   change (one pwrite per 20 ms at most, not per task; no timer when idle);
 * - `stamp` tasks: "lat <ms>" appended to <report dir>/lat-<pid>, one write()
 *   on an fd kept open: the same per-task cost as the Python side.
 *
 * The report directory comes from BENCH_REPORT_DIR.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { monoNow } from './clock.js';

const dir = process.env.BENCH_REPORT_DIR;
if (!dir) throw new Error('BENCH_REPORT_DIR is not set');

let count = 0;
let first = 0;
let last = 0;
let written = -1;
let latFd: number | undefined;
let statusFd: number | undefined;

/**
 * One fixed-width record rewritten in place at offset 0 (a single pwrite of
 * under a page, which a concurrent read sees whole): no file is created per
 * write, which on this machine's ext4 cost ~1 ms each.
 */
function writeStatus(): void {
  if (written === count) return;
  written = count;
  statusFd ??= openSync(join(dir!, `status-${process.pid}`), 'w');
  writeSync(statusFd, `${String(count).padStart(12)} ${first.toFixed(3).padStart(20)} ${last.toFixed(3).padStart(20)}\n`, 0);
}

/**
 * At most one status write per 20 ms, and no timer at all while no task
 * completes: an idle consumer must not be woken by its probe (the backlog
 * workload measures idle CPU).
 */
let pending: NodeJS.Timeout | undefined;
function scheduleStatus(): void {
  pending ??= setTimeout(() => {
    pending = undefined;
    writeStatus();
  }, 20).unref(); // the exit handler writes the last status
}
process.once('exit', () => {
  writeStatus();
  if (latFd !== undefined) closeSync(latFd);
});

export function taskDone(): void {
  const now = monoNow();
  count++;
  if (count === 1) first = now;
  last = now;
  scheduleStatus();
}

/** `since`: the producer's monotonic clock (ms, clock.ts) when the task became visible. */
export function taskStarted(since: number): void {
  const lat = monoNow() - since;
  latFd ??= openSync(join(dir!, `lat-${process.pid}`), 'a');
  writeSync(latFd, `lat ${lat.toFixed(3)}\n`);
}
