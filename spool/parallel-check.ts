/**
 * Checking many task bodies at once, on more than one core, while the listing
 * that found them is still being made.
 *
 * Checking a body costs four system calls (open, fstat, read, close) and a
 * decode: ~10 µs, most of it in the kernel, so a listing of 100,000 tasks
 * spends a second there on one core. A BodyChecks is fed the files as the
 * listing finds them; once there are enough to be worth it, worker threads
 * start and the files go to them in segments as they fill, so the workers
 * check bodies while the main thread is still reading directories, parsing
 * names and sorting. When the listing is done, the main thread takes what is
 * left (finish()), then waits (Atomics.wait) for the blocks the workers are
 * still on, so the caller stays synchronous. Every thread takes blocks of a
 * segment from the segment's shared counter, so no file is checked twice and
 * none is missed: a worker that starts late finds fewer blocks left; one that
 * never starts or fails leaves its files unmarked, and the caller checks those
 * itself.
 *
 * Only the verdict crosses threads: "valid" with the file's mtime, or "look
 * again". Files that are not valid are rare, and the caller reads them again
 * on its own thread to say why (the same code path as a sequential listing),
 * so every reason is made in one place.
 */
import { availableParallelism } from 'node:os';
import { sep } from 'node:path';
import { Worker } from 'node:worker_threads';
import { expiresOfLastValidBody, isValidBody } from './body.js';
import { readRegularFile } from './safe-read.js';

/** Below this many files the threads' start-up (~30-100 ms each) costs more than they save. */
export const PARALLEL_MIN_FILES = 4096;
/** Files per segment: what is handed to the workers at once. */
const SEGMENT = 1024;
/** Files per block taken from a segment's counter. */
const BLOCK = 128;
/** At most this many worker threads, whatever the core count. */
const MAX_WORKERS = 3;
/** If no thread finishes a block for this long, stop waiting and check the rest here. */
const STALL_MS = 10_000;

/** Per file: not looked at (or failed), or valid. */
export const UNCHECKED = 0;
export const VALID = 1;
export const LOOK_AGAIN = 2;

/** Words of a segment's counter. */
const NEXT_BLOCK = 0;
const BLOCKS_DONE = 1;

/** A segment as the threads share it: the verdicts and the counter are shared memory. */
interface SharedSegment {
  /** Per file: UNCHECKED, VALID or LOOK_AGAIN. */
  status: Uint8Array;
  /** Per file, for VALID ones: the file's mtime in ms. */
  mtimes: Float64Array;
  /** [next block to take, blocks done]. */
  counter: Int32Array;
  /** Blocks done in all segments, shared by every segment of one BodyChecks. */
  progress: Int32Array;
  maxBytes: number;
}

/** What a worker is sent for a segment: its files as the directories and names they are in. */
export interface SegmentMessage extends SharedSegment {
  dirs: string[];
  /** Per file, the index of its directory in `dirs`. */
  dirOf: Uint16Array;
  /** The file names, joined by NUL (a name never holds one): one string is cheaper to send than many. */
  names: string;
}

/** A segment on the thread that checks it. */
interface Segment extends SharedSegment {
  dirs: readonly string[];
  dirOf: Uint16Array;
  names: readonly string[];
}

export interface CheckResults {
  /** Per file in the order added: UNCHECKED, VALID or LOOK_AGAIN. */
  status: Uint8Array;
  /** Per file, for VALID ones: its mtime in ms. */
  mtimes: Float64Array;
}

/**
 * The body checks of one listing. add() each task file (a regular file whose
 * name parsed) as it is found; finish() once, for the verdicts in that order.
 */
export class BodyChecks {
  private readonly maxBytes: number;
  private readonly threads: number;
  private readonly segments: Segment[] = [];
  private readonly workers: Worker[] = [];
  private readonly progress = new Int32Array(new SharedArrayBuffer(4));
  private started = false;
  private count = 0;
  /** The segment being filled. */
  private dirs: string[] = [];
  private dirOf = new Uint16Array(SEGMENT);
  private names: string[] = [];

  constructor(maxBytes: number, threads: number = availableParallelism()) {
    this.maxBytes = maxBytes;
    this.threads = threads;
  }

  /** Queues the file `dir/name` to be checked; returns its position. */
  add(dir: string, name: string): number {
    const dirs = this.dirs;
    // The files of one directory come together: the last one is nearly always the one.
    let d = dirs.length - 1;
    if (d < 0 || dirs[d] !== dir) {
      d = dirs.indexOf(dir);
      if (d < 0) d = dirs.push(dir) - 1;
    }
    this.dirOf[this.names.length] = d;
    this.names.push(name);
    if (this.names.length === SEGMENT) this.seal();
    if (!this.started && this.count + this.names.length >= PARALLEL_MIN_FILES) this.startWorkers();
    return this.count + this.names.length - 1;
  }

  /**
   * Checks whatever no worker has taken yet, waits for the blocks the workers
   * are on, and returns every verdict. Files left UNCHECKED (a worker failed or
   * stalled) are for the caller to check.
   */
  finish(): CheckResults {
    if (this.names.length > 0) this.seal();
    for (const worker of this.workers) post(worker, null); // nothing more: the worker may exit
    const scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
    for (const segment of this.segments) checkSegment(segment, scratch);
    waitForSegments(this.segments, this.progress);
    const status = new Uint8Array(this.count);
    const mtimes = new Float64Array(this.count);
    let at = 0;
    for (const segment of this.segments) {
      status.set(segment.status, at);
      mtimes.set(segment.mtimes, at);
      at += segment.status.length;
    }
    return { status, mtimes };
  }

  private seal(): void {
    const n = this.names.length;
    const segment: Segment = {
      dirs: this.dirs,
      dirOf: n === SEGMENT ? this.dirOf : this.dirOf.slice(0, n),
      names: this.names,
      status: new Uint8Array(new SharedArrayBuffer(n)),
      mtimes: new Float64Array(new SharedArrayBuffer(8 * n)),
      counter: new Int32Array(new SharedArrayBuffer(8)),
      progress: this.progress,
      maxBytes: this.maxBytes,
    };
    this.segments.push(segment);
    this.count += n;
    this.dirs = [];
    this.dirOf = new Uint16Array(SEGMENT);
    this.names = [];
    for (const worker of this.workers) post(worker, segment);
  }

  private startWorkers(): void {
    this.started = true;
    const count = Math.min(this.threads - 1, MAX_WORKERS);
    for (let i = 0; i < count; i++) {
      let worker: Worker;
      try {
        worker = new Worker(new URL('./check-worker.js', import.meta.url));
      } catch {
        break; // e.g. run from TypeScript sources, where check-worker.js does not exist
      }
      // Errors are not fatal: the files a worker did not mark are checked by the caller.
      worker.on('error', () => {});
      // A worker that failed is sent nothing more (seen only if the caller let the event loop turn, say
      // between startListing() and finish(); otherwise post() copes with a worker that is gone).
      worker.once('exit', () => exited.add(worker));
      worker.unref();
      this.workers.push(worker);
      for (const segment of this.segments) post(worker, segment);
    }
  }
}

/** Workers whose exit was seen. */
const exited = new WeakSet<Worker>();

/** Sends a worker a segment, or null for "no more". A worker that has exited, or cannot be sent to, is skipped. */
function post(worker: Worker, segment: Segment | null): void {
  if (exited.has(worker)) return;
  if (segment === null) {
    try {
      worker.postMessage(null);
    } catch {
      // Gone meanwhile: it needs no end-of-work message.
    }
    return;
  }
  const message: SegmentMessage = {
    dirs: segment.dirs as string[],
    dirOf: segment.dirOf,
    names: segment.names.join('\0'),
    status: segment.status,
    mtimes: segment.mtimes,
    counter: segment.counter,
    progress: segment.progress,
    maxBytes: segment.maxBytes,
  };
  try {
    worker.postMessage(message);
  } catch {
    // A worker that cannot be sent a segment simply does not take part in it.
  }
}

/** Task files are small; larger ones get a buffer of their own. */
const SCRATCH_BYTES = 64 * 1024;

/** For check-worker.ts: checks a segment sent by BodyChecks. */
export function checkSegmentMessage(message: SegmentMessage, scratch: Buffer): void {
  checkSegment({ ...message, names: message.names.split('\0') }, scratch);
}

/** Takes blocks from the segment's counter and checks their files until none are left. Used by every thread. */
function checkSegment(segment: Segment, scratch: Buffer): void {
  const count = segment.status.length;
  const blocks = Math.ceil(count / BLOCK);
  const { dirs, dirOf, names, status, mtimes, counter, progress, maxBytes } = segment;
  for (;;) {
    const block = Atomics.add(counter, NEXT_BLOCK, 1);
    if (block >= blocks) return;
    const end = Math.min((block + 1) * BLOCK, count);
    try {
      for (let i = block * BLOCK; i < end; i++) {
        const name = names[i]!;
        const read = readRegularFile(dirs[dirOf[i]!]! + sep + name, maxBytes, scratch);
        // A body with an expiry is looked at again by the caller, which notes whether it has expired (rare).
        if (read.ok && isValidBody(read.bytes, name.endsWith('.json') ? 'json' : 'msgpack') && expiresOfLastValidBody() === undefined) {
          mtimes[i] = read.mtimeMs;
          status[i] = VALID;
        } else {
          status[i] = LOOK_AGAIN;
        }
      }
    } finally {
      // Done, or given up on: the files it did not mark stay UNCHECKED, for the caller.
      Atomics.add(progress, 0, 1);
      Atomics.add(counter, BLOCKS_DONE, 1);
      Atomics.notify(counter, BLOCKS_DONE);
    }
  }
}

/** Waits until every block of every segment is done, or until no thread has finished a block for STALL_MS. */
function waitForSegments(segments: readonly Segment[], progress: Int32Array): void {
  let seen = Atomics.load(progress, 0);
  let lastProgress = Date.now();
  for (const segment of segments) {
    const blocks = Math.ceil(segment.status.length / BLOCK);
    for (;;) {
      const done = Atomics.load(segment.counter, BLOCKS_DONE);
      if (done >= blocks) break;
      Atomics.wait(segment.counter, BLOCKS_DONE, done, 100);
      const now = Atomics.load(progress, 0);
      if (now !== seen) {
        seen = now;
        lastProgress = Date.now();
      } else if (Date.now() - lastProgress > STALL_MS) {
        return; // a stuck worker: its unmarked files are checked by the caller
      }
    }
  }
}
