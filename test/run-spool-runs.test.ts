/**
 * The main thread's side of the runners (spooler/run/spool-runs.ts) with fakes:
 * fake run slots and a fixed spool clock around a real queue and the
 * in-process runner on real temp folders. What it must keep in step: every
 * slot taken for a name is given back exactly once, whatever became of the
 * name; a reschedule goes back into the queue under its new name; a lost
 * owner forgets its names at once and ignores its runner's later reports; the
 * stop returns what is claimed and nothing else.
 */
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { SpoolClock } from '../spool/clock.js';
import { SpoolLayout } from '../spool/layout.js';
import { parseTaskName } from '../spool/name.js';
import { createLogger } from '../spooler/logger.js';
import { Tally } from '../spooler/observer.js';
import { DEFAULTS, type DaemonOptions } from '../spooler/options.js';
import { SpoolRuns, type RunsHost, type Slots, type SpoolStats } from '../spooler/run/spool-runs.js';
import { TaskQueue } from '../spooler/order/task-queue.js';
import { tempDir } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
let layout: SpoolLayout;
let ownerDir: string;
let spooler: Spooler;
let taken: number;
let host: RunsHost;
let runs: SpoolRuns;
let release: Array<() => void>;

function fakeSlots(concurrency: number): Slots {
  return {
    free: () => concurrency - taken,
    accepting: () => true,
    acquire: () => void taken++,
    release: () => {
      taken--;
      if (taken < 0) throw new Error('a slot was given back twice');
    },
    wake: () => undefined,
  };
}

beforeEach(() => {
  ({ dir, cleanup } = tempDir('spoolerd-spool-runs-'));
  layout = new SpoolLayout(join(dir, 'spool'));
  spooler = Spooler.open(layout.root);
  ownerDir = join(layout.active, 'host-1-abcdef');
  for (const d of [layout.incoming, layout.pending, ownerDir, layout.dead, layout.state, layout.quarantine]) mkdirSync(d, { recursive: true });
  taken = 0;
  release = [];
  const stats: SpoolStats = { processed: 0, skipped: 0, rescheduled: 0, dead: 0, cancelled: 0, expired: 0, quarantined: 0, reclaimed: 0, lost: 0, claimRaces: 0 };
  const clock = new SpoolClock();
  const options = { ...DEFAULTS, dirs: [layout.root], archive: false, poll: undefined, modules: [], log: createLogger({ level: 'error', format: 'json', write: () => undefined }), logLevel: 'error', logFormat: 'json' } as DaemonOptions;
  host = {
    layout,
    queue: new TaskQueue(() => undefined, () => clock.now()),
    stats,
    tally: new Tally(),
    clock,
    log: options.log,
    options,
    slots: fakeSlots(4),
    held: new Map(),
    departed: new Set(),
    sharedSpool: () => false,
    lookForPeers: () => undefined,
    claimFailed: () => undefined,
    claimSettled: () => undefined,
    ownerGone: () => undefined,
    stopping: () => false,
    check: () => undefined,
    checkedId: () => undefined,
  };
  runs = new SpoolRuns(host, undefined);
  runs.open(ownerDir, ownerDir, undefined);
});
afterEach(() => {
  for (const r of release) r();
  cleanup();
});

const quick = () => Spooler.open(layout.root).task(function quick() {});
const failing = () =>
  Spooler.open(layout.root).task(function failing() {
    throw new Error('no');
  });
const waiting = () => Spooler.open(layout.root).task(function waiting() {
  return new Promise<void>((done) => release.push(done));
});

async function queueAll(): Promise<void> {
  const now = host.clock.now();
  for (const n of readdirSync(layout.incoming)) host.queue.add(n, 'incoming', now);
}

describe('SpoolRuns (run/spool-runs.ts)', () => {
  it('gives at most the free slots; synchronous tasks end inside give() and every slot comes back once', async () => {
    const t = quick();
    for (let i = 0; i < 10; i++) await t();
    await queueAll();
    let given = 0;
    for (let round = 0; round < 5 && host.queue.readyCount > 0; round++) given += runs.give(64);
    expect(given).toBe(10);
    expect(taken).toBe(0);
    expect(host.stats.processed).toBe(10);
    expect(runs.heldCount).toBe(0);
    expect(readdirSync(ownerDir)).toEqual([]);
    expect(host.tally.byName.get('quick')!.processed).toBe(10);
  });

  it('holds a slot per running task, never more than the free slots, and frees it when the task ends', async () => {
    const t = waiting();
    for (let i = 0; i < 6; i++) await t();
    await queueAll();
    expect(runs.give(64)).toBe(4);
    expect(taken).toBe(4);
    expect(runs.runningTasks(10).map((r) => r.name)).toEqual(['waiting', 'waiting', 'waiting', 'waiting']);
    expect(runs.give(64)).toBe(0);
    release.shift()!();
    await new Promise((r) => setImmediate(r));
    expect(taken).toBe(3);
    expect(host.stats.processed).toBe(1);
    expect(runs.give(64)).toBe(1);
  });

  it('a failure is queued again under its new name (pending/, one more attempt)', async () => {
    await failing()();
    await queueAll();
    runs.give(64);
    expect(host.stats.rescheduled).toBe(1);
    expect(taken).toBe(0);
    const next = readdirSync(layout.pending);
    expect(next).toHaveLength(1);
    expect(host.queue.has(next[0]!)).toBe(true);
    expect(parseTaskName(next[0]!)!.attempts).toBe(1);
  });

  it('revoke (owner lost): frees every slot at once, forgets the names, and ignores what the runner reports later; the claimed files stay', async () => {
    const t = waiting();
    for (let i = 0; i < 2; i++) await t();
    await queueAll();
    runs.give(64);
    expect(taken).toBe(2);
    expect(runs.revoke()).toEqual({ running: 2, held: 2 });
    expect(taken).toBe(0);
    for (const r of release.splice(0)) r();
    await new Promise((r) => setImmediate(r));
    expect(taken).toBe(0);
    expect(host.stats.processed).toBe(0);
    expect(readdirSync(ownerDir)).toHaveLength(2);
  });

  it('the stop returns the claimed (started) tasks to incoming/ unchanged', async () => {
    const t = waiting();
    await t();
    await queueAll();
    runs.give(64);
    const [name] = readdirSync(ownerDir);
    expect(runs.releaseAll()).toBe(1);
    expect(readdirSync(layout.incoming)).toEqual([name]);
    expect(runs.heldCount).toBe(0);
  });
});
