/**
 * Several daemons on one spool (README, "Running tasks"; SPOOL-FORMAT.md,
 * "Claiming"): each task runs in exactly one of them while none crashes.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { describeSpool, ls, lsActive, readRecords, sleep, startDaemon, waitFor } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let root: string;
let records: string;
const testSpool = useDaemonSpool('spoolerd-two-', { bind: (s) => ({ root, records } = s) });

const TOTAL = 5000;
const PREFILLED = 2500;

describe('two daemons on one spool', () => {
  it(`run ${TOTAL} tasks, prefilled and enqueued while both run, each exactly once, and both do some of the work`, { timeout: 180_000 }, async () => {
    const spooler = Spooler.open(root);
    const keys = Array.from({ length: TOTAL }, (_, i) => `k${String(i).padStart(4, '0')}`);
    await spooler.enqueueMany(keys.slice(0, PREFILLED).map((k) => ({ name: 'count', args: [k] })));

    const options = { dir: root, imports: ['count'], records, args: ['--scan-interval', '1s'] };
    const a = startDaemon(options);
    const b = startDaemon(options);
    // The rest arrive in batches while both daemons start and run.
    for (let i = PREFILLED; i < TOTAL; i += 250) {
      await spooler.enqueueMany(keys.slice(i, i + 250).map((k) => ({ name: 'count', args: [k] })));
      await sleep(20);
    }
    await a.waitUntilServing();
    await b.waitUntilServing();

    await waitFor(
      () => readRecords(records).length >= TOTAL && ls(join(root, 'incoming')).length === 0 && ls(join(root, 'pending')).length === 0 && lsActive(root).length === 0,
      {
        timeoutMs: 120_000,
        intervalMs: 200,
        what: `${TOTAL} runs and an empty spool`,
        explain: () => `${readRecords(records).length} runs\n${describeSpool(root).slice(0, 4000)}\n${a.describe(10)}\n${b.describe(10)}`,
      },
    );
    // Give a duplicate run every chance to show up before counting: each daemon has nothing left queued or running.
    for (const d of [a, b]) await testSpool.waitForStatus(d, (s) => s.queue.known === 0 && s.running.length === 0, { what: `daemon ${d.pid} idle`, timeoutMs: 30_000 });
    expect(await a.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(await b.stop('SIGTERM')).toEqual({ code: 0, signal: null });

    const runs = readRecords(records);
    const perKey = new Map<string, number>();
    for (const r of runs) perKey.set(r.key!, (perKey.get(r.key!) ?? 0) + 1);
    const duplicated = [...perKey].filter(([, n]) => n !== 1);
    expect(duplicated, 'tasks that ran more than once').toEqual([]);
    expect([...perKey.keys()].sort()).toEqual(keys);
    expect(runs).toHaveLength(TOTAL);

    // Both did some of the work, and nobody else did.
    const byPid = new Map<number, number>();
    for (const r of runs) byPid.set(r.pid, (byPid.get(r.pid) ?? 0) + 1);
    expect([...byPid.keys()].sort()).toEqual([a.pid, b.pid].sort());
    expect(byPid.get(a.pid)).toBeGreaterThan(0);
    expect(byPid.get(b.pid)).toBeGreaterThan(0);

    // Each daemon's own count agrees with what its tasks recorded; nothing was lost, retried or quarantined.
    for (const d of [a, b]) {
      expect(d.logsWith('stopped').at(-1)).toEqual(
        expect.objectContaining({ processed: byPid.get(d.pid), skipped: 0, rescheduled: 0, dead: 0, quarantined: 0, reclaimed: 0, lost: 0, running: 0 }),
      );
      expect(d.logs.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
    }
    for (const sub of ['incoming', 'pending', 'dead', 'quarantine', 'state']) expect(ls(join(root, sub)), sub).toEqual([]);
    expect(lsActive(root)).toEqual([]);
  });
});
