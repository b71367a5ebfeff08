/**
 * The five workloads of issue 5, run against each system in turn. Each returns
 * rows for the table: one figure per system, with the configuration that gave
 * it. Where a system has several configurations to try (its knob), the figure
 * is that of the best one, and the note lists them all.
 */
import { measureDrainFloor } from '../drain-floor.js';
import { median, percentile, sleep } from '../lib.js';
import { monoNow } from './clock.js';
import { cpuMs, rssMb, sampleRss } from './procs.js';
import type { System } from './system.js';

export interface Figure {
  value: number;
  /** e.g. "--concurrency 32" */
  config: string;
  /** Every configuration tried, with its median, when there were several. */
  tried?: string;
}

export interface Row {
  workload: string;
  measure: string;
  unit: string;
  /** Which direction is good: for the verdict on the ratio. */
  better: 'higher' | 'lower';
  figures: Map<string, Figure>;
  /** The peers' figures the ratio columns divide by, when not this row's own (the drain floor: the peers' drain). */
  ratioAgainst?: Map<string, Figure>;
}

export interface WorkloadOptions {
  runs: number;
  drainTasks: number;
  pickupSeconds: number;
  pickupIntervalMs: number;
  sustainedSeconds: number;
  backlogTasks: number;
  backlogDueFraction: number;
  idleSeconds: number;
  ioTasks: number;
  /** A directory on the filesystem under test, for spools the workloads make themselves (the drain floor). */
  workDir: string;
  log: (line: string) => void;
}

/** The knob values tried per system and workload; the best is reported. */
export const KNOBS: Record<string, Record<string, number[]>> = {
  // FIELD-NOTES: one uwsgi spooler process drained at 31–48k/s, two were not reliably faster;
  // BullMQ's maintainers quote their best figures at concurrency 8–32.
  drain: { spoolerd: [8, 32], uWSGI: [1, 2], BullMQ: [8, 32, 128] },
  // Serial spooler processes need one process per task in flight.
  io: { spoolerd: [64, 256], uWSGI: [16, 64], BullMQ: [64, 256] },
  // Latency and backlog: the default (spoolerd), one spooler (uWSGI), BullMQ's best drain setting.
  pickup: { spoolerd: [8], uWSGI: [1], BullMQ: [32] },
  backlog: { spoolerd: [8], uWSGI: [1], BullMQ: [32] },
};

function knobsFor(workload: string, system: System): number[] {
  const table = KNOBS[workload]!;
  return table[system.name] ?? table[system.name.split(' ')[0]!] ?? [1];
}

async function waitUntil(what: string, test: () => boolean, timeoutMs: number, everyMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (test()) return true;
    await sleep(everyMs);
  }
  void what;
  return test();
}

const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Runs `measure` for each run and knob; keeps the median per knob and reports the best knob. */
async function tune(
  systems: System[],
  workload: string,
  o: WorkloadOptions,
  better: 'higher' | 'lower',
  measure: (s: System, knob: number) => Promise<number>,
): Promise<Map<string, Figure>> {
  const values = new Map<string, Map<number, number[]>>();
  for (let run = 1; run <= o.runs; run++) {
    for (const s of systems) {
      for (const knob of knobsFor(workload, s)) {
        const v = await measure(s, knob);
        o.log(`  ${workload} run ${run}: ${s.name} ${s.knob} ${knob}: ${Number.isFinite(v) ? v.toFixed(1) : 'failed'}`);
        const perSystem = values.get(s.name) ?? new Map<number, number[]>();
        perSystem.set(knob, [...(perSystem.get(knob) ?? []), v]);
        values.set(s.name, perSystem);
      }
    }
  }
  const out = new Map<string, Figure>();
  for (const s of systems) {
    const perKnob = [...values.get(s.name)!.entries()].map(([knob, vs]) => ({ knob, value: median(vs.filter(Number.isFinite)) }));
    const valid = perKnob.filter((k) => Number.isFinite(k.value));
    const best = valid.sort((a, b) => (better === 'higher' ? b.value - a.value : a.value - b.value))[0];
    out.set(s.name, {
      value: best?.value ?? NaN,
      config: best ? `${s.knob} ${best.knob}` : 'failed',
      ...(perKnob.length > 1 ? { tried: perKnob.map((k) => `${k.knob}: ${Number.isFinite(k.value) ? Math.round(k.value) : 'failed'}`).join(', ') } : {}),
    });
  }
  return out;
}

/** Workload 1: prefilled no-op tasks, consumer started, first start → last done. */
export async function drain(systems: System[], o: WorkloadOptions): Promise<Row[]> {
  const spawnRates = new Map<string, number[]>();
  const cpuPerTask = new Map<string, number[]>();
  const figures = await tune(systems, 'drain', o, 'higher', async (s, knob) => {
    await s.reset();
    await s.prefill('noop', o.drainTasks);
    const cpu0 = cpuMs(s.pids()); // redis-server's, for BullMQ; nothing runs yet for the others
    const spawned = monoNow();
    await s.startConsumer(knob);
    const done = await waitUntil('drain', () => s.progress().count >= o.drainTasks, Math.max(180_000, o.drainTasks));
    const p = s.progress();
    const cpu = cpuMs(s.pids()) - cpu0;
    await s.stopConsumer();
    if (!done) {
      o.log(`  ${s.name}: only ${p.count} of ${o.drainTasks} done`);
      return NaN;
    }
    spawnRates.set(`${s.name} ${knob}`, [...(spawnRates.get(`${s.name} ${knob}`) ?? []), o.drainTasks / ((p.last - spawned) / 1000)]);
    cpuPerTask.set(`${s.name} ${knob}`, [...(cpuPerTask.get(`${s.name} ${knob}`) ?? []), (cpu * 1000) / o.drainTasks]);
    return o.drainTasks / ((p.last - p.first) / 1000);
  });
  const spawnFigures = new Map<string, Figure>();
  const cpuFigures = new Map<string, Figure>();
  for (const [name, f] of figures) {
    const knob = f.config.split(' ').pop();
    spawnFigures.set(name, { value: median(spawnRates.get(`${name} ${knob}`) ?? [NaN]), config: f.config });
    cpuFigures.set(name, { value: median(cpuPerTask.get(`${name} ${knob}`) ?? [NaN]), config: f.config });
  }
  const rows: Row[] = [
    { workload: 'drain', measure: `drain ${o.drainTasks.toLocaleString('en-US')} no-op, first start → last done`, unit: 'tasks/s', better: 'higher', figures },
    { workload: 'drain', measure: 'drain, consumer spawn → last done', unit: 'tasks/s', better: 'higher', figures: spawnFigures },
    // All the consumer's processes (uwsgi: master, worker, spoolers; BullMQ: worker + redis-server), start-up included.
    { workload: 'drain', measure: 'drain, consumer CPU per task (user+sys)', unit: 'µs', better: 'lower', figures: cpuFigures },
  ];
  if (systems.some((s) => s.name === 'spoolerd')) rows.push(...(await drainFloorRows(o, figures)));
  return rows;
}

/**
 * Where spoolerd's drain is bounded: the system calls its protocol makes per
 * task (rename into the claim directory, lstat, open, read, close, unlink),
 * made by a bare loop on two threads with no daemon and no JavaScript of its
 * own, on the same filesystem in the same run (bench/drain-floor.ts). A
 * spoolerd drain cannot outrun this figure; put beside uWSGI's drain, it says
 * what any daemon written in Node could reach with this claim protocol.
 */
async function drainFloorRows(o: WorkloadOptions, drained: Map<string, Figure>): Promise<Row[]> {
  const rates: number[] = [];
  const cpu: number[] = [];
  for (let run = 1; run <= o.runs; run++) {
    const floor = await measureDrainFloor(o.workDir, o.drainTasks, 2);
    o.log(`  drain run ${run}: spoolerd's system calls alone, 2 threads: ${floor.rate.toFixed(1)}/s, ${floor.cpuUsPerTask.toFixed(1)} µs CPU per task`);
    rates.push(floor.rate);
    cpu.push(floor.cpuUsPerTask);
  }
  const config = 'bare calls on 2 threads, no daemon';
  return [
    {
      workload: 'drain',
      measure: "drain floor: spoolerd's system calls alone, 2 threads, no JavaScript (ratio: to the peers' drain)",
      unit: 'tasks/s',
      better: 'higher',
      figures: new Map([['spoolerd', { value: median(rates), config }]]),
      ratioAgainst: drained,
    },
    { workload: 'drain', measure: 'drain floor, CPU per task (user+sys)', unit: 'µs', better: 'lower', figures: new Map([['spoolerd', { value: median(cpu), config }]]) },
  ];
}

/** Workload 2: an idle consumer; a producer drops a stamp task every interval. */
export async function pickup(systems: System[], o: WorkloadOptions): Promise<Row[]> {
  const count = Math.floor((o.pickupSeconds * 1000) / o.pickupIntervalMs);
  const stats = new Map<string, { p50: number[]; p99: number[]; max: number[] }>();
  const figure = await tune(systems, 'pickup', o, 'lower', async (s, knob) => {
    await s.reset();
    await s.startConsumer(knob);
    await sleep(1500); // start-up over: the consumer is idle from here
    if (s.produceInside) {
      await s.produceInside({ count, intervalMs: o.pickupIntervalMs });
    } else {
      const start = performance.now();
      for (let i = 0; i < count; i++) {
        await s.addStamp();
        const wait = start + (i + 1) * o.pickupIntervalMs - performance.now();
        if (wait > 0) await sleep(wait);
      }
    }
    await waitUntil('pickup', () => s.progress().count >= count, 10_000);
    await sleep(100); // the last status write
    const lat = s.latencies().sort((a, b) => a - b);
    await s.stopConsumer();
    if (lat.length < count) o.log(`  ${s.name}: only ${lat.length} of ${count} tasks ran`);
    const st = stats.get(s.name) ?? { p50: [], p99: [], max: [] };
    st.p50.push(percentile(lat, 50));
    st.p99.push(percentile(lat, 99));
    st.max.push(percentile(lat, 100));
    stats.set(s.name, st);
    return percentile(lat, 50);
  });
  const rows: Row[] = [];
  for (const key of ['p50', 'p99', 'max'] as const) {
    const figures = new Map<string, Figure>();
    for (const s of systems) figures.set(s.name, { value: median(stats.get(s.name)![key]), config: figure.get(s.name)!.config });
    rows.push({ workload: 'pickup', measure: `pickup latency ${key}, a task every ${o.pickupIntervalMs} ms for ${o.pickupSeconds} s`, unit: 'ms', better: 'lower', figures });
  }
  return rows;
}

/**
 * Workload 3: producer and consumer at once for a while. The producer goes as
 * fast as it can (the harness's blocking write+rename loop, 100 tasks per
 * event-loop turn; BullMQ addBulk of 100; uwsgi.spool() in a loop inside the
 * worker), the consumer runs with its drain-tuned knob. Reports tasks/s done
 * in the window, tasks/s produced, and end-to-end latency of the tasks done.
 */
export async function sustained(systems: System[], o: WorkloadOptions, bestKnob: (s: System) => number): Promise<Row[]> {
  const acc = new Map<string, { done: number[]; produced: number[]; p50: number[]; p99: number[]; left: number[] }>();
  const config = new Map<string, string>();
  for (let run = 1; run <= o.runs; run++) {
    for (const s of systems) {
      const knob = bestKnob(s);
      config.set(s.name, `${s.knob} ${knob}`);
      await s.reset();
      await s.startConsumer(knob);
      await sleep(1500);
      const c0 = s.progress().count;
      const t0 = performance.now();
      let produced = 0;
      if (s.produceInside) {
        try {
          produced = await s.produceInside({ seconds: o.sustainedSeconds });
        } catch (err) {
          // Count what reached the spooler anyway, and go on with the other systems.
          o.log(`  sustained: ${s.name}: ${(err as Error).message}`);
          produced = NaN;
        }
      } else {
        while (performance.now() - t0 < o.sustainedSeconds * 1000) {
          await s.addStamps(100);
          produced += 100;
          await yieldToLoop();
        }
      }
      const seconds = (performance.now() - t0) / 1000;
      await sleep(50); // one status write
      const c1 = s.progress().count;
      // Let the backlog drain (bounded) so that the latency of every task is counted.
      const drained = Number.isFinite(produced) && (await waitUntil('sustained', () => s.progress().count >= produced, 60_000, 50));
      await sleep(100);
      const lat = s.latencies().sort((a, b) => a - b);
      await s.stopConsumer();
      const a = acc.get(s.name) ?? { done: [], produced: [], p50: [], p99: [], left: [] };
      a.left.push(Math.max(0, produced - s.progress().count));
      a.done.push((c1 - c0) / seconds);
      a.produced.push(produced / seconds);
      a.p50.push(percentile(lat, 50));
      a.p99.push(percentile(lat, 99));
      acc.set(s.name, a);
      o.log(
        `  sustained run ${run}: ${s.name}: produced ${Math.round(produced / seconds)}/s, done ${Math.round((c1 - c0) / seconds)}/s, ` +
          `latency p50 ${percentile(lat, 50).toFixed(1)} ms p99 ${percentile(lat, 99).toFixed(1)} ms${drained ? '' : ` (backlog not drained in 60 s: ${lat.length} of ${produced})`}`,
      );
    }
  }
  const row = (measure: string, unit: string, better: 'higher' | 'lower', key: 'done' | 'produced' | 'p50' | 'p99' | 'left'): Row => ({
    workload: 'sustained',
    measure,
    unit,
    better,
    figures: new Map(systems.map((s) => [s.name, { value: median(acc.get(s.name)![key]), config: config.get(s.name)! }])),
  });
  return [
    row(`sustained ${o.sustainedSeconds} s, tasks done`, 'tasks/s', 'higher', 'done'),
    row('sustained, tasks produced', 'tasks/s', 'higher', 'produced'),
    row('sustained, end-to-end latency p50', 'ms', 'lower', 'p50'),
    row('sustained, end-to-end latency p99', 'ms', 'lower', 'p99'),
    // Latencies cover only the tasks done; this says how many were not (still queued a minute after the producer stopped).
    row('sustained, tasks not done 60 s after the producer stopped', 'tasks', 'lower', 'left'),
  ];
}

/**
 * Workload 4: a large backlog, mostly in the future, enqueued before the
 * consumer starts. Start-up to the first due task, peak RSS of all the
 * system's processes (sampled every 100 ms), and CPU over an idle minute once
 * every due task is done and the system has settled (its CPU use fell below
 * 5% of a core over 2 s, or 60 s passed: uWSGI never settles, it rescans).
 */
export async function backlog(systems: System[], o: WorkloadOptions): Promise<Row[]> {
  const acc = new Map<string, { startup: number[]; allDue: number[]; peak: number[]; idleRss: number[]; idleCpu: number[] }>();
  const config = new Map<string, string>();
  for (let run = 1; run <= o.runs; run++) {
    for (const s of systems) {
      const knob = knobsFor('backlog', s)[0]!;
      config.set(s.name, `${s.knob} ${knob}`);
      await s.reset();
      const filling = performance.now();
      const due = await s.prefill('noop', o.backlogTasks, { dueFraction: o.backlogDueFraction });
      o.log(`  backlog: ${s.name}: ${o.backlogTasks} tasks (${due} due) enqueued in ${((performance.now() - filling) / 1000).toFixed(0)} s`);
      const spawned = monoNow();
      await s.startConsumer(knob);
      const rss = sampleRss(() => s.pids());
      await waitUntil('first', () => s.progress().count >= 1, 600_000, 20);
      const startup = (s.progress().first - spawned) / 1000;
      const allDone = await waitUntil('all due', () => s.progress().count >= due, 600_000, 100);
      const allDue = (s.progress().last - spawned) / 1000;
      // Settle: wait for the post-start work (moving the future tasks aside) to end.
      const settleUntil = performance.now() + 60_000;
      for (;;) {
        const c = cpuMs(s.pids());
        await sleep(2000);
        if ((cpuMs(s.pids()) - c) / 2000 < 0.05 || performance.now() > settleUntil) break;
      }
      const cpu0 = cpuMs(s.pids());
      const t0 = performance.now();
      await sleep(o.idleSeconds * 1000);
      const idleCpu = (100 * (cpuMs(s.pids()) - cpu0)) / (performance.now() - t0);
      const idleRss = rssMb(s.pids());
      const peak = rss.peakMb();
      rss.stop();
      await s.stopConsumer();
      const a = acc.get(s.name) ?? { startup: [], allDue: [], peak: [], idleRss: [], idleCpu: [] };
      a.startup.push(startup);
      a.allDue.push(allDone ? allDue : NaN);
      a.peak.push(peak);
      a.idleRss.push(idleRss);
      a.idleCpu.push(idleCpu);
      acc.set(s.name, a);
      o.log(`  backlog run ${run}: ${s.name}: first due task ${startup.toFixed(2)} s, all due ${allDue.toFixed(1)} s, peak RSS ${peak.toFixed(0)} MB, idle ${idleCpu.toFixed(2)}% CPU`);
    }
  }
  const n = o.backlogTasks.toLocaleString('en-US');
  const row = (measure: string, unit: string, key: 'startup' | 'allDue' | 'peak' | 'idleRss' | 'idleCpu'): Row => ({
    workload: 'backlog',
    measure,
    unit,
    better: 'lower',
    figures: new Map(systems.map((s) => [s.name, { value: median(acc.get(s.name)![key]), config: config.get(s.name)! }])),
  });
  return [
    row(`backlog ${n} (${o.backlogDueFraction * 100}% due): spawn → first due task`, 's', 'startup'),
    row('backlog: spawn → all due tasks done', 's', 'allDue'),
    row('backlog: peak RSS, all processes', 'MB', 'peak'),
    row('backlog: RSS when idle', 'MB', 'idleRss'),
    row(`backlog: CPU while idle (${o.idleSeconds} s)`, '% core', 'idleCpu'),
  ];
}

/** Workload 5: prefilled tasks that each await 10 ms; throughput at the best knob. */
export async function ioBound(systems: System[], o: WorkloadOptions): Promise<Row[]> {
  const figures = await tune(systems, 'io', o, 'higher', async (s, knob) => {
    await s.reset();
    await s.prefill('sleep10', o.ioTasks);
    await s.startConsumer(knob);
    const done = await waitUntil('io', () => s.progress().count >= o.ioTasks, Math.max(300_000, o.ioTasks * 20), 20);
    const p = s.progress();
    await s.stopConsumer();
    if (!done) return NaN;
    return o.ioTasks / ((p.last - p.first) / 1000);
  });
  return [{ workload: 'io', measure: `I/O-bound: ${o.ioTasks.toLocaleString('en-US')} tasks awaiting 10 ms each`, unit: 'tasks/s', better: 'higher', figures }];
}
