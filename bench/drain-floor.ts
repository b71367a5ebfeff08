/**
 * Drain floor: what the filesystem allows for the daemon's per-task system
 * calls, with no daemon. A spool is prefilled through the runtime as for the
 * drain benchmark, then a bare loop does, per task, exactly the calls a
 * spoolerd drain does (SPOOL-FORMAT.md, "Claim" and "Reading safely"): rename
 * into a claim directory, lstat, open, read, close, unlink. On one thread,
 * then split over two worker threads (the daemon's --io-threads 2). Compare a
 * drain's tasks/s with these, measured the same minute: on a disk that
 * changes speed from run to run (BENCHMARKS.md) a drain figure alone says
 * little.
 */
import { closeSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Spooler } from '../runtime/index.js';
import { median, printTable } from './lib.js';

interface Slice {
  incoming: string;
  claimed: string;
  names: string[];
}

/** The daemon's calls for each name, nothing else. */
function drainSlice({ incoming, claimed, names }: Slice): void {
  const buffer = Buffer.allocUnsafe(64 * 1024);
  for (const name of names) {
    const path = claimed + '/' + name;
    renameSync(incoming + '/' + name, path);
    const st = lstatSync(path);
    const fd = openSync(path, 'r');
    readSync(fd, buffer, 0, Math.min(st.size, buffer.length), 0);
    closeSync(fd);
    unlinkSync(path);
  }
}

if (!isMainThread) {
  drainSlice(workerData as Slice);
  parentPort!.postMessage('done');
}

async function onThreads(slices: Slice[]): Promise<void> {
  if (slices.length === 1) return drainSlice(slices[0]!);
  await Promise.all(
    slices.map(
      (slice) =>
        new Promise<void>((resolve, reject) => {
          const worker = new Worker(new URL(import.meta.url), { workerData: slice });
          worker.once('message', () => resolve());
          worker.once('error', reject);
        }),
    ),
  );
}

/**
 * One measurement: a fresh spool of `tasks` no-op tasks under `parent`, prefilled
 * through the runtime, drained by the bare calls on `threads` threads. Also used
 * by the side-by-side harness (bench/peers), to set the floor beside uWSGI's drain.
 */
export async function measureDrainFloor(parent: string, tasks: number, threads: number): Promise<{ rate: number; cpuUsPerTask: number }> {
  const dir = mkdtempSync(join(parent, 'spoolerd-floor-'));
  try {
    const spool = join(dir, 'spool');
    const spooler = Spooler.open(spool);
    const noop = spooler.task(function noop() {});
    for (let i = 0; i < tasks; i += 10_000) await spooler.enqueueMany(Array.from({ length: Math.min(10_000, tasks - i) }, () => noop.request()));
    const incoming = join(spool, 'incoming');
    const claimed = join(spool, 'active', 'floor');
    mkdirSync(claimed, { recursive: true });
    // The daemon takes tasks in name order (priority, due, id): so does the floor.
    const names = readdirSync(incoming).sort();
    const slices = Array.from({ length: threads }, (_, k) => ({ incoming, claimed, names: names.filter((_, i) => i % threads === k) }));
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await onThreads(slices);
    const seconds = (performance.now() - t0) / 1000;
    const used = process.cpuUsage(cpu0);
    return { rate: tasks / seconds, cpuUsPerTask: (used.user + used.system) / tasks };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function drainFloor(options: { tasks?: number; runs?: number } = {}): Promise<void> {
  const tasks = options.tasks ?? 100_000;
  const runs = options.runs ?? 3;
  const rates = new Map<number, number[]>([
    [1, []],
    [2, []],
  ]);
  const cpu = new Map<number, number[]>([
    [1, []],
    [2, []],
  ]);
  for (let run = 1; run <= runs; run++) {
    for (const threads of [1, 2]) {
      const { rate, cpuUsPerTask } = await measureDrainFloor(tmpdir(), tasks, threads);
      rates.get(threads)!.push(rate);
      cpu.get(threads)!.push(cpuUsPerTask);
      console.log(`run ${run}, ${threads} thread(s): ${tasks} tasks in ${((tasks / rate) * 1000).toFixed(0)} ms (${rate.toFixed(0)}/s), CPU ${cpuUsPerTask.toFixed(1)} µs per task`);
    }
  }
  printTable(`drain floor: the daemon's system calls alone (rename, lstat, open, read, close, unlink) on ${tasks} prefilled tasks, ${runs} runs`, [
    ['tasks/s, one thread (median)', median(rates.get(1)!).toFixed(0), '', ''],
    ['tasks/s, two threads (median)', median(rates.get(2)!).toFixed(0), '', ''],
    ['CPU per task, one thread (µs, median)', median(cpu.get(1)!).toFixed(1), '', ''],
    ['CPU per task, two threads (µs, median)', median(cpu.get(2)!).toFixed(1), '', ''],
  ]);
}
