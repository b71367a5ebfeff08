/**
 * Worker replacement (README, "Timeouts and worker processes"): --max-tasks N
 * replaces a worker after N tasks, --max-memory replaces one whose RSS passed
 * the limit once its running tasks are done; no task is lost or run twice.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { describeSpool, ls, lsActive, readRecords, startServing, waitFor, type DaemonProcess, type TaskRecord } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let root: string;
let records: string;
useDaemonSpool('spoolerd-replace-', { bind: (s) => ({ root, records } = s) });

const runsOf = (task: string): TaskRecord[] => readRecords(records).filter((r) => r.task === task);
const REPLACING = 'replacing a worker process once its tasks are done';

async function waitForCounts(n: number, daemon: DaemonProcess): Promise<TaskRecord[]> {
  return waitFor(
    () => runsOf('count').length >= n && ['incoming', 'pending'].every((d) => ls(join(root, d)).length === 0) && lsActive(root).length === 0 && runsOf('count'),
    { timeoutMs: 30_000, what: `${n} count tasks and an empty spool`, explain: () => `${describeSpool(root)}\n${daemon.describe()}` },
  );
}

describe('--max-tasks', () => {
  it('replaces a worker after that many tasks: 10 tasks, one at a time, run in workers of 3, 3, 3 and 1 tasks', async () => {
    const spooler = Spooler.open(root);
    await spooler.enqueueMany(Array.from({ length: 10 }, (_, i) => ({ name: 'count', args: [`n${i}`] })));
    const daemon = await startServing({ dir: root, imports: ['count'], records, args: ['--processes', '1', '--concurrency', '1', '--max-tasks', '3'] });
    const runs = await waitForCounts(10, daemon);
    expect(runs.map((r) => r.key).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `n${i}`).sort());
    const byWorker = new Map<number, number>();
    for (const r of runs) byWorker.set(r.workerPid as number, (byWorker.get(r.workerPid as number) ?? 0) + 1);
    // In order of first use, since one worker runs at a time.
    expect([...byWorker.values()]).toEqual([3, 3, 3, 1]);
    expect([...byWorker.keys()].every((pid) => pid !== daemon.pid)).toBe(true);
    const replaced = daemon.logsWith(REPLACING);
    expect(replaced.map((l) => [l.reason, l.tasks, l.worker])).toEqual([...byWorker.keys()].slice(0, 3).map((pid) => ['max-tasks', 3, pid]));
    expect(daemon.logsWith('a worker process died; the tasks it was running are rescheduled with their attempt counted')).toEqual([]);
    expect(ls(join(root, 'dead'))).toEqual([]);
  });
});

describe('--max-memory', () => {
  it('replaces a worker whose RSS passed the limit after its task finished; later tasks run in the new worker', async () => {
    const spooler = Spooler.open(root);
    await spooler.enqueue({ name: 'grow', args: ['big', 160] });
    const daemon = await startServing({ dir: root, imports: ['isolation', 'count'], records, args: ['--processes', '1', '--max-memory', '120'] });
    const grown = await waitFor(() => runsOf('grow')[0], { what: 'the task that grows its worker' });
    expect(grown.rssMb as number).toBeGreaterThan(120);
    const line = await daemon.waitForLog((l) => l.msg === REPLACING, { timeoutMs: 10_000 });
    expect(line).toEqual(expect.objectContaining({ reason: 'max-memory', worker: grown.workerPid, maxMemoryMb: 120 }));
    expect(line.rssMb as number).toBeGreaterThan(120);

    await spooler.enqueueMany(Array.from({ length: 5 }, (_, i) => ({ name: 'count', args: [`n${i}`] })));
    const runs = await waitForCounts(5, daemon);
    expect(runs.map((r) => r.key).sort()).toEqual(['n0', 'n1', 'n2', 'n3', 'n4']);
    expect(runs.every((r) => r.workerPid !== grown.workerPid && r.workerPid !== daemon.pid)).toBe(true);
    expect(daemon.logsWith(REPLACING)).toHaveLength(1);
    expect(runsOf('grow')).toHaveLength(1);
  });
});
