/**
 * Waiting on many results at once (issue 16): one process waits with
 * spooler.wait() for 10,000 tasks (bench/wait-many-waiter.ts) that a daemon
 * run with --keep-results then drains. Targets: the waiter's peak RSS under
 * 200 MB, and one inotify watch in all (not one per result).
 *
 *   npm run build && flock /work/bench.lock node dist/bench/run.js wait-many [--tasks 10000] [--runs 1]
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Spooler } from '../runtime/index.js';
import { DIST, startDaemon, stopDaemon, tempDir, waitForLine } from './lib.js';
import { printRows, progress, summarize } from './report.js';

interface WaiterLine {
  waiting?: number;
  done?: number;
  watches?: number;
  mode?: string;
  ms?: number;
  setupMs?: number;
  rssMb: number;
  peakMb: number;
}

export async function waitMany(options: { tasks?: number; runs?: number } = {}): Promise<void> {
  const tasks = options.tasks ?? 10_000;
  const runs = options.runs ?? 1;
  const peaks: number[] = [];
  const watches: number[] = [];
  const wakeMs: number[] = [];
  const setupMs: number[] = [];
  for (let run = 0; run < runs; run++) {
    const { dir, cleanup } = tempDir('spoolerd-bench-wait-many-');
    try {
      const spool = join(dir, 'spool');
      const spooler = Spooler.open(spool);
      const handles = await spooler.enqueueMany(Array.from({ length: tasks }, () => ({ name: 'noop', options: { keepResult: '1h' } })));
      progress(`wait-many: ${tasks} tasks enqueued; starting the waiter`);
      const waiter = spawn(process.execPath, [join(DIST, 'bench/wait-many-waiter.js'), spool], { stdio: ['pipe', 'pipe', 'inherit'] });
      waiter.stdin.end(handles.map((h) => h.id).join('\n'));
      const lines = createInterface({ input: waiter.stdout })[Symbol.asyncIterator]();
      const next = async (): Promise<WaiterLine> => JSON.parse(((await lines.next()).value as string | undefined) ?? 'null') as WaiterLine;
      const waiting = await next();
      progress(`wait-many: ${JSON.stringify(waiting)}`);
      const report = join(dir, 'report');
      const daemon = startDaemon(spool, { BENCH_EXPECT: String(tasks), BENCH_REPORT: report });
      await waitForLine(report, 'done', 300_000);
      const done = await next();
      progress(`wait-many: ${JSON.stringify(done)}`);
      await stopDaemon(daemon);
      peaks.push(done.peakMb);
      watches.push(waiting.watches ?? NaN);
      wakeMs.push(done.ms ?? NaN);
      setupMs.push(waiting.setupMs ?? NaN);
    } finally {
      cleanup();
    }
  }
  printRows('wait-many', `waiting on ${tasks} results at once from one process (spooler.wait), drained by spoolerd --processes 0`, [
    { measure: 'waiter peak RSS', summary: summarize(peaks), unit: 'MB', target: { atMost: 200 }, digits: 1 },
    { measure: 'inotify watches held by the waiter', summary: summarize(watches), unit: 'watches', target: { atMost: 1 } },
    { measure: 'setting up every wait', summary: summarize(setupMs), unit: 'ms' },
    { measure: 'first wait to the last result', summary: summarize(wakeMs), unit: 'ms' },
  ]);
}
