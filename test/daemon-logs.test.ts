/**
 * What the daemon says about normal operation (README, "What the logs say"):
 * a retry is one line, its stack only at --log-level debug (the dead letter
 * keeps it); the task names the modules registered are logged at start-up;
 * a task name nothing registered is warned about once; and a crowded
 * incoming/ is reported once at info, later pauses at debug.
 */
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { describeSpool, readRecords, startDaemon, startServing, waitFor, type LogLine } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let root: string;
let records: string;
useDaemonSpool('spoolerd-logs-', { bind: (s) => ({ root, records } = s) });

const retryOptions = { retries: 1, backoff: { kind: 'constant' as const, delay: 100 } };

describe('a retried attempt', () => {
  it('is one warning line with task, id, attempt, error message and next try, and no stack at info', async () => {
    const spooler = Spooler.open(root);
    const h = await spooler.enqueue({ name: 'always_fails', args: ['k1'], options: retryOptions });
    const daemon = await startServing({ dir: root, imports: ['retry'], records, args: ['--concurrency', '1'] });
    const dead = await daemon.waitForLog((l) => l.msg === 'task is a dead letter: out of retries' && l.id === h.id);
    const retries = daemon.logsWith('task rescheduled');
    expect(retries).toHaveLength(1);
    const line = retries[0]!;
    expect(line).toEqual(
      expect.objectContaining({ level: 'warn', task: 'always_fails', id: h.id, attempt: 0, inMs: 100, retriesLeft: 0, error: 'always_fails k1 boom (attempt 0)' }),
    );
    expect(Date.parse(line.nextTry as string) - Date.parse(line.time)).toBeGreaterThanOrEqual(0);
    expect(Date.parse(line.nextTry as string) - Date.parse(line.time)).toBeLessThan(5_000);
    expect(line).not.toHaveProperty('stack');
    // The dead letter keeps the stack.
    expect(dead.stack).toContain('retry.mjs');
  });

  it('prints as a single line in the pretty format at info', async () => {
    const spooler = Spooler.open(root);
    const h = await spooler.enqueue({ name: 'always_fails', args: ['k2'], options: retryOptions });
    const daemon = startDaemon({ dir: root, imports: ['retry'], records, logFormat: 'pretty', args: ['--concurrency', '1'] });
    await waitFor(() => daemon.rawStderr.some((l) => l.includes('task is a dead letter') && l.includes(h.id)), {
      what: 'the dead-letter line',
      explain: () => daemon.rawStderr.join('\n'),
    });
    const at = daemon.rawStderr.findIndex((l) => l.includes('task rescheduled'));
    expect(at).toBeGreaterThanOrEqual(0);
    expect(daemon.rawStderr[at]).toContain('error="always_fails k2 boom (attempt 0)"');
    // The next line is the next record (the dead letter), not a stack frame.
    expect(daemon.rawStderr[at + 1]).toMatch(/^\d{4}-\d\d-\d\dT\S+ (WARN|INFO|DEBUG|ERROR) /);
  });

  it('carries its stack at --log-level debug', async () => {
    const spooler = Spooler.open(root);
    const h = await spooler.enqueue({ name: 'always_fails', args: ['k3'], options: retryOptions });
    const daemon = await startServing({ dir: root, imports: ['retry'], records, args: ['--concurrency', '1', '--log-level', 'debug'] });
    await daemon.waitForLog((l) => l.msg === 'task is a dead letter: out of retries' && l.id === h.id);
    const [line] = daemon.logsWith('task rescheduled');
    expect(line).toEqual(expect.objectContaining({ level: 'warn', id: h.id, error: 'always_fails k3 boom (attempt 0)' }));
    expect(line!.stack).toContain('always_fails k3 boom (attempt 0)');
    expect(line!.stack).toContain('retry.mjs');
  });
});

describe('task names', () => {
  for (const processes of ['0', '2']) {
    it(`are logged at start-up as the modules registered them (--processes ${processes})`, async () => {
      const daemon = await startServing({ dir: root, imports: ['retry', 'basic'], args: ['--processes', processes] });
      const [line] = daemon.logsWith('tasks registered');
      expect(line).toEqual(expect.objectContaining({ level: 'info', types: ['note'] }));
      expect(line!.tasks).toEqual(expect.arrayContaining(['always_fails', 'resched', 'echo', 'skip_me']));
      expect(line!.tasks).toEqual([...(line!.tasks as string[])].sort());
      // Said before the spool is served, so a reader knows what the daemon can run from the start.
      expect(daemon.logs.indexOf(line!)).toBeLessThan(daemon.logs.findIndex((l) => l.msg === 'serving spool'));
    });
  }

  it('that this daemon does not run are warned about once per name, whether found at start-up or arriving later', async () => {
    const spooler = Spooler.open(root);
    const fast = { retries: 0 };
    // Before start-up: two of one unknown name, one of a registered name.
    await spooler.enqueue({ name: 'send_email', args: ['a'], options: fast });
    await spooler.enqueue({ name: 'send_email', args: ['b'], options: fast });
    await spooler.enqueue({ name: 'echo', args: ['known'] });
    const daemon = await startServing({ dir: root, imports: ['basic'], records, args: ['--concurrency', '1', '--scan-interval', '500ms'] });
    const unmatched = () => daemon.logsWith('tasks in this spool have a name this daemon does not run: they wait for a daemon that runs them (dead letters after --unknown-after if none does)');
    expect(unmatched()).toEqual([expect.objectContaining({ level: 'warn', task: 'send_email', registered: expect.arrayContaining(['echo']) })]);

    // After start-up: the same unknown name again, and a new one; then a known task, to know the daemon got past them
    // (they are never claimed: they wait for a daemon that runs them).
    await spooler.enqueue({ name: 'send_email', args: ['c'], options: fast });
    await spooler.enqueue({ name: 'sendEmaill', args: ['d'], options: fast });
    await waitFor(() => daemon.logsWith('tasks in this spool have a name this daemon does not run: they wait for a daemon that runs them (dead letters after --unknown-after if none does)').length === 2, { what: 'the warning about sendEmaill' });
    await spooler.enqueue({ name: 'echo', args: ['after'] });
    await waitFor(() => readRecords(records).some((r) => (r.args as unknown[])[0] === 'after'), { what: 'the echo after', explain: () => describeSpool(root) });

    expect(unmatched().map((l: LogLine) => l.task)).toEqual(['send_email', 'sendEmaill']);
    expect(unmatched().some((l) => l.task === 'echo')).toBe(false);
  });

  it('count a registered task type as a name (tasks of other types than fcall are named by their type)', async () => {
    const spooler = Spooler.open(root);
    await spooler.sendMessageRaw('reindex', { payload: { table: 'users' } });
    const unknownType = await spooler.sendMessageRaw('hello', { type: 'shout', retries: 0 });
    const daemon = await startServing({ dir: root, imports: ['basic', 'message-handler'], records, args: ['--concurrency', '1'] });
    expect(daemon.logsWith('tasks registered')[0]).toEqual(expect.objectContaining({ types: ['message', 'note'] }));
    await waitFor(() => readRecords(records).some((r) => r.task === 'message:message'), { what: 'the message handled', explain: () => describeSpool(root) });
    // Not a type it runs: never claimed, it waits for a daemon that runs it.
    await daemon.waitForLog((l) => l.msg.startsWith('tasks in this spool have a name') && l.task === 'shout');
    expect(daemon.logs.some((l) => l.id === unknownType.id)).toBe(false);
    expect(daemon.logs.filter((l) => l.msg.startsWith('tasks in this spool have a name'))).toEqual([
      expect.objectContaining({ level: 'warn', task: 'shout', types: ['message', 'note'] }),
    ]);
  });

  it('none registered at all is a warning at start-up', async () => {
    const daemon = await startServing({ dir: root, imports: ['empty'], args: ['--processes', '1'] });
    expect(daemon.logsWith('the task modules registered no tasks: this daemon claims none (does a module call spooler.task()?)')).toHaveLength(1);
  });
});

describe('a crowded incoming/', () => {
  it('is reported once at info with the reason; later pauses go to debug', { timeout: 120_000 }, async () => {
    const spooler = Spooler.open(root);
    const daemon = startDaemon({ dir: root, imports: ['block'], records, args: ['--concurrency', '1', '--processes', '0', '--scan-interval', '500ms', '--log-level', 'debug'] });
    await daemon.waitUntilServing();
    const crowded = () => daemon.logsWith('incoming/ is crowded; watching paused, scanning it instead until it is small again');
    for (let round = 0; round < 2; round++) {
      const from = daemon.logs.length;
      // One slot and 1 ms per task: the flood piles up in incoming/ past the 1,000 that stop the watching.
      await spooler.enqueueMany(Array.from({ length: 1500 }, (_, i) => ({ name: 'quick', args: [`r${round}-${i}`, 1] })));
      await daemon.waitForLog((l) => l.msg.startsWith('incoming/ is crowded'), { from, timeoutMs: 30_000 });
      await daemon.waitForLog((l) => l.msg === 'incoming/ is small again; watching it', { from, timeoutMs: 60_000 });
    }
    expect(crowded()).toEqual([expect.objectContaining({ level: 'info', threshold: 1000, reason: expect.stringContaining('re-reads the whole folder') })]);
    expect(daemon.logsWith('incoming/ is crowded again; watching paused')).toEqual([expect.objectContaining({ level: 'debug' })]);
  });
});
