/**
 * The daemon's side of its file operations: hands claim/read and unlink
 * batches (file-ops.ts) to file-ops threads, or runs them on the main thread
 * when it has none (--io-threads 0).
 *
 * Why threads: a drain's time goes to system calls (rename, lstat, open, read,
 * close, unlink: ~35–50 µs per task on tmpfs, more on ext4) and to the
 * JavaScript that runs and settles the task (~25 µs). On one thread they add
 * up; with a file-ops thread the next batch is claimed and read while the
 * main thread runs the current one, and the machine's second core is used.
 *
 * A batch sent to a thread is done exactly as it would be here: a thread only
 * moves where the same synchronous calls run. If a thread dies (a bug; the
 * operations themselves never throw), its unanswered batches are redone on
 * the main thread, which is safe: a claim already done is found by claim()'s
 * own check of the claim directory, an unlink already done reports Missing.
 */
import { Worker } from 'node:worker_threads';
import { claimAndRead, unlinkAll, type ClaimReply, type ClaimRequest, type FileOpsReply, type FileOpsRequest, type UnlinkReply } from './file-ops.js';
import type { Logger } from './logger.js';

/** Batches of at most this many names go to a thread only while another batch is under way (send()). */
const INLINE_MAX = 4;

interface Waiting {
  request: FileOpsRequest;
  thread: Worker;
  resolve: (reply: FileOpsReply) => void;
}

export class FileOpsLane {
  private readonly threads: Worker[] = [];
  private readonly waiting = new Map<number, Waiting>();
  /** Unanswered batches per thread (busy()). */
  private readonly outstanding = new Map<Worker, number>();
  private nextId = 1;
  private turn = 0;

  constructor(
    threads: number,
    private readonly log: Logger,
  ) {
    for (let i = 0; i < threads; i++) this.threads.push(this.spawn());
  }

  get threadCount(): number {
    return this.threads.length;
  }

  /** Claims and reads `count` names (req.names). */
  claim(req: ClaimRequest, count: number): Promise<ClaimReply> {
    return this.send({ id: this.nextId++, op: 'claim', req }, count).then((r) => ('claim' in r ? r.claim : claimAndRead(req)));
  }

  /** Deletes `count` names (joined by NAME_SEPARATOR) from `dir`. */
  unlink(dir: string, names: string, count: number): Promise<UnlinkReply> {
    return this.send({ id: this.nextId++, op: 'unlink', dir, names }, count).then((r) => ('unlink' in r ? r.unlink : unlinkAll(dir, names)));
  }

  /** Ends the threads (after the daemon has waited for its batches). */
  async close(): Promise<void> {
    const threads = this.threads.splice(0);
    await Promise.all(threads.map((t) => t.terminate()));
  }

  private send(request: FileOpsRequest, count: number): Promise<FileOpsReply> {
    // No thread, or a small batch while no thread has work: run it here and now. An idle daemon's
    // pickup then waits for no thread (waking an idle one added ~1.5 ms to a postponed task's start).
    if (this.threads.length === 0 || (count <= INLINE_MAX && this.waiting.size === 0)) return Promise.resolve(runHere(request));
    const thread = this.threads[this.turn++ % this.threads.length]!;
    return new Promise((resolve) => {
      this.waiting.set(request.id, { request, thread, resolve });
      this.busy(thread, +1);
      thread.postMessage(request);
    });
  }

  private spawn(): Worker {
    const thread = new Worker(new URL('./file-ops-thread.js', import.meta.url));
    thread.unref(); // until it has a batch: busy()
    thread.on('message', (reply: FileOpsReply) => {
      const w = this.waiting.get(reply.id);
      if (w === undefined) return;
      this.waiting.delete(reply.id);
      this.busy(thread, -1);
      if ('error' in reply) this.log.error('a file-ops thread failed on a batch; redoing it on the main thread', { err: reply.error });
      w.resolve(reply);
    });
    thread.on('error', (err) => this.lose(thread, err));
    thread.on('exit', (code) => this.lose(thread, new Error(`exited with code ${code}`)));
    return thread;
  }

  /**
   * A thread keeps the process alive only while it has a batch: idle, it must
   * not (the daemon decides when it exits), but a stopping daemon that awaits
   * its last batches may have nothing else left to keep it running.
   */
  private busy(thread: Worker, delta: number): void {
    const n = (this.outstanding.get(thread) ?? 0) + delta;
    this.outstanding.set(thread, n);
    if (n === 1 && delta > 0) thread.ref();
    else if (n === 0) thread.unref();
  }

  /** A thread died: stop using it and redo its unanswered batches here. */
  private lose(thread: Worker, err: Error): void {
    const at = this.threads.indexOf(thread);
    if (at < 0) return;
    this.threads.splice(at, 1);
    this.log.error('a file-ops thread died; its work goes to the remaining threads or the main thread', { err, threadsLeft: this.threads.length });
    for (const [id, w] of this.waiting) {
      if (w.thread !== thread) continue;
      this.waiting.delete(id);
      w.resolve(runHere(w.request));
    }
  }
}

function runHere(request: FileOpsRequest): FileOpsReply {
  return request.op === 'claim' ? { id: request.id, claim: claimAndRead(request.req) } : { id: request.id, unlink: unlinkAll(request.dir, request.names) };
}
