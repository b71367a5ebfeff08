/**
 * Timeouts (README, "Timeouts and worker processes"): when a task's timeout
 * expires its AbortSignal fires; a task still running after --kill-grace is
 * stopped by killing its worker process, counts an attempt, is rescheduled by
 * its backoff and ends as a dead letter after its retries. Tasks that shared
 * the killed worker go back to the spool without counting an attempt. With
 * --processes 0 the task cannot be killed: after the grace it counts as failed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import {
  describeSpool,
  ls,
  lsActive,
  parseName,
  readRecords,
  startServing,
  waitFor,
  type DaemonProcess,
  type TaskRecord,
} from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let root: string;
let records: string;
useDaemonSpool('spoolerd-timeouts-', { bind: (s) => ({ root, records } = s) });

const RETRY = { retries: 1, backoff: { kind: 'constant', delay: 100 } } as const;
const runsOf = (task: string, phase?: string): TaskRecord[] => readRecords(records).filter((r) => r.task === task && (phase === undefined || r.phase === phase));

async function waitForDeadLetter(id: string, daemon: DaemonProcess): Promise<string> {
  return waitFor(() => ls(join(root, 'dead')).find((f) => f.includes(id)), {
    timeoutMs: 30_000,
    what: `task ${id} to become a dead letter`,
    explain: () => `${describeSpool(root)}\nrecords: ${JSON.stringify(readRecords(records))}\n${daemon.describe()}`,
  });
}

function failureRecord(id: string): { attempts: number; error: { name?: string; message: string } } {
  return JSON.parse(readFileSync(join(root, 'state', `${id}.json`), 'utf8'));
}

async function waitForEmptySpool(daemon: DaemonProcess): Promise<void> {
  await waitFor(() => ['incoming', 'pending'].every((d) => ls(join(root, d)).length === 0) && lsActive(root).length === 0, {
    what: 'an empty spool',
    explain: () => `${describeSpool(root)}\n${daemon.describe()}`,
  });
}

describe.each([['--processes', '1'], ['--processes', '0']])('an async task that outlives its timeout (%s %s)', (...processes) => {
  it('sees its AbortSignal fire with a TaskTimeoutError; its failure counts an attempt, and after its retries it is a dead letter', async () => {
    const spooler = Spooler.open(root);
    const h = await spooler.enqueue({ name: 'wait_for_abort', args: ['w'], options: { ...RETRY, timeout: 300 } });
    const daemon = await startServing({ dir: root, imports: ['isolation'], records, args: ['--concurrency', '1', '--kill-grace', '5s', ...processes] });
    const deadName = await waitForDeadLetter(h.id, daemon);

    const aborted = runsOf('wait_for_abort', 'aborted');
    expect(aborted.map((r) => [r.id, r.attempt, r.reason, r.aborted])).toEqual([
      [h.id, 0, 'TaskTimeoutError', true],
      [h.id, 1, 'TaskTimeoutError', true],
    ]);
    expect(aborted[0]!.message).toBe('the task did not finish within its timeout of 300 ms');
    // Each run was aborted about its timeout after it started, long before the kill grace.
    for (const a of aborted) {
      const started = runsOf('wait_for_abort', 'started').find((s) => s.attempt === a.attempt)!;
      expect(a.time - started.time).toBeGreaterThanOrEqual(250);
      expect(a.time - started.time).toBeLessThan(3000);
    }
    expect(parseName(deadName)).toEqual(expect.objectContaining({ id: h.id, attempts: 2 }));
    expect(failureRecord(h.id)).toEqual(expect.objectContaining({ attempts: 2, error: expect.objectContaining({ name: 'TaskTimeoutError' }) }));
    // It stopped by itself: no worker was killed, so both attempts ran in the same process.
    expect(daemon.logsWith('a task did not stop within the kill grace after its timeout: killing its worker process')).toEqual([]);
    expect(new Set(runsOf('wait_for_abort').map((r) => r.workerPid)).size).toBe(1);
    expect(daemon.exit).toBeUndefined();
    await waitForEmptySpool(daemon);
  });
});

describe('a synchronous infinite loop with a timeout', () => {
  it('is stopped by killing its worker; the attempt counts, it ends as a dead letter, and a task sharing the worker goes back without an attempt', async () => {
    const spooler = Spooler.open(root);
    // Starts just before the first spin, in the same worker (one worker, two slots), and needs longer than the spin lives.
    const bystander = await spooler.enqueue({ name: 'block', args: ['bystander', 1500], options: { priority: 10 } });
    const spin = await spooler.enqueue({ name: 'spin', args: ['s'], options: { ...RETRY, timeout: 300, priority: 20 } });
    const daemon = await startServing({ dir: root, imports: ['isolation', 'block'], records, args: ['--processes', '1', '--concurrency', '2', '--kill-grace', '300ms'] });
    const deadName = await waitForDeadLetter(spin.id, daemon);

    const spins = runsOf('spin');
    expect(spins.map((r) => [r.id, r.attempt])).toEqual([
      [spin.id, 0],
      [spin.id, 1],
    ]);
    // Killed each time: each attempt ran in its own worker process, and the daemon lives on.
    expect(spins[0]!.workerPid).not.toBe(spins[1]!.workerPid);
    expect(spins.every((r) => r.pid === daemon.pid)).toBe(true);
    expect(daemon.exit).toBeUndefined();
    const kills = daemon.logsWith('a task did not stop within the kill grace after its timeout: killing its worker process');
    expect(kills.map((l) => [l.id, l.attempt, l.worker])).toEqual([
      [spin.id, 0, spins[0]!.workerPid],
      [spin.id, 1, spins[1]!.workerPid],
    ]);
    expect(parseName(deadName)).toEqual(expect.objectContaining({ id: spin.id, attempts: 2 }));
    const failure = failureRecord(spin.id);
    expect(failure.attempts).toBe(2);
    expect(failure.error.name).toBe('TaskTimeoutError');
    expect(failure.error.message).toMatch(/^the task did not finish within its timeout of 300 ms, nor within 300 ms after its AbortSignal fired; its worker process \(pid \d+\) was killed$/);

    // The bystander shared the first killed worker: it went back with its attempt count unchanged (a0 again),
    // and then ran to the end exactly once.
    await waitFor(() => runsOf('block', 'finished').length === 1, { what: 'the bystander to finish', explain: () => `${describeSpool(root)}\n${daemon.describe()}` });
    const blocks = runsOf('block');
    expect(blocks[0]).toEqual(expect.objectContaining({ phase: 'started', id: bystander.id, attempt: 0, workerPid: spins[0]!.workerPid }));
    expect(blocks.filter((r) => r.phase === 'finished')).toEqual([expect.objectContaining({ id: bystander.id, attempt: 0 })]);
    expect(blocks.every((r) => r.attempt === 0)).toBe(true);
    expect(kills[0]!.alsoRunning).toEqual([{ task: 'block', id: bystander.id }]);
    expect(daemon.logsWith('task returned to the spool without counting an attempt').some((l) => (l.file as string).includes(bystander.id))).toBe(true);
    await waitForEmptySpool(daemon);
    expect(ls(join(root, 'dead'))).toEqual([deadName]);
  });

  it('with the daemon default --task-timeout (the task sets none)', async () => {
    const spooler = Spooler.open(root);
    const spin = await spooler.enqueue({ name: 'spin', args: ['default'], options: { retries: 0 } });
    const daemon = await startServing({ dir: root, imports: ['isolation'], records, args: ['--processes', '1', '--task-timeout', '300ms', '--kill-grace', '200ms'] });
    await waitForDeadLetter(spin.id, daemon);
    expect(runsOf('spin')).toHaveLength(1);
    expect(failureRecord(spin.id).error.message).toMatch(/^the task did not finish within its timeout of 300 ms, nor within 200 ms/);
    // A fresh worker runs the next task.
    const next = await spooler.enqueue({ name: 'wait_for_abort', args: ['after'], options: { retries: 0, timeout: 200 } });
    await waitForDeadLetter(next.id, daemon);
    expect(runsOf('wait_for_abort', 'aborted')).toHaveLength(1);
    expect(runsOf('wait_for_abort')[0]!.workerPid).not.toBe(runsOf('spin')[0]!.workerPid);
  });
});

describe('with --processes 0, a task that ignores its AbortSignal', () => {
  it('counts as failed after the kill grace, with a clear log line, and ends as a dead letter after its retries', async () => {
    const spooler = Spooler.open(root);
    const h = await spooler.enqueue({ name: 'ignore_abort', args: ['i'], options: { ...RETRY, timeout: 200 } });
    const daemon = await startServing({ dir: root, imports: ['isolation'], records, args: ['--processes', '0', '--concurrency', '4', '--kill-grace', '200ms'] });
    const deadName = await waitForDeadLetter(h.id, daemon);
    expect(parseName(deadName)).toEqual(expect.objectContaining({ id: h.id, attempts: 2 }));
    expect(runsOf('ignore_abort', 'started').map((r) => [r.attempt, r.workerPid])).toEqual([
      [0, daemon.pid],
      [1, daemon.pid],
    ]);
    expect(runsOf('ignore_abort', 'aborted').map((r) => r.attempt)).toEqual([0, 1]);
    const failure = failureRecord(h.id);
    expect(failure.error.name).toBe('TaskTimeoutError');
    expect(failure.error.message).toContain('could not be killed (--processes 0) and may still be running');
    const lines = daemon.logsWith(
      'a task ignored its AbortSignal after its timeout; with --processes 0 it cannot be killed and may still be running in the daemon; it is counted as failed (run with --processes 1 or more to have such tasks killed)',
    );
    expect(lines.map((l) => [l.level, l.id, l.attempt])).toEqual([
      ['error', h.id, 0],
      ['error', h.id, 1],
    ]);
    // Start-up said that blocking tasks cannot be stopped in this mode.
    expect(daemon.logs.some((l) => l.msg.startsWith('running tasks in the daemon process (--processes 0): a task that blocks the event loop'))).toBe(true);
    expect(daemon.exit).toBeUndefined();
  });
});
