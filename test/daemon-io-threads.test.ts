/**
 * File-ops threads and claiming ahead (README, "Throughput"; SPOOL-FORMAT.md,
 * "Claiming"): however many threads claim, read and delete task files
 * (--io-threads), every task runs exactly once, and a daemon stopped in the
 * middle of a drain gives back the tasks it had claimed ahead without running
 * them, so that the next daemon runs each of them once.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { tempDir } from './helpers/cli.js';
import { describeSpool, killLeftoverDaemons, ls, lsActive, readRecords, startDaemon, startServing, waitFor, type DaemonProcess } from './helpers/daemon.js';

let dir: string;
let cleanup: () => void;
let root: string;
let records: string;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('spoolerd-io-threads-'));
  root = join(dir, 'spool');
  records = join(dir, 'records.jsonl');
});
afterEach(async () => {
  await killLeftoverDaemons();
  cleanup();
});

async function prefill(n: number): Promise<string[]> {
  const spooler = Spooler.open(root);
  const keys = Array.from({ length: n }, (_, i) => `k${String(i).padStart(5, '0')}`);
  for (let i = 0; i < n; i += 5000) await spooler.enqueueMany(keys.slice(i, i + 5000).map((k) => ({ name: 'count', args: [k] })));
  return keys;
}

function runsPerKey(): Map<string, number> {
  const perKey = new Map<string, number>();
  for (const r of readRecords(records)) perKey.set(r.key as string, (perKey.get(r.key as string) ?? 0) + 1);
  return perKey;
}

function expectEachOnce(keys: string[]): void {
  const perKey = runsPerKey();
  const twice = keys.filter((k) => (perKey.get(k) ?? 0) > 1);
  const never = keys.filter((k) => !perKey.has(k));
  expect({ twice: twice.slice(0, 10), never: never.slice(0, 10), runs: readRecords(records).length }).toEqual({ twice: [], never: [], runs: keys.length });
}

function spoolIsEmpty(): boolean {
  return ['incoming', 'pending'].every((sub) => ls(join(root, sub)).length === 0) && lsActive(root).length === 0;
}

/** Waits until `keys` runs are recorded and no task is left in incoming/, pending/ or a claim directory. */
async function waitUntilAllRan(keys: string[], daemon: DaemonProcess, what: string): Promise<void> {
  await waitFor(() => readRecords(records).length >= keys.length && spoolIsEmpty(), {
    timeoutMs: 60_000,
    what,
    explain: () => `${readRecords(records).length} runs\n${describeSpool(root).slice(0, 2000)}\n${daemon.describe(10)}`,
  });
}

describe('--io-threads', () => {
  for (const threads of [0, 1, 2]) {
    it(`${threads}: a drain of 3,000 short tasks runs each exactly once and leaves the spool empty`, async () => {
      const keys = await prefill(3000);
      const daemon = await startServing({ dir: root, imports: ['count'], records, args: ['--io-threads', String(threads), '--processes', '0'] });
      await waitUntilAllRan(keys, daemon, 'every task run and the spool empty');
      expect(await daemon.stop('SIGTERM')).toEqual({ code: 0, signal: null });
      expectEachOnce(keys);
      expect(daemon.logsWith('stopped')).toEqual([expect.objectContaining({ processed: keys.length, lost: 0, quarantined: 0, ioThreads: threads })]);
      for (const sub of ['dead', 'quarantine']) expect(ls(join(root, sub)), sub).toEqual([]);
    });
  }
});

describe('a daemon stopped in the middle of a drain', () => {
  it('SIGTERM: gives back what it claimed ahead, exits 0, and the next daemon runs every remaining task; each ran exactly once', async () => {
    const keys = await prefill(30_000);
    const a = await startServing({ dir: root, imports: ['count'], records, args: ['--processes', '0'] });
    await waitFor(() => readRecords(records).length >= 2000, { timeoutMs: 60_000, what: 'A to be draining', explain: () => a.describe(10) });
    expect(await a.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    const ranInA = readRecords(records).length;
    expect(ranInA).toBeLessThan(keys.length);
    // Nothing stays claimed after a graceful stop: what was claimed ahead went back to incoming/.
    expect(lsActive(root)).toEqual([]);
    expect(a.logsWith('stopped')).toEqual([expect.objectContaining({ processed: ranInA, lost: 0 })]);

    const b = await startServing({ dir: root, imports: ['count'], records, args: ['--processes', '0'] });
    await waitUntilAllRan(keys, b, 'B to run the rest');
    expect(await b.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expectEachOnce(keys);
  });

  it('SIGTERM then SIGINT at once: exits 1; the next daemon runs the rest (claims left behind after the stale time); each ran exactly once', async () => {
    const keys = await prefill(30_000);
    const a = startDaemon({ dir: root, imports: ['count'], records, args: ['--processes', '0'] });
    await waitFor(() => readRecords(records).length >= 2000, { timeoutMs: 60_000, what: 'A to be draining', explain: () => a.describe(10) });
    a.signal('SIGTERM');
    a.signal('SIGINT');
    expect(await a.waitForExit(15_000)).toEqual({ code: 1, signal: null });
    expect(readRecords(records).length).toBeLessThan(keys.length);

    const b = await startServing({ dir: root, imports: ['count'], records, args: ['--processes', '0', '--stale-after', '2s', '--scan-interval', '500ms'] });
    await waitUntilAllRan(keys, b, 'B to run the rest');
    expect(await b.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expectEachOnce(keys);
  });
});
