/**
 * How a run ends besides success, with the real daemon: failing for good from
 * inside a task (failed(reason), PermanentError) and retryOn / noRetryOn (a dead
 * letter at once, the reason recorded, no retry spent); lifecycle hooks per task
 * and per Spooler (order, context, a hook that throws or hangs changes
 * nothing); and the one log event per outcome with id, name, attempt and run time.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler, type TaskHandle } from '../runtime/index.js';
import { describeSpool, ls, lsActive, readRecords, waitFor, type DaemonProcess, type TaskRecord } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let root: string;
let records: string;
const testSpool = useDaemonSpool('spoolerd-outcomes-', { bind: (s) => ({ root, records } = s) });

const FAST_RETRY = { retries: 3, backoff: { kind: 'constant', delay: 50 } } as const;
const runsOf = (task: string): TaskRecord[] => readRecords(records).filter((r) => r.task === task);
const hookCalls = (id: string, tag = 'task'): string[] =>
  readRecords(records)
    .filter((r) => r.task === 'hook' && r.id === id && r.tag === tag)
    .map((r) => r.hook as string);

function failureRecord(id: string): { attempts: number; reason?: string; error: { name?: string; message: string } } {
  return JSON.parse(readFileSync(join(root, 'state', `${id}.json`), 'utf8'));
}

async function waitForDead(h: TaskHandle, daemon: DaemonProcess): Promise<string> {
  return waitFor(() => ls(join(root, 'dead')).find((f) => f.includes(h.id)), {
    what: `task ${h.id} to become a dead letter`,
    explain: () => `${describeSpool(root)}\nrecords: ${JSON.stringify(readRecords(records))}\n${daemon.describe()}`,
  });
}

async function waitForEmpty(daemon: DaemonProcess): Promise<void> {
  await waitFor(() => ['incoming', 'pending'].every((d) => ls(join(root, d)).length === 0) && lsActive(root).length === 0, {
    what: 'an empty spool',
    explain: () => `${describeSpool(root)}\n${daemon.describe()}`,
  });
}

describe.each([['--processes', '1'], ['--processes', '0']])('failing for good (%s %s)', (...processes) => {
  const serve = () => testSpool.serve({ imports: ['outcomes'], args: ['--concurrency', '1', ...processes] });

  it('failed(reason) and a thrown PermanentError dead-letter the task at its first run, with the reason in state/<id>.json and the log, no retry spent', async () => {
    const spooler = Spooler.open(root);
    const a = await spooler.enqueue({ name: 'fail_for_good', args: ['a'], options: FAST_RETRY });
    const b = await spooler.enqueue({ name: 'throw_permanent', args: ['b'], options: FAST_RETRY });
    const daemon = await serve();
    await waitForDead(a, daemon);
    await waitForDead(b, daemon);

    expect(runsOf('fail_for_good').map((r) => r.attempt)).toEqual([0]);
    expect(runsOf('throw_permanent').map((r) => r.attempt)).toEqual([0]);
    expect(failureRecord(a.id)).toEqual(expect.objectContaining({ attempts: 1, reason: 'bad input a', error: expect.objectContaining({ message: 'bad input a' }) }));
    expect(failureRecord(b.id)).toEqual(
      expect.objectContaining({ attempts: 1, reason: 'cannot ever work: b', error: expect.objectContaining({ name: 'PermanentError', message: 'cannot ever work: b' }) }),
    );
    const lines = daemon.logsWith('task is a dead letter: it failed for good (no retry)');
    expect(lines.map((l) => [l.id, l.reason, l.attempt])).toEqual(expect.arrayContaining([[a.id, 'bad input a', 0], [b.id, 'cannot ever work: b', 0]]));
    for (const l of lines) expect(typeof l.durationMs).toBe('number');
    expect(daemon.logsWith('task rescheduled')).toEqual([]);
  });

  it('noRetryOn fails a matching error for good at once and retries the others; retryOn retries only what it lists', async () => {
    const spooler = Spooler.open(root);
    const typeErr = await spooler.enqueue({ name: 'no_retry_type', args: ['t', 'type'], options: FAST_RETRY });
    const plain = await spooler.enqueue({ name: 'no_retry_type', args: ['p', 'plain'], options: { ...FAST_RETRY, retries: 1 } });
    const network = await spooler.enqueue({ name: 'retry_only_network', args: ['n', 'network'], options: { ...FAST_RETRY, retries: 1 } });
    const range = await spooler.enqueue({ name: 'retry_only_network', args: ['r', 'range'], options: FAST_RETRY });
    const daemon = await serve();
    for (const h of [typeErr, plain, network, range]) await waitForDead(h, daemon);

    const attemptsOf = (task: string, key: string) => runsOf(task).filter((r) => (r.args as unknown[])[0] === key).map((r) => r.attempt);
    expect(attemptsOf('no_retry_type', 't')).toEqual([0]);
    expect(attemptsOf('no_retry_type', 'p')).toEqual([0, 1]);
    expect(attemptsOf('retry_only_network', 'n')).toEqual([0, 1]);
    expect(attemptsOf('retry_only_network', 'r')).toEqual([0]);
    expect(failureRecord(typeErr.id)).toEqual(
      expect.objectContaining({ attempts: 1, reason: 'TypeError is not retried (noRetryOn): not a number: t', error: expect.objectContaining({ name: 'TypeError' }) }),
    );
    expect(failureRecord(range.id).reason).toBe('RangeError is not among the errors retried (retryOn): out of range r');
    expect(failureRecord(plain.id)).toEqual(expect.objectContaining({ attempts: 2 }));
    expect(failureRecord(plain.id).reason).toBeUndefined();
  });
});

describe.each([['--processes', '1'], ['--processes', '0']])('lifecycle hooks (%s %s)', (...processes) => {
  const serve = (more: string[] = []) => testSpool.serve({ imports: ['outcomes'], args: ['--concurrency', '1', ...processes, ...more] });

  it('run in order for each ending, inside the task context, the task\'s own hooks first and then its Spooler\'s', async () => {
    const spooler = Spooler.open(root);
    const ok = await spooler.enqueue({ name: 'hooked', args: ['ok', 'ok'] });
    const skip = await spooler.enqueue({ name: 'hooked', args: ['skip', 'skip'] });
    const fail = await spooler.enqueue({ name: 'hooked', args: ['fail', 'fail'], options: { retries: 1, backoff: { kind: 'constant', delay: 50 } } });
    const failedForGood = await spooler.enqueue({ name: 'hooked', args: ['failed', 'failed'], options: FAST_RETRY });
    const daemon = await serve();
    await waitForDead(fail, daemon);
    await waitForDead(failedForGood, daemon);
    await waitForEmpty(daemon);
    // Hooks run once the file has moved: wait for the last hook of each task.
    const last = (id: string, hook: string, n = 1) => hookCalls(id).filter((h) => h === hook).length === n;
    await waitFor(() => last(ok.id, 'onSuccess') && last(skip.id, 'onSkip') && last(fail.id, 'onDeadLetter') && last(failedForGood.id, 'onDeadLetter'), {
      what: 'the last hook of every run',
      explain: () => JSON.stringify(readRecords(records)),
    });

    expect(hookCalls(ok.id)).toEqual(['before', 'after', 'onSuccess']);
    expect(hookCalls(skip.id)).toEqual(['before', 'after', 'onSkip']);
    expect(hookCalls(fail.id)).toEqual(['before', 'after', 'onFailure', 'onRetry', 'before', 'after', 'onFailure', 'onDeadLetter']);
    expect(hookCalls(failedForGood.id)).toEqual(['before', 'after', 'onFailure', 'onDeadLetter']);

    const calls = readRecords(records).filter((r) => r.task === 'hook');
    // Every hook ran inside its task's context.
    for (const c of calls) expect(c.ctxId).toBe(c.id);
    const of = (id: string, hook: string, tag = 'task') => calls.find((c) => c.id === id && c.hook === hook && c.tag === tag)!;
    expect(of(ok.id, 'onSuccess')).toEqual(expect.objectContaining({ outcome: 'processed', value: { key: 'ok', ok: true }, attempt: 0 }));
    // For each hook, the task's own first, then its Spooler's.
    const okCalls = calls.filter((c) => c.id === ok.id).map((c) => `${c.tag}:${c.hook}`);
    expect(okCalls).toEqual(['task:before', 'task:after', 'spooler:after', 'task:onSuccess']);
    expect(of(ok.id, 'after', 'spooler')).toEqual(expect.objectContaining({ outcome: 'processed' }));
    expect(typeof of(ok.id, 'onSuccess').durationMs).toBe('number');
    expect(of(skip.id, 'onSkip')).toEqual(expect.objectContaining({ outcome: 'skipped', reason: 'skipping skip' }));
    expect(of(fail.id, 'onRetry')).toEqual(expect.objectContaining({ outcome: 'rescheduled', error: 'hooked fail fails', delayMs: 50, attempt: 0 }));
    expect(calls.filter((c) => c.id === fail.id && c.hook === 'onDeadLetter')).toEqual([expect.objectContaining({ outcome: 'dead', error: 'hooked fail fails', attempt: 1 })]);
    expect(of(failedForGood.id, 'onDeadLetter')).toEqual(expect.objectContaining({ outcome: 'dead', reason: 'hooked failed failed for good' }));
    expect(daemon.logsWith('a task hook failed; the outcome stands')).toEqual([]);
  });

  it('a hook that throws or rejects is logged and the task is still processed; one that hangs is abandoned after its hookTimeout and frees the slot', async () => {
    const spooler = Spooler.open(root);
    const throws = await spooler.enqueue({ name: 'hook_throws', args: ['x'] });
    const hangs = await spooler.enqueue({ name: 'hook_hangs', args: ['h'] });
    // With --concurrency 1 this one runs only once the hanging hook's slot is free.
    const after = await spooler.enqueue({ name: 'hooked', args: ['after', 'ok'], options: { priority: 99 } });
    const daemon = await serve();
    await waitForEmpty(daemon);
    await waitFor(() => hookCalls(after.id).includes('onSuccess') || undefined, { what: 'the task after the hanging hook', explain: () => daemon.describe() });

    const failedHooks = daemon.logsWith('a task hook failed; the outcome stands');
    expect(failedHooks.map((l) => [l.id, l.hook, l.error])).toEqual([
      [throws.id, 'before', 'before hook throws'],
      [throws.id, 'after', 'after hook rejects'],
      [throws.id, 'onSuccess', 'onSuccess hook throws'],
    ]);
    const hung = daemon.logsWith('a task hook did not finish within its hookTimeout; it is no longer waited for (its code may still be running) and the outcome stands');
    expect(hung.map((l) => [l.id, l.hook, l.hookTimeoutMs])).toEqual([[hangs.id, 'onSuccess', 300]]);
    expect(runsOf('hook_throws').length).toBe(1);
    expect(runsOf('hook_hangs').length).toBe(1);
    expect(ls(join(root, 'dead'))).toEqual([]);
  });
});

describe('the log event of each outcome', () => {
  it('names the task, its id, attempt and run time: processed at debug, the other endings at info or warn', async () => {
    const spooler = Spooler.open(root);
    const ok = await spooler.enqueue({ name: 'hooked', args: ['ok', 'ok'] });
    const skip = await spooler.enqueue({ name: 'hooked', args: ['skip', 'skip'] });
    const fail = await spooler.enqueue({ name: 'hooked', args: ['fail', 'fail'], options: { retries: 1, backoff: { kind: 'constant', delay: 50 } } });
    const daemon = await testSpool.serve({ imports: ['outcomes'], args: ['--concurrency', '1', '--log-level', 'debug'] });
    await waitForDead(fail, daemon);
    await waitForEmpty(daemon);
    // The file moves before its log line reaches this test: wait for the line, then compare.
    await waitFor(() => daemon.logsWith('task is a dead letter: out of retries').length > 0 || undefined, { what: 'the dead letter log line', explain: () => daemon.describe() });
    const fields = (l: Record<string, unknown>) => [l.level, l.task, l.id, l.attempt, typeof l.durationMs];
    expect(daemon.logsWith('task processed').map(fields)).toEqual([['debug', 'hooked', ok.id, 0, 'number']]);
    expect(daemon.logsWith('task skipped').map(fields)).toEqual([['info', 'hooked', skip.id, 0, 'number']]);
    expect(daemon.logsWith('task rescheduled').map(fields)).toEqual([['warn', 'hooked', fail.id, 0, 'number']]);
    expect(daemon.logsWith('task is a dead letter: out of retries').map(fields)).toEqual([['warn', 'hooked', fail.id, 1, 'number']]);
  });
});
