/**
 * Backlog: a million pending tasks with mixed due times (1% due now, the rest
 * spread over the next day), enqueued while no daemon runs, then one spoolerd
 * started on them. Reports the time from spawn to the first due task running,
 * to every due task done, the daemon's RSS and peak RSS, and the CPU it uses
 * over a minute of idling once every remaining task is in the future.
 * Targets (issue 3): dispatching within 10 s, RSS ≤ 500 MB, no measurable idle CPU.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Spooler } from '../runtime/index.js';
import { encodeTask } from '../spool/task-file.js';
import { writeTaskSync } from '../spool/protocol.js';
import { cpuMsOf, memoryOf, printTable, sleep, startDaemon, stopDaemon, tempDir, verdict, waitForLine } from './lib.js';

export async function backlog(options: { tasks?: number; idleSeconds?: number; dueFraction?: number } = {}): Promise<void> {
  const tasks = options.tasks ?? 1_000_000;
  const idleSeconds = options.idleSeconds ?? 60;
  const dueFraction = options.dueFraction ?? 0.01;
  const { dir, cleanup } = tempDir('spoolerd-bench-backlog-');
  try {
    const spool = join(dir, 'spool');
    const layout = Spooler.open(spool).layout;
    const now = Date.now();
    let due = 0;
    const filling = performance.now();
    for (let i = 0; i < tasks; i++) {
      const isDue = i % Math.round(1 / dueFraction) === 0;
      if (isDue) due++;
      const t = encodeTask({
        name: 'noop',
        priority: 50,
        due: isDue ? now : now + 3_600_000 + Math.floor(Math.random() * 86_400_000),
        body: { type: 'fcall', args: [] },
      });
      writeTaskSync(layout, t.fileName, t.bytes);
    }
    console.log(`filled ${tasks} tasks (${due} due) in ${((performance.now() - filling) / 1000).toFixed(1)} s`);

    const report = join(dir, 'report');
    const spawned = performance.now();
    const daemon = startDaemon(spool, { BENCH_EXPECT: String(due), BENCH_REPORT: report });
    let peakMb = 0;
    const sampler = setInterval(() => {
      try {
        peakMb = Math.max(peakMb, memoryOf(daemon.pid!).peakMb);
      } catch {
        // exited
      }
    }, 200);
    // The first due task: poll for any task having left the spool is costly on 1M files, so use the report.
    await waitForFirstRun(report);
    const firstMs = performance.now() - spawned;
    await waitForLine(report, 'done', 600_000);
    const allDueMs = performance.now() - spawned;
    // Idle: wait until the daemon has moved the future tasks out of incoming/ (it then watches it).
    while (readdirSync(layout.incoming).length > 1000) await sleep(2000);
    await sleep(5000);
    const cpuBefore = cpuMsOf(daemon.pid!);
    const idleStart = performance.now();
    await sleep(idleSeconds * 1000);
    const idleCpuMs = cpuMsOf(daemon.pid!) - cpuBefore;
    const idleWallMs = performance.now() - idleStart;
    const memory = memoryOf(daemon.pid!);
    clearInterval(sampler);
    peakMb = Math.max(peakMb, memory.peakMb);
    await stopDaemon(daemon);
    const idlePercent = (100 * idleCpuMs) / idleWallMs;
    printTable(`backlog: ${tasks} pending tasks (${due} due), one spoolerd`, [
      ['spawn → first due task runs (s)', (firstMs / 1000).toFixed(2), '≤ 10', verdict(firstMs <= 10_000)],
      ['spawn → all due tasks done (s)', (allDueMs / 1000).toFixed(2), '', ''],
      ['RSS when idle (MB)', memory.rssMb.toFixed(0), '≤ 500', verdict(memory.rssMb <= 500)],
      ['peak RSS (MB)', peakMb.toFixed(0), '≤ 500', verdict(peakMb <= 500)],
      [`CPU while idle, ${idleSeconds} s (ms)`, idleCpuMs.toFixed(0), '', ''],
      ['CPU while idle (% of a core)', idlePercent.toFixed(2), '< 1', verdict(idlePercent < 1)],
    ]);
  } finally {
    cleanup();
  }
}

/** The fixture writes "first" when its first task runs. */
async function waitForFirstRun(report: string): Promise<void> {
  await waitForLine(report, 'first', 600_000);
}
