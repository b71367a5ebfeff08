/**
 * A worker process that dies (README, "Timeouts and worker processes") loses
 * no task: what it was running is rescheduled with the attempt counted (so a
 * task that always crashes its worker ends as a dead letter), the daemon logs
 * which task was running and starts a replacement, and every other task runs
 * exactly once.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { describeSpool, ls, lsActive, parseName, readRecords, startServing, waitFor, type DaemonProcess, type TaskRecord } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let dir: string;
let root: string;
let records: string;
useDaemonSpool('spoolerd-crash-', { bind: (s) => ({ dir, root, records } = s) });

const runsOf = (task: string, phase?: string): TaskRecord[] => readRecords(records).filter((r) => r.task === task && (phase === undefined || r.phase === phase));
const DIED = 'a worker process died; the tasks it was running are rescheduled with their attempt counted';

async function waitForEmptySpool(daemon: DaemonProcess): Promise<void> {
  await waitFor(() => ['incoming', 'pending'].every((d) => ls(join(root, d)).length === 0) && lsActive(root).length === 0, {
    timeoutMs: 30_000,
    what: 'an empty spool',
    explain: () => `${describeSpool(root)}\nrecords: ${JSON.stringify(readRecords(records))}\n${daemon.describe()}`,
  });
}

const KINDS: Array<[string, Record<string, string>, (exit: { code: unknown; signal: unknown }) => void]> = [
  ['exit', {}, (e) => expect(e).toEqual({ code: 3, signal: null })],
  ['uncaught', {}, (e) => expect(e).toEqual({ code: 70, signal: null })],
  // A small heap: V8 reports the failed allocation and aborts the process.
  ['oom', { NODE_OPTIONS: '--max-old-space-size=64' }, (e) => expect(e.signal === 'SIGABRT' || e.signal === 'SIGTRAP' || (typeof e.code === 'number' && e.code !== 0)).toBe(true)],
  ['abort', {}, (e) => expect(e).toEqual({ code: null, signal: 'SIGABRT' })],
];

describe.each(KINDS)('a task that crashes its worker (%s)', (how, env, checkExit) => {
  it('is rescheduled with the attempt counted and ends as a dead letter; the worker is replaced; nothing else is lost or run twice', async () => {
    const spooler = Spooler.open(root);
    const h = await spooler.enqueue({ name: 'crash', args: ['c', how], options: { retries: 1, backoff: { kind: 'constant', delay: 100 }, priority: 10 } });
    await spooler.enqueueMany(Array.from({ length: 20 }, (_, i) => ({ name: 'count', args: [`n${i}`] })));
    const daemon = await startServing({ dir: root, imports: ['isolation', 'count'], records, env, args: ['--processes', '1', '--concurrency', '1'] });
    const deadName = await waitFor(() => ls(join(root, 'dead')).find((f) => f.includes(h.id)), {
      timeoutMs: 30_000,
      what: 'the crashing task to become a dead letter',
      explain: () => `${describeSpool(root)}\n${daemon.describe()}`,
    });
    await waitForEmptySpool(daemon);

    // Ran once per allowed attempt, each time in a new worker, under the same daemon, which lives on.
    const crashes = runsOf('crash');
    expect(crashes.map((r) => [r.id, r.attempt])).toEqual([
      [h.id, 0],
      [h.id, 1],
    ]);
    expect(crashes[0]!.workerPid).not.toBe(crashes[1]!.workerPid);
    expect(daemon.exit).toBeUndefined();
    expect(parseName(deadName)).toEqual(expect.objectContaining({ id: h.id, attempts: 2 }));
    const failure = JSON.parse(readFileSync(join(root, 'state', `${h.id}.json`), 'utf8')) as { attempts: number; error: { name: string; message: string } };
    expect(failure.attempts).toBe(2);
    expect(failure.error.name).toBe('WorkerCrashedError');
    expect(failure.error.message).toMatch(new RegExp(`^its worker process \\(pid ${crashes[1]!.workerPid}\\) died \\((exit code|killed by SIG)[A-Z0-9 ]*\\) while running it$`));

    // The log names the task that was running, and how its worker ended.
    const died = daemon.logsWith(DIED);
    expect(died.map((l) => [l.level, l.worker, l.running])).toEqual(
      crashes.map((c) => ['error', c.workerPid, [{ task: 'crash', id: h.id, attempt: c.attempt! }]]),
    );
    for (const l of died) checkExit({ code: l.code, signal: l.signal });

    // Every other task ran exactly once; nothing is left anywhere but the dead letter.
    const counted = runsOf('count').map((r) => r.key).sort();
    expect(counted).toEqual(Array.from({ length: 20 }, (_, i) => `n${i}`).sort());
    expect(ls(join(root, 'dead'))).toEqual([deadName]);
    expect(ls(join(root, 'quarantine'))).toEqual([]);
  });
});

describe('a worker killed from outside (SIGKILL)', () => {
  it('has its running tasks rescheduled with the attempt counted, and they run again in a replacement', async () => {
    const spooler = Spooler.open(root);
    const release = join(dir, 'never');
    const a = await spooler.enqueue({ name: 'killable', args: ['a', release], options: { backoff: { kind: 'constant', delay: 100 } } });
    const b = await spooler.enqueue({ name: 'killable', args: ['b', release], options: { backoff: { kind: 'constant', delay: 100 } } });
    await spooler.enqueueMany(Array.from({ length: 10 }, (_, i) => ({ name: 'count', args: [`n${i}`], options: { priority: 90 } })));
    const daemon = await startServing({ dir: root, imports: ['isolation', 'count'], records, args: ['--processes', '1', '--concurrency', '2'] });
    const started = await waitFor(() => runsOf('killable', 'started').length === 2 && runsOf('killable', 'started'), { what: 'both tasks to start' });
    const victim = started[0]!.workerPid as number;
    expect(started[1]!.workerPid).toBe(victim);
    process.kill(victim, 'SIGKILL');
    await waitForEmptySpool(daemon);

    // Both were in flight: both count the attempt (which of them killed a worker cannot be known) and ran
    // again, as attempt 1, in another worker process.
    for (const h of [a, b]) {
      const runs = runsOf('killable').filter((r) => r.id === h.id);
      expect(runs.map((r) => [r.phase, r.attempt])).toEqual([
        ['started', 0],
        ['started', 1],
        ['finished', 1],
      ]);
      expect(runs[1]!.workerPid).not.toBe(victim);
    }
    const died = daemon.logsWith(DIED);
    expect(died).toHaveLength(1);
    expect(died[0]).toEqual(expect.objectContaining({ worker: victim, code: null, signal: 'SIGKILL' }));
    expect((died[0]!.running as Array<{ id: string }>).map((r) => r.id).sort()).toEqual([a.id, b.id].sort());
    expect(runsOf('count').map((r) => r.key).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `n${i}`).sort());
    expect(ls(join(root, 'dead'))).toEqual([]);
    expect(daemon.exit).toBeUndefined();
    writeFileSync(release, '');
  });
});

describe('a daemon killed with kill -9', () => {
  it('takes its worker processes with it, even one stuck in a synchronous loop', async () => {
    const spooler = Spooler.open(root);
    await spooler.enqueue({ name: 'spin', args: ['forever'] });
    const daemon = await startServing({ dir: root, imports: ['isolation'], records, args: ['--processes', '2'] });
    const spin = await waitFor(() => runsOf('spin')[0], { what: 'the loop to start' });
    const ready = daemon.logsWith('worker processes ready')[0]!;
    const workers = ready.pids as number[];
    expect(workers).toHaveLength(2);
    expect(workers).toContain(spin.workerPid);
    await daemon.kill9();
    // Gone, or a zombie nobody has reaped yet (its parent died): either way it runs no more code.
    const alive = (pid: number) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
      } catch {
        return false;
      }
    };
    await waitFor(() => workers.every((pid) => !alive(pid)), { timeoutMs: 5000, what: 'the worker processes to be gone' });
  });
});
