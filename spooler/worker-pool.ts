/**
 * --processes N: tasks run in N worker processes (worker-main.ts), which the
 * daemon can kill. The daemon keeps discovery, claiming, reading and every
 * rename of a failed task; a worker runs the decoded task, removes (or
 * archives) the file of a task that ended processed or skipped, and reports
 * its outcome (see executor.ts for why). Each task goes to the ready worker with the fewest
 * tasks in flight; the daemon's --concurrency caps the tasks in flight over
 * all workers.
 *
 * A worker's life:
 *
 *   starting --ready--> ready --(--max-tasks reached, or RSS over --max-memory)--> retiring --idle: told to exit--> exited
 *      |                  |  \--(a task outlived its timeout and the kill grace)--> killed --SIGKILL--> exited
 *      '------------------'--(it died: exit, crash, OOM, abort, killed from outside)-----------------> exited
 *
 * A retiring worker gets no new tasks and is replaced at once. When a worker
 * exits with tasks in flight, each of them settles:
 *
 *   its claimed file is gone   it ended processed or skipped and the worker removed its file, but
 *                              the report never arrived: done (settled-by-runner, outcome unknown)
 *   killed for a timeout   the task that timed out: failed (TaskTimeoutError, attempt counted);
 *                          the others: released (back to the spool, no attempt counted)
 *   died by itself         every task it was running: failed (WorkerCrashedError, attempt counted).
 *                          Which one killed it cannot be known, and counting them all guarantees
 *                          that a task which always crashes its worker ends as a dead letter.
 *
 * A worker that dies within RESTART_HEALTHY_MS of starting is replaced after a
 * growing delay (100 ms, doubling, at most 10 s), so a worker that cannot start
 * does not spin.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { lstatSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TaskTimeoutError } from '../runtime/context.js';
import { WorkerCrashedError, type Execution, type Executor, type Job } from './executor.js';
import type { Logger } from './logger.js';
import type { WorkerOptions } from './options.js';
import type { RegisteredTasks } from './task-names.js';
import { executionFromWire, WORKER_ENV, type FromWorker, type ToWorker, type WireJob } from './worker-protocol.js';

const WORKER_MAIN = fileURLToPath(new URL('./worker-main.js', import.meta.url));
/** A worker that lived this long before dying is replaced at once, and resets the restart delay. */
const RESTART_HEALTHY_MS = 5000;
const RESTART_DELAY_MIN = 100;
const RESTART_DELAY_MAX = 10_000;
/** On a graceful stop, how long idle workers get to exit before they are killed. */
const EXIT_WAIT_MS = 5000;

export interface WorkerPoolOptions {
  processes: number;
  /** The daemon's options a worker process needs (spooler/options.ts: task modules, --archive, log settings). */
  worker: WorkerOptions;
  /** Replace a worker after this many tasks (0: never). */
  maxTasks: number;
  /** Replace a worker whose RSS passes this many bytes, once its tasks are done (0: never). */
  maxMemory: number;
  /** After a task's timeout fired its AbortSignal, how long (ms) it may take to stop before its worker is killed. */
  killGrace: number;
  log: Logger;
  /** Called when workers can take tasks again. */
  wake: () => void;
}

/** The workers could not be started (a task module does not import, or a worker died at start-up). */
export class WorkerStartError extends Error {
  override name = 'WorkerStartError';
  constructor(
    message: string,
    /** The import error's stack (a syntax error's led by its source line), when a module did not import. */
    readonly detail?: string,
  ) {
    super(message);
  }
}

/** Why a worker process was replaced: it died by itself, was killed (a task outlived its timeout or lost claim), or was retired. */
export type WorkerRestartReason = 'crashed' | 'killed' | 'max-tasks' | 'max-memory';

type WorkerState = 'starting' | 'ready' | 'retiring' | 'killed' | 'exited';

interface Pending {
  n: number;
  job: Job;
  settle: (execution: Execution) => void;
  worker: WorkerProcess;
  /** Whether the run message left for the worker (unsent tasks are released, never failed). */
  sent: boolean;
  timedOut: boolean;
  /** The daemon lost its claim on the task (revoke()): its outcome is ignored. */
  revoked?: boolean;
  timer?: NodeJS.Timeout;
  grace?: NodeJS.Timeout;
}

class WorkerProcess {
  state: WorkerState = 'starting';
  readonly inflight = new Map<number, Pending>();
  outbox: WireJob[] = [];
  flushScheduled = false;
  tasksGiven = 0;
  rss = 0;
  /** Whether its replacement was started already (it retired, then maybe was killed anyway). */
  replaced = false;
  importError: string | undefined;
  importStack: string | undefined;
  readonly spawnedAt = Date.now();
  readonly ready: Promise<void>;
  readonly exited: Promise<void>;
  markReady!: () => void;
  markFailed!: (err: Error) => void;
  markExited!: () => void;

  constructor(readonly child: ChildProcess) {
    this.ready = new Promise((done, fail) => {
      this.markReady = done;
      this.markFailed = fail;
    });
    this.ready.catch(() => undefined);
    this.exited = new Promise((done) => (this.markExited = done));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  send(message: ToWorker): void {
    if (!this.child.connected) return;
    try {
      this.child.send(message);
    } catch {
      // The channel closed under us: the exit handler decides what becomes of the tasks.
    }
  }
}

export class WorkerPool implements Executor {
  private readonly workers = new Set<WorkerProcess>();
  /** Tasks handed over while no worker was ready. */
  private waiting: Pending[] = [];
  private seq = 0;
  private slot = 0;
  private stopping = false;
  /** Whether start() succeeded: until then a worker that dies fails the start instead of being replaced. */
  private started = false;
  private restartFailures = 0;
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  private readonly log: Logger;
  private replacements = 0;
  /** Worker processes replaced since start, by why (the metrics read it at scrape time). */
  readonly restarts: Record<WorkerRestartReason, number> = { crashed: 0, killed: 0, 'max-tasks': 0, 'max-memory': 0 };
  private registeredTasks: RegisteredTasks | undefined;
  /** Tasks each worker process (by pid) reported finished, for the progress and final log lines. */
  private readonly finishedBy = new Map<number, number>();

  constructor(private readonly options: WorkerPoolOptions) {
    this.log = options.log;
  }

  async start(): Promise<void> {
    const first = Array.from({ length: this.options.processes }, () => this.spawn());
    try {
      await Promise.all(first.map((w) => w.ready));
    } catch (err) {
      this.forceStop();
      throw err;
    }
    this.started = true;
    this.log.info('worker processes ready', { processes: first.length, pids: first.map((w) => w.pid) });
  }

  registered(): RegisteredTasks {
    return this.registeredTasks ?? { tasks: [], types: [] };
  }

  accepting(): boolean {
    for (const w of this.workers) if (w.state === 'ready') return true;
    return false;
  }

  run(job: Job): Promise<Execution> {
    return new Promise((settle) => {
      const worker = this.pick();
      const p: Pending = { n: ++this.seq, job, settle, worker: worker!, sent: false, timedOut: false };
      if (worker === undefined) this.waiting.push(p);
      else this.assign(worker, p);
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.restartTimers) clearTimeout(t);
    const all = [...this.workers];
    for (const w of all) {
      if (w.inflight.size === 0 && (w.state === 'ready' || w.state === 'retiring')) w.send({ t: 'retire' });
      else w.child.kill('SIGKILL');
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((done) => (timer = setTimeout(done, EXIT_WAIT_MS)));
    await Promise.race([Promise.all(all.map((w) => w.exited)), late]);
    clearTimeout(timer);
    for (const w of all) if (w.state !== 'exited') w.child.kill('SIGKILL');
  }

  revoke(spool: string, reason: Error): void {
    const lost = (p: Pending) => p.job.spool === spool && !p.revoked;
    for (const p of this.waiting.filter(lost)) p.settle({ kind: 'released', reason: reason.message });
    this.waiting = this.waiting.filter((p) => !lost(p));
    for (const w of this.workers) {
      for (const p of [...w.inflight.values()]) {
        if (!lost(p)) continue;
        p.revoked = true;
        if (!p.sent) {
          // Still in the outbox: it never reaches the worker.
          w.outbox = w.outbox.filter((job) => job.n !== p.n);
          w.inflight.delete(p.n);
          clearTimeout(p.timer);
          p.settle({ kind: 'released', reason: reason.message });
          continue;
        }
        clearTimeout(p.timer);
        w.send({ t: 'revoke', n: p.n, message: reason.message });
        if (p.grace === undefined) p.grace = setTimeout(() => this.killForRevoked(w, p), this.options.killGrace);
      }
    }
  }

  /** A task whose claim was lost ignored its AbortSignal for the kill grace: stop it the only way there is. */
  private killForRevoked(w: WorkerProcess, p: Pending): void {
    if (!w.inflight.has(p.n) || w.state === 'exited') return;
    w.state = 'killed';
    this.log.warn('a task whose claim was lost did not stop within the kill grace after its AbortSignal: killing its worker process', {
      task: p.job.task.name,
      id: p.job.task.id,
      killGraceMs: this.options.killGrace,
      worker: w.pid,
      alsoRunning: [...w.inflight.values()].filter((o) => o !== p).map((o) => ({ task: o.job.task.name, id: o.job.task.id })),
    });
    w.child.kill('SIGKILL');
  }

  forceStop(): void {
    this.stopping = true;
    for (const t of this.restartTimers) clearTimeout(t);
    for (const w of this.workers) w.child.kill('SIGKILL');
  }

  describe(): Record<string, unknown> {
    let running = 0;
    for (const w of this.workers) running += w.inflight.size;
    return { processes: this.options.processes, processesAlive: this.workers.size, workersReplaced: this.replacements, running, tasksByWorker: Object.fromEntries(this.finishedBy) };
  }

  // --- workers ---------------------------------------------------------------

  private spawn(): WorkerProcess {
    const child = fork(WORKER_MAIN, [], {
      execArgv: process.execArgv,
      serialization: 'json',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, [WORKER_ENV]: String(++this.slot) },
    });
    const w = new WorkerProcess(child);
    this.workers.add(w);
    child.on('message', (m: FromWorker) => this.onMessage(w, m));
    child.on('error', (err) => this.log.debug('worker process channel error', { worker: w.pid, err }));
    child.on('exit', (code, signal) => this.onExit(w, code, signal));
    w.send({ t: 'init', options: this.options.worker });
    this.log.debug('worker process started', { worker: w.pid });
    return w;
  }

  /** The ready worker with the fewest tasks in flight. */
  private pick(): WorkerProcess | undefined {
    let best: WorkerProcess | undefined;
    for (const w of this.workers) if (w.state === 'ready' && (best === undefined || w.inflight.size < best.inflight.size)) best = w;
    return best;
  }

  private assign(w: WorkerProcess, p: Pending): void {
    p.worker = w;
    w.inflight.set(p.n, p);
    w.outbox.push({ n: p.n, spool: p.job.spool, dir: p.job.claimedPath.slice(0, p.job.claimedPath.lastIndexOf('/')), file: p.job.task.fileName, body: Buffer.from(p.job.bytes.buffer, p.job.bytes.byteOffset, p.job.bytes.byteLength).toString('base64') });
    if (!w.flushScheduled) {
      w.flushScheduled = true;
      // Every task dispatched in this turn goes in one message.
      queueMicrotask(() => this.flush(w));
    }
    const timeoutMs = p.job.timeoutMs;
    if (timeoutMs !== undefined) p.timer = setTimeout(() => this.onTimeout(p, timeoutMs), timeoutMs);
    w.tasksGiven++;
    if (this.options.maxTasks > 0 && w.tasksGiven >= this.options.maxTasks) this.retire(w, 'max-tasks');
  }

  private flush(w: WorkerProcess): void {
    w.flushScheduled = false;
    if (w.outbox.length === 0 || w.state === 'exited') return;
    const jobs = w.outbox;
    w.outbox = [];
    for (const job of jobs) {
      const p = w.inflight.get(job.n);
      if (p) p.sent = true;
    }
    w.send({ t: 'run', jobs });
  }

  private drainWaiting(): void {
    while (this.waiting.length > 0) {
      const w = this.pick();
      if (w === undefined) return;
      this.assign(w, this.waiting.shift()!);
    }
  }

  private onMessage(w: WorkerProcess, m: FromWorker): void {
    switch (m.t) {
      case 'ready':
        if (w.state !== 'starting') return;
        w.state = 'ready';
        // Every worker imports the same modules: the first to be ready speaks for all.
        this.registeredTasks ??= m.registered;
        w.markReady();
        this.drainWaiting();
        this.options.wake();
        return;
      case 'import-failed':
        w.importError = m.message;
        w.importStack = m.stack;
        return;
      case 'done':
        // Once per batch of results, not per task.
        this.finishedBy.set(w.pid, (this.finishedBy.get(w.pid) ?? 0) + m.results.length);
        for (const [n, outcome] of m.results) {
          const p = w.inflight.get(n);
          if (p === undefined) continue;
          w.inflight.delete(n);
          clearTimeout(p.timer);
          clearTimeout(p.grace);
          p.settle(executionFromWire(outcome));
        }
        // A worker that finishes tasks is healthy: the next crash restarts it without delay.
        this.restartFailures = 0;
        if (m.rss !== undefined) this.onRss(w, m.rss);
        if (w.state === 'retiring' && w.inflight.size === 0) w.send({ t: 'retire' });
        return;
      case 'rss':
        return this.onRss(w, m.rss);
    }
  }

  private onRss(w: WorkerProcess, rss: number): void {
    w.rss = rss;
    if (this.options.maxMemory > 0 && rss > this.options.maxMemory) this.retire(w, 'max-memory');
  }

  /** Stops giving `w` tasks and starts its replacement now; `w` exits once its tasks are done. */
  private retire(w: WorkerProcess, reason: 'max-tasks' | 'max-memory'): void {
    if (w.state !== 'ready' || this.stopping) return;
    w.state = 'retiring';
    w.replaced = true;
    this.replacements++;
    this.restarts[reason]++;
    this.log.info('replacing a worker process once its tasks are done', {
      worker: w.pid,
      reason,
      tasks: w.tasksGiven,
      rssMb: Math.round(w.rss / 1048576),
      ...(reason === 'max-memory' && { maxMemoryMb: Math.round(this.options.maxMemory / 1048576) }),
    });
    this.spawn();
    if (w.inflight.size === 0) w.send({ t: 'retire' });
  }

  private onTimeout(p: Pending, timeoutMs: number): void {
    const w = p.worker;
    if (!w.inflight.has(p.n)) return;
    p.timedOut = true;
    w.send({ t: 'abort', n: p.n, timeoutMs });
    p.grace = setTimeout(() => {
      if (!w.inflight.has(p.n) || w.state === 'exited') return;
      w.state = 'killed';
      this.log.warn('a task did not stop within the kill grace after its timeout: killing its worker process', {
        task: p.job.task.name,
        id: p.job.task.id,
        attempt: p.job.task.attempts,
        timeoutMs,
        killGraceMs: this.options.killGrace,
        worker: w.pid,
        alsoRunning: [...w.inflight.values()].filter((o) => o !== p).map((o) => ({ task: o.job.task.name, id: o.job.task.id })),
      });
      w.child.kill('SIGKILL');
    }, this.options.killGrace);
  }

  private onExit(w: WorkerProcess, code: number | null, signal: NodeJS.Signals | null): void {
    const state = w.state;
    w.state = 'exited';
    this.workers.delete(w);
    w.markExited();
    const how = signal !== null ? `killed by ${signal}` : `exit code ${code}`;
    if (state === 'starting') w.markFailed(new WorkerStartError(w.importError ?? `a worker process exited while starting (${how}); see the lines above`, w.importStack));
    for (const p of w.inflight.values()) {
      clearTimeout(p.timer);
      clearTimeout(p.grace);
    }
    // On stop the daemon releases what was running; before start() succeeded, start() reports the failure.
    if (this.stopping || !this.started) return;

    const pendings: Pending[] = [];
    for (const p of w.inflight.values()) {
      // Ended, and its file removed by the worker, before the worker died with the report unsent.
      if (p.sent && isGone(p.job.claimedPath)) p.settle({ kind: 'settled-by-runner', outcome: undefined, file: 'removed' });
      else pendings.push(p);
    }
    w.inflight.clear();
    const running = pendings.map((p) => ({ task: p.job.task.name, id: p.job.task.id, attempt: p.job.task.attempts }));
    if (state === 'killed') {
      for (const p of pendings) {
        if (p.timedOut) p.settle({ kind: 'rescheduled', error: new TaskTimeoutError(p.job.timeoutMs!, `, nor within ${this.options.killGrace} ms after its AbortSignal fired; its worker process (pid ${w.pid}) was killed`) });
        else p.settle({ kind: 'released', reason: `its worker process (pid ${w.pid}) was killed to stop a task that outlived its timeout` });
      }
    } else if (state === 'starting' && w.importError !== undefined) {
      this.log.error('a replacement worker process cannot import the task modules', { worker: w.pid, error: w.importError, stack: w.importStack });
    } else if (pendings.length > 0 || state !== 'retiring' || code !== 0) {
      this.log.error('a worker process died; the tasks it was running are rescheduled with their attempt counted', { worker: w.pid, code, signal, running });
      for (const p of pendings) {
        if (!p.sent) p.settle({ kind: 'released', reason: `its worker process (pid ${w.pid}) died before the task reached it` });
        else {
          const others = pendings.length - 1;
          p.settle({ kind: 'rescheduled', error: new WorkerCrashedError(`its worker process (pid ${w.pid}) died (${how}) while running it${others > 0 ? ` and ${others} other task(s)` : ''}`) });
        }
      }
    } else {
      this.log.debug('worker process retired', { worker: w.pid });
    }
    if (!w.replaced) this.replace(w, state);
    this.options.wake();
  }

  private replace(w: WorkerProcess, state: WorkerState): void {
    this.replacements++;
    this.restarts[state === 'killed' ? 'killed' : 'crashed']++;
    const lived = Date.now() - w.spawnedAt;
    let delay = 0;
    // A worker killed for a timeout did nothing wrong at start-up: replace it at once.
    if (state !== 'killed' && (state === 'starting' || lived < RESTART_HEALTHY_MS)) {
      this.restartFailures++;
      delay = Math.min(RESTART_DELAY_MIN * 2 ** (this.restartFailures - 1), RESTART_DELAY_MAX);
      this.log.warn('a worker process died soon after it started; starting another after a delay', { worker: w.pid, livedMs: lived, delayMs: delay });
    } else if (state !== 'killed') {
      this.restartFailures = 0;
    }
    if (delay === 0) return void this.spawn();
    const timer = setTimeout(() => {
      this.restartTimers.delete(timer);
      if (!this.stopping) this.spawn();
    }, delay);
    this.restartTimers.add(timer);
  }
}

/** Whether a claimed file no longer exists (only its worker can have removed it while the task was in flight). */
function isGone(path: string): boolean {
  try {
    lstatSync(path);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}
