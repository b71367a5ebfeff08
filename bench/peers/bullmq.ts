/**
 * BullMQ under test: a redis-server of our own (127.0.0.1 only, a free port,
 * no RDB snapshots, no AOF: the fastest Redis BullMQ can have, at the price of
 * durability the file spoolers keep), one Worker process (bullmq-worker.ts)
 * with `concurrency` as the knob, and a Queue in this process as producer.
 * Prefill uses addBulk; jobs are removed on completion.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Queue, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { DIST, sleep } from '../lib.js';
import { monoNow } from './clock.js';
import { freePort, startProcess, stopProcess } from './procs.js';
import { dueTimes, freshDir, readLatencyFiles, readStatusFiles, type PrefillOptions, type Progress, type System, type TaskKind } from './system.js';

const WORKER = join(DIST, 'bench/peers/bullmq-worker.js');
const QUEUE = 'bench';
const JOB: JobsOptions = { removeOnComplete: true, removeOnFail: true };

export class BullmqSystem implements System {
  readonly name = 'BullMQ';
  readonly knob = 'Worker concurrency';
  private n = 0;
  private reportDir = '';
  private redis: ChildProcess | undefined;
  private port = 0;
  private queue: Queue | undefined;
  /** A plain client for ping and FLUSHALL. */
  private admin: Redis | undefined;
  private worker: ChildProcess | undefined;

  constructor(private readonly base: string) {}

  private async startRedis(): Promise<void> {
    this.port = await freePort();
    const dir = freshDir(join(this.base, 'redis'));
    this.redis = startProcess(
      'redis-server',
      ['--bind', '127.0.0.1', '--port', String(this.port), '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning', '--maxmemory-policy', 'noeviction'],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    this.admin = new Redis({ host: '127.0.0.1', port: this.port, lazyConnect: true, maxRetriesPerRequest: 0 });
    this.admin.on('error', () => {}); // refused while redis-server starts: the loop below retries
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        if (this.admin.status !== 'ready') await this.admin.connect();
        await this.admin.ping();
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(50);
      }
    }
    this.queue = new Queue(QUEUE, { connection: { host: '127.0.0.1', port: this.port, maxRetriesPerRequest: null } });
  }

  async reset(): Promise<void> {
    if (!this.redis) await this.startRedis();
    await this.admin!.flushall();
    this.reportDir = freshDir(join(this.base, `bullmq-${++this.n}`));
  }

  async prefill(kind: TaskKind, count: number, options: PrefillOptions = {}): Promise<number> {
    const { due, dueCount } = dueTimes(count, options.dueFraction ?? 1);
    const now = Date.now();
    for (let i = 0; i < count; i += 1000) {
      const jobs = [];
      for (let j = i; j < Math.min(count, i + 1000); j++) {
        const d = due(j);
        jobs.push({ name: kind, data: {}, opts: d === undefined ? JOB : { ...JOB, delay: Math.round(d - now) } });
      }
      await this.queue!.addBulk(jobs);
    }
    return dueCount;
  }

  async addStamp(): Promise<void> {
    await this.queue!.add('stamp', { since: monoNow() }, JOB);
  }

  async addStamps(n: number): Promise<void> {
    const jobs = [];
    for (let i = 0; i < n; i++) jobs.push({ name: 'stamp', data: { since: monoNow() }, opts: JOB });
    await this.queue!.addBulk(jobs);
  }

  async startConsumer(concurrency: number): Promise<void> {
    this.worker = startProcess(process.execPath, [WORKER], {
      env: { ...process.env, BENCH_REPORT_DIR: this.reportDir, BENCH_REDIS_PORT: String(this.port), BENCH_CONCURRENCY: String(concurrency), BENCH_QUEUE: QUEUE },
    });
  }

  async stopConsumer(): Promise<void> {
    if (this.worker) await stopProcess(this.worker, 'SIGTERM', 30_000);
    this.worker = undefined;
  }

  pids(): number[] {
    return [this.worker?.pid, this.redis?.pid].filter((p): p is number => p !== undefined);
  }

  progress(): Progress {
    return readStatusFiles(this.reportDir);
  }

  latencies(): number[] {
    return readLatencyFiles(this.reportDir);
  }

  async close(): Promise<void> {
    await this.stopConsumer();
    await this.queue?.close();
    this.queue = undefined;
    this.admin?.disconnect();
    this.admin = undefined;
    if (this.redis) await stopProcess(this.redis, 'SIGTERM', 10_000);
    this.redis = undefined;
  }
}
