/**
 * Where the pickup time of one task goes, stage by stage, on an idle daemon
 * (issue 15: a task enqueued through the runtime p50 ≤ 0.25 ms, p99 ≤ 2 ms;
 * an external drop p50 ≤ 1 ms, p99 ≤ 5 ms). A task every 10 ms, each stage
 * timed on CLOCK_MONOTONIC (bench/peers/clock.ts: one clock for every process
 * of the host; performance.timeOrigin is off by up to milliseconds between processes):
 *
 *   1. the producer's write of tmp/N and rename into incoming/ (writeTaskSync);
 *   2. the rename to an inotify event in another process (a raw fs.watch);
 *   3. that event to chokidar's raw event, as the daemon listens (same process);
 *   4. the whole path, producer to task function, in spoolerd: an external drop
 *      (the clock read before the write) and an enqueue through the runtime
 *      (`await task(args)`, the clock read before the call), with --processes 0
 *      and with the default --processes.
 *
 *   npm run build && flock /work/bench.lock node dist/bench/run.js pickup-stages
 *   BENCH_PICKUP_ARGS="--processes 0" …   only that daemon setting
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Spooler } from '../runtime/index.js';
import { encodeTask } from '../spool/task-file.js';
import { writeTask, writeTaskSync } from '../spool/protocol.js';
import { SpoolLayout } from '../spool/layout.js';
import { DIST, percentile, sleep, startDaemon, stopDaemon, tempDir, waitForLine } from './lib.js';
import { monoNow as preciseNow } from './peers/clock.js';

const COUNT = Number(process.env.BENCH_PICKUP_COUNT ?? 500);
const INTERVAL_MS = 10;

type Stat = [label: string, values: number[]];

function row([label, values]: Stat): string {
  const s = [...values].sort((a, b) => a - b);
  const f = (q: number) => (percentile(s, q) * 1000).toFixed(0).padStart(7);
  return `${label.padEnd(58)} ${f(50)} ${f(90)} ${f(99)}   (n=${s.length})`;
}

function print(title: string, stats: Stat[]): void {
  console.log(`\n${title}\n${'stage'.padEnd(58)} ${'p50 µs'.padStart(7)} ${'p90 µs'.padStart(7)} ${'p99 µs'.padStart(7)}`);
  for (const s of stats) console.log(row(s));
}

/** Stages 1-3: the producer's write and rename, and the watch delivery (no daemon). */
async function watchStages(): Promise<void> {
  const { dir, cleanup } = tempDir('spoolerd-bench-stages-');
  try {
    const layout = new SpoolLayout(join(dir, 'spool')).ensure();
    const out = join(dir, 'seen');
    const child = spawn(process.execPath, [join(DIST, 'bench/fixtures/watch-probe.js'), layout.incoming, out], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((ready) => child.stdout!.once('data', () => ready()));
    const sent = new Map<string, [number, number]>();
    for (let i = 0; i < COUNT; i++) {
      const t = encodeTask({ name: 'stamp', priority: 50, body: { type: 'fcall', args: [0] } });
      const before = preciseNow();
      writeTaskSync(layout, t.fileName, t.bytes);
      sent.set(t.fileName, [before, preciseNow()]);
      await sleep(INTERVAL_MS);
    }
    // The runtime's write (spool/protocol.ts writeTask: open, write, close, rename through libuv's thread pool).
    const runtimeWrite: number[] = [];
    for (let i = 0; i < COUNT; i++) {
      const t = encodeTask({ name: 'stamp', priority: 50, body: { type: 'fcall', args: [0] } });
      const before = preciseNow();
      await writeTask(layout, t.fileName, t.bytes);
      runtimeWrite.push(preciseNow() - before);
      await sleep(INTERVAL_MS);
    }
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    const write: number[] = [];
    const inotify: number[] = [];
    const chokidar: number[] = [];
    for (const line of readFileSync(out, 'utf8').split('\n')) {
      const [name, a, b] = line.split(' ');
      const s = sent.get(name!);
      if (s === undefined || !Number(a) || !Number(b)) continue;
      write.push(s[1] - s[0]);
      inotify.push(Number(a) - s[1]);
      chokidar.push(Number(b) - Number(a));
    }
    print(`watch delivery: ${COUNT} renames into incoming/, one every ${INTERVAL_MS} ms`, [
      ['1 producer: write tmp/N + rename into incoming/', write],
      ['1 runtime: the same through fs/promises (await writeTask)', runtimeWrite],
      ['2 rename returned -> fs.watch event (another process)', inotify],
      ['3 fs.watch event -> chokidar raw event (same process)', chokidar],
    ]);
  } finally {
    cleanup();
  }
}

const latencies = (report: string): number[] =>
  readFileSync(report, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('lat '))
    .map((l) => Number(l.slice(4)));

/** Stage 4: producer to task function through a real daemon, an external drop then runtime enqueues. */
async function daemonStages(args: string[]): Promise<Stat[]> {
  const { dir, cleanup } = tempDir('spoolerd-bench-stages-');
  try {
    const root = join(dir, 'spool');
    const spooler = Spooler.open(root);
    const stamp = spooler.task(function stampMono(_since: number) {});
    const report = join(dir, 'report');
    const daemon = startDaemon(root, { BENCH_EXPECT: String(2 * COUNT), BENCH_REPORT: report }, args);
    await sleep(1500); // start-up; idle from here
    for (let i = 0; i < COUNT; i++) {
      const since = preciseNow();
      const t = encodeTask({ name: 'stampMono', priority: 50, body: { type: 'fcall', args: [since] } });
      writeTaskSync(spooler.layout, t.fileName, t.bytes);
      await sleep(INTERVAL_MS);
    }
    for (let i = 0; i < COUNT; i++) {
      await stamp(preciseNow());
      await sleep(INTERVAL_MS);
    }
    await waitForLine(report, 'done', 30_000);
    await stopDaemon(daemon);
    const all = latencies(report);
    const label = args.length === 0 ? 'default --processes' : args.join(' ');
    return [
      [`4 external drop -> task function (${label})`, all.slice(0, COUNT)],
      [`4 runtime enqueue call -> task function (${label})`, all.slice(COUNT)],
    ];
  } finally {
    cleanup();
  }
}

export async function pickupStages(): Promise<void> {
  await watchStages();
  const settings = process.env.BENCH_PICKUP_ARGS !== undefined ? [process.env.BENCH_PICKUP_ARGS.split(' ').filter(Boolean)] : [['--processes', '0'], ['--processes', '1']];
  const stats: Stat[] = [];
  for (const args of settings) stats.push(...(await daemonStages(args)));
  print(`pickup through spoolerd: ${COUNT} drops then ${COUNT} runtime enqueues, one every ${INTERVAL_MS} ms, idle daemon`, stats);
}
