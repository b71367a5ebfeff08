/**
 * Discovery's refill of the queue's window (spooler/discover/discovery.ts
 * refillSoon(), order/task-queue.ts): with the real queue, real folders and a
 * fake rest of the daemon. The end-to-end drain across refills is in
 * daemon-backlog-window.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SpoolLayout } from '../spool/layout.js';
import { formatTaskName } from '../spool/name.js';
import { Discovery, type DiscoveryHost } from '../spooler/discover/discovery.js';
import type { IncomingFs } from '../spooler/discover/incoming.js';
import type { Logger } from '../spooler/logger.js';
import { TaskQueue } from '../spooler/order/task-queue.js';

const SCAN_INTERVAL = 50;
let counter = 0;
function taskName(): string {
  counter++;
  const now = Date.now();
  return formatTaskName({ priority: 50, due: now - 1000, id: `${now - 5000}${'0'.repeat(8)}${counter.toString(16).padStart(8, '0')}`, attempts: 0, name: 'job', encoding: 'msgpack' });
}

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

function setup(holds: (fileName: string) => boolean = () => false) {
  const root = mkdtempSync(join(tmpdir(), 'spoolerd-refill-'));
  roots.push(root);
  const layout = { root, incoming: join(root, 'incoming'), pending: join(root, 'pending'), active: join(root, 'active'), state: join(root, 'state'), tmp: join(root, 'tmp') } as SpoolLayout;
  const logs: string[] = [];
  const log: Logger = {
    debug: (msg: string) => void logs.push(msg),
    info: (msg: string) => void logs.push(msg),
    warn: (msg: string) => void logs.push(msg),
    error: (msg: string) => void logs.push(msg),
    child: () => log,
    enabled: () => true,
  } as Logger;
  const queue = new TaskQueue(() => undefined, () => Date.now(), { window: 16 });
  let wakes = 0;
  const host: DiscoveryHost = {
    layout,
    folders: { onRecreated: () => undefined } as never,
    options: { scanInterval: SCAN_INTERVAL, settle: 5000, staleAfter: 30_000 } as never,
    log,
    clock: { now: () => Date.now() } as never,
    queue,
    wake: () => void wakes++,
    ownerId: () => 'me',
    unmatched: () => undefined,
    holds,
    moveUnderWay: () => false,
    quarantine: () => undefined,
    retryFailedClaims: () => undefined,
    reclaimed: () => undefined,
    untrusted: () => undefined,
  };
  const fs = { list: () => [], stamp: () => ({ mtimeMs: 0, ctimeMs: 0, size: 0, ino: 1 }), mtimeOf: () => 0, moveToPending: () => false } as unknown as IncomingFs;
  const discovery = new Discovery(host, new Set(), new Map(), fs);
  const add = (dir: 'incoming' | 'pending', n: string) => writeFileSync(join(layout[dir], n), '');
  return { layout, logs, queue, discovery, add, wakes: () => wakes };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('refilling the queue from the listings', () => {
  it('queues the names of both folders, but not those the daemon holds; asked twice before it runs, lists once', async () => {
    const held = taskName();
    const t = setup((n) => n === held);
    mkdirSync(t.layout.incoming);
    mkdirSync(t.layout.pending);
    const a = taskName();
    const b = taskName();
    t.add('incoming', a);
    t.add('pending', b);
    t.add('incoming', held);
    t.discovery.refillSoon();
    t.discovery.refillSoon();
    await until(() => t.logs.includes('queue refilled from the listings'), 'the refill');
    expect(t.queue.has(a)).toBe(true);
    expect(t.queue.has(b)).toBe(true);
    expect(t.queue.has(held)).toBe(false);
    expect(t.wakes()).toBe(1);
    // A second refill, had the second ask scheduled one, would have run by the next turn.
    await new Promise((r) => setImmediate(r));
    expect(t.logs.filter((l) => l === 'queue refilled from the listings').length).toBe(1);
  });

  it('a listing that fails is tried again after a scan interval (not at once), and then fills the queue', async () => {
    const t = setup();
    // No incoming/ nor pending/ yet: the listing fails.
    t.discovery.refillSoon();
    await until(() => t.logs.includes('cannot list the spool to refill the queue; trying again'), 'the failed refill');
    const failedAt = Date.now();
    // Asked again meanwhile: the retry under way covers it.
    t.discovery.refillSoon();
    mkdirSync(t.layout.incoming);
    mkdirSync(t.layout.pending);
    const a = taskName();
    t.add('incoming', a);
    await until(() => t.logs.includes('queue refilled from the listings'), 'the retried refill');
    expect(Date.now() - failedAt).toBeGreaterThanOrEqual(SCAN_INTERVAL - 5);
    expect(t.queue.has(a)).toBe(true);
    expect(t.logs.filter((l) => l === 'cannot list the spool to refill the queue; trying again').length).toBe(1);
  });
});
