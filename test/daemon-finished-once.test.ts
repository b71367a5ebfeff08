/**
 * A task whose function returned is never run again, even when its worker
 * process is killed before it could report how the task ended (SPOOL-FORMAT.md,
 * "Worker processes"). The case of issue 12: short synchronous tasks share a
 * worker with a task that spins (`for (;;) {}`) past its timeout; the spin
 * blocks the worker's event loop, so the outcomes of the tasks that ended just
 * before it in the same turn can never be sent. When the daemon kills the
 * worker, those tasks must count as done (their worker removed their files as
 * they returned), not go back to the spool.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { describeSpool, ls, lsActive, parseName, readRecords, startServing, waitFor } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let root: string;
let records: string;
useDaemonSpool('spoolerd-finished-once-', { bind: (s) => ({ root, records } = s) });

const KILLED = 'a task did not stop within the kill grace after its timeout: killing its worker process';

describe.each([['2'], ['1']])('20 short tasks beside one spinning task (--processes %s)', (processes) => {
  it('each short task runs exactly once, although the spin gets its worker killed (twice: retries 1)', async () => {
    const spooler = Spooler.open(root);
    // Priorities fix the order of the first dispatch (lower runs first): three short tasks, the spin, then the rest.
    // The first 8 (--concurrency 8) go out in one turn, so the spin's worker has just run short tasks in the
    // same message when the spin blocks it.
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
    await spooler.enqueueMany(keys.slice(0, 3).map((k) => ({ name: 'count', args: [k], options: { priority: 40 } })));
    const spin = await spooler.enqueue({ name: 'spin', args: ['s'], options: { retries: 1, backoff: { kind: 'constant', delay: 100 }, timeout: 300, priority: 45 } });
    await spooler.enqueueMany(keys.slice(3).map((k) => ({ name: 'count', args: [k], options: { priority: 50 } })));
    const daemon = await startServing({
      dir: root,
      imports: ['isolation', 'count'],
      records,
      args: ['--processes', processes, '--concurrency', '8', '--kill-grace', '300ms'],
    });
    const explain = (): string => `${describeSpool(root)}\nrecords: ${JSON.stringify(readRecords(records))}\n${daemon.describe()}`;
    const deadName = await waitFor(() => ls(join(root, 'dead')).find((f) => f.includes(spin.id)), { timeoutMs: 30_000, what: 'the spin to become a dead letter', explain });
    await waitFor(() => ['incoming', 'pending'].every((d) => ls(join(root, d)).length === 0) && lsActive(root).length === 0, { timeoutMs: 30_000, what: 'an empty spool', explain });

    // The spin was killed on both attempts, each time while other tasks had run in its worker.
    expect(parseName(deadName)).toEqual(expect.objectContaining({ id: spin.id, attempts: 2 }));
    expect(daemon.logsWith(KILLED).map((l) => l.id)).toEqual([spin.id, spin.id]);
    const spins = readRecords(records).filter((r) => r.task === 'spin');
    expect(spins).toHaveLength(2);
    const firstWorker = spins[0]!.workerPid;
    const counts = readRecords(records).filter((r) => r.task === 'count');
    // The first kill had something to lose: short tasks ran in the spin's worker before it.
    expect(counts.filter((r) => r.workerPid === firstWorker).length).toBeGreaterThan(0);

    // Some of them had ended without their report leaving the worker: the daemon found their files removed.
    const unreported = daemon.logsWith('task finished in a worker process that ended before reporting it; its file was already removed, so it is done (counted as processed)');
    expect(unreported.length).toBeGreaterThan(0);
    expect(unreported.every((l) => l.task === 'count')).toBe(true);

    // Each short task's side effect exactly once.
    expect(counts.map((r) => r.key).sort()).toEqual([...keys].sort());
    expect(daemon.exit).toBeUndefined();
  });
});
