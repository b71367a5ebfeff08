/**
 * Pickup latency on an idle daemon: a producer renames a task into incoming/
 * every 10 ms; each task records how long after the rename it started
 * (clocks: performance.timeOrigin + now(), µs resolution, same host). Then
 * postponed tasks record how long after their due time they started.
 * Targets (issue 3): pickup p50 ≤ 5 ms, p99 ≤ 50 ms; postponed within 10 ms.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Spooler } from '../runtime/index.js';
import { encodeTask } from '../spool/task-file.js';
import { writeTaskSync } from '../spool/protocol.js';
import { percentile, preciseNow, printTable, sleep, startDaemon, stopDaemon, tempDir, verdict, waitForLine } from './lib.js';

export async function pickup(options: { seconds?: number; intervalMs?: number; postponed?: number } = {}): Promise<void> {
  const seconds = options.seconds ?? 10;
  const intervalMs = options.intervalMs ?? 10;
  const postponedCount = options.postponed ?? 100;
  const count = Math.floor((seconds * 1000) / intervalMs);
  const { dir, cleanup } = tempDir('spoolerd-bench-pickup-');
  try {
    const spool = join(dir, 'spool');
    const spooler = Spooler.open(spool);
    const stamp = spooler.task(function stamp(_since: number) {});
    const report = join(dir, 'report');
    const daemon = startDaemon(spool, { BENCH_EXPECT: String(count + postponedCount), BENCH_REPORT: report });
    await sleep(1500); // start-up; the daemon is idle from here on

    // A producer with blocking calls, as a script in another language would be: the clock is read
    // just before the file is encoded, written and renamed, so those ~50 µs count against us.
    const start = performance.now();
    for (let i = 0; i < count; i++) {
      const since = preciseNow();
      const task = encodeTask({ name: 'stamp', priority: 50, body: { type: 'fcall', args: [since] } });
      writeTaskSync(spooler.layout, task.fileName, task.bytes);
      const next = start + (i + 1) * intervalMs;
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait);
    }
    await sleep(500);
    const pickups = latencies(report);

    // Postponed: due 200 ms to 2 s from now; each records how late it started.
    const base = Date.now();
    for (let i = 0; i < postponedCount; i++) {
      const due = base + 200 + Math.floor((i * 1800) / postponedCount);
      await stamp.with({ postpone: new Date(due) })(due);
    }
    await waitForLine(report, 'done', 30_000);
    await stopDaemon(daemon);
    const late = latencies(report).slice(pickups.length).sort((a, b) => a - b);
    pickups.sort((a, b) => a - b);
    const p = (xs: number[], q: number) => percentile(xs, q).toFixed(2);
    printTable(`pickup latency: ${count} tasks, one every ${intervalMs} ms, idle daemon`, [
      ['pickup p50 (ms)', p(pickups, 50), '≤ 5', verdict(percentile(pickups, 50) <= 5)],
      ['pickup p99 (ms)', p(pickups, 99), '≤ 50', verdict(percentile(pickups, 99) <= 50)],
      ['pickup max (ms)', p(pickups, 100), '', ''],
      [`postponed start after due, p50 (ms, n=${late.length})`, p(late, 50), '', ''],
      ['postponed start after due, max (ms)', p(late, 100), '≤ 10', verdict(percentile(late, 100) <= 10)],
      ['postponed started before due (beyond 1 ms clock skew)', String(late.filter((x) => x < -1).length), '0', verdict(late.every((x) => x >= -1))],
    ]);
  } finally {
    cleanup();
  }
}

function latencies(report: string): number[] {
  return readFileSync(report, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('lat '))
    .map((l) => Number(l.slice(4)));
}
