/**
 * Prometheus metrics of a daemon (`spoolerd --http`, GET /metrics), through
 * prom-client on a registry of its own (the process-wide default one is left
 * to task modules that load prom-client too).
 *
 * Nothing here runs per task: the tasks' counts and timings are plain fields
 * of each spool's Tally (observer.ts) and ServedSpool.stats, read when a
 * scrape asks (each metric's collect()). Counts by state come from the
 * daemon's memory at every scrape: incoming/ and pending/ from its queue (the
 * tasks this daemon knows of; no listing), active from its own claims.
 * Counts by state *and task name* (dead/ and quarantine/ included) and the
 * oldest due task's age need a walk of every queued name and two listings:
 * that census (SpoolCensus) is made at scrape time no more often than every
 * CENSUS_MIN_AGE_MS, or CENSUS_COST_FACTOR times its last cost if that is
 * longer (10-20 ms for a 100,000-task backlog on a busy 2-core machine: at
 * most 0.5% of the time in the long run, one walk during a 100,000-task
 * drain), and its age is a metric of its own.
 */
import { Counter, Gauge, Registry, type Metric } from 'prom-client';
import { QUARANTINE_REASON_SUFFIX } from '../spool/layout.js';
import { readNames } from '../spool/read-names.js';
import type { Daemon } from './daemon.js';
import { MAX_TASK_NAMES, OTHER_TASKS, type LocalHistogram, type TaskNameTally } from './observer.js';
import type { ServedSpool } from './served-spool.js';
import { ProcessRunners } from './run/process-runners.js';

export const CENSUS_MIN_AGE_MS = 5000;
/** A census's cost per queued task (ns) as measured on a busy 2-core machine, for the first one's budget. */
const CENSUS_NS_PER_TASK = 300;
const CENSUS_COST_FACTOR = 200;
const STATES = ['incoming', 'pending', 'active', 'dead', 'quarantine'] as const;
type State = (typeof STATES)[number];

/** The task name in a task file name (PP-DUE-ID-aN-NAME.EXT), or undefined when it is not shaped like one. */
export function taskNameOf(fileName: string): string | undefined {
  // "PP-" + 13-digit due + "-" + 29-character id + "-" is 47 characters; then "aN-".
  const start = fileName.indexOf('-', 48) + 1;
  const end = fileName.lastIndexOf('.');
  if (start <= 0 || end <= start || fileName.charCodeAt(47) !== 97 /* a */) return undefined;
  return fileName.slice(start, end);
}

/** Whether `fileName` (a task file name) names the task `name`: compared in place, nothing allocated. */
function hasTaskName(fileName: string, name: string): boolean {
  const end = fileName.lastIndexOf('.');
  const start = end - name.length;
  // The attempts field "aN" ends at the first "-" after it: a name that contains "-" cannot match a longer one's tail.
  return start > 48 && fileName.indexOf('-', 48) === start - 1 && fileName.startsWith(name, start);
}

interface Census {
  at: number;
  /** state → task name → count. */
  counts: Map<State, Map<string, number>>;
  /** The due time of the longest-waiting due task, or undefined when none is due. */
  oldestDue: number | undefined;
}

/** Counts by state and task name of one spool, remade at most every CENSUS_MIN_AGE_MS (see the module comment). */
class SpoolCensus {
  private last: Census | undefined;
  private cost = 0;

  constructor(private readonly service: ServedSpool) {}

  /**
   * The last census, or a new one if the last is old enough; undefined before
   * the first. The first waits until the daemon has served for
   * CENSUS_COST_FACTOR times its estimated cost (CENSUS_NS_PER_TASK per queued
   * task): a 100,000-task backlog is not walked in the first seconds of its drain.
   */
  get(now: number): Census | undefined {
    if (this.last === undefined) {
      const estimateMs = (this.service.queue.size * CENSUS_NS_PER_TASK) / 1e6;
      if (now - this.service.servingSince < CENSUS_COST_FACTOR * estimateMs) return undefined;
    } else if (now - this.last.at < Math.max(CENSUS_MIN_AGE_MS, CENSUS_COST_FACTOR * this.cost)) return this.last;
    const started = performance.now();
    this.last = this.take(now);
    this.cost = performance.now() - started;
    return this.last;
  }

  private take(now: number): Census {
    const counts = new Map<State, Map<string, number>>(STATES.map((s) => [s, new Map()]));
    const add = (state: State, name: string | undefined, n = 1) => {
      const byName = counts.get(state)!;
      let key = name ?? OTHER_TASKS;
      if (!byName.has(key) && byName.size >= MAX_TASK_NAMES) key = OTHER_TASKS;
      byName.set(key, (byName.get(key) ?? 0) + n);
    };
    const s = this.service;
    // Names come in runs of one task name (enqueued together): count a run, then add it, without
    // cutting the name out of every file name.
    let runName: string | undefined;
    let runDir: State = 'incoming';
    let run = 0;
    s.queue.forEachKnown((fileName, dir) => {
      if (run > 0 && dir === runDir && hasTaskName(fileName, runName!)) return void run++;
      if (run > 0) add(runDir, runName, run);
      runName = taskNameOf(fileName) ?? OTHER_TASKS;
      runDir = dir;
      run = 1;
    });
    if (run > 0) add(runDir, runName, run);
    // The backlog beyond the window (an estimate from the last listing): its names were not kept, so no task name.
    let heldIncoming = 0;
    for (const n of counts.get('incoming')!.values()) heldIncoming += n;
    let heldPending = 0;
    for (const n of counts.get('pending')!.values()) heldPending += n;
    const beyondIncoming = s.queue.backlogIn('incoming') - heldIncoming;
    const beyondPending = s.queue.backlogIn('pending') - heldPending;
    if (beyondIncoming > 0) add('incoming', OTHER_TASKS, beyondIncoming);
    if (beyondPending > 0) add('pending', OTHER_TASKS, beyondPending);
    for (const fileName of s.heldNames()) add('active', taskNameOf(fileName));
    for (const state of ['dead', 'quarantine'] as const) {
      let names: string[];
      try {
        s.checkFolders(state);
        names = readNames(s.layout[state]);
      } catch {
        continue; // Unreadable or replaced: reported by the scan and by readiness, not counted here.
      }
      for (const n of names) {
        if (n.charCodeAt(0) === 46 /* . */) continue;
        if (state === 'quarantine') {
          if (!n.endsWith(QUARANTINE_REASON_SUFFIX)) add(state, '');
        } else add(state, taskNameOf(n));
      }
    }
    return { at: now, counts, oldestDue: s.queue.oldestDueAt(now) };
  }
}

/**
 * The process metrics Prometheus users look for first, under prom-client's
 * default names. Not collectDefaultMetrics(): its ~100 series, GC observer and
 * event-loop histogram made up most of a scrape's cost.
 */
function processMetrics(registers: Registry[]): void {
  const startTime = Math.round(performance.timeOrigin / 1000);
  new Counter({
    name: 'process_cpu_seconds_total',
    help: 'User and system CPU time of the daemon process (all its threads), seconds.',
    registers,
    collect(this: Counter) {
      const { user, system } = process.cpuUsage();
      this.reset();
      this.inc((user + system) / 1e6);
    },
  });
  const gauge = (name: string, help: string, value: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect(this: Gauge) {
        this.set(value());
      },
    });
  gauge('process_start_time_seconds', 'Start time of the process since the Unix epoch, seconds.', () => startTime);
  gauge('process_resident_memory_bytes', 'Resident memory size, bytes.', () => process.memoryUsage.rss());
  gauge('nodejs_heap_size_used_bytes', 'V8 heap used, bytes.', () => process.memoryUsage().heapUsed);
  gauge('nodejs_heap_size_total_bytes', 'V8 heap allocated, bytes.', () => process.memoryUsage().heapTotal);
}

type Labels = Record<string, string>;

/**
 * A histogram whose counts are kept elsewhere (LocalHistogram), rendered by
 * prom-client's registry like its own Histogram: _bucket (cumulative, with
 * le), _sum, _count.
 */
function snapshotHistogram(name: string, help: string, series: () => Iterable<[Labels, LocalHistogram]>): Metric {
  const metric = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    collect: () => undefined,
    get: async () => {
      const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
      for (const [labels, h] of series()) {
        let cumulative = 0;
        for (let i = 0; i < h.bounds.length; i++) {
          cumulative += h.counts[i]!;
          values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: h.bounds[i]! }, value: cumulative });
        }
        values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: h.count });
        values.push({ metricName: `${name}_sum`, labels, value: h.sum });
        values.push({ metricName: `${name}_count`, labels, value: h.count });
      }
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
  };
  return metric as unknown as Metric;
}

/** The daemon's metrics registry. `metrics()` renders the Prometheus text format. */
export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly censuses: Map<ServedSpool, SpoolCensus>;
  private renderSeconds = 0;
  private renders = 0;

  constructor(private readonly daemon: Daemon) {
    this.censuses = new Map(daemon.services.map((s) => [s, new SpoolCensus(s)]));
    const registers = [this.registry];
    const services = daemon.services;
    const spool = (s: ServedSpool) => s.layout.root;

    const byName = (name: string, help: string, field: keyof Omit<TaskNameTally, 'runSeconds'>) =>
      new Counter({
        name,
        help,
        labelNames: ['spool', 'task'] as const,
        registers,
        collect(this: Counter<'spool' | 'task'>) {
          this.reset();
          for (const s of services) for (const [task, t] of s.tally.byName) this.inc({ spool: spool(s), task }, t[field]);
        },
      });
    byName('spoolerd_tasks_processed_total', 'Tasks that ended processed (their file deleted or archived), by task name.', 'processed');
    byName('spoolerd_tasks_skipped_total', 'Tasks that ended skipped, by task name.', 'skipped');
    byName('spoolerd_tasks_failed_total', 'Runs that ended in an error (a throw, a timeout, a worker that died): each counts an attempt.', 'failed');
    byName('spoolerd_tasks_retried_total', 'Tasks moved to pending/ for another attempt (after a failure, or rescheduled() by the task).', 'rescheduled');
    byName('spoolerd_tasks_dead_total', 'Tasks moved to dead/ (out of retries).', 'dead');

    const bySpool = (name: string, help: string, field: 'quarantined' | 'lost' | 'reclaimed' | 'expired') =>
      new Counter({
        name,
        help,
        labelNames: ['spool'] as const,
        registers,
        collect(this: Counter<'spool'>) {
          this.reset();
          for (const s of services) this.inc({ spool: spool(s) }, s.stats[field]);
        },
      });
    bySpool('spoolerd_files_quarantined_total', 'Files moved to quarantine/ (not valid tasks).', 'quarantined');
    bySpool('spoolerd_tasks_expired_total', 'Tasks claimed after their expires time: never run.', 'expired');
    bySpool('spoolerd_tasks_lost_total', 'Claimed tasks another daemon took over before this one settled them.', 'lost');
    bySpool('spoolerd_tasks_reclaimed_total', 'Tasks of dead daemons this one returned to incoming/.', 'reclaimed');

    this.registry.registerMetric(
      snapshotHistogram('spoolerd_task_run_seconds', 'Run time of tasks, by task name.', function* () {
        for (const s of services) for (const [task, t] of s.tally.byName) yield [{ spool: spool(s), task }, t.runSeconds];
      }),
    );
    this.registry.registerMetric(
      snapshotHistogram('spoolerd_task_claim_to_start_seconds', 'Time from a task being claimed (read and decoded) to its run starting: the wait for a run slot.', function* () {
        for (const s of services) yield [{ spool: spool(s) }, s.tally.waitSeconds];
      }),
    );

    const pool = daemon.executor instanceof ProcessRunners ? daemon.executor : undefined;
    new Counter({
      name: 'spoolerd_worker_restarts_total',
      help: 'Worker processes replaced: crashed (died by itself), killed (a task outlived its timeout or claim), max-tasks, max-memory.',
      labelNames: ['reason'] as const,
      registers,
      collect(this: Counter<'reason'>) {
        this.reset();
        if (pool !== undefined) for (const [reason, n] of Object.entries(pool.restarts)) this.inc({ reason }, n);
      },
    });

    const gauge = (name: string, help: string, value: (s: ServedSpool) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['spool'] as const,
        registers,
        collect(this: Gauge<'spool'>) {
          for (const s of services) this.set({ spool: spool(s) }, value(s));
        },
      });
    new Gauge({
      name: 'spoolerd_queue_tasks',
      help: "Tasks by state, from this daemon's memory at each scrape: incoming and pending (not claimed yet, due or not: the whole backlog; beyond the window of tasks it holds, an estimate from its last listing of the folder less the tasks claimed since), active (its own claims: being claimed, waiting for a slot, running, being settled).",
      labelNames: ['spool', 'state'] as const,
      registers,
      collect(this: Gauge<'spool' | 'state'>) {
        for (const s of services) {
          this.set({ spool: spool(s), state: 'incoming' }, s.queue.backlogIn('incoming'));
          this.set({ spool: spool(s), state: 'pending' }, s.queue.backlogIn('pending'));
          this.set({ spool: spool(s), state: 'active' }, s.heldCount);
        }
      },
    });
    gauge(
      'spoolerd_queue_depth',
      'Tasks in incoming/ and pending/, due or not, not yet claimed: the whole backlog (beyond the window of tasks the daemon holds, an estimate from its last listing less the tasks claimed since).',
      (s) => s.queue.backlogIn('incoming') + s.queue.backlogIn('pending'),
    );
    gauge('spoolerd_queue_due', 'Of those, the tasks that are due (an estimate likewise beyond the window).', (s) => s.queue.dueBacklog);
    gauge('spoolerd_tasks_running', 'Tasks running now.', (s) => s.runningTasks(Infinity).length);
    gauge('spoolerd_serving', '1 while the spool is served (0: starting, stopping, rejoining after a stall, or a folder was replaced).', (s) => (s.notServingReason === undefined ? 1 : 0));

    const censuses = this.censuses;
    new Gauge({
      name: 'spoolerd_tasks',
      help: `Tasks by state and task name: incoming and pending from this daemon's queue (the window of tasks it holds by task name; the rest of a larger backlog, an estimate from its last listing, as task="${OTHER_TASKS}"), active from its own claims, dead and quarantine listed; refreshed at most every ${CENSUS_MIN_AGE_MS / 1000} s (spoolerd_tasks_census_age_seconds).`,
      labelNames: ['spool', 'state', 'task'] as const,
      registers,
      collect(this: Gauge<'spool' | 'state' | 'task'>) {
        this.reset();
        const now = Date.now();
        for (const s of services) {
          for (const [state, byTask] of censuses.get(s)!.get(now)?.counts ?? []) {
            for (const [task, n] of byTask) this.set({ spool: spool(s), state, task }, n);
          }
        }
      },
    });
    new Gauge({
      name: 'spoolerd_tasks_census_age_seconds',
      help: 'Age of the census behind spoolerd_tasks and spoolerd_oldest_due_task_age_seconds.',
      labelNames: ['spool'] as const,
      registers,
      collect(this: Gauge<'spool'>) {
        const now = Date.now();
        for (const s of services) {
          const census = censuses.get(s)!.get(now);
          if (census !== undefined) this.set({ spool: spool(s) }, (now - census.at) / 1000);
        }
      },
    });
    new Gauge({
      name: 'spoolerd_oldest_due_task_age_seconds',
      help: 'How long the longest-waiting due task this daemon knows of (not claimed yet) has been due: the next to run, or an older one of lower priority the last census saw; 0 when none is due now.',
      labelNames: ['spool'] as const,
      registers,
      collect(this: Gauge<'spool'>) {
        const now = Date.now();
        for (const s of services) {
          // Nothing due now: nothing waits, whatever the census saw.
          if (s.queue.readyCount === 0) {
            this.set({ spool: spool(s) }, 0);
            continue;
          }
          // The next task to run (the oldest due one when due tasks share a priority), or an older one the last census saw.
          const next = s.queue.nextReadyDue;
          const census = censuses.get(s)!.get(now);
          const oldest = Math.min(next ?? Infinity, census?.oldestDue ?? Infinity);
          this.set({ spool: spool(s) }, oldest === Infinity ? 0 : Math.max(0, now - oldest) / 1000);
        }
      },
    });

    const self = this;
    new Counter({
      name: 'spoolerd_metrics_render_seconds_total',
      help: 'Time spent rendering /metrics (the scrapes before this one): the cost of being scraped, census included.',
      registers,
      collect(this: Counter) {
        this.reset();
        this.inc(self.renderSeconds);
      },
    });
    new Counter({
      name: 'spoolerd_metrics_renders_total',
      help: 'Scrapes of /metrics answered before this one.',
      registers,
      collect(this: Counter) {
        this.reset();
        this.inc(self.renders);
      },
    });

    processMetrics(registers);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Renders every metric. Its own cost is counted (spoolerd_metrics_render_seconds_total): what being scraped costs the daemon. */
  async metrics(): Promise<string> {
    const started = performance.now();
    const text = await this.registry.metrics();
    this.renderSeconds += (performance.now() - started) / 1000;
    this.renders++;
    return text;
  }
}
