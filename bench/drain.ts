/**
 * Drain: a spool prefilled with no-op tasks, drained by one real spoolerd.
 * Reports tasks/s from the first task starting to the last finishing, and from
 * spawning the daemon (start-up included). Target (issue 3): ≥ 20,000 tasks/s.
 */
import { Spooler } from '../runtime/index.js';
import { median, printTable, startDaemon, stopDaemon, tempDir, verdict, waitForLine } from './lib.js';
import { join } from 'node:path';

/**
 * The best configuration measured on the 2-core machine (BENCHMARKS.md): 32 tasks at once, so that each
 * dispatch round starts many, and two file-ops threads, so that claims, reads and unlinks use both cores.
 */
const BEST = { concurrency: 32, ioThreads: 2 };

export async function drain(options: { tasks?: number; runs?: number; concurrency?: number; ioThreads?: number } = {}): Promise<void> {
  const tasks = options.tasks ?? 100_000;
  const runs = options.runs ?? 3;
  const concurrency = options.concurrency ?? BEST.concurrency;
  const ioThreads = options.ioThreads ?? BEST.ioThreads;
  const settings = ['--concurrency', String(concurrency), '--io-threads', String(ioThreads)];
  const rates: number[] = [];
  const wallRates: number[] = [];
  for (let run = 1; run <= runs; run++) {
    const { dir, cleanup } = tempDir('spoolerd-bench-drain-');
    try {
      const spool = join(dir, 'spool');
      const spooler = Spooler.open(spool);
      const noop = spooler.task(function noop() {});
      for (let i = 0; i < tasks; i += 10_000) await spooler.enqueueMany(Array.from({ length: Math.min(10_000, tasks - i) }, () => noop.request()));
      const report = join(dir, 'report');
      const spawned = performance.now();
      const daemon = startDaemon(spool, { BENCH_EXPECT: String(tasks), BENCH_REPORT: report }, settings);
      const line = await waitForLine(report, 'done', 300_000);
      const wall = performance.now() - spawned;
      await stopDaemon(daemon);
      const ms = Number(line.split(' ')[2]);
      rates.push(tasks / (ms / 1000));
      wallRates.push(tasks / (wall / 1000));
      console.log(`run ${run}: ${tasks} tasks, first→last ${ms.toFixed(0)} ms (${(tasks / (ms / 1000)).toFixed(0)}/s), spawn→last ${wall.toFixed(0)} ms (${(tasks / (wall / 1000)).toFixed(0)}/s)`);
    } finally {
      cleanup();
    }
  }
  const best = Math.max(...rates);
  printTable(`drain: ${tasks} prefilled no-op tasks, one spoolerd (--processes 0 ${settings.join(' ')}), ${runs} runs`, [
    ['tasks/s, first→last (median)', median(rates).toFixed(0), '≥ 20000', verdict(median(rates) >= 20_000)],
    ['tasks/s, first→last (best)', best.toFixed(0), '', ''],
    ['tasks/s, spawn→last (median)', median(wallRates).toFixed(0), '', ''],
  ]);
}
