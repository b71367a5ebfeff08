/**
 * Expiry (README "Expiry", SPOOL-FORMAT.md "Expiry"), with the real daemon and
 * `spool`: a task claimed after its `expires` time never starts; it ends as
 * expired (kept as a result where results are kept: `spool wait` exits 13,
 * handle.result() rejects with TaskExpiredError), and its unique key goes
 * with it; `spool ls` shows a waiting task past its time as expired.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler, TaskExpiredError } from '../runtime/index.js';
import { keyFileName } from '../spool/unique.js';
import { existsSync } from 'node:fs';
import { lsJson, spool, spoolAsync } from './helpers/cli.js';
import { describeSpool, ls, readRecords, waitFor } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let root: string;
let records: string;
const testSpool = useDaemonSpool('spoolerd-expiry-', { bind: (s) => ({ root, records } = s), open: true });

describe('expiry', () => {
  it('a task past its expires time never starts: it ends as expired (spool wait exits 13), and a task behind it runs', async () => {
    const spooler = Spooler.open(root);
    // Expired before any daemon serves the spool: both through the runtime and through spool add.
    const viaApi = await spooler.enqueue({ name: 'echo', args: ['api'], options: { expires: new Date(Date.now() - 1000), keepResult: '1h' } });
    const viaCli = spool(['add', '--dir', root, 'echo', '"cli"', '--expires', '1ms', '--json']);
    expect(viaCli.code, viaCli.stderr).toBe(0);
    const cliId = (JSON.parse(viaCli.stdout) as { id: string }).id;
    const later = await spooler.enqueue({ name: 'echo', args: ['not expired'], options: { expires: '1h', priority: 90 } });
    // spool ls says they have expired before any daemon looked at them.
    const listed = lsJson(root);
    const expiredNote = expect.stringMatching(/^expired: not started by \d{4}-.*; it will not run$/);
    expect(listed.find((e) => e.id === viaApi.id)).toEqual(expect.objectContaining({ state: 'due', reason: expiredNote }));
    expect(listed.find((e) => e.id === cliId)).toEqual(expect.objectContaining({ state: 'due', reason: expiredNote }));
    expect(listed.find((e) => e.id === later.id)).toEqual(expect.objectContaining({ state: 'due', reason: null }));
    expect(spool(['ls', '--dir', root]).stdout).toMatch(new RegExp(`${viaApi.id}.*expired: not started by`));

    const daemon = await testSpool.serve({ imports: ['basic'], args: ['--keep-results', '1h'] });
    // Wait for the endings, not for time.
    const waited = await spoolAsync(['wait', '--dir', root, viaApi.id, cliId, '--timeout', '20s']);
    expect(waited.code, waited.stdout + waited.stderr).toBe(13);
    await expect(viaApi.result({ timeout: 5000 })).rejects.toBeInstanceOf(TaskExpiredError);
    await waitFor(() => readRecords(records).some((r) => r.task === 'echo' && r.id === later.id) || undefined, { what: 'the task that had not expired to run', explain: () => `${describeSpool(root)}\n${daemon.describe()}` });
    const ran = readRecords(records).filter((r) => r.task === 'echo').map((r) => r.id);
    expect(ran).toEqual([later.id]);
    const lines = daemon.logs.filter((l) => l.msg === 'task expired: not run');
    expect(lines.map((l) => l.id).sort()).toEqual([viaApi.id, cliId].sort());
    for (const d of ['incoming', 'pending', 'dead']) expect(ls(join(root, d))).toEqual([]);
  });

  it('an expired task gives up its unique key (while-running included)', async () => {
    const spooler = Spooler.open(root);
    const h = await spooler.enqueue({ name: 'echo', args: ['k'], options: { unique: 'k', uniqueWhileRunning: true, expires: new Date(Date.now() - 1000), keepResult: '1h' } });
    expect(existsSync(join(root, 'unique', keyFileName('echo', 'k')))).toBe(true);
    await testSpool.serve({ imports: ['basic'] });
    await expect(h.result({ timeout: 20_000 })).rejects.toBeInstanceOf(TaskExpiredError);
    expect(existsSync(join(root, 'unique', keyFileName('echo', 'k')))).toBe(false);
    const again = await spooler.enqueue({ name: 'echo', args: ['k2'], options: { unique: 'k', uniqueWhileRunning: true } });
    expect(again.existing).toBeUndefined();
    expect(again.id).not.toBe(h.id);
    await waitFor(() => readRecords(records).some((r) => r.task === 'echo' && r.id === again.id) || undefined, { what: 'the new task with the key to run' });
    expect(readRecords(records).filter((r) => r.id === h.id)).toEqual([]);
  });
});
