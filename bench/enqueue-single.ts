/**
 * enqueue-single: the rate of ordinary calls of a task wrapper, each awaited
 * (`await sendDigest(...)`), one at a time and with many in flight. These go
 * through the non-blocking write path (fs/promises: open, write, close, rename,
 * each a round trip through libuv's thread pool). No target: reported only.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Spooler } from '../runtime/index.js';
import { tempDir } from './lib.js';
import { cleanUpLater, markTopDir, printRows, progress, summarize } from './report.js';

export interface EnqueueSingleOptions {
  tasks?: number;
  runs?: number;
  /** Place each spool in a fresh ext4 block group (chattr +T on the temp directory). */
  topdir?: boolean;
  inFlight?: number;
}

export async function enqueueSingle(options: EnqueueSingleOptions = {}): Promise<void> {
  const tasks = options.tasks ?? 20_000;
  const runs = options.runs ?? 3;
  const inFlight = options.inFlight ?? 64;
  const rates = new Map<number, number[]>([[1, []], [inFlight, []]]);
  const cpuUs = new Map<number, number[]>([[1, []], [inFlight, []]]);
  // Deleted at the end of the whole benchmark run, not between runs (see enqueue-bulk.ts).
  const { dir: root, cleanup } = tempDir('spoolerd-bench-single-');
  const topdir = options.topdir === true && markTopDir(root);
  try {
    for (let run = 1; run <= runs; run++) {
      for (const width of run % 2 === 1 ? [1, inFlight] : [inFlight, 1]) {
        const cpu = process.cpuUsage();
        rates.get(width)!.push(await singleRun(join(root, `w${width}-${run}`), tasks, width));
        const used = process.cpuUsage(cpu);
        cpuUs.get(width)!.push((used.user + used.system) / tasks);
      }
      progress(`enqueue-single run ${run}/${runs}: one at a time ${rates.get(1)!.at(-1)!.toFixed(0)}/s, ${inFlight} in flight ${rates.get(inFlight)!.at(-1)!.toFixed(0)}/s`);
    }
  } finally {
    cleanUpLater(cleanup);
  }
  printRows('enqueue-single', `enqueue-single: ${tasks.toLocaleString('en-US')} awaited calls per run, ${runs} runs${topdir ? ', spools in fresh block groups (--topdir)' : ''}`, [
    { measure: 'await wrapper(...), one at a time', unit: 'tasks/s', summary: summarize(rates.get(1)!) },
    { measure: `await wrapper(...), ${inFlight} in flight`, unit: 'tasks/s', summary: summarize(rates.get(inFlight)!) },
    { measure: 'CPU per task, one at a time (all threads)', unit: 'µs', summary: summarize(cpuUs.get(1)!), digits: 1 },
    { measure: `CPU per task, ${inFlight} in flight (all threads)`, unit: 'µs', summary: summarize(cpuUs.get(inFlight)!), digits: 1 },
  ]);
}

async function singleRun(dir: string, tasks: number, width: number): Promise<number> {
  const spooler = Spooler.open(dir);
  const sendDigest = spooler.task(function sendDigest(_to: string, _subject: string, _n: number) {});
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks) {
      const i = next++;
      await sendDigest(`user-${String(i).padStart(7, '0')}@example.com`, 'Your weekly digest is ready', i);
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: width }, worker));
  const ms = performance.now() - start;
  const written = readdirSync(spooler.layout.incoming).length;
  if (written !== tasks) throw new Error(`expected ${tasks} files in incoming/, found ${written}`);
  return tasks / (ms / 1000);
}
