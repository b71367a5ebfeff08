/**
 * Order (README, "What happens to a task"): among due tasks, lower priority
 * number first, then earlier due time, then enqueue order; a postponed task
 * does not run before its due time, and runs soon after it.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { describeSpool, ls, lsActive, readRecords, startServing, waitFor, type DaemonProcess } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let dir: string;
let root: string;
let records: string;
const testSpool = useDaemonSpool('spoolerd-order-', { bind: (s) => ({ dir, root, records } = s) });

const labels = () => readRecords(records).filter((r) => r.task === 'echo').map((r) => (r.args as unknown[])[0]);

async function waitForLabels(n: number, daemon: DaemonProcess, timeoutMs = 20_000): Promise<unknown[]> {
  return waitFor(() => labels().length >= n && labels(), {
    timeoutMs,
    what: `${n} runs`,
    explain: () => `${JSON.stringify(labels())}\n${describeSpool(root)}\n${daemon.describe()}`,
  });
}

describe('spoolerd runs due tasks in order', () => {
  it('with --concurrency 1 and a prefilled spool: priority, then due time, then enqueue order', async () => {
    const spooler = Spooler.open(root);
    const now = Date.now();
    const old = new Date(now - 3000);
    const mid = new Date(now - 2000);
    const same = new Date(now - 1000);
    // Enqueued in a scrambled order; the comment says where each must run.
    const enqueue = (label: string, priority: number, due?: Date, encoding?: 'json') =>
      spooler.enqueue({ name: 'echo', args: [label], options: { priority, ...(due && { postpone: due }), ...(encoding && { encoding }) } });
    const p99 = await enqueue('p99', 99, old); //                    9th
    const p50a = await enqueue('p50-first', 50); //                  7th
    await enqueue('p10-same-1', 10, same); //                        4th
    const mid10 = await enqueue('p10-due-mid', 10, mid, 'json'); //  3rd
    await enqueue('p10-same-2', 10, same, 'json'); //                5th
    await enqueue('p50-second', 50); //                              8th
    await enqueue('p10-due-old', 10, old); //                        2nd
    await enqueue('p10-same-3', 10, same); //                        6th
    await enqueue('p0', 0); //                                       1st
    // Some of them wait in pending/ (where a daemon moves accepted tasks), the rest in incoming/:
    // a daemon starting up must merge both.
    for (const h of [p99, p50a, mid10]) renameSync(h.path, join(root, 'pending', h.fileName));

    const daemon = await startServing({ dir: root, imports: ['basic'], records, args: ['--concurrency', '1'] });
    const ran = await waitForLabels(9, daemon);
    expect(ran).toEqual(['p0', 'p10-due-old', 'p10-due-mid', 'p10-same-1', 'p10-same-2', 'p10-same-3', 'p50-first', 'p50-second', 'p99']);
    await waitFor(() => lsActive(root).length === 0, { what: 'the last task to finish' });
    expect(labels()).toHaveLength(9);
  });

  it('with --concurrency 1, tasks enqueued while the slot is busy run by priority, then due time, then enqueue order', async () => {
    const spooler = Spooler.open(root);
    const gate = join(dir, 'gate');
    const daemon = await startServing({ dir: root, imports: ['basic', 'block'], records, args: ['--concurrency', '1'] });
    await spooler.enqueue({ name: 'wait_for_file', args: ['gate', gate] });
    await waitFor(() => readRecords(records).some((r) => r.task === 'wait_for_file'), { what: 'the gate task to start' });
    const now = Date.now();
    const e = (label: string, priority: number, dueAgo?: number) =>
      spooler.enqueue({ name: 'echo', args: [label], options: { priority, ...(dueAgo !== undefined && { postpone: new Date(now - dueAgo) }) } });
    await e('c-70', 70);
    await e('b-30-later', 30, 100);
    await e('a-5', 5);
    await e('b-30-earlier', 30, 500);
    await e('b-30-later-2', 30, 100);
    // The daemon has seen all of them (its status file counts them queued) before the slot frees.
    await waitFor(() => ls(join(root, 'incoming')).length + ls(join(root, 'pending')).length === 5, { what: 'five queued tasks' });
    await testSpool.waitForStatus(daemon, (s) => s.queue.known === 5, { what: 'the daemon to have queued the five tasks' });
    writeFileSync(gate, '');
    expect(await waitForLabels(5, daemon)).toEqual(['a-5', 'b-30-earlier', 'b-30-later', 'b-30-later-2', 'c-70']);
  });
});

describe('spoolerd runs postponed tasks on time', () => {
  it('runs a task postponed while the daemon runs after its due time, and soon after it', async () => {
    const spooler = Spooler.open(root);
    const daemon = await startServing({ dir: root, imports: ['basic'], records, args: ['--scan-interval', '500ms'] });
    // 1.2 s: within the scan interval it stays in incoming/; 2.5 s: the daemon moves it to pending/ first.
    const soon = await spooler.enqueue({ name: 'echo', args: ['soon'], options: { postpone: 1200 } });
    const later = await spooler.enqueue({ name: 'echo', args: ['later'], options: { postpone: '2500ms' } });
    const now = await spooler.enqueue({ name: 'echo', args: ['now'] });
    await waitForLabels(3, daemon, 15_000);
    const runs = readRecords(records);
    const at = (label: string) => runs.find((r) => (r.args as unknown[])[0] === label)!.time;
    expect(runs.map((r) => (r.args as unknown[])[0])).toEqual(['now', 'soon', 'later']);
    expect(at('now')).toBeGreaterThanOrEqual(now.due);
    for (const [label, h] of [['soon', soon], ['later', later]] as const) {
      expect(at(label), `${label} ran before its due time`).toBeGreaterThanOrEqual(h.due);
      expect(at(label), `${label} ran more than 5 s after its due time`).toBeLessThanOrEqual(h.due + 5000);
    }
  });

  it('runs a task postponed before the daemon started after its due time, and soon after it', async () => {
    const spooler = Spooler.open(root);
    // Due well after the daemon is up, even on a loaded machine: the order below says that a due task of
    // lower priority is not held back by one that is not due yet.
    const h = await spooler.enqueue({ name: 'echo', args: ['prefilled-later'], options: { postpone: '4s' } });
    const first = await spooler.enqueue({ name: 'echo', args: ['prefilled-now'], options: { priority: 99 } });
    const daemon = await startServing({ dir: root, imports: ['basic'], records });
    await waitForLabels(2, daemon, 15_000);
    const runs = readRecords(records);
    expect(runs.map((r) => (r.args as unknown[])[0])).toEqual(['prefilled-now', 'prefilled-later']);
    expect(runs[0]!.time).toBeGreaterThanOrEqual(first.due);
    expect(runs[1]!.time).toBeGreaterThanOrEqual(h.due);
    expect(runs[1]!.time).toBeLessThanOrEqual(h.due + 5000);
  });
});
