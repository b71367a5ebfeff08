/**
 * Multi-host fault scenarios of issue 13 (test/multihost-faults.test.ts): a
 * host's clock shifted, a host frozen past the stale time. Each runs real
 * daemons on a HostRig (bench/host-rig.ts) against an empty shared spool, and
 * returns what it observed instead of asserting: the test states the
 * expectations (see the comment on each).
 *
 * The caller owns the rig, kills leftover daemons (killLeftoverDaemons) and
 * empties the spool between scenarios, as test/multihost.test.ts does.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Spooler } from '../../runtime/index.js';
import { ls, sleep, waitFor, type DaemonProcess, type LogLine, type TaskRecord } from './daemon.js';
import { freeze, hostRecords, serverSpool, startOnHost, thaw, type HostRig, type RigHost } from './hosts.js';

/** Debian's libfaketime (package libfaketime, pulled in by faketime). */
export const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

/**
 * The environment that shifts a process's wall clock by `offset` (libfaketime
 * syntax: '+30s', '-30s'). File times read with stat stay real (NO_FAKE_STAT),
 * and monotonic clocks are not shifted: a host whose clock is off reads the
 * server's file times unchanged.
 */
export function skewedClockEnv(offset: string): NodeJS.ProcessEnv {
  return { LD_PRELOAD: LIBFAKETIME, FAKETIME: offset, NO_FAKE_STAT: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1', FAKETIME_NO_CACHE: '1' };
}

/** A record with the real time (this process's clock) at which the test first saw it. */
export type SeenRecord = TaskRecord & { host: string; seenAt: number };

/**
 * Watches every host's record file and stamps each new record with the real
 * time it was seen (within `intervalMs`): a host with a shifted clock writes
 * shifted times into its records.
 */
export class RecordWatch {
  readonly seen: SeenRecord[] = [];
  private readonly offsets = new Map<string, number>();
  private timer: NodeJS.Timeout;

  constructor(
    private readonly rig: HostRig,
    intervalMs = 20,
  ) {
    this.timer = setInterval(() => this.poll(), intervalMs);
  }

  poll(): void {
    const now = Date.now();
    for (const h of this.rig.hosts) {
      const file = hostRecords(this.rig, h);
      if (!existsSync(file)) continue;
      const text = readFileSync(file, 'utf8');
      const from = this.offsets.get(h.name) ?? 0;
      const end = text.lastIndexOf('\n') + 1;
      if (end <= from) continue;
      for (const line of text.slice(from, end).split('\n')) if (line) this.seen.push({ ...(JSON.parse(line) as TaskRecord), host: h.name, seenAt: now });
      this.offsets.set(h.name, end);
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.poll();
  }
}

/** The error a daemon logs when its liveness lock was taken for stale (supervise/ownership.ts, lost()). */
const LOST_CLAIMS = 'this daemon lost its claims';
const logsMatching = (d: DaemonProcess, prefix: string): LogLine[] => d.logs.filter((l) => l.msg.startsWith(prefix));
const keysOf = (records: SeenRecord[]): string[] => [...new Set(records.map((r) => r.key!))];

export interface ClockSkewObservation {
  skewedHost: string;
  offset: string;
  /** Postponed tasks started before their due time (real clock): how many per host, and the earliest (ms before due). */
  earlyStarts: Record<string, { tasks: number; maxEarlyMs: number; due: number; firstSeenAt: number; firstFile: string }>;
  /** Keys run more than once, with the hosts that ran them. */
  ranTwice: Array<{ key: string; hosts: string[] }>;
  /** Reclaims logged: who reclaimed whose tasks while every daemon was alive. */
  reclaims: Array<{ by: string; of: string; tasks: number }>;
  /** "this daemon lost its claims" errors (its liveness lock was judged stale and removed), by host. */
  lockLost: Record<string, number>;
  /** Every task finished within the scenario's time. */
  allRan: boolean;
  tasksPerHost: Record<string, number>;
  /** Each host's spool clock as its daemon logged it at start ("spool clock measured"), and the level it was logged at. */
  clocks: Record<string, { offsetMs: number; betweenMs: [number, number]; level: string } | undefined>;
}

/**
 * Issue 13, "one host's clock shifted by faketime without early starts or a
 * disabled peer". Hosts h1..h3 serve the spool; `skewed` (h2 by default) runs
 * with its clock shifted by `offset`. The server enqueues (real clock) a burst
 * of 400 ms tasks that keep claims held on every host, and tasks postponed by
 * `postponeMs`. Expected once fixed: earlyStarts, ranTwice and reclaims empty,
 * lockLost all 0, allRan true, and the skewed host ran tasks.
 */
export async function clockSkewScenario(
  rig: HostRig,
  options: { offset?: string; skewed?: RigHost; staleAfter?: string; postponeMs?: number; busy?: number; postponed?: number } = {},
): Promise<ClockSkewObservation> {
  const offset = options.offset ?? '+30s';
  const skewed = options.skewed ?? rig.hosts[1]!;
  const postponeMs = options.postponeMs ?? 12_000;
  const args = ['--poll', '--poll-interval', '250ms', '--scan-interval', '1s', '--stale-after', options.staleAfter ?? '10s', '--processes', '0', '--concurrency', '4', '--log-level', 'debug'];
  const daemons = rig.hosts.map((h) => startOnHost(rig, h, { imports: ['multihost'], args, env: h === skewed ? skewedClockEnv(offset) : {} }));
  const watch = new RecordWatch(rig);
  try {
    for (const d of daemons) await d.waitUntilServing(1, 30_000);
    const spooler = Spooler.open(serverSpool(rig));
    const busy = Array.from({ length: options.busy ?? 90 }, (_, i) => `busy${i}`);
    await spooler.enqueueMany(busy.map((k) => ({ name: 'work', args: [k, 400] })));
    const due = Date.now() + postponeMs;
    const later = Array.from({ length: options.postponed ?? 30 }, (_, i) => `later${i}`);
    await spooler.enqueueMany(later.map((k) => ({ name: 'mark', args: [k], options: { postpone: new Date(due) } })));

    const done = () => {
      const finished = new Set(watch.seen.filter((r) => r.phase === 'finished' || r.task === 'mark').map((r) => r.key));
      return [...busy, ...later].every((k) => finished.has(k));
    };
    let allRan = true;
    await waitFor(done, { timeoutMs: postponeMs + 40_000, intervalMs: 100, what: 'every task to run' }).catch(() => (allRan = false));
    // Let a late duplicate show: two scans past the last run, on every host.
    await Promise.all(daemons.map((d) => d.waitForScans(2)));
    watch.stop();

    const starts = watch.seen.filter((r) => r.phase !== 'finished');
    const byKey = new Map<string, SeenRecord[]>();
    for (const r of starts) byKey.set(r.key!, [...(byKey.get(r.key!) ?? []), r]);
    const owners = new Map(daemons.map((d, i) => [d.owner, rig.hosts[i]!.name]));
    return {
      skewedHost: skewed.name,
      offset,
      earlyStarts: starts
        .filter((r) => r.task === 'mark' && r.seenAt < due - 100)
        .reduce<ClockSkewObservation['earlyStarts']>((by, r) => {
          const e = (by[r.host] ??= { tasks: 0, maxEarlyMs: 0, due, firstSeenAt: r.seenAt, firstFile: String(r.file) });
          e.tasks++;
          e.maxEarlyMs = Math.max(e.maxEarlyMs, due - r.seenAt);
          return by;
        }, {}),
      ranTwice: [...byKey].filter(([, rs]) => rs.length > 1).map(([key, rs]) => ({ key, hosts: rs.map((r) => r.host) })),
      reclaims: daemons.flatMap((d, i) =>
        logsMatching(d, 'reclaimed tasks of a daemon that died').map((l) => ({ by: rig.hosts[i]!.name, of: owners.get(l.owner as string) ?? String(l.owner), tasks: l.tasks as number })),
      ),
      lockLost: Object.fromEntries(daemons.map((d, i) => [rig.hosts[i]!.name, logsMatching(d, LOST_CLAIMS).length])),
      allRan,
      tasksPerHost: Object.fromEntries(rig.hosts.map((h) => [h.name, keysOf(starts.filter((r) => r.host === h.name)).length])),
      clocks: Object.fromEntries(
        daemons.map((d, i) => {
          const line = logsMatching(d, 'spool clock measured')[0];
          return [rig.hosts[i]!.name, line && { offsetMs: line.offsetMs as number, betweenMs: line.betweenMs as [number, number], level: line.level }];
        }),
      ),
    };
  } finally {
    watch.stop();
  }
}

export interface StallObservation {
  /** The reclaim of the frozen host's claims by another host (ms after the freeze), if any. */
  reclaimedAfterMs: number | undefined;
  /** Tasks the frozen host had started before the freeze that ran again elsewhere. */
  ranTwice: string[];
  /** Of those, the ones the frozen host also finished after it resumed. */
  finishedByStalledAfterResume: string[];
  /** Log lines of the stalled daemon after it resumed. */
  stalledLogsAfterResume: LogLine[];
  /** New tasks enqueued after the resume, and how many of them the resumed host ran. */
  newTasks: number;
  newTasksRunByStalled: number;
  /** Every new task ran, exactly once. */
  newTasksAllRanOnce: boolean;
  /** ms from the resume to the stalled daemon's "serving spool as a new owner", if it said so. */
  rejoinedAfterMs: number | undefined;
  /** Whether the other hosts' daemons were stopped before the new tasks came (options.stopOthers). */
  othersStopped: boolean;
  /** The stalled daemon still running at the end, and whether its claim directory and lock exist. */
  stalledAlive: boolean;
  stalledClaimDirExists: boolean;
  stalledLockExists: boolean;
}

/**
 * Issue 13, "SIGSTOP/SIGCONT past the stale window followed by new tasks that
 * the resumed host runs". Host h1's daemon is frozen (with its worker
 * processes) while it runs tasks, until another host has reclaimed its claims
 * and a scan more; then it resumes, and new tasks are enqueued once it has
 * rejoined (or 15 s). With `stopOthers`, the other hosts' daemons are stopped
 * first, as in the report (20 new tasks sat in incoming/ for 30 s):
 * then only the resumed host can run the new tasks, and must run them all.
 * Expected: newTasksRunByStalled > 0 (all of them with stopOthers),
 * newTasksAllRanOnce, stalledAlive, and the daemon said on resume that it had
 * been stalled (stalledLogsAfterResume).
 * ranTwice is the price of any stall past the stale time (no fencing can stop
 * a frozen process's own side effects).
 */
export async function stallScenario(
  rig: HostRig,
  options: { staleAfter?: string; staleMs?: number; newTasks?: number; stopOthers?: boolean } = {},
): Promise<StallObservation> {
  const staleMs = options.staleMs ?? 3000;
  const args = ['--poll', '--poll-interval', '250ms', '--scan-interval', '1s', '--stale-after', options.staleAfter ?? `${staleMs}ms`, '--processes', '1', '--concurrency', '3', '--log-level', 'debug'];
  const daemons = rig.hosts.map((h) => startOnHost(rig, h, { imports: ['multihost'], args }));
  const [stalled, ...others] = daemons as [DaemonProcess, DaemonProcess, DaemonProcess];
  const stalledHost = rig.hosts[0]!;
  const watch = new RecordWatch(rig);
  let frozen: number[] = [];
  try {
    for (const d of daemons) await d.waitUntilServing(1, 30_000);
    const owner = stalled.owner;
    const spooler = Spooler.open(serverSpool(rig));
    await spooler.enqueueMany(Array.from({ length: 30 }, (_, i) => ({ name: 'work', args: [`old${i}`, 1500] })));
    await waitFor(() => watch.seen.some((r) => r.host === stalledHost.name && r.phase === 'started'), { timeoutMs: 20_000, what: 'h1 to start a task' });
    frozen = freeze(stalled.pid);
    const frozenAt = Date.now();
    const startedBefore = keysOf(watch.seen.filter((r) => r.host === stalledHost.name && r.phase === 'started'));

    let reclaimedAfterMs: number | undefined;
    await Promise.race(others.map((d) => d.waitForLog((l) => l.msg.startsWith('reclaimed tasks of a daemon that died') && l.owner === owner, { timeoutMs: staleMs + 15_000 })))
      .then(() => (reclaimedAfterMs = Date.now() - frozenAt))
      .catch(() => undefined);
    // A scan more past the reclaim on every other host, then resume.
    await Promise.all(others.map((d) => d.waitForScans(1)));
    const logsAtResume = stalled.logs.length;
    thaw(frozen);
    frozen = [];
    const resumedAt = Date.now();
    let rejoinedAfterMs: number | undefined;
    await stalled
      .waitForLog((l) => l.msg === 'serving spool as a new owner', { timeoutMs: 15_000 })
      .then(() => (rejoinedAfterMs = Date.now() - resumedAt))
      .catch(() => undefined);
    if (options.stopOthers) await Promise.all(others.map((d) => d.stop('SIGTERM')));

    const count = options.newTasks ?? 60;
    const fresh = Array.from({ length: count }, (_, i) => `new${i}`);
    // The new tasks arrive over 3 s, so that an idle resumed host has every chance to take some.
    for (let i = 0; i < count; i += count / 10) {
      await spooler.enqueueMany(fresh.slice(i, i + count / 10).map((k) => ({ name: 'work', args: [k, 200] })));
      await sleep(300);
    }
    await waitFor(() => fresh.every((k) => watch.seen.some((r) => r.key === k && r.phase === 'finished')), { timeoutMs: 30_000, intervalMs: 100, what: 'the new tasks to finish' }).catch(
      () => undefined,
    );
    // Let a late duplicate show: two scans past the last run, on every host still serving.
    await Promise.all([stalled, ...(options.stopOthers ? [] : others)].map((d) => d.waitForScans(2)));
    watch.stop();

    const started = watch.seen.filter((r) => r.phase === 'started');
    const ranTwice = startedBefore.filter((k) => started.filter((r) => r.key === k).length > 1);
    const root = serverSpool(rig);
    return {
      reclaimedAfterMs,
      ranTwice,
      finishedByStalledAfterResume: ranTwice.filter((k) => watch.seen.some((r) => r.key === k && r.host === stalledHost.name && r.phase === 'finished' && r.seenAt >= resumedAt)),
      stalledLogsAfterResume: stalled.logs.slice(logsAtResume),
      newTasks: count,
      newTasksRunByStalled: started.filter((r) => r.host === stalledHost.name && r.key!.startsWith('new')).length,
      newTasksAllRanOnce: fresh.every((k) => started.filter((r) => r.key === k).length === 1),
      rejoinedAfterMs,
      othersStopped: options.stopOthers === true,
      stalledAlive: stalled.exit === undefined,
      stalledClaimDirExists: ls(join(root, 'active')).includes(owner),
      stalledLockExists: ls(join(root, 'locks')).includes(`owner-${owner}.lock`),
    };
  } finally {
    thaw(frozen);
    watch.stop();
  }
}
