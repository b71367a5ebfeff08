/**
 * spoolerd on hosts sharing a spool over sshfs (bench/host-rig.ts: network
 * namespaces, sshd, one sshfs mount per host; needs root and /dev/fuse).
 *
 * pickup: a daemon on h1 with --poll, a producer on h2 dropping a task
 * through its own mount every 200-400 ms (random, so that drops land at every
 * phase of the poll; then 500-1500 ms apart); each task records how long after the producer began
 * writing it it started (one machine, one clock). Run with --poll-interval 1s
 * (the adaptive poll backs off to 1 s when quiet) and 250 ms (the default),
 * with the rig's coherent mount options, and at
 * 250 ms with sshfs's default caching for comparison.
 *
 * drain: a prefilled spool of no-op tasks drained by a daemon on 1 host, then
 * by daemons on 3 hosts at once (--processes 0); rate from the first run to
 * the last, summed over hosts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Spooler } from '../runtime/index.js';
import { encodeTask } from '../spool/task-file.js';
import { writeTaskSync } from '../spool/protocol.js';
import { COHERENT_MOUNT_OPTIONS, HostRig, hostRigImpossible, type RigHost } from './host-rig.js';
import { NOOP_TASKS, SPOOLERD, cpuMsOf, median, percentile, preciseNow, printTable, sleep, verdict } from './lib.js';

interface Started {
  child: ChildProcess;
  serving: Promise<void>;
  /** Everything it wrote to stderr so far (JSON log lines). */
  log: () => string;
}

function startOn(host: RigHost, spool: string, env: Record<string, string>, args: string[]): Started {
  // BENCH_DAEMON_NODE_ARGS="--cpu-prof --cpu-prof-dir=…": node options for the daemons (NODE_OPTIONS refuses --cpu-prof).
  const nodeArgs = (process.env.BENCH_DAEMON_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(host.wrap[0]!, [...host.wrap.slice(1), process.execPath, ...nodeArgs, SPOOLERD, '--dir', spool, '--import', NOOP_TASKS, '--log-format', 'json', '--processes', '0', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let text = '';
  const serving = new Promise<void>((done, fail) => {
    child.stderr!.setEncoding('utf8').on('data', (t: string) => {
      text += t;
      if (text.includes('"serving spool"')) done();
    });
    child.once('exit', (code) => fail(new Error(`spoolerd on ${host.name} exited (${code}) before serving:\n${text.slice(-2000)}`)));
  });
  return { child, serving, log: () => text };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((done) => child.once('exit', done));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(15_000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

async function pickupRun(rig: HostRig, pollArgs: string[], drops: number, gapMs: [number, number]): Promise<number[]> {
  const [consumer, producerHost] = rig.hosts as [RigHost, RigHost];
  const report = join(rig.dir, 'pickup-report');
  rmSync(report, { force: true });
  rmSync(rig.serverPath('spool'), { recursive: true, force: true });
  const producer = Spooler.open(join(producerHost.mount, 'spool'));
  const daemon = startOn(consumer, join(consumer.mount, 'spool'), { BENCH_REPORT: report }, ['--poll', ...pollArgs]);
  try {
    await daemon.serving;
    await sleep(1000);
    for (let i = 0; i < drops; i++) {
      const since = preciseNow();
      const task = encodeTask({ name: 'stamp', priority: 50, body: { type: 'fcall', args: [since] } });
      writeTaskSync(producer.layout, task.fileName, task.bytes);
      await sleep(gapMs[0] + Math.random() * (gapMs[1] - gapMs[0]));
    }
    const deadline = Date.now() + 30_000;
    let lat: number[] = [];
    while (Date.now() < deadline) {
      lat = existsSync(report) ? readFileSync(report, 'utf8').split('\n').filter((l) => l.startsWith('lat ')).map((l) => Number(l.slice(4))) : [];
      if (lat.length >= drops) break;
      await sleep(100);
    }
    if (lat.length < drops) throw new Error(`only ${lat.length} of ${drops} drops were picked up within 30 s`);
    return lat.sort((a, b) => a - b);
  } finally {
    await stop(daemon.child);
  }
}

interface DrainResult {
  /** Tasks per second from the first run to the last, all hosts together. */
  rate: number;
  wallMs: number;
  perHost: number[];
  /** SFTP requests (round trips) the hosts' sshfs sent from spawn until the last task ran, by type; empty unless the rig counts them. */
  requests: Map<string, number>;
  /** Claims that another daemon won (the daemons' `claimRaces` at their stop). */
  racesLost: number;
  /** How busy the machine's CPUs were from spawn until the last task ran (0–1, every process, other work on the machine included). */
  cpuBusy: number;
  /** CPU time (ms) of the daemons and the rig's sshfs, ssh and sshd processes over the same span, by program. */
  rigCpuMs: Map<string, number>;
}

/** CPU ms so far of `roots` and all their descendants, by program name (a process that exited meanwhile is not counted). */
function treeCpuMs(roots: number[]): Map<string, number> {
  const parent = new Map<number, number>();
  const program = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isSafeInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      parent.set(pid, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      program.set(pid, stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')));
    } catch {
      // exited meanwhile
    }
  }
  const inTree = (pid: number): boolean => {
    for (let p: number | undefined = pid, depth = 0; p !== undefined && p > 1 && depth < 64; p = parent.get(p), depth++) if (roots.includes(p)) return true;
    return false;
  };
  const ms = new Map<string, number>();
  for (const pid of parent.keys()) {
    if (!inTree(pid)) continue;
    try {
      const name = program.get(pid)!;
      ms.set(name, (ms.get(name) ?? 0) + cpuMsOf(pid));
    } catch {
      // exited meanwhile
    }
  }
  return ms;
}

const sum = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);

/** The rig's own processes: sshd and each host's sshfs (their ssh clients and sshd sessions are their descendants). */
function rigPids(rig: HostRig): number[] {
  return readdirSync(rig.dir)
    .filter((f) => f === 'sshd.pid' || /^sshfs-.*\.pid$/.test(f))
    .map((f) => Number(readFileSync(join(rig.dir, f), 'utf8').trim()))
    .filter((pid) => pid > 0);
}

/** [busy, total] jiffies of all CPUs so far (/proc/stat). */
function cpuTimes(): [number, number] {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = fields[3]! + (fields[4] ?? 0); // idle + iowait
  return [total - idle, total];
}

async function drainRun(rig: HostRig, hosts: RigHost[], tasks: number, daemonArgs: string[] = []): Promise<DrainResult> {
  rmSync(rig.serverPath('spool'), { recursive: true, force: true });
  const spooler = Spooler.open(rig.serverPath('spool'));
  await spooler.enqueueMany(Array.from({ length: tasks }, () => ({ name: 'noop' })));
  const counts = join(rig.dir, 'drain-counts');
  rmSync(counts, { recursive: true, force: true });
  const before = hosts.map((h) => new Map(h.requests));
  const started = Date.now();
  const daemons = hosts.map((h) => startOn(h, join(h.mount, 'spool'), { BENCH_COUNTS: counts }, ['--poll', '--poll-interval', '250ms', ...daemonArgs]));
  let racesLost = 0;
  let result: Omit<DrainResult, 'racesLost'>;
  const cpuBefore = cpuTimes();
  const rigCpuBefore = treeCpuMs(rigPids(rig));
  try {
    await Promise.all(daemons.map((d) => d.serving));
    const read = () =>
      (existsSync(counts) ? readdirSync(counts) : []).map((f) => {
        const [runs, first, last] = readFileSync(join(counts, f), 'utf8').split(' ').map(Number) as [number, number, number];
        return { pid: Number(f), runs, first, last };
      });
    const deadline = Date.now() + 300_000;
    let rows = read();
    while (rows.reduce((n, r) => n + r.runs, 0) < tasks) {
      if (Date.now() > deadline) throw new Error(`drain did not finish within 300 s: ${JSON.stringify(rows)}`);
      await sleep(50);
      rows = read();
    }
    const wallMs = Date.now() - started;
    const cpuAfter = cpuTimes();
    const rigCpuMs = treeCpuMs([...rigPids(rig), ...daemons.map((d) => d.child.pid!)]);
    for (const [name, ms] of rigCpuBefore) rigCpuMs.set(name, (rigCpuMs.get(name) ?? 0) - ms);
    const cpuBusy = (cpuAfter[0] - cpuBefore[0]) / (cpuAfter[1] - cpuBefore[1]);
    const requests = new Map<string, number>();
    hosts.forEach((h, i) => {
      for (const [type, n] of h.requests) requests.set(type, (requests.get(type) ?? 0) + n - (before[i]!.get(type) ?? 0));
    });
    const first = Math.min(...rows.map((r) => r.first));
    const last = Math.max(...rows.map((r) => r.last));
    const perHost = daemons.map((d) => rows.find((r) => r.pid === d.child.pid)?.runs ?? 0);
    result = { rate: (tasks * 1000) / (last - first), wallMs, perHost, requests, cpuBusy, rigCpuMs };
  } finally {
    await Promise.all(daemons.map((d) => stop(d.child)));
    for (const [i, d] of daemons.entries()) {
      // BENCH_LOG_DIR=<dir>: keep each daemon's log there, to see where a drain's time went.
      if (process.env.BENCH_LOG_DIR) writeFileSync(join(process.env.BENCH_LOG_DIR, `drain-${hosts.length}h-${hosts[i]!.name}-${started}.log`), d.log());
      const stopped = d.log().split('\n').find((l) => l.includes('"stopped"'));
      if (stopped) racesLost += (JSON.parse(stopped) as { claimRaces?: number }).claimRaces ?? 0;
    }
  }
  return { ...result, racesLost };
}

/** "12.3 (LSTAT 7.1, RENAME 1.0, …)": requests per task, the largest types first. */
function perTask(requests: Map<string, number>, tasks: number): string {
  const total = [...requests.values()].reduce((a, b) => a + b, 0);
  const types = [...requests].filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  return `${(total / tasks).toFixed(1)} (${types.map(([t, n]) => `${t === 'EXTENDED' ? 'RENAME' : t} ${(n / tasks).toFixed(2)}`).join(', ')})`;
}

/** "7480 µs (node 3100, sshd 2200, …)": CPU per task, the largest programs first. */
function cpuPerTask(ms: Map<string, number>, tasks: number): string {
  const us = (n: number) => ((1000 * n) / tasks).toFixed(0);
  const parts = [...ms].filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  return `${us(sum(ms))} µs (${parts.map(([name, n]) => `${name} ${us(n)}`).join(', ')})`;
}

/**
 * Drain throughput over one sshfs mount per host: the same prefilled spool
 * drained by a daemon on 1 host, then by daemons on 3 hosts, alternately for
 * `runs` pairs, with every SFTP request each host's sshfs sent counted (its
 * round trips to the server) and the claim races lost. Issue 13's target: 3
 * hosts ≥ 2.5× one host.
 */
export async function multihostDrain(options: { tasks?: number; runs?: number; concurrency?: number; ioThreads?: number } = {}): Promise<void> {
  const impossible = hostRigImpossible();
  if (impossible) {
    console.log(`multihost-drain: skipped: ${impossible}`);
    return;
  }
  const tasks = options.tasks ?? 2000;
  const runs = options.runs ?? 2;
  const daemonArgs = [
    ...(options.concurrency !== undefined ? ['--concurrency', String(options.concurrency)] : []),
    ...(options.ioThreads !== undefined ? ['--io-threads', String(options.ioThreads)] : []),
  ];
  const rig = await HostRig.create({ hosts: 3, countRequests: true });
  const ratios: number[] = [];
  try {
    for (let r = 0; r < runs; r++) {
      const one = await drainRun(rig, rig.hosts.slice(0, 1), tasks, daemonArgs);
      const three = await drainRun(rig, rig.hosts, tasks, daemonArgs);
      const ratio = three.rate / one.rate;
      ratios.push(ratio);
      printTable(`drain of ${tasks} prefilled no-op tasks, one sshfs mount per host (${COHERENT_MOUNT_OPTIONS.join(',')}), --poll-interval 250ms ${daemonArgs.join(' ')}, run ${r + 1} of ${runs}`, [
        ['1 host: tasks/s (first run to last)', one.rate.toFixed(0), '', ''],
        ['1 host: wall ms from spawn', String(one.wallMs), '', ''],
        ['1 host: SFTP requests per task', perTask(one.requests, tasks), '', ''],
        ['1 host: machine CPU busy', `${(100 * one.cpuBusy).toFixed(0)}% of ${availableParallelism()} CPUs`, '', ''],
        ['1 host: CPU per task (daemon, sshfs, ssh, sshd)', cpuPerTask(one.rigCpuMs, tasks), '', ''],
        ['3 hosts: tasks/s (first run to last)', three.rate.toFixed(0), '', ''],
        ['3 hosts: wall ms from spawn', String(three.wallMs), '', ''],
        ['3 hosts: tasks per host', three.perHost.join(' / '), '', ''],
        ['3 hosts: SFTP requests per task', perTask(three.requests, tasks), '', ''],
        ['3 hosts: claim races lost per task', (three.racesLost / tasks).toFixed(2), '', ''],
        ['3 hosts: machine CPU busy', `${(100 * three.cpuBusy).toFixed(0)}% of ${availableParallelism()} CPUs`, '', ''],
        ['3 hosts: CPU per task (daemons, sshfs, ssh, sshd)', cpuPerTask(three.rigCpuMs, tasks), '', ''],
        ['3 hosts / 1 host', ratio.toFixed(2), '≥ 2.5', verdict(ratio >= 2.5)],
      ]);
    }
    if (runs > 1) console.log(`\n3 hosts / 1 host over ${runs} runs: median ${median(ratios).toFixed(2)}, range ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}`);
  } finally {
    await rig.close();
  }
}

export async function multihost(options: { tasks?: number; runs?: number } = {}): Promise<void> {
  const impossible = hostRigImpossible();
  if (impossible) {
    console.log(`multihost: skipped: ${impossible}`);
    return;
  }
  const drops = 40;
  const tasks = options.tasks ?? 2000;
  const runs = options.runs ?? 1;
  const p = (xs: number[], q: number) => percentile(xs, q).toFixed(0);
  for (const [label, mountOptions] of [
    ['coherent mount options', COHERENT_MOUNT_OPTIONS],
    ['sshfs default caching', []],
  ] as const) {
    const rig = await HostRig.create({ hosts: 3, mountOptions: [...mountOptions] });
    try {
      const fast: [number, number] = [200, 400];
      const sparse: [number, number] = [500, 1500];
      const configs: Array<[string, string[], [number, number]]> =
        mountOptions.length === 0
          ? [['--poll-interval 250ms', ['--poll-interval', '250ms'], fast]]
          : [
              ['--poll-interval 1s', ['--poll-interval', '1s'], fast],
              ['--poll-interval 250ms', ['--poll-interval', '250ms'], fast],
              ['--poll-interval 250ms', ['--poll-interval', '250ms'], sparse],
            ];
      for (const [name, args, gap] of configs) {
        const lat = await pickupRun(rig, args, drops, gap);
        printTable(`pickup of a drop made through another host's mount, ${label} (${mountOptions.join(',') || 'none'}), ${name}, ${drops} drops ${gap[0]}-${gap[1]} ms apart`, [
          ['p50 (ms)', p(lat, 50), '', ''],
          ['p90 (ms)', p(lat, 90), '', ''],
          ['max (ms)', p(lat, 100), '', ''],
        ]);
      }
      if (mountOptions.length === 0) continue;
      for (let r = 0; r < runs; r++) {
        const one = await drainRun(rig, rig.hosts.slice(0, 1), tasks);
        const three = await drainRun(rig, rig.hosts, tasks);
        printTable(`drain of ${tasks} prefilled no-op tasks over sshfs (${label}), run ${r + 1} of ${runs}`, [
          ['1 host: tasks/s (first run to last)', one.rate.toFixed(0), '', ''],
          ['1 host: wall ms from spawn', String(one.wallMs), '', ''],
          ['3 hosts: tasks/s (first run to last)', three.rate.toFixed(0), '', ''],
          ['3 hosts: wall ms from spawn', String(three.wallMs), '', ''],
          ['3 hosts: tasks per host', three.perHost.join(' / '), '', ''],
          ['3 hosts / 1 host', (three.rate / one.rate).toFixed(2), '', ''],
        ]);
      }
    } finally {
      await rig.close();
    }
  }
}
