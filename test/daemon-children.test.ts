/**
 * Children and continuations across real daemons (README, "Children and
 * continuations"; SPOOL-FORMAT.md, "Children and continuations"). The tasks are
 * test/fixtures/tasks/flows.mjs; each `leaf` child records how many of its
 * siblings were under way when it started.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { describeSpool, readRecords, waitFor, type DaemonProcess, type TaskRecord } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';
import { spool as runSpool } from './helpers/cli.js';

const spool = useDaemonSpool('spoolerd-children-');
const env = () => ({ FLOW_TEST_RUNNING: join(spool.dir, 'running') });
const records = (task: string): TaskRecord[] => readRecords(spool.records).filter((r) => r.task === task);
const explain = (daemons: DaemonProcess[]) => () => `${describeSpool(spool.root)}\n${daemons.map((d) => d.describe(15)).join('\n')}`;
const ARGS = ['--scan-interval', '200ms', '--concurrency', '8'];

describe('children with a continuation', () => {
  it('runs 20 children at most 3 at once and hands all 20 endings, in order, to the continuation, once', async () => {
    const spooler = Spooler.open(spool.root);
    const parent = await spooler.enqueue({ name: 'fan_out', args: [20, 3, 30, 13] });
    const daemon = await spool.serve({ imports: ['flows', 'basic'], env: env(), args: ARGS });
    await waitFor(() => records('collect').length >= 1, { timeoutMs: 15_000, what: 'the continuation to run', explain: explain([daemon]) });

    const leaves = records('leaf').filter((r) => r.parent === parent.id);
    expect(leaves).toHaveLength(19);
    // Never more than 3 siblings under way at once, as the children saw it; and the limit is used (3, not 1).
    expect(Math.max(...leaves.map((r) => r.running as number))).toBe(3);
    const [collect] = records('collect');
    expect(collect!.parent).toBe(parent.id);
    expect(collect!.tag).toBe('fan');
    const endings = collect!.endings as { id: string; name: string; ending: string; value?: number; error?: { message: string } }[];
    const [fan] = records('fan_out');
    expect(endings.map((e) => e.id)).toEqual(fan!.children);
    expect(endings.map((e) => e.ending)).toEqual(Array.from({ length: 20 }, (_, i) => (i === 13 ? 'dead' : 'processed')));
    expect(endings.filter((e) => e.ending === 'processed').map((e) => e.value)).toEqual(Array.from({ length: 20 }, (_, i) => i * 10).filter((_, i) => i !== 13));
    expect(endings[13]).toMatchObject({ name: 'bad_leaf', error: { message: 'bad leaf 13' } });
    // `spool show` lists the parent's children and their states; a child shows its parent.
    const show = runSpool(['show', parent.id, '--dir', spool.root, '--json']);
    expect(show.code, show.stderr).toBe(0);
    const shown = JSON.parse(show.stdout) as { children?: { id: string; state: string }[]; continuation?: { id: string; state: string } };
    expect(shown.children?.map((c) => c.id)).toEqual(fan!.children);
    expect(shown.children?.map((c) => c.state)).toEqual(endings.map((e) => e.ending));
    // Exactly one continuation, even after a marker run proves the daemon went on.
    await spool.runMarker(daemon, 100);
    expect(records('collect')).toHaveLength(1);
  }, 30_000);

  it('enqueues the continuation exactly once when the daemon is killed (-9) between the last .done and its enqueue', async () => {
    const spooler = Spooler.open(spool.root);
    const parent = await spooler.enqueue({ name: 'fan_out', args: [5, 5, 0] });
    // A runs tasks in its own thread, so the test hook kills the daemon itself when the continuation is due.
    const a = await spool.serve({ imports: ['flows'], env: { ...env(), SPOOLERD_TEST_FLOW_CRASH: 'due' }, args: [...ARGS, '--processes', '0'] });
    const exit = await a.waitForExit(15_000);
    expect(exit.signal).toBe('SIGKILL');
    expect(a.logs.some((l) => l.msg === 'test: killing this process when a continuation is due, before its enqueue')).toBe(true);
    expect(records('collect')).toEqual([]);
    const b = await spool.serve({ imports: ['flows', 'basic'], env: env(), args: [...ARGS, '--stale-after', '2s'] });
    await waitFor(() => records('collect').length >= 1, { timeoutMs: 15_000, what: 'the continuation to run in B', explain: explain([a, b]) });
    await spool.runMarker(b, 100);
    const collects = records('collect');
    expect(collects).toHaveLength(1);
    expect(collects[0]!.parent).toBe(parent.id);
    expect((collects[0]!.endings as { value: number }[]).map((e) => e.value)).toEqual([0, 10, 20, 30, 40]);
  }, 30_000);
});

describe('children enqueued once', () => {
  it('adds nothing on a second call or on a rerun of the parent', async () => {
    const spooler = Spooler.open(spool.root);
    const parent = await spooler.enqueue({ name: 'once_parent', args: ['once'] });
    const daemon = await spool.serve({ imports: ['flows'], env: env(), args: ARGS });
    await waitFor(() => records('collect').length >= 1, { timeoutMs: 15_000, what: 'the continuation of the rerun parent', explain: explain([daemon]) });
    const runs = records('once_parent');
    expect(runs.map((r) => r.attempt)).toEqual([0, 1]);
    const id = (runs[0]!.ids as string[])[0]!;
    // One child id throughout; only the very first call enqueued it.
    expect(runs.flatMap((r) => r.ids as string[])).toEqual([id, id, id, id]);
    expect(runs.map((r) => r.existing)).toEqual([
      [false, true],
      [true, true],
    ]);
    expect(records('leaf').filter((r) => r.parent === parent.id)).toHaveLength(1);
    const [collect] = records('collect');
    expect(collect!.endings).toEqual([{ id, name: 'leaf', ending: 'processed', value: 70 }]);
  }, 30_000);
});

describe('waitForChildren', () => {
  it("waits inside the task for its children's values, in order, and throws a child's failure as handle.result() does", async () => {
    const spooler = Spooler.open(spool.root);
    await spooler.enqueue({ name: 'waiter', args: [4, true] });
    const daemon = await spool.serve({ imports: ['flows'], env: env(), args: ARGS });
    await waitFor(() => records('waiter').length >= 1, { timeoutMs: 15_000, what: 'the waiting parent to finish', explain: explain([daemon]) });
    const [w] = records('waiter');
    expect(w!.values).toEqual([0, 10, 20, 30]);
    expect(w!.error).toEqual({ name: 'TaskFailedError', message: expect.stringContaining('bad leaf 99') });
  }, 30_000);
});

describe('cancelling a parent', () => {
  it('cancels its children that have not ended (running, held back by the limit, postponed) and no continuation runs', async () => {
    const spooler = Spooler.open(spool.root);
    const gate = join(spool.dir, 'gate');
    const parent = await spooler.enqueue({ name: 'cancel_parent', args: [gate] });
    const daemon = await spool.serve({ imports: ['flows', 'basic'], env: env(), args: ARGS });
    await waitFor(() => records('gate_leaf').length >= 1 && records('cancel_parent').length >= 1, { timeoutMs: 15_000, what: 'the running child to start', explain: explain([daemon]) });
    const children = records('cancel_parent')[0]!.children as string[];
    // The parent has ended (the continuation pattern); its children wait or run.
    const show = JSON.parse(runSpool(['show', parent.id, '--dir', spool.root]).stdout) as { children: { id: string; state: string }[] };
    expect(show.children.map((c) => c.state)).toEqual(['active', 'limited', 'limited', 'scheduled']);

    const cancel = runSpool(['cancel', parent.id, '--dir', spool.root]);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(cancel.stdout).toContain('cancelled 4 of its children');
    await waitFor(() => records('gate_leaf').some((r) => r.phase === 'ended'), { what: 'the running child to see its cancel', explain: explain([daemon]) });
    expect(records('gate_leaf').find((r) => r.phase === 'ended')!.aborted).toBe(true);
    // The running child ended as cancelled; had the continuation been enqueued, it would run before the marker.
    writeFileSync(gate, '');
    await waitFor(() => existsSync(join(spool.root, 'children', parent.id, `${children[0]}.done`)), { what: "the cancelled child's .done" });
    await spool.runMarker(daemon, 300);
    expect(records('collect')).toEqual([]);
    expect(records('leaf').filter((r) => r.parent === parent.id)).toEqual([]);
    const after = JSON.parse(runSpool(['show', parent.id, '--dir', spool.root]).stdout) as { children: { id: string; state: string }[]; continuation: { state: string } };
    expect(after.children.map((c) => c.state)).toEqual(['cancelled', 'unknown', 'unknown', 'unknown']);
    expect(after.continuation.state).toBe('never');
    // A child shows its parent.
    const child = JSON.parse(runSpool(['show', children[0]!, '--dir', spool.root]).stdout) as { parent: string; state: string };
    expect(child).toMatchObject({ parent: parent.id, state: 'cancelled' });
  }, 30_000);
});

