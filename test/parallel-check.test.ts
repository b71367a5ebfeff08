/**
 * The body-check threads of a listing (spool/parallel-check.ts): a thread that
 * has exited is sent nothing more (no segment, no end-of-work message), and its
 * share of the work is done by the caller. Runs in a child process against the
 * built code: the threads load dist/spool/check-worker.js.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { ROOT, tempDir } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir('spoolerd-parallel-check-')));
afterEach(() => cleanup());

const SCRIPT = `
  import { readdirSync } from 'node:fs';
  import { join } from 'node:path';
  import { BodyChecks, VALID } from ${JSON.stringify(join(ROOT, 'dist/spool/parallel-check.js'))};
  import { Spooler } from ${JSON.stringify(join(ROOT, 'dist/runtime/index.js'))};

  const spool = process.argv[2];
  const spooler = Spooler.open(spool);
  const noop = spooler.task(function noop() {});
  await spooler.enqueueMany(Array.from({ length: 5000 }, () => noop.request()));
  const incoming = join(spool, 'incoming');
  const names = readdirSync(incoming);

  const checks = new BodyChecks(1 << 20, 4);
  // 4096 files: four full segments, and the threads start.
  for (const name of names.slice(0, 4096)) checks.add(incoming, name);
  const workers = checks.workers;
  // Let the threads check those four segments (32 blocks), then end them while they wait for more.
  const deadline = Date.now() + 20000;
  while (Atomics.load(checks.progress, 0) < 32 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const blocksByThreads = Atomics.load(checks.progress, 0);
  await Promise.all(workers.map((w) => w.terminate()));
  const sentAfterExit = [];
  for (const w of workers) {
    const postMessage = w.postMessage.bind(w);
    w.postMessage = (message) => {
      sentAfterExit.push(message === null ? 'end of work' : 'segment');
      return postMessage(message);
    };
  }
  // The rest: the last segment is sealed in finish(), and checked by this thread alone.
  for (const name of names.slice(4096)) checks.add(incoming, name);
  const { status } = checks.finish();
  process.stdout.write(JSON.stringify({ workers: workers.length, blocksByThreads, sentAfterExit, files: status.length, valid: status.filter((s) => s === VALID).length }));
`;

it('a body-check thread that has exited is sent no segment and no end-of-work message; every file is still checked', () => {
  // A file, not -e: the threads inherit the process's options, and --input-type would stop them loading.
  const script = join(dir, 'exited-threads.mjs');
  writeFileSync(script, SCRIPT);
  const r = spawnSync(process.execPath, [script, join(dir, 'spool')], { encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const result = JSON.parse(r.stdout) as { workers: number; blocksByThreads: number; sentAfterExit: string[]; files: number; valid: number };
  // Three threads (4 cores asked for, at most 3 besides the caller) checked the first four segments, then exited.
  expect(result.workers).toBe(3);
  expect(result.blocksByThreads).toBe(32);
  expect(result.sentAfterExit).toEqual([]);
  expect(result).toEqual(expect.objectContaining({ files: 5000, valid: 5000 }));
});
