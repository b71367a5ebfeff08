/**
 * What `spool top` and `spool dashboard` show of one spool: counts by state
 * (from the task folders, spool-scan.ts), the daemons serving it and their
 * running tasks (from their status files, status-files.ts), and throughput
 * over time, sampled by the caller about once a second.
 */
import type { SpoolLayout } from '../../spool/layout.js';
import { SpoolScanner, type Counts } from './spool-scan.js';
import type { RunningTask } from '../../spool/status-file.js';
import { doneCount, readDaemonStatuses, type DaemonStatus } from './status-files.js';

/** How many samples of throughput are kept (at one a second: five minutes). */
export const HISTORY_SAMPLES = 300;

/**
 * Where a throughput figure comes from: the daemons' own counters of tasks
 * done, or, without status files, the fall of the number of tasks waiting or
 * running (a net figure: tasks enqueued meanwhile hide as many done).
 */
export type RateSource = 'daemons' | 'counts';

export interface RatePoint {
  at: number;
  /** Tasks a second since the sample before. */
  rate: number;
  source: RateSource;
}

export interface RunningRow extends RunningTask {
  owner: string;
  host: string;
}

export interface SpoolSnapshot {
  dir: string;
  at: number;
  counts: Counts;
  daemons: DaemonStatus[];
  /** The running tasks of live daemons, longest running first. */
  running: RunningRow[];
  /** The latest throughput, or null until there are two samples. */
  rate: RatePoint | null;
}

interface Sample {
  at: number;
  /** Tasks done by each live daemon, by owner. */
  done: Map<string, number>;
  /** Tasks waiting or running. */
  waiting: number;
}

export class SpoolMonitor {
  readonly scanner: SpoolScanner;
  readonly history: RatePoint[] = [];
  private last: Sample | undefined;

  constructor(readonly layout: SpoolLayout) {
    this.scanner = new SpoolScanner(layout);
  }

  /**
   * The spool now. When `record` and at least half a second has passed since
   * the last recorded sample, a throughput point is added to the history.
   */
  snapshot(now = Date.now(), record = true): SpoolSnapshot {
    const scan = this.scanner.scan(now);
    const daemons = readDaemonStatuses(this.layout, now);
    const live = daemons.filter((d) => !d.stale);
    const running: RunningRow[] = live
      .flatMap((d) => d.running.map((r) => ({ ...r, owner: d.owner, host: d.host })))
      .sort((a, b) => a.startedAt - b.startedAt);
    const sample: Sample = {
      at: now,
      done: new Map(live.map((d) => [d.owner, doneCount(d)])),
      waiting: scan.counts.due + scan.counts.scheduled + scan.counts.active + scan.counts.invalid,
    };
    let rate = this.history.at(-1) ?? null;
    if (record && (this.last === undefined || now - this.last.at >= 500)) {
      if (this.last !== undefined) {
        rate = rateBetween(this.last, sample);
        this.history.push(rate);
        if (this.history.length > HISTORY_SAMPLES) this.history.splice(0, this.history.length - HISTORY_SAMPLES);
      }
      this.last = sample;
    }
    return { dir: this.layout.root, at: now, counts: scan.counts, daemons, running, rate };
  }
}

/** Throughput between two samples: the daemons' own counters when any daemon reports, else the fall of waiting tasks. */
export function rateBetween(before: Sample, after: Sample): RatePoint {
  const seconds = Math.max(after.at - before.at, 1) / 1000;
  if (after.done.size > 0) {
    let done = 0;
    // Only daemons in both samples: a daemon that started meanwhile has no "before", one that stopped no "after".
    for (const [owner, n] of after.done) {
      const was = before.done.get(owner);
      if (was !== undefined && n >= was) done += n - was;
    }
    return { at: after.at, rate: done / seconds, source: 'daemons' };
  }
  return { at: after.at, rate: Math.max(0, before.waiting - after.waiting) / seconds, source: 'counts' };
}
