/**
 * Checking many task bodies at once, on more than one core.
 *
 * Checking a body costs four system calls (open, fstat, read, close) and a
 * decode: ~10 µs, nearly all of it in the kernel, so a listing of 100,000
 * tasks spends a second there on one core. Here the main thread and worker
 * threads take blocks of files from a shared counter until none are left, and
 * the main thread waits (Atomics.wait) for the workers to finish the blocks
 * they took, so the caller stays synchronous. A worker that starts late simply
 * finds fewer blocks left; one that never starts or fails leaves its files
 * unmarked, and the caller checks those itself.
 *
 * Only the verdict crosses threads: "valid" with the file's mtime, or "look
 * again". Files that are not valid are rare, and the caller reads them again
 * on its own thread to say why (the same code path as a sequential listing),
 * so every reason is made in one place.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { findBodyProblem } from './body.js';
import type { Encoding } from './name.js';
import { readRegularFile } from './safe-read.js';
import { decodeWire } from './wire.js';

/** Below this many files the threads' start-up (~30 ms each) costs more than they save. */
export const PARALLEL_MIN_FILES = 4096;
/** Files per block taken from the shared counter. */
const BLOCK = 256;
/** At most this many worker threads, whatever the core count. */
const MAX_WORKERS = 3;
/** If no worker finishes a block for this long, stop waiting and check the rest here. */
const STALL_MS = 10_000;

/** Per file: not looked at (or failed), or valid. */
export const UNCHECKED = 0;
export const VALID = 1;
export const LOOK_AGAIN = 2;

/** Control words in the shared Int32Array. */
const NEXT_BLOCK = 0;
const ACTIVE_WORKERS = 1;
const BLOCKS_DONE = 2;

export interface CheckJob {
  /** File paths, joined by NUL (a name never holds one), as UTF-8. */
  paths: Uint8Array;
  /** Start of path i in `paths`, and one more entry for the end of the last. */
  offsets: Int32Array;
  /** Per path: UNCHECKED, VALID or LOOK_AGAIN. */
  status: Uint8Array;
  /** Per path, for VALID ones: the file's mtime in ms. */
  mtimes: Float64Array;
  control: Int32Array;
  maxBytes: number;
}

export interface CheckResults {
  status: Uint8Array;
  mtimes: Float64Array;
}

/**
 * Checks every file in `paths` (task files whose names parsed) with the main
 * thread and up to `threads - 1` workers. Returns, per path, VALID with its
 * mtime, or UNCHECKED / LOOK_AGAIN for the caller to read itself.
 */
export function checkFilesInParallel(paths: readonly string[], maxBytes: number, threads: number = availableParallelism()): CheckResults {
  const job = makeJob(paths, maxBytes);
  const workers = paths.length >= PARALLEL_MIN_FILES ? Math.min(threads - 1, MAX_WORKERS) : 0;
  for (let i = 0; i < workers; i++) {
    try {
      const worker = new Worker(new URL('./check-worker.js', import.meta.url), { workerData: job });
      // Errors are not fatal: the files a worker did not mark are checked by the caller.
      worker.on('error', () => {});
      worker.unref();
    } catch {
      break; // e.g. run from TypeScript sources, where check-worker.js does not exist
    }
  }
  runBlocks(job);
  waitForWorkers(job.control);
  return { status: job.status, mtimes: job.mtimes };
}

function makeJob(paths: readonly string[], maxBytes: number): CheckJob {
  const offsets = new Int32Array(new SharedArrayBuffer(4 * (paths.length + 1)));
  let total = 0;
  for (let i = 0; i < paths.length; i++) {
    offsets[i] = total;
    total += Buffer.byteLength(paths[i]!, 'utf8') + 1;
  }
  offsets[paths.length] = total;
  const bytes = Buffer.from(new SharedArrayBuffer(Math.max(total, 1)));
  for (let i = 0; i < paths.length; i++) bytes.write(paths[i]!, offsets[i]!, 'utf8');
  return {
    paths: new Uint8Array(bytes.buffer, 0, total),
    offsets,
    status: new Uint8Array(new SharedArrayBuffer(Math.max(paths.length, 1))),
    mtimes: new Float64Array(new SharedArrayBuffer(8 * Math.max(paths.length, 1))),
    control: new Int32Array(new SharedArrayBuffer(16)),
    maxBytes,
  };
}

/** Takes blocks from the shared counter and checks their files until none are left. Used by both sides. */
export function runBlocks(job: CheckJob): void {
  const count = job.offsets.length - 1;
  const scratch = Buffer.allocUnsafe(64 * 1024);
  const text = Buffer.from(job.paths.buffer, job.paths.byteOffset, job.paths.byteLength);
  for (;;) {
    const block = Atomics.add(job.control, NEXT_BLOCK, 1);
    const start = block * BLOCK;
    if (start >= count) return;
    const end = Math.min(start + BLOCK, count);
    for (let i = start; i < end; i++) {
      // Each path ends with the NUL that separates it from the next.
      const path = text.toString('utf8', job.offsets[i]!, job.offsets[i + 1]! - 1);
      const read = readRegularFile(path, job.maxBytes, scratch);
      if (read.ok && isValidBody(read.bytes, path.endsWith('.json') ? 'json' : 'msgpack')) {
        job.mtimes[i] = read.mtimeMs;
        job.status[i] = VALID;
      } else {
        job.status[i] = LOOK_AGAIN;
      }
    }
    Atomics.add(job.control, BLOCKS_DONE, 1);
  }
}

/** For check-worker.ts: runs blocks, counted as an active worker meanwhile. */
export function workerMain(job: CheckJob): void {
  // Counted before taking any block, so the main thread, which looks at the count only
  // after the counter ran out, cannot miss a block this worker is still checking.
  Atomics.add(job.control, ACTIVE_WORKERS, 1);
  try {
    runBlocks(job);
  } finally {
    Atomics.sub(job.control, ACTIVE_WORKERS, 1);
    Atomics.notify(job.control, ACTIVE_WORKERS);
  }
}

function waitForWorkers(control: Int32Array): void {
  let done = Atomics.load(control, BLOCKS_DONE);
  let lastProgress = Date.now();
  for (;;) {
    const active = Atomics.load(control, ACTIVE_WORKERS);
    if (active === 0) return;
    Atomics.wait(control, ACTIVE_WORKERS, active, 100);
    const nowDone = Atomics.load(control, BLOCKS_DONE);
    if (nowDone !== done) {
      done = nowDone;
      lastProgress = Date.now();
    } else if (Date.now() - lastProgress > STALL_MS) {
      return; // a stuck worker: its unmarked files are checked by the caller
    }
  }
}

/** Whether the body decodes and passes findBodyProblem: what decodeTask checks. Keep in step. */
export function isValidBody(bytes: Uint8Array, encoding: Encoding): boolean {
  try {
    return findBodyProblem(decodeWire(bytes, encoding)) === undefined;
  } catch {
    return false;
  }
}
