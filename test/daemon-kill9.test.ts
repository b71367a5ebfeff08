/**
 * Crashes (README, "Crashes"; SPOOL-FORMAT.md, "Claiming"): a daemon killed
 * with kill -9 loses nothing; its claimed tasks run again elsewhere after
 * --stale-after, with the attempt counted, so a task that keeps crashing its
 * daemon ends as a dead letter instead of looping forever.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import {
  describeSpool,
  ls,
  lsActive,
  parseName,
  readRecords,
  startDaemon,
  startServing,
  waitFor,
  type DaemonProcess,
  type TaskRecord,
} from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let dir: string;
let root: string;
let records: string;
useDaemonSpool('spoolerd-kill9-', { bind: (s) => ({ dir, root, records } = s) });

/** Fast reclaim: a silent owner is dead after 2 s, and every 500 ms a scan looks for dead owners. */
const RECLAIMER = ['--stale-after', '2s', '--scan-interval', '500ms'];

describe('kill -9 of a daemon in the middle of a task', () => {
  it('loses nothing: another daemon runs its claimed tasks again after the stale time, attempt counted, and everything else once', async () => {
    const spooler = Spooler.open(root);
    const blocker = await spooler.enqueue({ name: 'block_first_attempt', args: ['blocker', 60_000], options: { priority: 0 } });
    const quickKeys = Array.from({ length: 20 }, (_, i) => `q${String(i).padStart(2, '0')}`);
    const quick = await spooler.enqueueMany(quickKeys.map((k) => ({ name: 'quick', args: [k, 100], options: { priority: 50 } })));
    const idOf = new Map(quick.map((h, i) => [h.id, quickKeys[i]!]));

    // A runs the blocker and one quick task at a time.
    const a = await startServing({ dir: root, imports: ['block'], records, args: ['--concurrency', '2'] });
    const aOwner = a.owner;
    await waitFor(() => readRecords(records).filter((r) => r.task === 'quick' && r.phase === 'finished').length >= 3, {
      what: 'A to have finished a few quick tasks',
      explain: () => a.describe(),
    });
    expect(await a.kill9()).toEqual({ code: null, signal: 'SIGKILL' });
    // A's liveness lock was last refreshed at this time; its claims are fair game 2 s (B's --stale-after) later.
    const lockRefreshedAt = statSync(join(root, 'locks', `owner-${aOwner}.lock`)).mtimeMs;

    // What A held when it died: the blocker, and whatever quick task it had claimed.
    const heldByA = ls(join(root, 'active', aOwner));
    expect(heldByA).toContain(blocker.fileName);
    expect(heldByA.length).toBeGreaterThanOrEqual(1);
    expect(heldByA.length).toBeLessThanOrEqual(2);
    const heldIds = new Set(heldByA.map((f) => parseName(f)!.id));
    const runsInA = readRecords(records).filter((r) => r.pid === a.pid);
    const finishedInA = new Set(runsInA.filter((r) => r.task === 'quick' && r.phase === 'finished').map((r) => (r.args as unknown[])[0] as string));

    // B: one task at a time, so each fixture can tell its own attempt.
    const b = await startServing({ dir: root, imports: ['block'], records, args: ['--concurrency', '1', ...RECLAIMER] });
    const reclaimLine = await b.waitForLog((l) => l.msg === 'reclaimed tasks of a daemon that died; their attempt is counted', { timeoutMs: 20_000 });
    expect(reclaimLine).toEqual(expect.objectContaining({ level: 'warn', owner: aOwner, tasks: heldByA.length }));

    const blockerRunInB = await waitFor(
      () => readRecords(records).find((r) => r.pid === b.pid && r.task === 'block_first_attempt' && r.phase === 'finished'),
      { timeoutMs: 20_000, what: 'B to run the blocker again', explain: () => `${describeSpool(root)}\n${b.describe()}` },
    );
    // Run again, after the stale time, as attempt 1 (a1 in its claimed file's name).
    expect(blockerRunInB).toEqual(expect.objectContaining({ id: blocker.id, attempt: 1 }));
    expect(parseName(blockerRunInB.file as string)).toEqual(expect.objectContaining({ id: blocker.id, attempts: 1, name: 'block_first_attempt' }));
    expect(blockerRunInB.time).toBeGreaterThanOrEqual(lockRefreshedAt + 2000);

    await waitFor(
      () => {
        const done = readRecords(records).filter((r) => r.pid === b.pid && r.phase === 'finished');
        return done.length >= 1 + quickKeys.length - finishedInA.size && lsActive(root).length === 0 && ls(join(root, 'incoming')).length === 0;
      },
      { timeoutMs: 30_000, what: 'B to run everything A left', explain: () => `${describeSpool(root)}\n${b.describe()}` },
    );

    // Every quick task ran to completion; those A had claimed when it died ran again in B as attempt 1
    // (at least once: one A finished but had not yet removed would run twice, as documented), those A
    // had finished ran only in A, and the rest ran once in B as attempt 0.
    const all = readRecords(records);
    const heldKeys = new Set([...heldIds].map((id) => idOf.get(id)).filter((k) => k !== undefined));
    for (const key of quickKeys) {
      const mine = all.filter((r) => r.task === 'quick' && (r.args as unknown[])[0] === key);
      const startedInB = mine.filter((r) => r.pid === b.pid && r.phase === 'started').map((r) => r.attempt);
      const finishedInB = mine.filter((r) => r.pid === b.pid && r.phase === 'finished');
      if (heldKeys.has(key)) expect(startedInB, `${key} was claimed by A when it died`).toEqual([1]);
      else if (finishedInA.has(key)) expect(startedInB, `${key} finished in A and must not run again`).toEqual([]);
      else expect(startedInB, `${key} was never claimed by A`).toEqual([0]);
      expect(finishedInB, key).toHaveLength(startedInB.length);
      expect(mine.filter((r) => r.phase === 'finished').length, key).toBeGreaterThanOrEqual(1);
    }
    // The blocker started once in each daemon and finished once (in B).
    expect(all.filter((r) => r.task === 'block_first_attempt').map((r) => [r.pid, r.phase, r.attempt])).toEqual([
      [a.pid, 'started', 0],
      [b.pid, 'started', 1],
      [b.pid, 'finished', 1],
    ]);

    // A's claim directory and lock are gone; nothing is left anywhere.
    expect(existsSync(join(root, 'active', aOwner))).toBe(false);
    expect(ls(join(root, 'locks')).filter((l) => l.includes(aOwner))).toEqual([]);
    for (const sub of ['incoming', 'pending', 'dead', 'quarantine']) expect(ls(join(root, sub)), sub).toEqual([]);
    expect(b.exit).toBeUndefined();
  });
});

describe('kill -9 of a daemon while a task waits in pending/', () => {
  it('loses nothing: a task waiting out its retry backoff runs at its due time in the daemon that was running alongside', async () => {
    const spooler = Spooler.open(root);
    const marker = join(dir, 'marker');
    const daemons = [
      await startServing({ dir: root, imports: ['retry'], records, args: ['--concurrency', '1', ...RECLAIMER] }),
      await startServing({ dir: root, imports: ['retry'], records, args: ['--concurrency', '1', ...RECLAIMER] }),
    ];
    // Fails its first attempt, then waits 3 s in pending/ (under the name a1) before the retry.
    const h = await spooler.enqueue({ name: 'fails_until_marker', args: ['waits', marker], options: { retries: 2, backoff: { kind: 'constant', delay: 3000 } } });
    const failed = await waitFor(() => readRecords(records).find((r) => r.task === 'fails_until_marker'), { what: 'the first attempt' });
    const [loser, survivor] = failed.pid === daemons[0]!.pid ? [daemons[0]!, daemons[1]!] : [daemons[1]!, daemons[0]!];
    const waiting = await waitFor(() => ls(join(root, 'pending')).find((f) => f.includes(h.id)), {
      what: 'the task in pending/',
      explain: () => describeSpool(root),
    });
    expect(parseName(waiting)).toEqual(expect.objectContaining({ id: h.id, attempts: 1 }));
    const due = parseName(waiting)!.due;
    // The daemon that scheduled the retry (and so has it in its queue) dies; the retry must still happen.
    await loser.kill9();
    writeFileSync(marker, '');

    const retried = await waitFor(() => readRecords(records).find((r) => r.task === 'fails_until_marker' && r.ok === true), {
      timeoutMs: 20_000,
      what: 'the retry to run in the surviving daemon',
      explain: () => `${describeSpool(root)}\n${survivor.describe()}`,
    });
    expect(retried).toEqual(expect.objectContaining({ pid: survivor.pid, id: h.id, attempt: 1 }));
    expect(retried.time).toBeGreaterThanOrEqual(due);
    expect(retried.time).toBeLessThanOrEqual(due + 10_000);
    await waitFor(() => lsActive(root).length === 0, { what: 'the retry to finish' });
    expect(readRecords(records).filter((r) => r.task === 'fails_until_marker')).toHaveLength(2);
    for (const sub of ['incoming', 'pending', 'dead']) expect(ls(join(root, sub)), sub).toEqual([]);
  });
});

describe('a task that kills its own daemon every time', () => {
  it('ends as a dead letter after its retry limit instead of looping forever', async () => {
    const spooler = Spooler.open(root);
    const h = await spooler.enqueue({ name: 'crash_daemon', args: ['boom'], options: { retries: 1 } });
    await spooler.enqueue({ name: 'quick', args: ['survivor', 1], options: { priority: 90 } });
    const daemons: DaemonProcess[] = [];
    const runs = (): TaskRecord[] => readRecords(records).filter((r) => r.task === 'crash_daemon');
    let deadName: string | undefined;
    // Start daemons one after another while the previous one died; give up after 6. Not waiting for "serving
    // spool": a daemon may reclaim the task at start-up and die running it before it logs that line.
    for (let i = 0; i < 6 && deadName === undefined; i++) {
      const d = startDaemon({ dir: root, imports: ['block'], records, args: ['--concurrency', '1', ...RECLAIMER] });
      daemons.push(d);
      await waitFor(
        () => {
          deadName = ls(join(root, 'dead')).find((f) => f.includes(h.id));
          return deadName !== undefined || d.exit !== undefined;
        },
        { timeoutMs: 20_000, what: 'the daemon to die or the task to be buried', explain: () => `${describeSpool(root)}\n${d.describe()}` },
      );
    }
    expect(deadName, `not a dead letter after ${daemons.length} daemons\n${describeSpool(root)}`).toBeDefined();

    // It ran (and killed its daemon) once per allowed attempt: the first and one retry, as a0 then a1.
    expect(runs().map((r) => [r.id, r.attempt])).toEqual([
      [h.id, 0],
      [h.id, 1],
    ]);
    expect(daemons).toHaveLength(3);
    expect(daemons.slice(0, 2).map((d) => d.exit)).toEqual([
      { code: null, signal: 'SIGKILL' },
      { code: null, signal: 'SIGKILL' },
    ]);
    const last = daemons[2]!;
    expect(last.exit).toBeUndefined();
    // The third daemon reclaimed it as a2 and buried it without running it.
    const record = JSON.parse(readFileSync(join(root, 'state', `${h.id}.json`), 'utf8')) as Record<string, any>;
    expect(record.error.message).toContain('interrupted 2 times');
    expect(parseName(deadName!)).toEqual(expect.objectContaining({ id: h.id, name: 'crash_daemon' }));
    // Per SPOOL-FORMAT.md ("Attempts"), aN counts attempts that ended badly: two interrupted runs, so it is
    // buried as a2 (not run a third time, so no third attempt is counted).
    expect(parseName(deadName!)!.attempts).toBe(2);
    expect(record.attempts).toBe(2);
    await last.waitForLog((l) => l.msg === 'task is a dead letter: out of retries' && l.id === h.id);

    // The other task ran exactly once (it may have run in any of the daemons), and the spool is clean.
    await waitFor(() => readRecords(records).some((r) => r.task === 'quick' && r.phase === 'finished'), { what: 'the survivor to run' });
    await waitFor(() => lsActive(root).length === 0, {
      what: 'no claims left',
      explain: () => describeSpool(root),
    });
    const survivorRuns = readRecords(records).filter((r) => r.task === 'quick' && r.phase === 'finished');
    expect(survivorRuns).toHaveLength(1);
    for (const sub of ['incoming', 'pending', 'quarantine']) expect(ls(join(root, sub)), sub).toEqual([]);
    expect(ls(join(root, 'dead'))).toEqual([deadName]);
  });
});
