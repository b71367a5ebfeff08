/**
 * Children and continuations across real daemons (README, "Children and
 * continuations"; SPOOL-FORMAT.md, "Children and continuations"). The tasks are
 * test/fixtures/tasks/flows.mjs; each `leaf` child records how many of its
 * siblings were under way when it started.
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
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
    const daemon = await spool.serve({ imports: ['flows'], env: env(), args: ARGS });
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
    expect(show.status, show.stderr).toBe(0);
    const shown = JSON.parse(show.stdout) as { children?: { id: string; state: string }[]; continuation?: { id: string; state: string } };
    expect(shown.children?.map((c) => c.id)).toEqual(fan!.children);
    expect(shown.children?.map((c) => c.state)).toEqual(endings.map((e) => e.ending));
    // Exactly one continuation, even after a marker run proves the daemon went on.
    await spool.runMarker(daemon, 100);
    expect(records('collect')).toHaveLength(1);
  }, 30_000);
});
