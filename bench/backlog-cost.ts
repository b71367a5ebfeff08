/**
 * Cost that does not grow with the backlog (issue 15). One spoolerd
 * (--processes 0, no-op tasks), each figure from a spool prefilled while no
 * daemon ran:
 *
 *   CPU per task at depth D   D tasks of priority 90 stay queued while M tasks of
 *                             priority 10 run first (M larger than the queue's
 *                             window, so refills are part of it); the daemon's
 *                             CPU from the first run to the M-th, divided by M.
 *                             D = 1,000 and D = 300,000; the ratio is the target.
 *   1M due tasks queued       time from spawn to the first task run, the
 *                             daemon's RSS (sampled every 100 ms over the drain,
 *                             from the deepest queue down) and its peak (VmHWM),
 *                             the drain of all of it, then CPU over an idle
 *                             minute (after 10 s to settle).
 *
 * The spool is under $TMPDIR (say which filesystem: ext4 keeps a drained
 * directory's size, tmpfs does not). BENCH_DAEMON_DIST=<another dist/> runs that
 * build's daemon instead (a before/after on the same fill code).
 * BENCH_DAEMON_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" passes node
 * options to the daemon only (profiles, heap snapshots on a signal).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Spooler } from '../runtime/index.js';
import { encodeTask } from '../spool/task-file.js';
import { writeTaskSync } from '../spool/protocol.js';
import type { SpoolLayout } from '../spool/layout.js';
import { cpuMsOf, DIST, memoryOf, printTable, sleep, stopDaemon, tempDir, verdict, waitForLine } from './lib.js';

const MEASURED = 150_000;

export async function backlogCost(options: { tasks?: number; idleSeconds?: number } = {}): Promise<void> {
  const big = options.tasks ?? 1_000_000;
  const idleSeconds = options.idleSeconds ?? 60;
  const dist = process.env.BENCH_DAEMON_DIST ?? DIST;
  console.log(`daemon from ${dist}; spools under ${process.env.TMPDIR ?? '/tmp'}`);
  // BENCH_BACKLOG_PART=cost or =million runs one half only.
  const part = process.env.BENCH_BACKLOG_PART;
  const rows: Array<[string, string, string, string]> = [];
  if (part !== 'million') {
    const small = await cpuPerTask(1_000, dist);
    const deep = await cpuPerTask(300_000, dist);
    const ratio = deep.usPerTask / small.usPerTask;
    rows.push(
      [`CPU per task, ${MEASURED} run with 1,000 queued (µs)`, small.usPerTask.toFixed(1), '', ''],
      [`CPU per task, ${MEASURED} run with 300,000 queued (µs)`, deep.usPerTask.toFixed(1), '', ''],
      ['ratio 300k / 1k', ratio.toFixed(2), '≤ 1.10', verdict(ratio <= 1.1)],
    );
  }
  if (part === 'cost') return printTable('backlog cost: one spoolerd, --processes 0, no-op tasks', rows);
  const one = await millionDue(big, idleSeconds, dist);
  printTable(`backlog cost: one spoolerd, --processes 0, no-op tasks`, [
    ...rows,
    [`spawn → first run, ${big} due queued (s)`, (one.firstMs / 1000).toFixed(2), '≤ 2', verdict(one.firstMs <= 2000)],
    [`RSS, ${big} due queued: max sampled over the drain (MB)`, one.rssMb.toFixed(0), '≤ 200', verdict(one.rssMb <= 200)],
    ['peak RSS (VmHWM) over the whole drain (MB)', one.peakMb.toFixed(0), '', ''],
    [`drain of all ${big} (s)`, (one.drainMs / 1000).toFixed(1), '', ''],
    [`CPU while idle after the drain, ${idleSeconds} s (% of a core)`, one.idlePercent.toFixed(2), '< 0.5', verdict(one.idlePercent < 0.5)],
  ]);
}

function fill(layout: SpoolLayout, count: number, priority: number): void {
  const now = Date.now();
  for (let i = 0; i < count; i++) {
    const t = encodeTask({ name: 'noop', priority, due: now, body: { type: 'fcall', args: [] } });
    writeTaskSync(layout, t.fileName, t.bytes);
  }
}

function spawnDaemon(dist: string, spool: string, env: Record<string, string>): ChildProcess {
  const nodeArgs = (process.env.BENCH_DAEMON_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  return spawn(process.execPath, [...nodeArgs, join(dist, 'cli/spoolerd.js'), '--dir', spool, '--create', '--import', join(dist, 'bench/fixtures/noop-tasks.js'), '--log-level', 'warn', '--log-format', 'json', '--processes', '0'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

/** Polls the report for `prefix` and reads the daemon's CPU as soon as it appears (5 ms resolution). */
async function cpuAtLine(report: string, prefix: string, pid: number, timeoutMs: number): Promise<number> {
  await waitForLine(report, prefix, timeoutMs);
  return cpuMsOf(pid);
}

async function cpuPerTask(depth: number, dist: string): Promise<{ usPerTask: number }> {
  const { dir, cleanup } = tempDir('spoolerd-bench-cost-');
  try {
    const spool = join(dir, 'spool');
    const layout = Spooler.open(spool).layout;
    const filling = performance.now();
    fill(layout, depth, 90);
    fill(layout, MEASURED, 10);
    console.log(`depth ${depth}: filled ${depth + MEASURED} in ${((performance.now() - filling) / 1000).toFixed(1)} s`);
    const report = join(dir, 'report');
    const daemon = spawnDaemon(dist, spool, { BENCH_EXPECT: String(MEASURED), BENCH_REPORT: report });
    try {
      const first = await cpuAtLine(report, 'first', daemon.pid!, 600_000);
      const done = await cpuAtLine(report, 'done', daemon.pid!, 600_000);
      const usPerTask = ((done - first) * 1000) / MEASURED;
      console.log(`depth ${depth}: ${usPerTask.toFixed(1)} µs CPU per task`);
      return { usPerTask };
    } finally {
      await stopDaemon(daemon);
    }
  } finally {
    cleanup();
  }
}

async function millionDue(count: number, idleSeconds: number, dist: string): Promise<{ firstMs: number; rssMb: number; peakMb: number; drainMs: number; idlePercent: number }> {
  const { dir, cleanup } = tempDir('spoolerd-bench-million-');
  try {
    const spool = join(dir, 'spool');
    const layout = Spooler.open(spool).layout;
    const filling = performance.now();
    fill(layout, count, 50);
    console.log(`filled ${count} due tasks in ${((performance.now() - filling) / 1000).toFixed(1)} s`);
    const report = join(dir, 'report');
    const spawned = performance.now();
    const daemon = spawnDaemon(dist, spool, { BENCH_EXPECT: String(count), BENCH_REPORT: report });
    try {
      let rssMb = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          try {
            rssMb = Math.max(rssMb, memoryOf(daemon.pid!).rssMb);
          } catch {
            return;
          }
          await sleep(100);
        }
      })();
      await waitForLine(report, 'first', 600_000);
      const firstMs = performance.now() - spawned;
      await waitForLine(report, 'done', 1_800_000);
      sampling = false;
      await sampler;
      const drainMs = performance.now() - spawned;
      // Let the daemon settle (last scans, a recreated incoming/), then an idle minute.
      await sleep(10_000);
      const before = cpuMsOf(daemon.pid!);
      const idleStart = performance.now();
      await sleep(idleSeconds * 1000);
      const idlePercent = (100 * (cpuMsOf(daemon.pid!) - before)) / (performance.now() - idleStart);
      const peakMb = memoryOf(daemon.pid!).peakMb;
      return { firstMs, rssMb, peakMb, drainMs, idlePercent };
    } finally {
      await stopDaemon(daemon);
    }
  } finally {
    cleanup();
  }
}
