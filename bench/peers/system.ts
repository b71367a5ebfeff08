/**
 * What the workloads need of each system under test (spoolerd, uWSGI's
 * spooler, BullMQ): a fresh queue, a fast prefill, an external producer, a
 * consumer started and stopped with one tuning knob, and the probe's records.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** noop: nothing; stamp: records its pickup latency; sleep10: awaits 10 ms. */
export type TaskKind = 'noop' | 'stamp' | 'sleep10';

export interface Progress {
  /** Tasks completed, over all the consumer's processes. */
  count: number;
  /** Monotonic clock (ms, clock.ts) of the first and the last completion. */
  first: number;
  last: number;
}

export interface PrefillOptions {
  /** Share of tasks due now (the rest are due 1 h to 25 h from now); default 1. */
  dueFraction?: number;
}

export interface System {
  /** The row label. */
  readonly name: string;
  /** What `concurrency` means for this system, for the table notes. */
  readonly knob: string;
  /** An empty queue and an empty report directory (the consumer must be stopped). */
  reset(): Promise<void>;
  /** Enqueues tasks with no consumer running, by the fastest means the system offers; returns how many are due now. */
  prefill(kind: TaskKind, count: number, options?: PrefillOptions): Promise<number>;
  /** Enqueues one stamp task, stamped with monoNow() just before it becomes visible. */
  addStamp(): Promise<void> | void;
  /** Enqueues `n` stamp tasks at once, each stamped before its own write: the sustained producer's step. */
  addStamps(n: number): Promise<void> | void;
  startConsumer(concurrency: number): Promise<void>;
  stopConsumer(): Promise<void>;
  /** Processes whose CPU and memory count as this system's (for BullMQ: the worker and redis-server). */
  pids(): number[];
  progress(): Progress;
  latencies(): number[];
  /**
   * For a system whose producer runs inside it (uwsgi.spool() in uwsgi's
   * worker): enqueue `count` stamp tasks one every `intervalMs`, or as many as
   * fit in `seconds` with no pause; resolves to how many it enqueued.
   */
  produceInside?(o: { count?: number; intervalMs?: number; seconds?: number }): Promise<number>;
  /** Stops whatever the system runs besides its consumer (redis-server). */
  close(): Promise<void>;
}

/**
 * The Node probes (probe.ts) write status-<pid> ("count first last") and
 * lat-<pid> ("lat <ms>" lines) into the report directory.
 */
export function readStatusFiles(dir: string): Progress {
  const p: Progress = { count: 0, first: Infinity, last: 0 };
  if (!existsSync(dir)) return p;
  for (const entry of readdirSync(dir)) {
    if (!entry.startsWith('status-')) continue;
    let text: string;
    try {
      text = readFileSync(join(dir, entry), 'utf8');
    } catch {
      continue;
    }
    const [count, first, last] = text.trim().split(/\s+/).map(Number);
    if (!count) continue;
    p.count += count;
    p.first = Math.min(p.first, first!);
    p.last = Math.max(p.last, last!);
  }
  return p;
}

export function readLatencyFiles(dir: string): number[] {
  const out: number[] = [];
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir)) {
    if (!entry.startsWith('lat-')) continue;
    for (const line of readFileSync(join(dir, entry), 'utf8').split('\n')) {
      if (line.startsWith('lat ')) out.push(Number(line.slice(4)));
    }
  }
  return out;
}

export function freshDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Due time for prefill task i: now, or 1 h to 25 h from now, so that `dueFraction` of them are due. */
export function dueTimes(count: number, dueFraction: number): { due: (i: number) => number | undefined; dueCount: number } {
  const every = dueFraction >= 1 ? 1 : Math.max(1, Math.round(1 / dueFraction));
  const now = Date.now(); // due times are wall-clock epoch ms (file names, mtimes, BullMQ delays)
  return {
    due: (i) => (i % every === 0 ? undefined : now + 3_600_000 + Math.floor(Math.random() * 86_400_000)),
    dueCount: Math.ceil(count / every),
  };
}
