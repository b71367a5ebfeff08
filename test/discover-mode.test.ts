/**
 * Discovery of incoming/ as a mode machine (spooler/discover/mode.ts,
 * incoming.ts, listing-pace.ts, mover.ts) with fakes: a fake watch, a fake
 * directory lister (incoming/ and pending/ as sets), fake timers, the real
 * task queue. The end-to-end behaviour (real inotify, real folders) is in
 * daemon-flood, daemon-startup and daemon-runs.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { formatTaskName } from '../spool/name.js';
import { QueueFeed } from '../spooler/discover/feed.js';
import { IncomingDiscovery, WATCH_MAX_BACKLOG, type IncomingFs } from '../spooler/discover/incoming.js';
import { ListingPace, QUICK_SCAN_MIN_MS } from '../spooler/discover/listing-pace.js';
import { assertIncomingTransition, ImpossibleTransitionError, type IncomingMode } from '../spooler/discover/mode.js';
import { FutureMover } from '../spooler/discover/mover.js';
import { Reconciler } from '../spooler/discover/reconcile.js';
import type { DirectoryWatch } from '../spooler/discover/watch.js';
import type { Logger } from '../spooler/logger.js';
import { TaskQueue } from '../spooler/order/task-queue.js';

const NOW = 1_800_000_000_000;
const SCAN_INTERVAL = 5000;
let counter = 0;
function taskName(due = NOW - 1000): string {
  counter++;
  const id = `${NOW - 5000}${'0'.repeat(8)}${counter.toString(16).padStart(8, '0')}`;
  return formatTaskName({ priority: 50, due, id, attempts: 0, name: 'job', encoding: 'msgpack' });
}

/** A watch whose readiness the test decides. */
class FakeWatch implements DirectoryWatch {
  closed = false;
  private ready!: (w: DirectoryWatch) => void;
  readonly whenReady = new Promise<DirectoryWatch>((resolve) => (this.ready = resolve));
  constructor(readonly emit: (fileName: string | undefined) => void) {}
  becomeReady(): void {
    this.ready(this);
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

function setup(options: { readyAtOnce?: boolean; everShared?: boolean } = {}) {
  const incoming = new Set<string>();
  const pending = new Set<string>();
  const logs: Array<{ level: string; msg: string }> = [];
  const record = (level: string) => (msg: string) => void logs.push({ level, msg });
  const log: Logger = {
    debug: record('debug'),
    info: record('info'),
    warn: record('warn'),
    error: record('error'),
    child: () => log,
    enabled: () => true,
  };
  const watches: FakeWatch[] = [];
  let listings = 0;
  let stampTick = 0;
  /** Whether incoming/ "grew large": the fake compaction replaces it only then. */
  let grown = false;
  let compactions = 0;
  const fs: IncomingFs = {
    watch: (_dir, _options, onFile) => {
      const w = new FakeWatch(onFile);
      watches.push(w);
      if (options.readyAtOnce !== false) w.becomeReady();
      return w.whenReady;
    },
    list: () => {
      listings++;
      return [...incoming];
    },
    stamp: () => ({ mtimeMs: stampTick, ctimeMs: stampTick, size: incoming.size, ino: 1 }),
    mtimeOf: () => 0,
    compactDrained: () => {
      if (!grown || incoming.size > 0) return false;
      grown = false;
      compactions++;
      return true;
    },
    moveToPending: (n) => {
      if (!incoming.delete(n)) return false;
      pending.add(n);
      stampTick++;
      return true;
    },
  };
  const queue = new TaskQueue(() => undefined, () => NOW);
  let wakes = 0;
  const feed = new QueueFeed(queue, () => void wakes++);
  const discovery = new IncomingDiscovery(
    {
      dirs: { incoming: '/spool/incoming', pending: '/spool/pending' },
      scanIntervalMs: SCAN_INTERVAL,
      settleMs: 5000,
      log,
      feed,
      now: () => NOW,
      unmatched: () => undefined,
      moveUnderWay: () => false,
      quarantine: () => undefined,
      shared: () => false,
      everShared: () => options.everShared === true,
    },
    new Set(),
    new Map(),
    fs,
  );
  const arrive = (n: string) => {
    incoming.add(n);
    stampTick++;
  };
  return {
    incoming,
    pending,
    logs,
    watches,
    queue,
    discovery,
    arrive,
    listings: () => listings,
    wakes: () => wakes,
    grow: () => void (grown = true),
    compactions: () => compactions,
  };
}

beforeEach(() => {
  vi.useFakeTimers({ now: NOW });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('the mode diagram', () => {
  const modes: IncomingMode[] = ['starting', 'arming', 'watching', 'listing', 'stopped'];
  const edges = new Set([
    'starting>arming',
    'starting>listing',
    'starting>stopped',
    'arming>watching',
    'arming>listing',
    'arming>stopped',
    'watching>arming',
    'watching>listing',
    'watching>stopped',
    'listing>arming',
    'listing>stopped',
  ]);

  it('has exactly the drawn edges; every other transition throws', () => {
    for (const from of modes) {
      for (const to of modes) {
        const attempt = () => assertIncomingTransition(from, to);
        if (edges.has(`${from}>${to}`)) expect(attempt, `${from} -> ${to}`).not.toThrow();
        else expect(attempt, `${from} -> ${to}`).toThrow(ImpossibleTransitionError);
      }
    }
  });

  it('throws on an impossible transition of the listing pace and of the mover', () => {
    const pace = new ListingPace(SCAN_INTERVAL, { lastListingMs: () => 0, lastListingAdded: () => 0, readyCount: () => 0 }, () => undefined);
    expect(() => pace.stop()).toThrow(/listing pace: no transition from "off" to "off"/);
    pace.start();
    expect(() => pace.start()).toThrow(ImpossibleTransitionError);
    pace.stop();
    const mover = new FutureMover({ candidates: () => [][Symbol.iterator](), horizon: () => 0, moveIfLater: () => undefined, stopped: () => false, failed: () => undefined });
    // Private, but the assertion is the point: finishing a mover that is not moving is a bug.
    expect(() => (mover as unknown as { finish(): void }).finish()).toThrow(/future mover: no transition from "idle" to "idle"/);
  });
});

describe('incoming/ discovery', () => {
  it('starting -> arming -> watching with a small incoming/, then lists once the watch is in place', async () => {
    const t = setup({ readyAtOnce: false });
    const a = taskName();
    t.arrive(a);
    const started = t.discovery.start(1, undefined);
    expect(t.discovery.current).toBe('arming');
    t.watches[0]!.becomeReady();
    await started;
    expect(t.discovery.current).toBe('watching');
    expect(t.listings()).toBe(1);
    expect(t.queue.has(a)).toBe(true);
  });

  it('watching -> arming -> watching when incoming/ is listed empty and recreated: the old watch closed, the new folder watched and listed', async () => {
    const t = setup({ readyAtOnce: false });
    const started = t.discovery.start(0, undefined);
    t.watches[0]!.becomeReady();
    await started;
    expect(t.discovery.current).toBe('watching');
    // Listed empty while small: nothing recreated.
    t.watches[0]!.emit(undefined);
    expect(t.compactions()).toBe(0);
    t.grow();
    t.watches[0]!.emit(undefined);
    expect(t.compactions()).toBe(1);
    expect(t.discovery.current).toBe('arming');
    expect(t.watches[0]!.closed).toBe(true);
    expect(t.watches.length).toBe(2);
    expect(t.logs.some((l) => l.msg.startsWith('incoming/ had drained: recreated it empty'))).toBe(true);
    // An arrival before the new watch is in place is found by the listing that follows it.
    const a = taskName();
    t.arrive(a);
    const listed = t.listings();
    t.watches[1]!.becomeReady();
    await vi.advanceTimersByTimeAsync(0);
    expect(t.discovery.current).toBe('watching');
    expect(t.listings()).toBe(listed + 1);
    expect(t.queue.has(a)).toBe(true);
    // Events of the old watch are not the new folder's; the new one's are.
    const b = taskName();
    t.arrive(b);
    t.watches[1]!.emit(b);
    expect(t.queue.has(b)).toBe(true);
    await t.discovery.stop();
    expect(t.watches[1]!.closed).toBe(true);
  });

  it('follows an incoming/ recreated by another daemon: watching -> arming -> watching on the new folder, which is listed', async () => {
    const t = setup({ everShared: true, readyAtOnce: false });
    const started = t.discovery.start(0, undefined);
    t.watches[0]!.becomeReady();
    await started;
    expect(t.discovery.current).toBe('watching');
    t.discovery.followRecreated();
    expect(t.discovery.current).toBe('arming');
    expect(t.watches[0]!.closed).toBe(true);
    expect(t.watches.length).toBe(2);
    const a = taskName();
    t.arrive(a);
    const listed = t.listings();
    t.watches[1]!.becomeReady();
    await vi.advanceTimersByTimeAsync(0);
    expect(t.discovery.current).toBe('watching');
    expect(t.listings()).toBe(listed + 1);
    expect(t.queue.has(a)).toBe(true);
    expect(t.logs.some((l) => l.msg === 'incoming/ was recreated empty by another daemon; watching the new folder')).toBe(true);
    await t.discovery.stop();
  });

  it('an incoming/ recreated while its watch is being set up is watched again once that watch is in place', async () => {
    const t = setup({ everShared: true, readyAtOnce: false });
    const started = t.discovery.start(0, undefined);
    expect(t.discovery.current).toBe('arming');
    t.discovery.followRecreated();
    expect(t.watches.length).toBe(1);
    t.watches[0]!.becomeReady();
    await vi.advanceTimersByTimeAsync(0);
    // The first watch may be on the old folder: closed, and a second one set up.
    expect(t.watches[0]!.closed).toBe(true);
    expect(t.watches.length).toBe(2);
    t.watches[1]!.becomeReady();
    await started;
    await vi.advanceTimersByTimeAsync(0);
    expect(t.discovery.current).toBe('watching');
    expect(t.watches[1]!.closed).toBe(false);
    await t.discovery.stop();
  });

  it('a drained incoming/ is never recreated once another daemon was seen on the spool', async () => {
    const t = setup({ everShared: true });
    await t.discovery.start(0, undefined);
    t.grow();
    t.watches[0]!.emit(undefined);
    expect(t.compactions()).toBe(0);
    expect(t.discovery.current).toBe('watching');
    expect(t.watches.length).toBe(1);
    await t.discovery.stop();
  });

  it('watching: a named arrival is queued; one not due soon moves to pending/ at once', async () => {
    const t = setup();
    await t.discovery.start(0, undefined);
    const due = taskName();
    const later = taskName(NOW + 10 * SCAN_INTERVAL);
    t.arrive(due);
    t.arrive(later);
    t.watches[0]!.emit(due);
    t.watches[0]!.emit(later);
    expect([...t.queue.inDir('incoming')]).toEqual([due]);
    expect([...t.queue.inDir('pending')]).toEqual([later]);
    expect(t.pending.has(later)).toBe(true);
    // Its departure from incoming/ is ours: the event it causes is not an arrival.
    t.watches[0]!.emit(later);
    expect(t.queue.size).toBe(2);
  });

  it('watching -> listing when incoming/ gets crowded; listed on a timer; -> arming -> watching once small again', async () => {
    const t = setup();
    await t.discovery.start(0, undefined);
    const first = t.watches[0]!;
    const names = Array.from({ length: WATCH_MAX_BACKLOG + 1 }, () => taskName());
    for (const n of names) {
      t.arrive(n);
      first.emit(n);
    }
    expect(t.discovery.current).toBe('listing');
    expect(first.closed).toBe(true);
    expect(t.logs.filter((l) => l.msg.startsWith('incoming/ is crowded; watching paused')).length).toBe(1);
    const listed = t.listings();
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.listings()).toBe(listed + 1);
    expect(t.discovery.current).toBe('listing');
    // The daemon claims most of them (they leave incoming/): the next listing finds it small and watches again.
    for (const n of names.slice(0, 600)) t.incoming.delete(n);
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.discovery.current).toBe('watching');
    expect(t.watches.length).toBe(2);
    expect(t.watches[1]!.closed).toBe(false);
    // Crowded again: said at debug only.
    for (const n of Array.from({ length: WATCH_MAX_BACKLOG }, () => taskName())) {
      t.arrive(n);
      t.watches[1]!.emit(n);
    }
    expect(t.discovery.current).toBe('listing');
    expect(t.logs.filter((l) => l.msg === 'incoming/ is crowded again; watching paused').length).toBe(1);
    // No timer of the listing pace survives a stop.
    await t.discovery.stop();
    expect(t.discovery.current).toBe('stopped');
    const after = t.listings();
    await vi.advanceTimersByTimeAsync(10 * SCAN_INTERVAL);
    expect(t.listings()).toBe(after);
  });

  it('starting -> listing with a crowded backlog: tasks not due soon move out to pending/ in the background, due ones stay', async () => {
    const t = setup();
    const due = Array.from({ length: 10 }, () => taskName());
    const later = Array.from({ length: WATCH_MAX_BACKLOG + 5 }, () => taskName(NOW + 10 * SCAN_INTERVAL));
    for (const n of [...due, ...later]) t.arrive(n);
    t.queue.refill([[[...t.incoming], 'incoming']], NOW);
    await t.discovery.start(t.incoming.size, undefined);
    expect(t.discovery.current).toBe('listing');
    await vi.advanceTimersByTimeAsync(100);
    expect([...t.incoming].sort()).toEqual([...due].sort());
    expect(t.pending.size).toBe(later.length);
    expect([...t.queue.inDir('pending')].length).toBe(later.length);
    // The next listing finds incoming/ small: watched again.
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.discovery.current).toBe('watching');
    await t.discovery.stop();
  });

  it('listing a crowded incoming/ of due tasks only: the mover does not list it again for nothing', async () => {
    const t = setup();
    const due = Array.from({ length: WATCH_MAX_BACKLOG + 5 }, () => taskName());
    for (const n of due) t.arrive(n);
    t.queue.refill([[[...t.incoming], 'incoming']], NOW);
    // The start-up load counted no name not due soon.
    t.discovery.backlogCounted(0);
    await t.discovery.start(t.incoming.size, undefined);
    expect(t.discovery.current).toBe('listing');
    expect(t.listings()).toBe(0);
    // The listing pace's tick lists it (still crowded, still nothing in the future): one listing, not two.
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.listings()).toBe(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(t.listings()).toBe(1);
    // A future task arrives: the next listing sees it, and the mover lists the folder to move it out.
    const later = taskName(NOW + 10 * SCAN_INTERVAL);
    t.arrive(later);
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.listings()).toBe(3);
    expect(t.pending.has(later)).toBe(true);
    await t.discovery.stop();
  });

  it('a watch that comes into place after stop() is closed at once, and the mode stays stopped', async () => {
    const t = setup({ readyAtOnce: false });
    const started = t.discovery.start(0, undefined);
    expect(t.discovery.current).toBe('arming');
    await t.discovery.stop();
    t.watches[0]!.becomeReady();
    await started;
    expect(t.discovery.current).toBe('stopped');
    expect(t.watches[0]!.closed).toBe(true);
    // Events from it are ignored.
    const n = taskName();
    t.arrive(n);
    t.watches[0]!.emit(n);
    expect(t.queue.has(n)).toBe(false);
  });

  it('a watch that cannot be set up leaves incoming/ listed on a timer', async () => {
    const t = setup();
    let fail = true;
    const real = t.discovery as unknown as { fs: IncomingFs };
    const watch = real.fs.watch;
    real.fs.watch = (...args) => (fail ? Promise.reject(new Error('no inotify watches left')) : watch(...args));
    await expect(t.discovery.start(0, undefined)).rejects.toThrow('no inotify watches left');
    expect(t.discovery.current).toBe('listing');
    fail = false;
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.discovery.current).toBe('watching');
    await t.discovery.stop();
  });
});

describe('the listing pace', () => {
  it('lists every second while incoming/ is unwatched, and at once (2× the listing cost, at least 10 ms) when starved', async () => {
    let added = 0;
    let ready = 5000;
    const ticks: number[] = [];
    const pace = new ListingPace(SCAN_INTERVAL, { lastListingMs: () => 3, lastListingAdded: () => added, readyCount: () => ready }, () => void ticks.push(Date.now()));
    pace.start();
    await vi.advanceTimersByTimeAsync(999);
    expect(ticks).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(ticks).toEqual([NOW + 1000]);
    // The last listing found tasks, but plenty are due: no hurry.
    added = 50;
    pace.hurry();
    await vi.advanceTimersByTimeAsync(QUICK_SCAN_MIN_MS);
    expect(ticks.length).toBe(1);
    // Running out of due tasks: the next listing comes after max(10, 2 × 3) ms.
    ready = 10;
    pace.hurry();
    await vi.advanceTimersByTimeAsync(QUICK_SCAN_MIN_MS);
    expect(ticks).toEqual([NOW + 1000, NOW + 1000 + 2 * QUICK_SCAN_MIN_MS]);
    // Still starved: chosen quick at the end of that listing too.
    await vi.advanceTimersByTimeAsync(QUICK_SCAN_MIN_MS);
    expect(ticks.length).toBe(3);
    pace.stop();
    expect(pace.current).toBe('off');
  });
});

describe('the reconciliation scan', () => {
  function reconciler(problems: () => Array<{ message: string }>) {
    const calls: string[] = [];
    const log = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: (msg: string) => void calls.push(`error: ${msg}`), child: () => log, enabled: () => false } as unknown as Logger;
    let untrusted = 0;
    const r = new Reconciler({
      layout: { pending: '/nonexistent/pending', active: '/nonexistent/active' } as never,
      folders: {
        checkAll: problems,
        check: () => {
          throw new Error('active/ is not checked in this test');
        },
      } as never,
      options: { scanInterval: SCAN_INTERVAL, staleAfter: 30_000 },
      log,
      clock: { now: () => NOW } as never,
      feed: new QueueFeed(new TaskQueue(() => undefined, () => NOW), () => undefined),
      incoming: { arrivals: { forgetOldHolds: () => void calls.push('holds') }, relistIfChanged: () => void calls.push('incoming') } as never,
      peers: { othersSeen: false } as never,
      sweeper: { sweep: () => void calls.push('sweep') } as never,
      ownerId: () => 'me',
      unmatched: () => undefined,
      retryFailedClaims: () => void calls.push('failed claims'),
      reclaimed: () => undefined,
      untrusted: () => {
        untrusted++;
        r.stop();
      },
    });
    return { r, calls, untrusted: () => untrusted };
  }

  it('runs every scan interval, each step in order, whatever incoming/ does; start() twice throws', async () => {
    const { r, calls } = reconciler(() => []);
    r.start();
    expect(() => r.start()).toThrow(ImpossibleTransitionError);
    await vi.advanceTimersByTimeAsync(SCAN_INTERVAL - 1);
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toEqual(['holds', 'incoming', 'failed claims', 'error: claims of dead daemons are not reclaimed', 'sweep']);
    expect(r.lastScanAt).toBe(NOW + SCAN_INTERVAL);
    await vi.advanceTimersByTimeAsync(SCAN_INTERVAL);
    expect(calls.filter((c) => c === 'sweep').length).toBe(2);
    r.stop();
    await vi.advanceTimersByTimeAsync(10 * SCAN_INTERVAL);
    expect(calls.filter((c) => c === 'sweep').length).toBe(2);
    expect(r.current).toBe('stopped');
  });

  it('a replaced folder stops the spool being served: nothing else is done, and no scan follows', async () => {
    const { r, calls, untrusted } = reconciler(() => [{ message: 'incoming/ was replaced' }]);
    r.start();
    await vi.advanceTimersByTimeAsync(3 * SCAN_INTERVAL);
    expect(untrusted()).toBe(1);
    expect(calls).toEqual([
      'error: incoming/ was replaced',
      'error: a spool folder was replaced while spoolerd ran: this spool is no longer served; restore the folder and restart spoolerd',
    ]);
    expect(r.current).toBe('stopped');
  });
});

describe('a stop during start-up', () => {
  it('leaves incoming/ stopped: start() after stop() neither watches nor lists', async () => {
    const t = setup();
    await t.discovery.stop();
    await t.discovery.start(0, undefined);
    await t.discovery.start(WATCH_MAX_BACKLOG + 1, undefined);
    await vi.advanceTimersByTimeAsync(10 * SCAN_INTERVAL);
    expect(t.discovery.current).toBe('stopped');
    expect(t.watches.length).toBe(0);
    expect(t.listings()).toBe(0);
  });
});
