/**
 * Graceful stop (README, "Crashes"; SPOOL-FORMAT.md, "Graceful stop"): on
 * SIGTERM or SIGINT a daemon stops claiming, lets running tasks finish within
 * --grace, returns unfinished ones to incoming/ without counting an attempt,
 * and exits 0; a second signal returns them at once and exits 1.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { describeSpool, ls, lsActive, parseName, readRecords, startServing, waitFor, type DaemonProcess, type TaskRecord } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let dir: string;
let root: string;
let records: string;
const testSpool = useDaemonSpool('spoolerd-sigterm-', { bind: (s) => ({ dir, root, records } = s) });

const serve = (grace: string) => testSpool.serve({ imports: ['block', 'retry'], args: ['--concurrency', '1', '--grace', grace] });

function waitForStart(daemon: DaemonProcess, task: string, where: (r: TaskRecord) => boolean = () => true): Promise<TaskRecord> {
  return waitFor(() => readRecords(records).find((r) => r.task === task && r.phase === 'started' && where(r)), {
    what: `${task} to start`,
    explain: () => `${describeSpool(root)}\n${daemon.describe()}`,
  });
}

describe('SIGTERM', () => {
  it('waits for a running task that finishes within the grace period, then exits 0 with nothing left in active/', async () => {
    const spooler = Spooler.open(root);
    const gate = join(dir, 'gate');
    // The running task finishes only once the test opens the gate, after the signal.
    await spooler.enqueue({ name: 'wait_for_file', args: ['gated', gate] });
    const waiting = await spooler.enqueue({ name: 'block', args: ['never-claimed', 10], options: { priority: 99 } });
    const daemon = await serve('20s');
    await waitForStart(daemon, 'wait_for_file');
    const signalledAt = Date.now();
    daemon.signal('SIGTERM');
    await daemon.waitForLog((l) => l.msg === 'stopping: no new tasks are claimed; running ones may finish');
    // Its status file, rewritten every second until the stop ends, is rewritten once more with the task still running.
    await testSpool.waitForStatus(daemon, (s) => s.running.length === 1, { what: 'a status file written while stopping, the task still running' });
    expect(daemon.exit, 'the daemon did not wait for its running task').toBeUndefined();
    writeFileSync(gate, '');
    expect(await daemon.waitForExit(25_000)).toEqual({ code: 0, signal: null });

    const runs = readRecords(records);
    // The running task finished; the queued one was not claimed once the signal came.
    expect(runs.map((r) => [(r.args as unknown[])[0], r.phase])).toEqual([
      ['gated', 'started'],
      ['gated', 'finished'],
    ]);
    expect(runs[1]!.time).toBeGreaterThanOrEqual(signalledAt);
    expect(lsActive(root)).toEqual([]);
    expect(ls(join(root, 'active'))).toEqual([]);
    expect(ls(join(root, 'incoming'))).toEqual([waiting.fileName]);
    expect(ls(join(root, 'pending'))).toEqual([]);
    expect(ls(join(root, 'dead'))).toEqual([]);
    expect(ls(join(root, 'locks'))).toEqual([]);
    expect(daemon.logsWith('stopping: no new tasks are claimed; running ones may finish')).toEqual([
      expect.objectContaining({ signal: 'SIGTERM', running: 1, graceMs: 20_000 }),
    ]);
    expect(daemon.logsWith('grace period over: unfinished tasks were returned to the spool')).toEqual([]);
    expect(daemon.logsWith('stopped')).toEqual([expect.objectContaining({ processed: 1, running: 0 })]);
  });

  it('lets the task finish when the signal reaches its worker process too (Ctrl-C signals the whole process group)', async () => {
    const spooler = Spooler.open(root);
    const gate = join(dir, 'gate');
    await spooler.enqueue({ name: 'wait_for_file', args: ['gated', gate] });
    const daemon = await startServing({ dir: root, imports: ['block', 'retry'], records, args: ['--concurrency', '1', '--processes', '1', '--grace', '20s'] });
    const started = await waitForStart(daemon, 'wait_for_file');
    expect(started.workerPid).not.toBe(started.pid);
    // What a terminal does on Ctrl-C: SIGINT to every process of the foreground group.
    process.kill(started.workerPid as number, 'SIGINT');
    daemon.signal('SIGINT');
    await daemon.waitForLog((l) => l.msg === 'stopping: no new tasks are claimed; running ones may finish');
    // Its status file, rewritten every second until the stop ends, is rewritten once more with the task still running.
    await testSpool.waitForStatus(daemon, (s) => s.running.length === 1, { what: 'a status file written while stopping, the task still running' });
    expect(daemon.exit, 'the daemon did not wait for its running task').toBeUndefined();
    writeFileSync(gate, '');
    expect(await daemon.waitForExit(25_000)).toEqual({ code: 0, signal: null });
    expect(readRecords(records).map((r) => [(r.args as unknown[])[0], r.phase, r.workerPid])).toEqual([
      ['gated', 'started', started.workerPid],
      ['gated', 'finished', started.workerPid],
    ]);
    expect(daemon.logs.filter((l) => l.level === 'error')).toEqual([]);
    expect(lsActive(root)).toEqual([]);
    expect(ls(join(root, 'incoming'))).toEqual([]);
    expect(ls(join(root, 'pending'))).toEqual([]);
    expect(ls(join(root, 'dead'))).toEqual([]);
  });

  it('returns a task that outlasts the grace period to incoming/ with the same attempt count, and exits 0', async () => {
    const spooler = Spooler.open(root);
    // Its first attempt fails, so it is at a1 when it blocks: the count must stay 1, neither reset nor raised.
    const h = await spooler.enqueue({ name: 'fail_then_block', args: ['long', 60_000], options: { retries: 3, backoff: { kind: 'constant', delay: 50 } } });
    const daemon = await serve('1s');
    const started = await waitForStart(daemon, 'fail_then_block');
    expect(started.attempt).toBe(1);
    const claimedName = started.file as string;
    expect(parseName(claimedName)).toEqual(expect.objectContaining({ id: h.id, attempts: 1 }));

    const signalledAt = Date.now();
    daemon.signal('SIGTERM');
    expect(await daemon.waitForExit(20_000)).toEqual({ code: 0, signal: null });
    const tookMs = Date.now() - signalledAt;
    expect(tookMs).toBeGreaterThanOrEqual(1000);
    expect(tookMs).toBeLessThan(30_000);

    // Back in incoming/ under exactly the name it was claimed with: same due time, same attempt count.
    expect(ls(join(root, 'incoming'))).toEqual([claimedName]);
    expect(lsActive(root)).toEqual([]);
    for (const sub of ['pending', 'dead']) expect(ls(join(root, sub)), sub).toEqual([]);
    expect(readRecords(records).filter((r) => r.phase === 'finished')).toEqual([]);
    expect(daemon.logsWith('grace period over: unfinished tasks were returned to the spool')).toEqual([expect.objectContaining({ returned: 1 })]);
    expect(daemon.logsWith('task returned to the spool unfinished; it will run again')).toEqual([expect.objectContaining({ file: claimedName })]);
  });

  it('a returned task runs again in the next daemon with its attempt unchanged', async () => {
    const spooler = Spooler.open(root);
    const h = await spooler.enqueue({ name: 'block_first_attempt', args: ['again', 60_000] });
    const first = await serve('500ms');
    await waitForStart(first, 'block_first_attempt');
    expect(await first.stop('SIGTERM', 20_000)).toEqual({ code: 0, signal: null });
    expect(ls(join(root, 'incoming'))).toEqual([h.fileName]);

    // The file is unchanged (a0), so the next run is attempt 0 again and blocks again; stop that one too,
    // then check the name once more: returning never counts an attempt.
    const second = await serve('500ms');
    await waitForStart(second, 'block_first_attempt', (r) => r.pid === second.pid);
    expect(readRecords(records).filter((r) => r.phase === 'started').map((r) => [r.pid, r.attempt])).toEqual([
      [first.pid, 0],
      [second.pid, 0],
    ]);
    expect(await second.stop('SIGINT', 20_000)).toEqual({ code: 0, signal: null });
    expect(ls(join(root, 'incoming'))).toEqual([h.fileName]);
  });
});

describe('a second signal', () => {
  for (const [first, second] of [
    ['SIGTERM', 'SIGINT'],
    ['SIGTERM', 'SIGTERM'],
    ['SIGINT', 'SIGINT'],
  ] as const) {
    it(`(${first}, then ${second}) exits at once, well before the grace period, with exit code 1, and still returns the running task`, async () => {
      const spooler = Spooler.open(root);
      const h = await spooler.enqueue({ name: 'block', args: ['stuck', 120_000] });
      const daemon = await serve('60s');
      await waitForStart(daemon, 'block');
      daemon.signal(first);
      await daemon.waitForLog((l) => l.msg === 'stopping: no new tasks are claimed; running ones may finish');
      const secondAt = Date.now();
      daemon.signal(second);
      expect(await daemon.waitForExit(15_000)).toEqual({ code: 1, signal: null });
      expect(Date.now() - secondAt).toBeLessThan(15_000);

      expect(ls(join(root, 'incoming'))).toEqual([h.fileName]);
      expect(lsActive(root)).toEqual([]);
      for (const sub of ['pending', 'dead']) expect(ls(join(root, sub)), sub).toEqual([]);
      expect(daemon.logsWith('second signal: stopping now')).toEqual([expect.objectContaining({ signal: second, returnedUnfinished: 1 })]);
    });
  }
});
