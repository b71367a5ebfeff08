/**
 * Producers outrunning a watching daemon (discover/incoming.ts, setModeListing):
 * once more than 1,000 tasks wait in incoming/, the daemon stops watching it
 * and scans instead, and every task still runs exactly once.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { describeSpool, ls, lsActive, readRecords, startDaemon, waitFor } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let root: string;
let records: string;
useDaemonSpool('spoolerd-flood-', { bind: (s) => ({ root, records } = s) });

const FLOOD = 3000;

describe('a flood of tasks into a watched incoming/', () => {
  it(`pauses watching once over 1,000 tasks wait, runs all ${FLOOD} exactly once, and still sees tasks that come later`, { timeout: 120_000 }, async () => {
    const spooler = Spooler.open(root);
    // One slot and 2 ms per task: at most ~500 tasks/s, so the flood piles up in incoming/.
    const d = startDaemon({ dir: root, imports: ['block'], records, args: ['--concurrency', '1', '--processes', '0', '--scan-interval', '1s'] });
    await d.waitUntilServing();
    expect(d.logsWith('serving spool')[0]!.watching).toBe(true);

    const keys = Array.from({ length: FLOOD }, (_, i) => `f${i}`);
    await spooler.enqueueMany(keys.map((k) => ({ name: 'quick', args: [k, 2] })));
    await d.waitForLog((l) => l.msg === 'incoming/ is crowded; watching paused, scanning it instead until it is small again', { timeoutMs: 30_000 });

    const finished = () => readRecords(records).filter((r) => r.phase === 'finished');
    await waitFor(() => finished().length >= FLOOD, {
      timeoutMs: 90_000,
      intervalMs: 200,
      what: `${FLOOD} finished runs`,
      explain: () => `${finished().length} finished\n${describeSpool(root).slice(0, 2000)}\n${d.describe(10)}`,
    });
    // One more task after the flood: picked up whether by the watcher (resumed) or a scan.
    await spooler.enqueue({ name: 'quick', args: ['late', 1] });
    await waitFor(() => finished().some((r) => (r.args as unknown[])[0] === 'late'), { timeoutMs: 20_000, what: 'the late task', explain: () => d.describe(10) });
    expect(await d.stop('SIGTERM')).toEqual({ code: 0, signal: null });

    const perKey = new Map<string, number>();
    for (const r of finished()) {
      const key = (r.args as unknown[])[0] as string;
      perKey.set(key, (perKey.get(key) ?? 0) + 1);
    }
    expect(perKey.size).toBe(FLOOD + 1);
    expect([...perKey.values()].every((n) => n === 1)).toBe(true);
    expect(ls(join(root, 'incoming'))).toEqual([]);
    expect(ls(join(root, 'pending'))).toEqual([]);
    expect(lsActive(root)).toEqual([]);
  });
});
