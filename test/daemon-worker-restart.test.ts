/**
 * Worker restarts back off (README, "Timeouts and worker processes"): a
 * replacement worker that dies at start-up (here: its task module stops
 * importing) is started again after 100 ms, then 200, 400… instead of in a
 * tight loop; the daemon keeps running, claims nothing while no worker can
 * take a task, and runs the waiting task once a worker starts again.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { describeSpool, ls, lsActive, readRecords, startServing, waitFor } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let dir: string;
let root: string;
let records: string;
const testSpool = useDaemonSpool('spoolerd-restart-', { bind: (s) => ({ dir, root, records } = s) });

describe('a worker that cannot start', () => {
  it('is restarted after growing delays, not in a loop; once it can start again, waiting tasks run', async () => {
    const marker = join(dir, 'marker');
    const spooler = Spooler.open(root);
    const daemon = await startServing({ dir: root, imports: ['fragile-import'], records, env: { FRAGILE_MARKER: marker }, args: ['--processes', '1'] });
    writeFileSync(marker, '');
    // Ends the only worker; every replacement now fails to import its task module.
    const exit = await spooler.enqueue({ name: 'fragile_exit', args: ['x'], options: { retries: 0 } });
    await waitFor(() => ls(join(root, 'dead')).some((f) => f.includes(exit.id)), { what: 'the exiting task to be buried', explain: () => daemon.describe() });
    // Until the third replacement has failed (the delays before it: 100, 200, 400 ms); a restart loop without backoff never logs a delay of 800 ms.
    await daemon.waitForLog((l) => l.msg === 'a worker process died soon after it started; starting another after a delay' && l.delayMs === 800, {
      what: 'the fourth restart delay (800 ms)',
    });

    const failures = daemon.logsWith('a replacement worker process cannot import the task modules');
    const delays = daemon.logsWith('a worker process died soon after it started; starting another after a delay').map((l) => l.delayMs);
    // Without a backoff a worker that fails in ~100 ms would be restarted several times in the 0.7 s those delays take.
    expect(failures.length).toBeGreaterThanOrEqual(2);
    expect(failures.length).toBeLessThanOrEqual(6);
    expect(failures[0]!.error).toMatch(/^cannot import task module .*fragile-import\.mjs: fragile-import: the marker file exists \(at .*fragile-import\.mjs:\d+:\d+\)$/);
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200].slice(0, delays.length));
    // One delay for the worker the task ended, then one per failed replacement (whose line may still be on its way).
    expect(delays.length - failures.length).toBeGreaterThanOrEqual(0);
    expect(delays.length - failures.length).toBeLessThanOrEqual(1);
    expect(daemon.exit).toBeUndefined();

    // No worker can take it: the daemon leaves a new task unclaimed.
    const waiting = await spooler.enqueue({ name: 'fragile_count', args: ['after'] });
    await testSpool.waitForStatus(daemon, (s) => s.queue.known === 1, { what: 'the daemon to have queued the new task' });
    expect(lsActive(root)).toEqual([]);
    expect(ls(join(root, 'incoming')).concat(ls(join(root, 'pending'))).some((f) => f.includes(waiting.id))).toBe(true);

    rmSync(marker);
    await waitFor(() => readRecords(records).some((r) => r.task === 'fragile_count'), {
      timeoutMs: 15_000,
      what: 'the waiting task to run in a worker that started',
      explain: () => `${describeSpool(root)}\n${daemon.describe()}`,
    });
    expect(readRecords(records).filter((r) => r.task === 'fragile_count').map((r) => r.key)).toEqual(['after']);
    await waitFor(() => lsActive(root).length === 0 && ls(join(root, 'incoming')).length === 0, { what: 'an empty spool' });
  });
});
