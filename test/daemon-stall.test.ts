/**
 * A daemon stalled past --stale-after (issue 13, point 1; SPOOL-FORMAT.md,
 * "Stalled daemons"): two real daemons on one spool, one frozen with SIGSTOP
 * while it runs tasks, until the other has reclaimed its claims, then resumed.
 * It must notice at once that it lost its claims, stop the tasks it was running
 * (their AbortSignal fires, in its worker process too), touch none of its old claims,
 * and rejoin as a new owner that runs new tasks.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { describeSpool, ls, lsActive, readRecords, sleep, startDaemon, waitFor, type TaskRecord } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let dir: string;
let root: string;
let records: string;
useDaemonSpool('spoolerd-stall-', { bind: (s) => ({ dir, root, records } = s) });

const STALE_MS = 3000;
const FIRST = 40;
const LATER = 20;

describe.each([
  ['in a worker process', 1],
  ['in the daemon itself (--processes 0)', 0],
])('a daemon stalled past the stale time, tasks running %s', (_, processes) => {
  it('stops what it ran, touches nothing it lost, and rejoins as a new owner that runs new tasks', { timeout: 120_000 }, async () => {
    const spooler = Spooler.open(root);
    const first = Array.from({ length: FIRST }, (_, i) => `first-${String(i).padStart(2, '0')}`);
    await spooler.enqueueMany(first.map((k) => ({ name: 'work', args: [k] })));
    const slowFlag = join(dir, 'slow');
    writeFileSync(slowFlag, '');

    const args = ['--stale-after', '3s', '--scan-interval', '1s', '--processes', String(processes), '--concurrency', '4'];
    const a = startDaemon({ dir: root, imports: ['stall'], records, args });
    // b's tasks take 60 s while the flag exists: they are still running when b resumes.
    const b = startDaemon({ dir: root, imports: ['stall'], records, args, env: { STALL_SLOW_FLAG: slowFlag } });
    await a.waitUntilServing();
    await b.waitUntilServing();
    const oldOwner = b.owner;
    const runs = (): TaskRecord[] => readRecords(records);
    const explain = () => `${describeSpool(root).slice(0, 3000)}\n${a.describe(15)}\n${b.describe(25)}`;

    // b runs four tasks (its concurrency); freeze it then.
    const frozenRuns = await waitFor(() => {
      const started = runs().filter((r) => r.pid === b.pid && r.phase === 'start');
      return started.length >= 4 && started;
    }, { timeoutMs: 30_000, what: 'b running 4 tasks', explain });
    const frozenKeys = frozenRuns.map((r) => r.key!).sort();
    expect(frozenRuns.every((r) => r.owner === oldOwner)).toBe(true);
    b.signal('SIGSTOP');
    try {
      // Frozen for longer than the stale time (the one fixed wait: the stall itself)...
      await sleep(STALE_MS + 500);
      // ...and until the other daemon has taken b for dead and reclaimed its claims.
      const reclaim = await a.waitForLog((l) => l.msg.startsWith('reclaimed tasks of a daemon that died') && l.owner === oldOwner, {
        timeoutMs: 20_000,
        what: "a's reclaim of b's claims",
      });
      expect(reclaim.tasks).toBe(4);
      rmSync(slowFlag);
    } finally {
      b.signal('SIGCONT');
    }
    const resumedAt = Date.now();

    // b says, once and clearly, that it lost its claims, and comes back under a new id.
    const lost = await b.waitForLog((l) => l.level === 'error' && l.msg.startsWith('this daemon lost its claims'), { what: 'the lost-claims error' });
    expect(lost.owner).toBe(oldOwner);
    expect(lost.running).toBe(4);
    const rejoined = await b.waitForLog((l) => l.msg === 'serving spool as a new owner', { what: 'the rejoin' });
    expect(rejoined.previous).toBe(oldOwner);
    const newOwner = rejoined.owner as string;
    expect(newOwner).not.toBe(oldOwner);
    expect(newOwner).toMatch(new RegExp(`-${b.pid}-[0-9a-f]{6}$`));

    // The AbortSignal of each task b was running fired (in its worker process, or in b itself), with a ClaimLostError.
    const aborted = await waitFor(() => {
      const found = runs().filter((r) => r.pid === b.pid && r.phase === 'aborted');
      return found.length >= 4 && found;
    }, { timeoutMs: 20_000, what: "b's 4 running tasks aborted", explain });
    expect(aborted.map((r) => r.key!).sort()).toEqual(frozenKeys);
    expect(aborted.every((r) => r.reason === 'ClaimLostError')).toBe(true);

    // Every first task ends, and the spool empties.
    await waitFor(
      () => {
        const ended = new Set(runs().filter((r) => r.phase === 'end').map((r) => r.key));
        return first.every((k) => ended.has(k)) && ls(join(root, 'incoming')).length === 0 && ls(join(root, 'pending')).length === 0 && lsActive(root).length === 0;
      },
      { timeoutMs: 60_000, intervalMs: 100, what: 'every first task ended and an empty spool', explain },
    );
    expect(await a.stop('SIGTERM')).toEqual({ code: 0, signal: null });

    // With a gone, the resumed daemon runs new tasks: all of them, under its new owner.
    const later = Array.from({ length: LATER }, (_, i) => `later-${String(i).padStart(2, '0')}`);
    await spooler.enqueueMany(later.map((k) => ({ name: 'work', args: [k] })));
    await waitFor(
      () => {
        const ended = new Set(runs().filter((r) => r.phase === 'end' && r.pid === b.pid).map((r) => r.key));
        return later.every((k) => ended.has(k)) && lsActive(root).length === 0;
      },
      { timeoutMs: 60_000, intervalMs: 100, what: `b running the ${LATER} new tasks`, explain },
    );
    expect(await b.stop('SIGTERM')).toEqual({ code: 0, signal: null });

    const all = runs();
    // Only the tasks b was running when it froze ran twice (the documented case): once in b, cut
    // short by the AbortSignal, and once more after a reclaimed them. Every other task ran once.
    const starts = new Map<string, TaskRecord[]>();
    for (const r of all.filter((r) => r.phase === 'start')) starts.set(r.key!, [...(starts.get(r.key!) ?? []), r]);
    const twice = [...starts].filter(([, rs]) => rs.length > 1).map(([k]) => k).sort();
    expect(twice).toEqual(frozenKeys);
    for (const k of frozenKeys) {
      // First in b as its old owner; then wherever the reclaimed file was claimed next: a, or b as its new owner.
      const [before, again, ...more] = starts.get(k)!;
      expect(more, k).toEqual([]);
      expect([before!.pid, before!.owner], k).toEqual([b.pid, oldOwner]);
      expect([a.owner, newOwner], k).toContain(again!.owner);
    }
    expect([...starts.keys()].sort()).toEqual([...first, ...later].sort());
    for (const k of [...first, ...later]) expect(all.filter((r) => r.key === k && r.phase === 'end'), k).toHaveLength(1);
    // After it resumed, b started nothing under its old owner, and ended none of the tasks it lost.
    const bAfter = all.filter((r) => r.pid === b.pid && r.time >= resumedAt);
    expect(bAfter.filter((r) => r.phase === 'start').every((r) => r.owner === newOwner)).toBe(true);
    // The runs it started as its old owner were cut short: none of them ended.
    expect(all.filter((r) => r.owner === oldOwner && r.phase === 'end')).toEqual([]);
    // One error in all, the one above; b's count covers only what it finished as its new owner.
    expect(b.logs.filter((l) => l.level === 'error')).toEqual([lost]);
    const bEnded = all.filter((r) => r.pid === b.pid && r.phase === 'end').length;
    expect(b.logsWith('stopped').at(-1)).toEqual(expect.objectContaining({ processed: bEnded, dead: 0, quarantined: 0 }));
    for (const sub of ['incoming', 'pending', 'dead', 'quarantine']) expect(ls(join(root, sub)), sub).toEqual([]);
    expect(lsActive(root)).toEqual([]);
    expect(existsSync(join(root, 'active', oldOwner))).toBe(false);
  });
});
