/**
 * The task context (README, "Task context"): a running task reads its id,
 * attempt, spool, AbortSignal and a logger bound to it through taskContext(),
 * in worker processes and in the daemon itself; tasks it enqueues (by wrapper,
 * in bulk, after awaiting a timer) carry its id in their body's `parent`.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { describeSpool, ls, lsActive, readRecords, startServing, waitFor, type TaskRecord } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';
import { realpathSync } from 'node:fs';

let root: string;
let records: string;
useDaemonSpool('spoolerd-context-', { bind: (s) => ({ root, records } = s) });

const runsOf = (task: string): TaskRecord[] => readRecords(records).filter((r) => r.task === task);

describe.each([['--processes', '2'], ['--processes', '0']])('a task (%s %s)', (...processes) => {
  it('sees its own context, logs through its logger, and the tasks it enqueues carry its id as parent', async () => {
    const spooler = Spooler.open(root);
    const p = await spooler.enqueue({ name: 'parent', args: ['p', 3] });
    const daemon = await startServing({ dir: root, imports: ['isolation'], records, args: ['--archive', ...processes] });
    await waitFor(
      () => runsOf('child').length === 4 && ['incoming', 'pending'].every((d) => ls(join(root, d)).length === 0) && lsActive(root).length === 0,
      { what: 'the parent and its 4 children to run', explain: () => `${describeSpool(root)}\n${JSON.stringify(readRecords(records))}\n${daemon.describe()}` },
    );

    const [parent] = runsOf('parent');
    expect(parent).toEqual(
      expect.objectContaining({
        id: p.id,
        name: 'parent',
        attempt: 0,
        fileName: p.fileName,
        spool: realpathSync(root),
        parent: null,
        signalIsAbortSignal: true,
        aborted: false,
        pid: daemon.pid,
      }),
    );
    if (processes[1] === '0') expect(parent!.workerPid).toBe(daemon.pid);
    else expect(parent!.workerPid).not.toBe(daemon.pid);

    // Its log line carries the task's name, id and attempt.
    const hello = await daemon.waitForLog((l) => l.msg === 'hello from inside a task');
    expect(hello).toEqual(expect.objectContaining({ level: 'info', key: 'p', task: 'parent', id: p.id, attempt: 0 }));

    // Every child ran once and saw the parent's id in its own context.
    const children = runsOf('child');
    expect(children.map((c) => (c.args as string[])[0]).sort()).toEqual(['p-after-timer', 'p-bulk-0', 'p-bulk-1', 'p-via-wrapper']);
    expect(children.every((c) => c.parent === p.id && c.attempt === 0)).toBe(true);

    // And the bodies on disk (kept by --archive) say so: `parent` is the parent's id; the parent has none.
    const archived = readdirSync(join(root, 'archive'));
    expect(archived).toHaveLength(5);
    for (const file of archived) {
      const task = Spooler.readTaskFile(join(root, 'archive', file));
      expect(task.body.parent).toBe(task.id === p.id ? undefined : p.id);
    }
  });
});
