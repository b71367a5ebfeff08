/**
 * Drain: a spool prefilled with no-op tasks, drained by one real spoolerd.
 * Reports tasks/s from the first task starting to the last finishing, from
 * spawning the daemon (start-up included), and the CPU time (user + system)
 * the daemon and its runner processes used per task. Target (issue 3):
 * ≥ 20,000 tasks/s.
 *
 *   npm run bench -- drain                  --processes 0 (tasks on the daemon's own thread)
 *   npm run bench -- drain --processes 2    runner processes (the default of spoolerd on 2 cores)
 */
import { Spooler } from '../runtime/index.js';
import { cpuMsOf, median, printTable, readCounts, sleep, startDaemon, stopDaemon, tempDir, verdict, waitForLine } from './lib.js';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * The configuration measured before runners owned the per-task path (BENCHMARKS.md): 32 tasks at once, so
 * that each dispatch round starts many; --io-threads is accepted and has no effect since.
 */
const BEST = { concurrency: 32, ioThreads: 2 };

export async function drain(options: { tasks?: number; runs?: number; concurrency?: number; ioThreads?: number; processes?: number } = {}): Promise<void> {
  const tasks = options.tasks ?? 100_000;
  const runs = options.runs ?? 3;
  const concurrency = options.concurrency ?? BEST.concurrency;
  const ioThreads = options.ioThreads ?? BEST.ioThreads;
  const processes = options.processes ?? 0;
  const settings = ['--processes', String(processes), '--concurrency', String(concurrency), '--io-threads', String(ioThreads)];
  const rates: number[] = [];
  const wallRates: number[] = [];
  const cpuPerTask: number[] = [];
  for (let run = 1; run <= runs; run++) {
    const { dir, cleanup } = tempDir('spoolerd-bench-drain-');
    try {
      const spool = join(dir, 'spool');
      const spooler = Spooler.open(spool);
      const noop = spooler.task(function noop() {});
      for (let i = 0; i < tasks; i += 10_000) await spooler.enqueueMany(Array.from({ length: Math.min(10_000, tasks - i) }, () => noop.request()));
      const report = join(dir, 'report');
      const counts = join(dir, 'counts');
      const spawned = performance.now();
      // With runner processes no one process sees every run: each keeps its count in counts/ (noop-tasks.ts).
      const env: Record<string, string> = processes === 0 ? { BENCH_EXPECT: String(tasks), BENCH_REPORT: report } : { BENCH_COUNTS: counts };
      const daemon = startDaemon(spool, env, settings);
      let ms: number;
      let cpuMs: number;
      if (processes === 0) {
        const line = await waitForLine(report, 'done', 300_000);
        ms = Number(line.split(' ')[2]);
        cpuMs = cpuMsOf(daemon.pid!);
      } else {
        const deadline = Date.now() + 300_000;
        let seen = readCounts(counts);
        while (seen.runs < tasks) {
          if (Date.now() > deadline || daemon.exitCode !== null) throw new Error(`the drain of ${tasks} tasks did not finish`);
          await sleep(10);
          seen = readCounts(counts);
        }
        ms = seen.last - seen.first;
        cpuMs = [daemon.pid!, ...childrenOf(daemon.pid!)].reduce((sum, pid) => sum + cpuMsOf(pid), 0);
      }
      const wall = performance.now() - spawned;
      await stopDaemon(daemon);
      rates.push(tasks / (ms / 1000));
      wallRates.push(tasks / (wall / 1000));
      cpuPerTask.push((cpuMs * 1000) / tasks);
      console.log(`run ${run}: ${tasks} tasks, first→last ${ms.toFixed(0)} ms (${(tasks / (ms / 1000)).toFixed(0)}/s), spawn→last ${wall.toFixed(0)} ms (${(tasks / (wall / 1000)).toFixed(0)}/s), CPU ${((cpuMs * 1000) / tasks).toFixed(1)} µs/task`);
    } finally {
      cleanup();
    }
  }
  const best = Math.max(...rates);
  printTable(`drain: ${tasks} prefilled no-op tasks, one spoolerd (${settings.join(' ')}), ${runs} runs`, [
    ['tasks/s, first→last (median)', median(rates).toFixed(0), '≥ 20000', verdict(median(rates) >= 20_000)],
    ['tasks/s, first→last (best)', best.toFixed(0), '', ''],
    ['tasks/s, spawn→last (median)', median(wallRates).toFixed(0), '', ''],
    ['CPU µs/task, daemon + runners, start-up included (median)', median(cpuPerTask).toFixed(1), '', ''],
  ]);
}

/** The runner processes of the daemon (its children), for their CPU time. */
function childrenOf(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
