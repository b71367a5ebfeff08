/**
 * Worker processes (issue 4): what running tasks outside the daemon costs, and
 * what it buys.
 *
 * 1. no-op drain: a prefilled spool drained with --processes 0 (in the daemon)
 *    and --processes 2. Target: processes 2 ≥ 0.5× processes 0.
 * 2. CPU-bound drain: tasks of ~10 ms of PBKDF2-SHA256 each, --processes 1 and
 *    2, two tasks in flight per worker (--concurrency 2 and 4). Target: ~2×
 *    with 2 processes on 2 cores. The tasks wait in pending/ (moved there
 *    before the daemon starts), so the daemon's watcher of incoming/ stays
 *    idle: what is measured is running them, on 2 cores shared by the daemon
 *    and its workers.
 * 3. IPC alone: the daemon's message shape sent to an echoing child, JSON and
 *    'advanced' serialization, one task per message and batches of 64.
 *
 * Runs are counted over every process (noop-tasks.ts, BENCH_COUNTS). The
 * spool lives under os.tmpdir(): run with TMPDIR=/dev/shm to take the disk out.
 */
import { fork } from 'node:child_process';
import { pbkdf2Sync } from 'node:crypto';
import { readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { Spooler } from '../runtime/index.js';
import { DIST, readCounts, sleep, startDaemon, stopDaemon, tempDir } from './lib.js';
import { printRows, summarize, type Row } from './report.js';

interface Drain {
  /** tasks/s from the first task starting to the last finishing, over all processes. */
  rate: number;
  ms: number;
}

async function drainOnce(options: { task: 'noop' | 'hash'; tasks: number; args: string[]; env?: Record<string, string>; inPending?: boolean }): Promise<Drain> {
  const { dir, cleanup } = tempDir('spoolerd-bench-processes-');
  try {
    const spool = join(dir, 'spool');
    const spooler = Spooler.open(spool);
    const task = spooler.task(options.task === 'noop' ? function noop() {} : function hash() {});
    for (let i = 0; i < options.tasks; i += 10_000) {
      await spooler.enqueueMany(Array.from({ length: Math.min(10_000, options.tasks - i) }, () => task.request()));
    }
    if (options.inPending) {
      // As a daemon leaves a backlog: nothing in the watched incoming/, so the daemon's discovery stays idle.
      const incoming = join(spool, 'incoming');
      for (const f of readdirSync(incoming)) renameSync(join(incoming, f), join(spool, 'pending', f));
    }
    const counts = join(dir, 'counts');
    const daemon = startDaemon(spool, { BENCH_COUNTS: counts, ...options.env }, options.args);
    const deadline = Date.now() + 600_000;
    try {
      for (;;) {
        if (Date.now() > deadline) throw new Error(`drain of ${options.tasks} tasks did not finish in 10 minutes`);
        if (daemon.exitCode !== null) throw new Error(`spoolerd exited early (${daemon.exitCode})`);
        const seen = readCounts(counts);
        if (seen.runs >= options.tasks) return { rate: seen.runs / ((seen.last - seen.first) / 1000), ms: seen.last - seen.first };
        await sleep(25);
      }
    } finally {
      await stopDaemon(daemon);
    }
  } finally {
    cleanup();
  }
}

/** PBKDF2 rounds that take about `ms` on this machine. */
function calibrateHash(ms: number): number {
  let iterations = 1000;
  for (;;) {
    const t = performance.now();
    for (let i = 0; i < 5; i++) pbkdf2Sync('spoolerd', 'bench', iterations, 32, 'sha256');
    const took = (performance.now() - t) / 5;
    if (took > 40) return Math.round((iterations * ms) / took);
    iterations *= 2;
  }
}

async function ipcRate(serialization: 'json' | 'advanced', batch: number, total: number): Promise<number> {
  const child = fork(join(DIST, 'bench/fixtures/ipc-echo.js'), [], { serialization, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise((r) => child.once('spawn', r));
  const body = Buffer.alloc(90, 7);
  const file = '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-noop.msgpack';
  let sent = 0;
  let done = 0;
  const started = performance.now();
  return new Promise((resolve) => {
    const pump = () => {
      while (sent < total && sent - done < 512) {
        const jobs = [];
        for (let i = 0; i < batch && sent < total; i++) {
          jobs.push({ n: sent++, spool: '/tmp/spool', file, body: serialization === 'json' ? body.toString('base64') : new Uint8Array(body) });
        }
        child.send(jobs);
      }
    };
    child.on('message', (results: unknown[]) => {
      done += results.length;
      if (done < total) return pump();
      resolve(total / ((performance.now() - started) / 1000));
      child.disconnect();
    });
    pump();
  });
}

export async function processes(options: { runs?: number; tasks?: number } = {}): Promise<void> {
  const runs = options.runs ?? 3;
  const noopTasks = options.tasks ?? 50_000;
  const hashTasks = 400;
  const rows: Row[] = [];

  const noop: Record<string, number[]> = { '0': [], '2': [] };
  for (let run = 1; run <= runs; run++) {
    // Alternate, so drift in the machine's load touches both alike.
    for (const p of run % 2 === 1 ? ['0', '2'] : ['2', '0']) {
      const r = await drainOnce({ task: 'noop', tasks: noopTasks, args: ['--processes', p, '--concurrency', '8'] });
      noop[p]!.push(r.rate);
      process.stderr.write(`noop, --processes ${p}, run ${run}: ${noopTasks} tasks in ${r.ms.toFixed(0)} ms, ${r.rate.toFixed(0)}/s\n`);
    }
  }
  const noopRatio = noop['2']!.map((v, i) => v / noop['0']![i]!);
  rows.push(
    { measure: `no-op drain, --processes 0 (${noopTasks} tasks)`, unit: 'tasks/s', summary: summarize(noop['0']!) },
    { measure: `no-op drain, --processes 2 (${noopTasks} tasks)`, unit: 'tasks/s', summary: summarize(noop['2']!) },
    { measure: 'no-op: processes 2 / processes 0, same run', unit: '×', summary: summarize(noopRatio), target: { atLeast: 0.5 }, digits: 2 },
  );

  const iterations = calibrateHash(10);
  const hash: Record<string, number[]> = { '1': [], '2': [] };
  for (let run = 1; run <= runs; run++) {
    for (const p of run % 2 === 1 ? ['1', '2'] : ['2', '1']) {
      const r = await drainOnce({
        task: 'hash',
        tasks: hashTasks,
        args: ['--processes', p, '--concurrency', String(2 * Number(p))],
        env: { BENCH_HASH_ITERATIONS: String(iterations) },
        inPending: true,
      });
      hash[p]!.push(r.rate);
      process.stderr.write(`hash, --processes ${p}, run ${run}: ${hashTasks} tasks in ${r.ms.toFixed(0)} ms, ${r.rate.toFixed(1)}/s\n`);
    }
  }
  const hashRatio = hash['2']!.map((v, i) => v / hash['1']![i]!);
  rows.push(
    { measure: `10 ms PBKDF2 tasks, --processes 1 (${hashTasks} tasks, ${iterations} rounds)`, unit: 'tasks/s', summary: summarize(hash['1']!), digits: 1 },
    { measure: `10 ms PBKDF2 tasks, --processes 2`, unit: 'tasks/s', summary: summarize(hash['2']!), digits: 1 },
    { measure: 'CPU-bound: processes 2 / processes 1, same run', unit: '×', summary: summarize(hashRatio), target: { atLeast: 1.8 }, digits: 2 },
  );

  for (const serialization of ['json', 'advanced'] as const) {
    for (const batch of [1, 64]) {
      const rates: number[] = [];
      for (let run = 0; run < runs; run++) rates.push(await ipcRate(serialization, batch, 100_000));
      rows.push({ measure: `IPC round trip, ${serialization}, ${batch} per message`, unit: 'tasks/s', summary: summarize(rates) });
    }
  }
  printRows('processes', 'worker processes: overhead on no-op tasks, scaling on CPU-bound tasks, IPC serialization', rows, [
    `spool under ${process.env.TMPDIR ?? '/tmp'}; --concurrency 8 for no-op tasks, 2 per worker for CPU-bound ones`,
  ]);
}
