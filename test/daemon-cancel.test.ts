/**
 * Cancelling (README, "Cancelling a task"), with the real daemon and `spool`:
 * a waiting task is revoked; a running one gets a request in cancel/, its
 * AbortSignal fires with a TaskCancelledError, it is killed --kill-grace later
 * if it ignores it, and it ends as cancelled (file removed, no retry, no dead
 * letter); the request outlives a daemon killed with -9 mid-cancel; cancel/ is
 * hostile input.
 */
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler, type TaskHandle } from '../runtime/index.js';
import { spool, spoolAsync } from './helpers/cli.js';
import { describeSpool, ls, lsActive, readRecords, waitFor, type DaemonProcess, type TaskRecord } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let root: string;
let records: string;
const testSpool = useDaemonSpool('spoolerd-cancel-', { bind: (s) => ({ root, records } = s) });

const runsOf = (task: string, phase?: string): TaskRecord[] => readRecords(records).filter((r) => r.task === task && (phase === undefined || r.phase === phase));
const cancelDir = () => readdirSync(join(root, 'cancel'));

async function waitForStart(task: string, h: TaskHandle, daemon: DaemonProcess, n = 1): Promise<void> {
  await waitFor(() => runsOf(task, 'started').filter((r) => r.id === h.id).length >= n || undefined, {
    what: `${task} ${h.id} to start`,
    explain: () => `${describeSpool(root)}\n${daemon.describe()}`,
  });
}

/** The task left the spool for good: not waiting, running, dead or archived. */
function expectGone(h: TaskHandle): void {
  for (const d of ['incoming', 'pending', 'dead', 'quarantine', 'archive']) expect(ls(join(root, d)).filter((f) => f.includes(h.id))).toEqual([]);
  expect(lsActive(root).filter((f) => f.includes(h.id))).toEqual([]);
}

describe.each([['--processes', '1'], ['--processes', '0']])('a running task (%s %s)', (...processes) => {
  it('`spool cancel` fires its AbortSignal with a TaskCancelledError; it ends as cancelled (file removed, not retried), its onCancel hook runs, and the command exits 0', async () => {
    const spooler = Spooler.open(root);
    const h = await spooler.enqueue({ name: 'until_cancelled', args: ['c'], options: { retries: 3 } });
    const daemon = await testSpool.serve({ imports: ['outcomes', 'basic'], args: ['--concurrency', '1', ...processes] });
    await waitForStart('until_cancelled', h, daemon);

    const r = await spoolAsync(['cancel', '--dir', root, h.id, '--timeout', '20s']);
    expect(r, daemon.describe()).toEqual({ code: 0, stdout: expect.stringContaining(`cancelled ${h.id} (it was running on `), stderr: '' });
    expect(runsOf('until_cancelled', 'aborted')).toEqual([expect.objectContaining({ id: h.id, reason: 'TaskCancelledError', cancelled: true })]);
    expectGone(h);
    expect(cancelDir()).toEqual([]);
    const line = await daemon.waitForLog((l) => l.msg === 'task cancelled' && l.id === h.id);
    expect(line).toEqual(expect.objectContaining({ task: 'until_cancelled', attempt: 0, level: 'info' }));
    expect(typeof line.durationMs).toBe('number');
    await waitFor(() => readRecords(records).find((x) => x.task === 'hook' && x.id === h.id && x.hook === 'onCancel'), { what: 'the onCancel hook' });
    expect(readRecords(records).find((x) => x.task === 'hook' && x.hook === 'onCancel')).toEqual(expect.objectContaining({ outcome: 'cancelled', cancelled: 'TaskCancelledError' }));
    // Not retried: it started once.
    await testSpool.runMarker(daemon, 100);
    expect(runsOf('until_cancelled', 'started').length).toBe(1);
  });

  it('one that ignores its AbortSignal is stopped --kill-grace later and still ends as cancelled', async () => {
    const spooler = Spooler.open(root);
    const h = await spooler.enqueue({ name: 'ignores_cancel', args: ['i'], options: { retries: 3 } });
    const daemon = await testSpool.serve({ imports: ['outcomes'], args: ['--concurrency', '1', '--kill-grace', '500ms', ...processes] });
    await waitForStart('ignores_cancel', h, daemon);

    const r = await spoolAsync(['cancel', '--dir', root, h.id, '--timeout', '20s']);
    expect(r.code, `${r.stderr}\n${daemon.describe()}`).toBe(0);
    expect(runsOf('ignores_cancel', 'aborted')).toEqual([expect.objectContaining({ id: h.id, reason: 'TaskCancelledError' })]);
    expectGone(h);
    expect(cancelDir()).toEqual([]);
    const stopped =
      processes[1] === '0'
        ? 'a cancelled task ignored its AbortSignal; with --processes 0 it cannot be killed and may still be running in the daemon; it is settled as cancelled (run with --processes 1 or more to have such tasks killed)'
        : 'a cancelled task did not stop within the kill grace after its AbortSignal: killing its worker process';
    expect(daemon.logsWith(stopped).map((l) => l.id)).toEqual([h.id]);
    expect(daemon.logsWith('task cancelled').map((l) => l.id)).toEqual([h.id]);
    expect(ls(join(root, 'dead'))).toEqual([]);
  });
});

describe('a waiting task', () => {
  it('is revoked by `spool cancel` and by spooler.cancel(): it never runs', async () => {
    const spooler = Spooler.open(root);
    const a = await spooler.enqueue({ name: 'until_cancelled', args: ['a'], options: { postpone: '1h' } });
    const b = await spooler.enqueue({ name: 'until_cancelled', args: ['b'], options: { postpone: '1h' } });
    expect(spool(['cancel', '--dir', root, a.id])).toEqual({ code: 0, stdout: `cancelled ${a.id} (it was waiting; it will not run)\n`, stderr: '' });
    expect(spooler.cancel(b.id)).toEqual({ kind: 'revoked', name: b.fileName });
    expectGone(a);
    expectGone(b);
    // Nothing left to cancel: not found (3).
    expect(spooler.cancel(b.id)).toEqual({ kind: 'not-found' });
    expect(spool(['cancel', '--dir', root, a.id]).code).toBe(3);
  });
});

describe('a daemon killed with -9 while it cancels a task', () => {
  it('leaves the request in cancel/: the daemon that reclaims the task cancels it when it runs it again', async () => {
    const spooler = Spooler.open(root);
    const h = await spooler.enqueue({ name: 'ignores_cancel', args: ['k'], options: { retries: 3 } });
    // A long grace: A is killed while the task ignores its signal.
    const a = await testSpool.serve({ imports: ['outcomes'], args: ['--concurrency', '1', '--kill-grace', '60s'] });
    await waitForStart('ignores_cancel', h, a);
    const r = spool(['cancel', '--dir', root, h.id, '--no-wait']);
    expect(r.code, r.stderr).toBe(0);
    await waitFor(() => runsOf('ignores_cancel', 'aborted').length === 1 || undefined, { what: 'the abort in A', explain: () => a.describe() });
    expect(await a.kill9()).toEqual({ code: null, signal: 'SIGKILL' });
    expect(cancelDir()).toEqual([h.id]);

    const b = await testSpool.serve({ imports: ['outcomes'], args: ['--concurrency', '1', '--kill-grace', '500ms', '--stale-after', '2s', '--scan-interval', '500ms'] });
    await b.waitForLog((l) => l.msg === 'task cancelled' && l.id === h.id, { timeoutMs: 30_000, what: 'B to cancel the reclaimed task' });
    await waitFor(() => cancelDir().length === 0 || undefined, { what: 'the request to be removed' });
    expectGone(h);
    // It ran again in B (reclaimed, its attempt counted) and was cancelled there.
    expect(runsOf('ignores_cancel', 'started').map((x) => x.attempt)).toEqual([0, 1]);
    expect(runsOf('ignores_cancel', 'aborted').length).toBe(2);
    expect(ls(join(root, 'dead'))).toEqual([]);
  });
});

describe('cancel/ as hostile input', () => {
  it('a link, a directory, a non-empty file and a name that is no id are removed unread and logged; the daemon goes on', async () => {
    Spooler.open(root);
    const outside = join(root, '..', 'outside');
    writeFileSync(outside, 'keep me');
    const fakeId = '1796190742202186cd83aa484ddba';
    symlinkSync(outside, join(root, 'cancel', fakeId));
    writeFileSync(join(root, 'cancel', 'not-an-id'), '');
    writeFileSync(join(root, 'cancel', '1796190742202186cd83aa484ddbb'), 'data');
    mkdirSync(join(root, 'cancel', '1796190742202186cd83aa484ddbc'));
    const daemon = await testSpool.serve({ imports: ['outcomes', 'basic'] });
    // Each file is removed, then logged: wait for the four lines (an empty cancel/ may come before the last one is read).
    const removedLines = () => daemon.logsWith('removed a file from cancel/ that is not a cancel request');
    await waitFor(() => removedLines().length >= 4 || undefined, { what: 'the four removals logged', explain: () => daemon.describe() });
    expect(cancelDir()).toEqual([]);
    const removed = removedLines();
    expect(removed.map((l) => [l.file, l.reason]).sort()).toEqual(
      [
        [fakeId, 'it is a symbolic link'],
        ['1796190742202186cd83aa484ddbb', 'it is not empty (4 bytes); a request is an empty file'],
        ['1796190742202186cd83aa484ddbc', 'it is not a regular file'],
        ['not-an-id', 'its name is not a task id'],
      ].sort(),
    );
    expect(readdirSync(join(root, '..')).includes('outside')).toBe(true);
    // Still serving.
    await testSpool.runMarker(daemon, 10);
  });
});
