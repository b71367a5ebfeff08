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
import { findBodyProblem } from './body.js';
import type { Encoding } from './name.js';
import { readRegularFile } from './safe-read.js';
import { decodeWire } from './wire.js';

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
        if (read.ok && (name.endsWith('.json') ? isValidBody(read.bytes, 'json') : isCommonMsgpackBody(read.bytes) || isValidBody(read.bytes, 'msgpack'))) {
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

/** Whether the body decodes and passes findBodyProblem: what decodeTask checks. Keep in step. */
export function isValidBody(bytes: Uint8Array, encoding: Encoding): boolean {
  try {
    return findBodyProblem(decodeWire(bytes, encoding)) === undefined;
  } catch {
    return false;
  }
}

/*
 * A quick check for the MessagePack bodies producers commonly write, without
 * decoding them: true only for bytes that isValidBody accepts, false for
 * anything else, however valid, which is then decoded and checked in full.
 * About a tenth of the cost of isValidBody, which is a third of a body check.
 *
 * It accepts one map of these fields, each at most once, "version" and "type"
 * required: version 1 (one byte), type (a string of the form findBodyProblem
 * allows; "fcall" without "message"), args (an array), payload (any value),
 * message (a string, not for fcall), timeout (a positive integer), parent (a
 * string, not empty), meta (a map), retry (a map of limit and backoff, backoff
 * a map of kind, delay, factor, floor, ceiling, jitter, with the values
 * findBodyProblem allows). Values inside are plain values in the narrowest
 * sense: nil, booleans, integers of up to 32 bits, finite floats, ASCII
 * strings, byte arrays, and arrays and maps (string keys, not "__proto__") of
 * these, at most 16 deep. Every length must be within the bytes, and nothing
 * may follow the map. Any other field, type or form (64-bit integers, 32-bit
 * lengths, extension types, non-ASCII text, deeper nesting) is left to the
 * full check. test/listing.test.ts checks the two against each other.
 */
const FIELD_VERSION = 1;
const FIELD_TYPE = 2;
const FIELD_ARGS = 4;
const FIELD_PAYLOAD = 8;
const FIELD_MESSAGE = 16;
const FIELD_TIMEOUT = 32;
const FIELD_PARENT = 64;
const FIELD_META = 128;
const FIELD_RETRY = 256;
const MAX_QUICK_DEPTH = 16;

/** Whether `bytes` is a MessagePack task body of the common form above (so isValidBody would accept it). */
export function isCommonMsgpackBody(bytes: Uint8Array): boolean {
  const end = bytes.length;
  // Positions are packed with a length into one number below (see stringAt): 8 MiB at most.
  if (end === 0 || end > 0x7fffff) return false;
  const head = mapHeader(bytes, 0, end);
  if (head < 0) return false;
  let p = head >>> 8;
  let count = head & 0xff;
  let seen = 0;
  let fcall = false;
  for (; count > 0; count--) {
    const key = keyAt(bytes, p, end);
    if (key < 0) return false;
    const keyStart = key >>> 8;
    const keyLength = key & 0xff;
    p = keyStart + keyLength;
    const field = fieldOf(bytes, keyStart, keyLength);
    if (field === 0 || (seen & field) !== 0) return false;
    seen |= field;
    if (p >= end) return false;
    const b = bytes[p]!;
    switch (field) {
      case FIELD_VERSION:
        if (b !== 0x01) return false;
        p++;
        break;
      case FIELD_TYPE: {
        const s = stringAt(bytes, p, end);
        if (s < 0) return false;
        const start = s >>> 8;
        const length = s & 0xff;
        if (!isTaskType(bytes, start, length)) return false;
        fcall = length === 5 && bytes[start] === 0x66 && bytes[start + 1] === 0x63 && bytes[start + 2] === 0x61 && bytes[start + 3] === 0x6c && bytes[start + 4] === 0x6c;
        p = start + length;
        break;
      }
      case FIELD_ARGS:
        if (!((b >= 0x90 && b <= 0x9f) || b === 0xdc)) return false;
        p = skipPlain(bytes, p, end, 1);
        break;
      case FIELD_PAYLOAD:
        p = skipPlain(bytes, p, end, 1);
        break;
      case FIELD_MESSAGE: {
        const s = stringAt(bytes, p, end);
        if (s < 0) return false;
        p = (s >>> 8) + (s & 0xff);
        break;
      }
      case FIELD_TIMEOUT: {
        const n = intAt(bytes, p, end);
        if (n <= 0) return false;
        p = nextAfterInt(bytes, p);
        break;
      }
      case FIELD_PARENT: {
        const s = stringAt(bytes, p, end);
        if (s < 0 || (s & 0xff) === 0) return false;
        p = (s >>> 8) + (s & 0xff);
        break;
      }
      case FIELD_META:
        if (!((b >= 0x80 && b <= 0x8f) || b === 0xde)) return false;
        p = skipPlain(bytes, p, end, 1);
        break;
      case FIELD_RETRY:
        p = skipRetry(bytes, p, end);
        break;
    }
    if (p < 0) return false;
  }
  // findBodyProblem: a version and a type; an fcall task has no message.
  if ((seen & (FIELD_VERSION | FIELD_TYPE)) !== (FIELD_VERSION | FIELD_TYPE)) return false;
  if (fcall && (seen & FIELD_MESSAGE) !== 0) return false;
  return p === end;
}

/** A fixmap or map16 at p: (first key's position << 8) | pairs, for up to 255 pairs; -1 otherwise. */
function mapHeader(bytes: Uint8Array, p: number, end: number): number {
  const b = bytes[p]!;
  if (b >= 0x80 && b <= 0x8f) return ((p + 1) << 8) | (b & 0x0f);
  if (b === 0xde && p + 3 <= end) {
    const n = (bytes[p + 1]! << 8) | bytes[p + 2]!;
    if (n <= 0xff) return ((p + 3) << 8) | n;
  }
  return -1;
}

/**
 * An ASCII string (fixstr or str8, so at most 255 bytes) at p that lies within
 * the bytes: (start << 8) | length; -1 otherwise. Offsets fit as bodies checked
 * here are read into a 64 KiB buffer.
 */
function stringAt(bytes: Uint8Array, p: number, end: number): number {
  const b = bytes[p]!;
  let start: number;
  let length: number;
  if (b >= 0xa0 && b <= 0xbf) {
    start = p + 1;
    length = b & 0x1f;
  } else if (b === 0xd9 && p + 2 <= end) {
    start = p + 2;
    length = bytes[p + 1]!;
  } else {
    return -1;
  }
  if (start + length > end || start > 0x7fffff) return -1;
  for (let i = start; i < start + length; i++) if (bytes[i]! >= 0x80) return -1;
  return (start << 8) | length;
}

/** A map key: an ASCII string, not "__proto__" (which msgpackr renames). */
function keyAt(bytes: Uint8Array, p: number, end: number): number {
  if (p >= end) return -1;
  const s = stringAt(bytes, p, end);
  if (s < 0) return -1;
  const start = s >>> 8;
  if ((s & 0xff) === 9 && bytes[start] === 0x5f && bytes[start + 1] === 0x5f && bytes[start + 2] === 0x70 && bytes[start + 7] === 0x5f && bytes[start + 8] === 0x5f) {
    return -1; // "__p????__": close enough to "__proto__" to leave to the full check
  }
  return s;
}

/** Which field a top-level key names, or 0 for any other key. */
function fieldOf(bytes: Uint8Array, start: number, length: number): number {
  switch (length) {
    case 4:
      if (matches(bytes, start, 'type')) return FIELD_TYPE;
      if (matches(bytes, start, 'args')) return FIELD_ARGS;
      if (matches(bytes, start, 'meta')) return FIELD_META;
      return 0;
    case 5:
      return matches(bytes, start, 'retry') ? FIELD_RETRY : 0;
    case 6:
      return matches(bytes, start, 'parent') ? FIELD_PARENT : 0;
    case 7:
      if (matches(bytes, start, 'version')) return FIELD_VERSION;
      if (matches(bytes, start, 'payload')) return FIELD_PAYLOAD;
      if (matches(bytes, start, 'message')) return FIELD_MESSAGE;
      if (matches(bytes, start, 'timeout')) return FIELD_TIMEOUT;
      return 0;
    default:
      return 0;
  }
}

function matches(bytes: Uint8Array, start: number, ascii: string): boolean {
  for (let i = 0; i < ascii.length; i++) if (bytes[start + i] !== ascii.charCodeAt(i)) return false;
  return true;
}

/** TASK_TYPE_PATTERN (body.ts), /^[a-z][a-z0-9_-]{0,63}$/, on ASCII bytes. */
function isTaskType(bytes: Uint8Array, start: number, length: number): boolean {
  if (length < 1 || length > 64) return false;
  const first = bytes[start]!;
  if (first < 0x61 || first > 0x7a) return false;
  for (let i = start + 1; i < start + length; i++) {
    const c = bytes[i]!;
    if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x5f || c === 0x2d)) return false;
  }
  return true;
}

/** A non-negative integer of up to 32 bits at p (positive fixint, uint8/16/32, int8/16/32): its value; -1 for anything else. */
function intAt(bytes: Uint8Array, p: number, end: number): number {
  if (p >= end) return -1;
  const b = bytes[p]!;
  if (b <= 0x7f) return b;
  switch (b) {
    case 0xcc:
    case 0xd0:
      if (p + 2 > end) return -1;
      return b === 0xcc ? bytes[p + 1]! : (bytes[p + 1]! << 24) >> 24;
    case 0xcd:
    case 0xd1: {
      if (p + 3 > end) return -1;
      const v = (bytes[p + 1]! << 8) | bytes[p + 2]!;
      return b === 0xcd ? v : (v << 16) >> 16;
    }
    case 0xce:
    case 0xd2: {
      if (p + 5 > end) return -1;
      const v = ((bytes[p + 1]! << 24) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 8) | bytes[p + 4]!) >>> 0;
      return b === 0xce ? v : v | 0;
    }
    default:
      return -1;
  }
}

/** The position after the integer intAt read at p. */
function nextAfterInt(bytes: Uint8Array, p: number): number {
  const b = bytes[p]!;
  if (b <= 0x7f) return p + 1;
  if (b === 0xcc || b === 0xd0) return p + 2;
  if (b === 0xcd || b === 0xd1) return p + 3;
  return p + 5;
}

/** A finite float32 or float64 at p, or an integer as intAt reads it: its value; NaN for anything else (infinities too). */
function numberAt(bytes: Uint8Array, p: number, end: number): number {
  const b = bytes[p]!;
  if (b === 0xca || b === 0xcb) {
    const size = b === 0xca ? 4 : 8;
    if (p + 1 + size > end) return NaN;
    const view = new DataView(bytes.buffer, bytes.byteOffset + p + 1, size);
    const value = size === 4 ? view.getFloat32(0) : view.getFloat64(0);
    return Number.isFinite(value) ? value : NaN;
  }
  const n = intAt(bytes, p, end);
  return n < 0 ? NaN : n;
}

/** The position after the number numberAt read at p. */
function nextAfterNumber(bytes: Uint8Array, p: number): number {
  const b = bytes[p]!;
  if (b === 0xca) return p + 5;
  if (b === 0xcb) return p + 9;
  return nextAfterInt(bytes, p);
}

/**
 * retry at p: a map of "limit" (required, a non-negative integer) and
 * "backoff" (a map of "kind", one of the BACKOFF_KINDS, and "delay", both
 * required, and "factor" ≥ 1, "floor", "ceiling", "jitter" from 0 to 1), as
 * findRetryProblem allows. The position after it, or -1.
 */
function skipRetry(bytes: Uint8Array, p: number, end: number): number {
  const head = mapHeader(bytes, p, end);
  if (head < 0) return -1;
  p = head >>> 8;
  let hasLimit = false;
  let hasBackoff = false;
  for (let count = head & 0xff; count > 0; count--) {
    const key = keyAt(bytes, p, end);
    if (key < 0) return -1;
    const start = key >>> 8;
    const length = key & 0xff;
    p = start + length;
    if (p >= end) return -1;
    if (length === 5 && matches(bytes, start, 'limit') && !hasLimit) {
      if (intAt(bytes, p, end) < 0) return -1;
      p = nextAfterInt(bytes, p);
      hasLimit = true;
    } else if (length === 7 && matches(bytes, start, 'backoff') && !hasBackoff) {
      p = skipBackoff(bytes, p, end);
      if (p < 0) return -1;
      hasBackoff = true;
    } else {
      return -1;
    }
  }
  return hasLimit ? p : -1;
}

function skipBackoff(bytes: Uint8Array, p: number, end: number): number {
  const head = mapHeader(bytes, p, end);
  if (head < 0) return -1;
  p = head >>> 8;
  let seen = 0;
  for (let count = head & 0xff; count > 0; count--) {
    const key = keyAt(bytes, p, end);
    if (key < 0) return -1;
    const start = key >>> 8;
    const length = key & 0xff;
    p = start + length;
    if (p >= end) return -1;
    let field: number;
    if (length === 4 && matches(bytes, start, 'kind')) {
      field = 1;
      const s = stringAt(bytes, p, end);
      if (s < 0) return -1;
      const at = s >>> 8;
      const n = s & 0xff;
      if (!((n === 8 && matches(bytes, at, 'constant')) || (n === 6 && matches(bytes, at, 'linear')) || (n === 11 && matches(bytes, at, 'exponential')))) return -1;
      p = at + n;
    } else if (length === 5 && matches(bytes, start, 'delay')) {
      field = 2;
      if (intAt(bytes, p, end) < 0) return -1;
      p = nextAfterInt(bytes, p);
    } else if (length === 5 && matches(bytes, start, 'floor')) {
      field = 4;
      if (intAt(bytes, p, end) < 0) return -1;
      p = nextAfterInt(bytes, p);
    } else if (length === 7 && matches(bytes, start, 'ceiling')) {
      field = 8;
      if (intAt(bytes, p, end) < 0) return -1;
      p = nextAfterInt(bytes, p);
    } else if (length === 6 && matches(bytes, start, 'factor')) {
      field = 16;
      if (!(numberAt(bytes, p, end) >= 1)) return -1;
      p = nextAfterNumber(bytes, p);
    } else if (length === 6 && matches(bytes, start, 'jitter')) {
      field = 32;
      const j = numberAt(bytes, p, end);
      if (!(j >= 0 && j <= 1)) return -1;
      p = nextAfterNumber(bytes, p);
    } else {
      return -1;
    }
    if ((seen & field) !== 0) return -1;
    seen |= field;
  }
  return (seen & 3) === 3 ? p : -1;
}

/** A plain value at p, at the given depth: the position after it, or -1. */
function skipPlain(bytes: Uint8Array, p: number, end: number, depth: number): number {
  if (p >= end) return -1;
  const b = bytes[p]!;
  if (b <= 0x7f || b >= 0xe0) return p + 1;
  if (b <= 0x9f || b === 0xdc || b === 0xde) {
    if (depth >= MAX_QUICK_DEPTH) return -1;
    let count: number;
    const map = b <= 0x8f || b === 0xde;
    if (b <= 0x9f) {
      count = b & 0x0f;
      p += 1;
    } else {
      if (p + 3 > end) return -1;
      count = (bytes[p + 1]! << 8) | bytes[p + 2]!;
      p += 3;
    }
    for (; count > 0; count--) {
      if (map) {
        const key = keyAt(bytes, p, end);
        if (key < 0) return -1;
        p = (key >>> 8) + (key & 0xff);
      }
      p = skipPlain(bytes, p, end, depth + 1);
      if (p < 0) return -1;
    }
    return p;
  }
  if (b <= 0xbf) {
    const length = b & 0x1f;
    return asciiWithin(bytes, p + 1, length, end);
  }
  switch (b) {
    case 0xc0: // nil
    case 0xc2: // false
    case 0xc3: // true
      return p + 1;
    case 0xcc:
    case 0xd0:
      return p + 2 <= end ? p + 2 : -1;
    case 0xcd:
    case 0xd1:
      return p + 3 <= end ? p + 3 : -1;
    case 0xce:
    case 0xd2:
      return p + 5 <= end ? p + 5 : -1;
    case 0xca: // float32: finite unless the exponent is all ones
      if (p + 5 > end || (((bytes[p + 1]! & 0x7f) << 1) | (bytes[p + 2]! >> 7)) === 0xff) return -1;
      return p + 5;
    case 0xcb: // float64: likewise
      if (p + 9 > end || (((bytes[p + 1]! & 0x7f) << 4) | (bytes[p + 2]! >> 4)) === 0x7ff) return -1;
      return p + 9;
    case 0xd9: // str8
      return p + 2 <= end ? asciiWithin(bytes, p + 2, bytes[p + 1]!, end) : -1;
    case 0xda: // str16
      return p + 3 <= end ? asciiWithin(bytes, p + 3, (bytes[p + 1]! << 8) | bytes[p + 2]!, end) : -1;
    case 0xc4: // bin8
      return p + 2 <= end && p + 2 + bytes[p + 1]! <= end ? p + 2 + bytes[p + 1]! : -1;
    case 0xc5: {
      // bin16
      if (p + 3 > end) return -1;
      const n = (bytes[p + 1]! << 8) | bytes[p + 2]!;
      return p + 3 + n <= end ? p + 3 + n : -1;
    }
    default:
      return -1;
  }
}

/** The position after `length` ASCII bytes at `start`, or -1 if they are not all within the bytes and ASCII. */
function asciiWithin(bytes: Uint8Array, start: number, length: number, end: number): number {
  const stop = start + length;
  if (stop > end) return -1;
  for (let i = start; i < stop; i++) if (bytes[i]! >= 0x80) return -1;
  return stop;
}
