/**
 * What `spool top` and `spool dashboard` read: the per-daemon status files
 * (state/daemon-<owner>.json, written by the daemon; here written by hand to
 * the documented schema), counts and pages from task names, and throughput
 * between samples.
 */
import { mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hostAllowed } from '../cli/dashboard/server.js';
import { rateBetween, SpoolMonitor } from '../cli/monitor/spool-monitor.js';
import { SpoolScanner } from '../cli/monitor/spool-scan.js';
import { parseDaemonStatus, readDaemonStatuses } from '../cli/monitor/status-files.js';
import { STATUS_STALE_MS } from '../spool/status-file.js';
import { SpoolLayout } from '../spool/layout.js';
import { tempDir } from './helpers/cli.js';
import { NOW, statusFile } from './helpers/status-files.js';


let seq = 0;
function taskName(name: string, due: number, attempts = 0): string {
  const id = String(NOW - 3_600_000) + (++seq).toString(16).padStart(16, '0');
  return `50-${String(due).padStart(13, '0')}-${id}-a${attempts}-${name}.json`;
}

let dir: string;
let cleanup: () => void;
let layout: SpoolLayout;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('spool-monitor-'));
  layout = new SpoolLayout(join(dir, 'spool'));
  for (const d of ['incoming', 'pending', 'active', 'dead', 'quarantine', 'state']) mkdirSync(join(layout.root, d), { recursive: true });
});
afterEach(() => cleanup());

function writeStatus(owner: string, value: unknown, claimDir = true): void {
  if (claimDir) mkdirSync(join(layout.active, owner), { recursive: true });
  writeFileSync(join(layout.state, `daemon-${owner}.json`), typeof value === 'string' ? value : JSON.stringify(value));
}

describe('daemon status files', () => {
  it('reads a file to the schema, and counts a daemon silent for over 10 s as stale', () => {
    writeStatus('d1-live', statusFile('d1-live'));
    writeStatus('d2-gone', statusFile('d2-gone', { updatedAt: NOW - STATUS_STALE_MS - 1 }));
    const statuses = readDaemonStatuses(layout, NOW);
    expect(statuses.map((s) => [s.owner, s.stale])).toEqual([
      ['d1-live', false],
      ['d2-gone', true],
    ]);
    expect(statuses[0]).toMatchObject({ host: 'h1', pid: 4242, concurrency: 8, totals: { processed: 100, skipped: 2 }, queue: { ready: 5, known: 50, nextDueAt: null } });
    expect(statuses[0]!.running).toEqual([{ id: '1800000000000aaaaaaaaaaaaaaaa', name: 'send_email', attempt: 0, startedAt: NOW - 2000 }]);
  });

  it('leaves out malformed files, files of another owner, links, and owners without a claim directory', () => {
    writeStatus('bad-json', '{"version":1,');
    writeStatus('bad-version', statusFile('bad-version', { version: 2 }));
    writeStatus('bad-totals', statusFile('bad-totals', { totals: { processed: '100' } }));
    writeStatus('bad-pid', statusFile('bad-pid', { pid: -1 }));
    writeStatus('not-me', statusFile('someone-else'));
    writeStatus('no-claim-dir', statusFile('no-claim-dir'), false);
    mkdirSync(join(layout.active, 'linked'));
    writeFileSync(join(dir, 'elsewhere.json'), JSON.stringify(statusFile('linked')));
    symlinkSync(join(dir, 'elsewhere.json'), join(layout.state, 'daemon-linked.json'));
    writeStatus('good', statusFile('good'));
    expect(readDaemonStatuses(layout, NOW).map((s) => s.owner)).toEqual(['good']);
  });

  it('keeps only well-typed running tasks and counters, at most 100 running', () => {
    const running = [
      { id: 'x', name: 'ok', attempt: 1, startedAt: NOW },
      { id: 5, name: 'bad id', attempt: 0, startedAt: NOW },
      { id: 'y', name: 'bad attempt', attempt: -1, startedAt: NOW },
      ...Array.from({ length: 150 }, (_, i) => ({ id: `r${i}`, name: 'many', attempt: 0, startedAt: NOW })),
    ];
    const s = parseDaemonStatus(statusFile('o', { running, byTask: { a: { processed: 1 }, b: { processed: 'x' } } }), NOW)!;
    expect(s.running[0]).toEqual({ id: 'x', name: 'ok', attempt: 1, startedAt: NOW });
    expect(s.running.length).toBe(98); // 100 kept from the file, of which two are malformed
    expect(Object.keys(s.byTask)).toEqual(['a']);
    expect(s.byTask.a).toEqual({ processed: 1, skipped: 0, rescheduled: 0, dead: 0 });
    expect(parseDaemonStatus([1, 2], NOW)).toBeUndefined();
    expect(parseDaemonStatus(statusFile('o', { host: 7 }), NOW)).toBeUndefined();
  });
});

describe('counts and pages from names', () => {
  it('counts every state without opening a file, and pages in execution order', () => {
    const due = Array.from({ length: 7 }, (_, i) => taskName('t', NOW - 1000 * (i + 1)));
    for (const f of due) writeFileSync(join(layout.pending, f), 'not even a body');
    writeFileSync(join(layout.incoming, taskName('t', NOW + 60_000)), '');
    writeFileSync(join(layout.incoming, taskName('t', NOW + 30_000)), '');
    writeFileSync(join(layout.incoming, 'not-a-task.txt'), '');
    writeFileSync(join(layout.incoming, '.in-progress'), '');
    mkdirSync(join(layout.active, 'owner1'));
    writeFileSync(join(layout.active, 'owner1', taskName('t', NOW)), '');
    writeFileSync(join(layout.dead, taskName('t', NOW, 3)), '');
    writeFileSync(join(layout.quarantine, 'junk'), '');
    writeFileSync(join(layout.quarantine, 'junk.reason.json'), '{}');
    const scanner = new SpoolScanner(layout);
    expect(scanner.scan(NOW).counts).toEqual({ active: 1, due: 7, scheduled: 2, invalid: 1, dead: 1, quarantined: 1 });

    const pages: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = scanner.page('due', cursor, 3, NOW);
      expect(page.total).toBe(7);
      pages.push(page.rows.map((r) => r.fileName));
      cursor = page.next ?? undefined;
    } while (cursor !== undefined);
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
    expect(pages.flat()).toEqual([...due].sort());
    const scheduled = scanner.page('scheduled', undefined, 10, NOW).rows.map((r) => r.task!.due);
    expect(scheduled).toEqual([NOW + 30_000, NOW + 60_000]);
    expect(scanner.page('active', undefined, 10, NOW).rows[0]!.owner).toBe('owner1');
  });

  it('caches a scan for a second, and a new one sees what changed', () => {
    const scanner = new SpoolScanner(layout);
    expect(scanner.scan(NOW).counts.due).toBe(0);
    writeFileSync(join(layout.pending, taskName('t', NOW - 1)), '');
    expect(scanner.scan(NOW + 999).counts.due).toBe(0);
    expect(scanner.scan(NOW + 1000).counts.due).toBe(1);
  });

  it('reads a folder again only when its mtime changed (or is too recent to trust)', () => {
    const scanner = new SpoolScanner(layout);
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(layout.pending, old, old);
    expect(scanner.scan(NOW).counts.due).toBe(0);
    // A name added behind the folder's back (its mtime put back as it was): the earlier read is reused.
    writeFileSync(join(layout.pending, taskName('t', NOW - 1)), '');
    utimesSync(layout.pending, old, old);
    expect(scanner.scan(NOW + 5000).counts.due).toBe(0);
    // Any real change moves the mtime: read again.
    writeFileSync(join(layout.pending, taskName('t', NOW - 1)), '');
    expect(scanner.scan(NOW + 10_000).counts.due).toBe(2);
    // A folder changed within the last second is read every time, however its mtime looks.
    writeFileSync(join(layout.pending, taskName('t', NOW - 1)), '');
    expect(scanner.scan(NOW + 15_000).counts.due).toBe(3);
  });

  it('does not follow a task folder that is a link', () => {
    const elsewhere = join(dir, 'elsewhere');
    mkdirSync(elsewhere);
    writeFileSync(join(elsewhere, taskName('t', NOW - 1)), '');
    symlinkSync(elsewhere, join(layout.active, 'sneaky'));
    expect(new SpoolScanner(layout).scan(NOW).counts.active).toBe(0);
  });
});

describe('throughput', () => {
  it("sums the daemons' done counters between samples, ignoring daemons in only one", () => {
    const before = { at: NOW, done: new Map([['a', 100], ['b', 50], ['gone', 7]]), waiting: 10 };
    const after = { at: NOW + 2000, done: new Map([['a', 140], ['b', 70], ['new', 1000]]), waiting: 10 };
    expect(rateBetween(before, after)).toEqual({ at: NOW + 2000, rate: 30, source: 'daemons' });
  });

  it('without status files, estimates from the fall of waiting tasks', () => {
    expect(rateBetween({ at: NOW, done: new Map(), waiting: 50 }, { at: NOW + 500, done: new Map(), waiting: 40 })).toMatchObject({ rate: 20, source: 'counts' });
    expect(rateBetween({ at: NOW, done: new Map(), waiting: 40 }, { at: NOW + 1000, done: new Map(), waiting: 90 })).toMatchObject({ rate: 0 });
  });

  it('a monitor records a point per sample and lists running tasks of live daemons only', () => {
    writeStatus('live', statusFile('live', { updatedAt: NOW }));
    writeStatus('stale', statusFile('stale', { updatedAt: NOW - 60_000, running: [{ id: 'zombie', name: 'z', attempt: 0, startedAt: NOW - 70_000 }] }));
    const monitor = new SpoolMonitor(layout);
    expect(monitor.snapshot(NOW).rate).toBeNull();
    writeStatus('live', statusFile('live', { updatedAt: NOW + 1000, totals: { processed: 150, skipped: 2 } }));
    const snap = monitor.snapshot(NOW + 1000);
    expect(snap.rate).toEqual({ at: NOW + 1000, rate: 50, source: 'daemons' });
    expect(monitor.history.length).toBe(1);
    expect(snap.running.map((r) => r.id)).toEqual(['1800000000000aaaaaaaaaaaaaaaa']);
    expect(snap.daemons.map((d) => [d.owner, d.stale])).toEqual([
      ['live', false],
      ['stale', true],
    ]);
  });
});

describe('dashboard Host check', () => {
  it('answers loopback names on a loopback address, and only the address otherwise', () => {
    expect(hostAllowed('127.0.0.1:9465', '127.0.0.1', 9465)).toBe(true);
    expect(hostAllowed('localhost:9465', '127.0.0.1', 9465)).toBe(true);
    expect(hostAllowed('evil.example:9465', '127.0.0.1', 9465)).toBe(false);
    expect(hostAllowed('127.0.0.1:80', '127.0.0.1', 9465)).toBe(false);
    expect(hostAllowed(undefined, '127.0.0.1', 9465)).toBe(false);
    expect(hostAllowed('[::1]:9465', '::1', 9465)).toBe(true);
    expect(hostAllowed('10.0.0.5:9465', '10.0.0.5', 9465)).toBe(true);
    expect(hostAllowed('localhost:9465', '10.0.0.5', 9465)).toBe(false);
    expect(hostAllowed('anything:1', '0.0.0.0', 9465)).toBe(true);
  });
});
