/**
 * Faults of a spool shared by several hosts over a network filesystem (issue
 * 13; README "Running across hosts"; SPOOL-FORMAT.md "Clocks" and "Stalled
 * daemons"): one host's clock shifted by faketime, one host frozen (SIGSTOP)
 * past the stale time and resumed. Three network namespaces mount one exported
 * directory with sshfs, each running a real `spoolerd --poll`
 * (test/helpers/hosts.ts, bench/host-rig.ts); the scenarios are in
 * test/helpers/multihost-scenarios.ts.
 *
 * Needs root, /dev/fuse and network namespaces; skipped with a printed reason
 * only where the machine cannot have them. CI runs as root and installs sshfs,
 * openssh-server and faketime (.ci/run), so these run there.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HostRig, hostRigImpossible, useHostRig } from './helpers/hosts.js';
import { clockSkewScenario, LIBFAKETIME, stallScenario } from './helpers/multihost-scenarios.js';

const impossible = hostRigImpossible();
if (impossible) console.warn(`test/multihost-faults.test.ts skipped: ${impossible}`);

describe.skipIf(impossible !== undefined)('faults of three hosts sharing one spool over sshfs', () => {
  let rig!: HostRig;
  useHostRig(3, (created) => (rig = created));

  // Skew (30 s) far above the stale time (10 s): without the spool clock, a host 30 s fast started postponed
  // tasks at once and judged its peers' locks stale; a host 30 s slow ran nothing due and was judged dead.
  for (const [offset, expectedMs] of [
    ['+30s', -30_000],
    ['-30s', 30_000],
  ] as const) {
    it(`one host's clock ${offset}: no early starts, no peer judged dead, the skewed host runs due tasks`, { timeout: 120_000 }, async () => {
      // Debian's faketime package; .ci/run installs it. Not a reason to skip: CI has it.
      expect(existsSync(LIBFAKETIME), `${LIBFAKETIME} (apt-get install -y faketime)`).toBe(true);
      const seen = await clockSkewScenario(rig, { offset, staleAfter: '10s', postponeMs: 12_000 });
      const explain = JSON.stringify(seen, null, 1);
      expect(seen.allRan, explain).toBe(true);
      // Postponed tasks never started before their due time by the real clock.
      expect(seen.earlyStarts, explain).toEqual({});
      // No live daemon's lock was judged stale: nothing reclaimed, no lock lost, nothing ran twice.
      expect(seen.reclaims, explain).toEqual([]);
      expect(seen.lockLost, explain).toEqual({ h1: 0, h2: 0, h3: 0 });
      expect(seen.ranTwice, explain).toEqual([]);
      // The skewed host is not disabled: it ran its share of the due tasks.
      expect(seen.tasksPerHost[seen.skewedHost], explain).toBeGreaterThan(0);
      // Each daemon measured its offset to the spool's clock: within the 1 s precision of sshfs's whole-second
      // file times (and a round trip) on the skewed host, which warned; none on the others.
      const skewed = seen.clocks[seen.skewedHost]!;
      expect(skewed, explain).toBeDefined();
      expect(Math.abs(skewed.offsetMs - expectedMs), explain).toBeLessThanOrEqual(1100);
      expect(skewed.betweenMs[0] <= expectedMs + 200 && expectedMs - 200 <= skewed.betweenMs[1], explain).toBe(true);
      expect(skewed.level).toBe('warn');
      for (const h of rig.hosts.filter((x) => x.name !== seen.skewedHost)) expect(seen.clocks[h.name], explain).toEqual(expect.objectContaining({ offsetMs: 0, level: 'info' }));
    });
  }

  it('a host frozen past the stale time loses its claims to the others, then rejoins and runs the new tasks alone', { timeout: 120_000 }, async () => {
    const STALE_MS = 3000;
    // The other hosts stop once it has rejoined (as in issue 13's report): only the resumed host can run the new tasks.
    const seen = await stallScenario(rig, { staleMs: STALE_MS, newTasks: 60, stopOthers: true });
    const explain = JSON.stringify({ ...seen, stalledLogsAfterResume: seen.stalledLogsAfterResume.map((l) => `${l.level} ${l.msg}`) }, null, 1);
    // Another host reclaimed the frozen host's claims within the stale time, a scan (1 s) and a scan's round trips.
    expect(seen.reclaimedAfterMs, explain).toBeDefined();
    expect(seen.reclaimedAfterMs!, explain).toBeLessThan(STALE_MS + 1000 + 3000);
    // On resuming, it said once that it had lost its claims, and rejoined as a new owner.
    const lost = seen.stalledLogsAfterResume.filter((l) => l.msg.startsWith('this daemon lost its claims'));
    expect(lost.map((l) => l.level), explain).toEqual(['error']);
    expect(seen.stalledLogsAfterResume.some((l) => l.msg === 'serving spool as a new owner'), explain).toBe(true);
    // The resumed host works again: it ran the new tasks, each exactly once.
    expect(seen.stalledAlive, explain).toBe(true);
    expect(seen.rejoinedAfterMs, explain).toBeDefined();
    expect(seen.newTasksRunByStalled, explain).toBe(seen.newTasks);
    expect(seen.newTasksAllRanOnce, explain).toBe(true);
    // The old owner is gone for good: its claim directory and lock were removed by the host that reclaimed them.
    expect(seen.stalledClaimDirExists, explain).toBe(false);
    expect(seen.stalledLockExists, explain).toBe(false);
  });
});
