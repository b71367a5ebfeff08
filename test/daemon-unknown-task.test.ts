/**
 * Unknown tasks (README, "Unknown tasks"; SPOOL-FORMAT.md, "Unknown tasks"): a
 * task whose name no imported module registers fails with UnknownTaskError:
 * the attempt is counted, it is retried by its backoff, and after its retry
 * limit it is a dead letter whose error names the missing task. It is never
 * retried forever, and the tasks around it run.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { spool } from './helpers/cli.js';
import { describeSpool, ls, lsActive, parseName, readRecords, startServing, waitFor } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let root: string;
let records: string;
const testSpool = useDaemonSpool('spoolerd-unknown-', { bind: (s) => ({ root, records } = s) });

describe('a task no module registers', () => {
  it('is retried by its backoff with attempts counted, then is a dead letter whose error names the task; good tasks around it run', async () => {
    const spooler = Spooler.open(root);
    const before = await spooler.enqueue({ name: 'echo', args: ['before'], options: { priority: 10 } });
    const unknown = await spooler.enqueue({ name: 'no_such_task', args: ['x', 1], options: { priority: 20, retries: 2, backoff: { kind: 'constant', delay: 150 } } });
    const after = await spooler.enqueue({ name: 'echo', args: ['after'], options: { priority: 30 } });
    const daemon = await startServing({ dir: root, imports: ['basic'], records, args: ['--scan-interval', '1s', '--log-level', 'debug'] });
    const live = await spooler.enqueue({ name: 'echo', args: ['enqueued-while-running'] });

    const deadName = await waitFor(() => ls(join(root, 'dead')).find((f) => f.includes(unknown.id)), {
      what: 'the unknown task in dead/',
      explain: () => `${describeSpool(root)}\n${daemon.describe()}`,
    });

    // The dead-letter line comes last; the file may be seen before the log line has come through the pipe.
    const deadLine = await daemon.waitForLog((l) => l.msg === 'task is a dead letter: out of retries' && l.id === unknown.id);

    // Observed: three failed attempts (the first and two retries), 150 ms apart, then dead/ with a3.
    expect(parseName(deadName)).toEqual(expect.objectContaining({ id: unknown.id, name: 'no_such_task', attempts: 3 }));
    const retries = daemon.logsWith('task rescheduled').filter((l) => l.id === unknown.id);
    expect(retries.map((l) => [l.level, l.attempt, l.inMs, l.retriesLeft])).toEqual([
      ['warn', 0, 150, 1],
      ['warn', 1, 150, 0],
    ]);
    for (const l of retries) {
      expect(l.error).toContain('no task named "no_such_task"');
      expect(l.error).toContain('registered tasks: ');
      expect(l.error).toContain('echo');
    }
    const record = JSON.parse(readFileSync(join(root, 'state', `${unknown.id}.json`), 'utf8')) as Record<string, any>;
    expect(record).toEqual(expect.objectContaining({ id: unknown.id, name: 'no_such_task', attempts: 3 }));
    expect(record.error.name).toBe('UnknownTaskError');
    expect(record.error.message).toMatch(/^no task named "no_such_task" \(type fcall\) is registered; registered tasks: .*\becho\b/);
    expect(deadLine).toEqual(expect.objectContaining({ level: 'warn', task: 'no_such_task', attempt: 2, retries: 2, error: record.error.message }));
    expect(daemon.logsWith('task is a dead letter: out of retries')).toHaveLength(1);
    const ls1 = spool(['ls', '--dir', root, '--state', 'dead', '--json']);
    expect(ls1.stderr).toBe('');
    expect(ls1.code).toBe(0);
    expect(JSON.parse(ls1.stdout)).toEqual([expect.objectContaining({ id: unknown.id, name: 'no_such_task', state: 'dead', attempts: 3 })]);

    // The good tasks ran, each once, and the first two in priority order around the unknown one.
    await waitFor(() => readRecords(records).length === 3 && lsActive(root).length === 0, { what: 'three good runs' });
    expect(readRecords(records).map((r) => (r.args as unknown[])[0]).sort()).toEqual(['after', 'before', 'enqueued-while-running']);
    await daemon.waitForLog((l) => l.msg === 'task processed' && l.id === live.id);
    await daemon.waitForLog((l) => l.msg === 'task processed' && l.id === after.id);
    expect(daemon.logsWith('task processed').map((l) => l.id).sort()).toEqual([before.id, after.id, live.id].sort());

    // It is not retried any more: a retry would be due 150 ms on (its backoff), long before the marker.
    await testSpool.runMarker(daemon, 1500);
    expect(daemon.logsWith('task rescheduled').filter((l) => l.id === unknown.id)).toHaveLength(2);
    expect(ls(join(root, 'dead'))).toEqual([deadName]);
    for (const sub of ['incoming', 'pending']) expect(ls(join(root, sub)), sub).toEqual([]);
    expect(daemon.exit).toBeUndefined();
  });

  it('enqueued by `spool add` without a retry policy, it ends as a dead letter after the default 3 retries (with --retries 1: after 1)', async () => {
    const add = spool(['add', '--dir', root, '--create', 'not_registered_anywhere', '"arg"', '--retries', '1']);
    expect(add.code).toBe(0);
    const id = add.stdout.trim();
    const daemon = await startServing({ dir: root, imports: ['basic'], records, args: ['--scan-interval', '1s'] });
    // The default backoff is exponential from 1 s (jitter 0.1): one retry after about a second.
    const deadName = await waitFor(() => ls(join(root, 'dead')).find((f) => f.includes(id)), {
      timeoutMs: 15_000,
      what: 'the unknown task in dead/',
      explain: () => `${describeSpool(root)}\n${daemon.describe()}`,
    });
    expect(parseName(deadName)?.attempts).toBe(2);
    await daemon.waitForLog((l) => l.msg === 'task is a dead letter: out of retries' && l.id === id);
    const retries = daemon.logsWith('task rescheduled').filter((l) => l.id === id);
    expect(retries).toHaveLength(1);
    expect(retries[0]!.inMs).toBeGreaterThanOrEqual(900);
    expect(retries[0]!.inMs).toBeLessThanOrEqual(1100);
    const record = JSON.parse(readFileSync(join(root, 'state', `${id}.json`), 'utf8')) as Record<string, any>;
    expect(record.error).toEqual(expect.objectContaining({ name: 'UnknownTaskError' }));
    expect(record.error.message).toContain('no task named "not_registered_anywhere"');
  });
});
