/**
 * Pickup without inotify (issue 13, point 4), over sshfs between two hosts of
 * the rig (bench/host-rig.ts: network namespaces, one sshfs mount per host;
 * needs root and /dev/fuse).
 *
 * pickup: a daemon on h1, a producer on h2 dropping a `stamp` task through
 * its own mount; each task records how long after the producer began writing
 * it it started (one machine, one clock; the write's own time is printed
 * too). Three drop patterns: flowing (every 200-400 ms), sparse (0.5-1.5 s)
 * and after a quiet spell (3-5 s, when the adaptive poll has backed off to
 * its idle period). Run with the default
 * settings (no flag: the daemon detects the network filesystem) and, when
 * BENCH_BASELINE_DIST names the dist/ of an earlier build, with that build's
 * `--poll` (chokidar polling at a fixed 1 s) and `--poll-interval 250ms`.
 *
 * BENCH_POLL_INTERVALS=1s,250ms adds this build with those --poll-interval
 * values; BENCH_SECTIONS=pickup,idle,100k chooses the parts to run.
 *
 * idle CPU: the daemon on an empty spool for 60 s (BENCH_IDLE_SECONDS), from
 * /proc/<pid>/stat (utime + stime); also the host's sshfs and ssh, whose work
 * the polls cause.
 *
 * 100k: what one poll (a stat of incoming/) and one listing of an incoming/
 * holding 100,000 task files cost through a host's mount: wall ms, CPU ms of
 * the caller, and CPU ms of the host's sshfs + ssh.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Spooler } from '../runtime/index.js';
import { readNames } from '../spool/read-names.js';
import { encodeTask } from '../spool/task-file.js';
import { writeTaskSync } from '../spool/protocol.js';
import { HostRig, hostRigImpossible, type RigHost } from './host-rig.js';
import { NOOP_TASKS, SPOOLERD, cpuMsOf, percentile, preciseNow, printTable, sleep, verdict } from './lib.js';

interface Build {
  spoolerd: string;
  tasks: string;
}

const CURRENT: Build = { spoolerd: SPOOLERD, tasks: NOOP_TASKS };

function startOn(build: Build, host: RigHost, spool: string, env: Record<string, string>, args: string[]): { child: ChildProcess; serving: Promise<string> } {
  const child = spawn(host.wrap[0]!, [...host.wrap.slice(1), process.execPath, build.spoolerd, '--dir', spool, '--create', '--import', build.tasks, '--log-format', 'json', '--processes', '0', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let text = '';
  const serving = new Promise<string>((done, fail) => {
    child.stderr!.setEncoding('utf8').on('data', (t: string) => {
      text += t;
      const line = text.split('\n').find((l) => l.includes('"serving spool"'));
      if (line) done(line);
    });
    child.once('exit', (code) => fail(new Error(`spoolerd on ${host.name} exited (${code}) before serving:\n${text.slice(-2000)}`)));
  });
  return { child, serving };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((done) => child.once('exit', done));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(15_000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** sshfs of `host` and its ssh (their CPU is the polls' cost too). */
function sshfsPids(rig: HostRig, host: RigHost): number[] {
  const pids = [Number(readFileSync(join(rig.dir, `sshfs-${host.name}.pid`), 'utf8'))];
  for (let i = 0; i < pids.length; i++) {
    for (const t of readdirSync(`/proc/${pids[i]}/task`)) {
      try {
        pids.push(...readFileSync(`/proc/${pids[i]}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
      } catch {
        // thread gone
      }
    }
  }
  return pids;
}

const cpuOf = (pids: number[]): number => pids.reduce((sum, p) => sum + cpuMsOf(p), 0);

type Pattern = { name: string; drops: number; gapMs: [number, number] };
const PATTERNS: Pattern[] = [
  { name: 'flowing: every 200-400 ms', drops: 40, gapMs: [200, 400] },
  { name: 'sparse: every 0.5-1.5 s', drops: 30, gapMs: [500, 1500] },
  { name: 'after a quiet spell: every 3-5 s', drops: 12, gapMs: [3000, 5000] },
];

/** Latencies of the drops picked up within 30 s of the last drop (sorted), and how many were not. */
async function pickupRun(rig: HostRig, build: Build, args: string[], pattern: Pattern): Promise<{ lat: number[]; late: number; writes: number[] }> {
  const [consumer, producerHost] = rig.hosts as [RigHost, RigHost];
  const report = join(rig.dir, 'pickup-report');
  rmSync(report, { force: true });
  rmSync(rig.serverPath('spool'), { recursive: true, force: true });
  const producer = Spooler.open(join(producerHost.mount, 'spool'));
  const daemon = startOn(build, consumer, join(consumer.mount, 'spool'), { BENCH_REPORT: report }, args);
  try {
    await daemon.serving;
    await sleep(pattern.gapMs[0]);
    const writes: number[] = [];
    for (let i = 0; i < pattern.drops; i++) {
      const since = preciseNow();
      const task = encodeTask({ name: 'stamp', priority: 50, body: { type: 'fcall', args: [since] } });
      writeTaskSync(producer.layout, task.fileName, task.bytes);
      writes.push(preciseNow() - since);
      await sleep(pattern.gapMs[0] + Math.random() * (pattern.gapMs[1] - pattern.gapMs[0]));
    }
    const deadline = Date.now() + 30_000;
    let lat: number[] = [];
    while (Date.now() < deadline) {
      lat = existsSync(report) ? readFileSync(report, 'utf8').split('\n').filter((l) => l.startsWith('lat ')).map((l) => Number(l.slice(4))) : [];
      if (lat.length >= pattern.drops) break;
      await sleep(100);
    }
    return { lat: lat.sort((a, b) => a - b), late: pattern.drops - lat.length, writes: writes.sort((a, b) => a - b) };
  } finally {
    await stop(daemon.child);
  }
}

async function idleCpu(rig: HostRig, build: Build, args: string[], seconds: number): Promise<{ daemonPct: number; sshfsPct: number; serving: string }> {
  const host = rig.hosts[0]!;
  rmSync(rig.serverPath('spool'), { recursive: true, force: true });
  const daemon = startOn(build, host, join(host.mount, 'spool'), {}, args);
  try {
    const serving = await daemon.serving;
    await sleep(5000); // past start-up and the first scans; the poll has backed off
    const sshfs = sshfsPids(rig, host);
    const [d0, s0, t0] = [cpuMsOf(daemon.child.pid!), cpuOf(sshfs), Date.now()];
    await sleep(seconds * 1000);
    const [d1, s1, t1] = [cpuMsOf(daemon.child.pid!), cpuOf(sshfs), Date.now()];
    return { daemonPct: ((d1 - d0) * 100) / (t1 - t0), sshfsPct: ((s1 - s0) * 100) / (t1 - t0), serving };
  } finally {
    await stop(daemon.child);
  }
}

/** One poll and one listing of a remote incoming/ holding `files` task files. */
function crowdedCosts(rig: HostRig, files: number): Array<[string, string, string, string]> {
  const host = rig.hosts[0]!;
  rmSync(rig.serverPath('spool'), { recursive: true, force: true });
  const local = Spooler.open(rig.serverPath('spool'));
  const due = Date.now() + 3_600_000;
  // Written on the server's disk (fast); the names are real task names.
  for (let i = 0; i < files; i++) writeFileSync(join(local.layout.incoming, encodeTask({ name: 'noop', priority: 50, due, body: { type: 'fcall', args: [] } }).fileName), '');
  const incoming = join(host.mount, 'spool', 'incoming');
  const sshfs = sshfsPids(rig, host);
  const measure = (times: number, op: () => void) => {
    op(); // warm the connection
    const [c0, s0, t0] = [process.cpuUsage(), cpuOf(sshfs), preciseNow()];
    for (let i = 0; i < times; i++) op();
    const wall = (preciseNow() - t0) / times;
    const c = process.cpuUsage(c0);
    return { wall, cpu: (c.user + c.system) / 1000 / times, sshfs: (cpuOf(sshfs) - s0) / times };
  };
  let count = 0;
  const poll = measure(200, () => void statSync(incoming));
  const listing = measure(3, () => void (count = readNames(incoming).length));
  if (count !== files) throw new Error(`the listing found ${count} of ${files} files`);
  rmSync(rig.serverPath('spool'), { recursive: true, force: true });
  return [
    ['one poll (stat of incoming/): wall ms', poll.wall.toFixed(2), '', ''],
    ['one poll: CPU ms of the daemon / of sshfs+ssh', `${poll.cpu.toFixed(3)} / ${poll.sshfs.toFixed(3)}`, '', ''],
    [`one listing of ${files} names: wall ms`, listing.wall.toFixed(0), '', ''],
    ['one listing: CPU ms of the daemon / of sshfs+ssh', `${listing.cpu.toFixed(0)} / ${listing.sshfs.toFixed(0)}`, '', ''],
  ];
}

export async function remotePickup(options: { tasks?: number } = {}): Promise<void> {
  const impossible = hostRigImpossible();
  if (impossible) {
    console.log(`remote-pickup: skipped: ${impossible}`);
    return;
  }
  const baselineDist = process.env.BENCH_BASELINE_DIST;
  const baseline: Build | undefined = baselineDist ? { spoolerd: join(baselineDist, 'cli/spoolerd.js'), tasks: join(baselineDist, 'bench/fixtures/noop-tasks.js') } : undefined;
  if (!baseline) console.log('remote-pickup: set BENCH_BASELINE_DIST=<dist/ of an earlier build> to compare with its fixed-interval --poll');
  const configs: Array<[string, Build, string[]]> = [['default (no flag: detected, adaptive 25-250 ms)', CURRENT, []]];
  for (const extra of (process.env.BENCH_POLL_INTERVALS ?? '').split(',').filter(Boolean)) {
    configs.push([`--poll-interval ${extra} (adaptive 25 ms-${extra})`, CURRENT, ['--poll-interval', extra]]);
  }
  if (baseline) {
    configs.push(['baseline --poll (chokidar, fixed 1 s)', baseline, ['--poll']]);
    configs.push(['baseline --poll --poll-interval 250ms (fixed)', baseline, ['--poll', '--poll-interval', '250ms']]);
  }
  const p = (xs: number[], q: number) => percentile(xs, q).toFixed(0);
  const sections = (process.env.BENCH_SECTIONS ?? 'pickup,idle,100k').split(',');
  const rig = await HostRig.create({ hosts: 2 });
  try {
    for (const [name, build, args] of sections.includes('pickup') ? configs : []) {
      for (const pattern of PATTERNS) {
        const { lat, late, writes } = await pickupRun(rig, build, args, pattern);
        const isDefault = build === CURRENT && args.length === 0;
        printTable(`pickup of a drop through another host's sshfs mount, ${name}, ${pattern.drops} drops, ${pattern.name}`, [
          ['p50 (ms)', p(lat, 50), isDefault ? '≤ 100' : '', isDefault ? verdict(percentile(lat, 50) <= 100) : ''],
          ['p90 (ms)', p(lat, 90), '', ''],
          ['p99 (ms)', p(lat, 99), isDefault ? '≤ 500' : '', isDefault ? verdict(percentile(lat, 99) <= 500) : ''],
          ['max (ms)', p(lat, 100), '', ''],
          ['drops not picked up within 30 s of the last', String(late), '0', verdict(late === 0)],
          // Counted in the pickup (from the start of the write): a slow write is the shared machine's, not the poll's.
          ['producer\'s write through its mount, p50 / max (ms)', `${p(writes, 50)} / ${p(writes, 100)}`, '', ''],
        ]);
      }
    }
    const seconds = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
    for (const [name, build, args] of sections.includes('idle') ? configs.filter((c) => !c[0].includes('250ms (fixed)')) : []) {
      const idle = await idleCpu(rig, build, args, seconds);
      const isDefault = build === CURRENT && args.length === 0;
      printTable(`idle CPU over ${seconds} s, empty spool over sshfs, ${name}`, [
        ['spoolerd (% of a core)', idle.daemonPct.toFixed(2), isDefault ? '< 1' : '', isDefault ? verdict(idle.daemonPct < 1) : ''],
        ['sshfs + ssh of its host (% of a core)', idle.sshfsPct.toFixed(2), '', ''],
      ]);
    }
    const files = options.tasks ?? 100_000;
    if (sections.includes('100k')) printTable(`cost of a poll and of a listing of a remote incoming/ holding ${files} files (through one host's sshfs mount)`, crowdedCosts(rig, files));
  } finally {
    await rig.close();
  }
}
