/**
 * Retention end to end (README, "Retention"; SPOOL-FORMAT.md, "State
 * changes", expire): --keep-dead and --keep-archive enforced by the daemon's
 * periodic sweep, a dead letter going with its failure record; and no
 * command leaves an orphaned state/<id>.json: `spool retry` of a dead letter
 * that then succeeds, `spool rm`, `spool purge`.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { spool } from './helpers/cli.js';
import { describeSpool, ls, waitFor } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let root: string;
let dir: string;
const testSpool = useDaemonSpool('spoolerd-retention-', { bind: (s) => ({ root, dir } = s) });
const record = (id: string) => join(root, 'state', `${id}.json`);
const ARGS = ['--scan-interval', '200ms', '--processes', '0', '--log-level', 'debug'];

describe('--keep-dead and --keep-archive', () => {
  it('the daemon deletes a dead letter and its failure record once it has been dead longer than --keep-dead', { timeout: 60_000 }, async () => {
    const spooler = Spooler.open(root);
    const h = await spooler.enqueue({ name: 'always_fails', args: ['k'], options: { retries: 0 } });
    const daemon = await testSpool.serve({ imports: ['retry'], args: [...ARGS, '--keep-dead', '1500ms'] });
    await daemon.waitForLog((l) => l.msg === 'task is a dead letter: out of retries' && l.id === h.id);
    expect(ls(join(root, 'dead'))).toHaveLength(1);
    expect(existsSync(record(h.id))).toBe(true);
    const diedAt = Date.now();
    const deleted = await daemon.waitForLog((l) => l.msg === 'deleted dead letters past --keep-dead', { timeoutMs: 20_000 });
    expect(deleted).toEqual(expect.objectContaining({ count: 1, keepMs: 1500 }));
    expect(Date.parse(deleted.time)).toBeGreaterThanOrEqual(diedAt + 1000);
    expect(ls(join(root, 'dead'))).toEqual([]);
    expect(existsSync(record(h.id))).toBe(false);
  });

  it('with --archive, the daemon deletes archived tasks once older than --keep-archive, and keeps dead letters without --keep-dead', { timeout: 60_000 }, async () => {
    const spooler = Spooler.open(root);
    const dead = await spooler.enqueue({ name: 'always_fails', args: ['d'], options: { retries: 0 } });
    const done = await spooler.enqueue({ name: 'resched', args: ['a', 0, 0] });
    const daemon = await testSpool.serve({ imports: ['retry'], args: [...ARGS, '--archive', '--keep-archive', '1s'] });
    await daemon.waitForLog((l) => l.msg === 'task processed' && l.id === done.id);
    await daemon.waitForLog((l) => l.msg === 'deleted archived tasks past --keep-archive', { timeoutMs: 20_000 });
    expect(ls(join(root, 'archive'))).toEqual([]);
    // --keep-dead is not set: dead letters stay, with their records.
    expect(ls(join(root, 'dead')).filter((f) => f.includes(dead.id))).toHaveLength(1);
    expect(existsSync(record(dead.id))).toBe(true);
  });
});

describe('no orphaned failure record', () => {
  it('spool retry of a dead letter removes its record; the task then succeeds and leaves nothing in state/ but status files', { timeout: 60_000 }, async () => {
    const spooler = Spooler.open(root);
    const marker = join(dir, 'marker');
    const h = await spooler.enqueue({ name: 'fails_until_marker', args: ['k', marker], options: { retries: 0 } });
    const daemon = await testSpool.serve({ imports: ['retry'], args: ARGS });
    await daemon.waitForLog((l) => l.msg === 'task is a dead letter: out of retries' && l.id === h.id);
    expect(existsSync(record(h.id))).toBe(true);
    writeFileSync(marker, '');
    expect(spool(['retry', '--dir', root, h.id])).toEqual(expect.objectContaining({ code: 0 }));
    expect(existsSync(record(h.id))).toBe(false);
    await daemon.waitForLog((l) => l.msg === 'task processed' && l.id === h.id);
    expect(ls(join(root, 'state')).filter((f) => !f.startsWith('daemon-'))).toEqual([]);
    expect(describeSpool(root)).not.toContain(h.id);
  });

  it('a task that failed, was retried and then succeeded leaves no record of its failed attempt (it keeps no result)', { timeout: 60_000 }, async () => {
    const spooler = Spooler.open(root);
    const marker = join(dir, 'marker');
    const h = await spooler.enqueue({ name: 'fails_until_marker', args: ['k', marker], options: { retries: 3, backoff: { delay: '1s' } } });
    const daemon = await testSpool.serve({ imports: ['retry'], args: ARGS });
    await daemon.waitForLog((l) => l.msg === 'task rescheduled' && l.id === h.id);
    expect(existsSync(record(h.id))).toBe(true);
    writeFileSync(marker, '');
    await daemon.waitForLog((l) => l.msg === 'task processed' && l.id === h.id, { timeoutMs: 20_000 });
    expect(ls(join(root, 'state')).filter((f) => !f.startsWith('daemon-') && !f.startsWith('.record-'))).toEqual([]);
  });

  it('spool rm and spool purge of dead letters remove their records', { timeout: 60_000 }, async () => {
    const spooler = Spooler.open(root);
    const a = await spooler.enqueue({ name: 'always_fails', args: ['a'], options: { retries: 0 } });
    const b = await spooler.enqueue({ name: 'always_fails', args: ['b'], options: { retries: 0 } });
    const daemon = await testSpool.serve({ imports: ['retry'], args: ARGS });
    for (const h of [a, b]) await daemon.waitForLog((l) => l.msg === 'task is a dead letter: out of retries' && l.id === h.id);
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    expect(spool(['rm', '--dir', root, a.id]).code).toBe(0);
    expect(existsSync(record(a.id))).toBe(false);
    expect(spool(['purge', '--dir', root, '--state', 'dead'])).toEqual({ code: 0, stdout: 'purged 1 task\n', stderr: '' });
    expect(existsSync(record(b.id))).toBe(false);
    expect(ls(join(root, 'state'))).toEqual([]);
    await waitFor(() => ls(join(root, 'dead')).length === 0, { what: 'dead/ empty', explain: () => describeSpool(root) });
  });
});
