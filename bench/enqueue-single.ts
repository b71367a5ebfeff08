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
import { printRows, progress, summarize } from './report.js';

export interface EnqueueSingleOptions {
  tasks?: number;
  runs?: number;
  inFlight?: number;
}

export async function enqueueSingle(options: EnqueueSingleOptions = {}): Promise<void> {
  const tasks = options.tasks ?? 20_000;
  const runs = options.runs ?? 3;
  const inFlight = options.inFlight ?? 64;
  const sequential: number[] = [];
  const concurrent: number[] = [];
  for (let run = 1; run <= runs; run++) {
    for (const width of run % 2 === 1 ? [1, inFlight] : [inFlight, 1]) {
      const { dir, cleanup } = tempDir('spoolerd-bench-single-');
      try {
        const rate = await singleRun(join(dir, 'spool'), tasks, width);
        (width === 1 ? sequential : concurrent).push(rate);
      } finally {
        cleanup();
      }
    }
    progress(`enqueue-single run ${run}/${runs}: one at a time ${sequential.at(-1)!.toFixed(0)}/s, ${inFlight} in flight ${concurrent.at(-1)!.toFixed(0)}/s`);
  }
  printRows('enqueue-single', `enqueue-single: ${tasks.toLocaleString('en-US')} awaited calls per run, ${runs} runs`, [
    { measure: 'await wrapper(...), one at a time', unit: 'tasks/s', summary: summarize(sequential) },
    { measure: `await wrapper(...), ${inFlight} in flight`, unit: 'tasks/s', summary: summarize(concurrent) },
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
