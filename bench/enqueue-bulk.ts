/**
 * enqueue-bulk: how fast the runtime enqueues in bulk, against what the
 * filesystem itself allows.
 *
 * Runtime: `Spooler.open(dir).enqueueMany(requests)` in batches, the requests
 * made by a `spooler.task(...)` wrapper's `.request(...)`; the timed span covers
 * making the requests, checking and encoding them, and writing every file.
 * Filesystem: the same number of ~120-byte files written the way the protocol
 * asks, with Node's blocking fs calls and nothing else (names made beforehand):
 * open(tmp/NAME, O_CREAT|O_EXCL), write, close, rename(tmp/NAME, incoming/NAME).
 * Each run uses a fresh spool; the two are run alternately so that a noisy
 * neighbour hurts both alike. Target (issue): ≥ 20,000 tasks/s.
 */
import { closeSync, openSync, readdirSync, renameSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Spooler } from '../runtime/index.js';
import { SpoolLayout } from '../spool/layout.js';
import { tempDir } from './lib.js';
import { cleanUpLater, markTopDir, printRows, progress, summarize } from './report.js';

export interface EnqueueBulkOptions {
  tasks?: number;
  batch?: number;
  runs?: number;
  /** Place each spool in a fresh ext4 block group (chattr +T on the temp directory). */
  topdir?: boolean;
}

/** Arguments of a typical task: an address, a subject and a small options map (a ~115-byte file). */
function argsOf(i: number): [string, string, { campaign: string; n: number }] {
  return [`user-${String(i).padStart(7, '0')}@example.com`, 'Your weekly digest is ready', { campaign: 'spring-2026', n: i }];
}

export async function enqueueBulk(options: EnqueueBulkOptions = {}): Promise<void> {
  const tasks = options.tasks ?? 100_000;
  const batch = options.batch ?? 10_000;
  const runs = options.runs ?? 3;
  const rate = { runtime: [] as number[], fs: [] as number[] };
  const userUs = { runtime: [] as number[], fs: [] as number[] };
  const sysUs = { runtime: [] as number[], fs: [] as number[] };
  const ratios: number[] = [];
  let meanBytes = 0;
  // Everything is deleted at the end of the whole benchmark run, not between runs: on ext4
  // without a journal (this machine's), creating files right after deleting many is slow
  // for minutes (the inode allocator steps over every recently freed inode; see markTopDir).
  const { dir: root, cleanup } = tempDir('spoolerd-bench-bulk-');
  const topdir = options.topdir === true && markTopDir(root);
  try {
    for (let run = 1; run <= runs; run++) {
      // Alternate which goes first, so that neighbours and the page cache favour neither.
      const order = run % 2 === 1 ? (['runtime', 'fs'] as const) : (['fs', 'runtime'] as const);
      for (const which of order) {
        const spool = join(root, `${which}-${run}`);
        const cpu = process.cpuUsage();
        let ms: number;
        if (which === 'runtime') {
          const r = await runtimeRun(spool, tasks, batch);
          ms = r.ms;
          meanBytes = r.bytes;
        } else {
          ms = filesystemRun(spool, tasks);
        }
        const used = process.cpuUsage(cpu);
        rate[which].push(tasks / (ms / 1000));
        userUs[which].push(used.user / tasks);
        sysUs[which].push(used.system / tasks);
      }
      ratios.push(rate.runtime.at(-1)! / rate.fs.at(-1)!);
      progress(`enqueue-bulk run ${run}/${runs}: runtime ${rate.runtime.at(-1)!.toFixed(0)}/s, filesystem ${rate.fs.at(-1)!.toFixed(0)}/s, ratio ${ratios.at(-1)!.toFixed(2)}`);
    }
  } finally {
    cleanUpLater(cleanup);
  }
  printRows(
    'enqueue-bulk',
    `enqueue-bulk: ${tasks.toLocaleString('en-US')} tasks per run in batches of ${batch.toLocaleString('en-US')}, ${runs} runs${topdir ? ', spools in fresh block groups (--topdir)' : ''}`,
    [
      { measure: 'runtime enqueueMany', unit: 'tasks/s', summary: summarize(rate.runtime), target: { atLeast: 20_000 } },
      { measure: 'filesystem alone (open/write/close/rename)', unit: 'files/s', summary: summarize(rate.fs) },
      { measure: 'runtime / filesystem', unit: 'ratio', summary: summarize(ratios), digits: 2 },
      { measure: 'runtime, user CPU per task', unit: 'µs', summary: summarize(userUs.runtime), digits: 1 },
      { measure: 'runtime, system CPU per task', unit: 'µs', summary: summarize(sysUs.runtime), digits: 1 },
      { measure: 'filesystem, user CPU per file', unit: 'µs', summary: summarize(userUs.fs), digits: 1 },
      { measure: 'filesystem, system CPU per file', unit: 'µs', summary: summarize(sysUs.fs), digits: 1 },
    ],
    [
      `task files average ${meanBytes.toFixed(0)} bytes; the filesystem run writes 120 bytes per file`,
      'CPU per task is this process\'s (process.cpuUsage), so it includes V8\'s garbage collection threads',
    ],
  );
}

async function runtimeRun(dir: string, tasks: number, batch: number): Promise<{ ms: number; bytes: number }> {
  const spooler = Spooler.open(dir);
  const sendDigest = spooler.task(function sendDigest(_to: string, _subject: string, _options: { campaign: string; n: number }) {});
  const start = performance.now();
  for (let i = 0; i < tasks; i += batch) {
    const n = Math.min(batch, tasks - i);
    const requests = new Array(n);
    for (let j = 0; j < n; j++) requests[j] = sendDigest.request(...argsOf(i + j));
    await spooler.enqueueMany(requests);
  }
  const ms = performance.now() - start;
  const names = readdirSync(spooler.layout.incoming);
  if (names.length !== tasks) throw new Error(`expected ${tasks} files in incoming/, found ${names.length}`);
  // Mean file size, from a sample of 200 files.
  const step = Math.max(1, Math.floor(names.length / 200));
  let bytes = 0;
  let sampled = 0;
  for (let i = 0; i < names.length; i += step, sampled++) bytes += statSync(join(spooler.layout.incoming, names[i]!)).size;
  return { ms, bytes: bytes / sampled };
}

function filesystemRun(dir: string, tasks: number): number {
  const layout = new SpoolLayout(dir).ensure();
  const body = Buffer.alloc(120, 0x61);
  const base = Date.now();
  const names = new Array<string>(tasks);
  for (let i = 0; i < tasks; i++) {
    names[i] = `50-${base}-${base}${i.toString(16).padStart(16, '0')}-a0-sendDigest.msgpack`;
  }
  const start = performance.now();
  for (let i = 0; i < tasks; i++) {
    const staged = layout.tmp + '/' + names[i]!;
    const fd = openSync(staged, 'wx');
    writeSync(fd, body, 0, body.length, 0);
    closeSync(fd);
    renameSync(staged, layout.incoming + '/' + names[i]!);
  }
  return performance.now() - start;
}
