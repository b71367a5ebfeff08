/**
 * The scheduler (spooler/schedule/scheduler.ts) and the slot steps of
 * spool/protocol.ts on real temp directories, with a fake clock: slots
 * enqueued at their time, two schedulers on one spool (two daemons) enqueue
 * each slot once, catch-up at start, a paused schedule skips its slots, a
 * stall starts over from the markers; and for each step of "enqueue a slot" a
 * crash simulated after it (the enqueue abandoned there), then the recovery the
 * crash table names: the slot runs once, never twice.
 */
import { linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { toMs } from '../runtime/duration.js';
import { SpoolLayout } from '../spool/layout.js';
import { parseTaskName } from '../spool/name.js';
import { NOTHING_PAUSED, readPauseStateSync, type PauseState } from '../spool/pause.js';
import { DEBRIS_AGE_MS, pruneMarkers } from '../spool/protocol.js';
import { enqueueOnce, finishStagedEnqueues, LinkSupport, STAGE_PREFIX as SLOT_STAGE_PREFIX, takeMarkerSync as takeSlotSync, type EnqueueOnceStep as SlotStep } from '../spool/enqueue-once.js';
import { checkSchedule, slotOfMarker, type ScheduleSpec } from '../spool/schedule.js';
import { lastRun, listMarkers, markerPathOf, readScheduleRecord } from '../spool/schedules.js';
import { createLogger } from '../spooler/logger.js';
import { MAX_WAIT_MS, REAL_TIMERS, Scheduler, STALL_MS, type SchedulerDeps } from '../spooler/schedule/scheduler.js';
import { T0, useFakeClock } from './helpers/fake-clock.js';

let root: string;
let layout: SpoolLayout;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'scheduler-'));
  layout = new SpoolLayout(join(root, 'spool')).ensure();
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const spec = (input: Record<string, unknown> = {}): ScheduleSpec => checkSchedule({ task: 'tick', name: 'ticker', every: '1s', ...input }, 'test', toMs);
const incoming = (): string[] => readdirSync(layout.incoming).sort();
const slotsIn = (names: string[]): number[] => names.map((n) => parseTaskName(n)!.due);
const quiet = createLogger({ level: 'error', format: 'json', write: () => undefined });

describe('the scheduler, with a fake clock', () => {
  const clock = useFakeClock(T0 + 250);
  const schedulers: Scheduler[] = [];
  afterEach(() => {
    for (const s of schedulers.splice(0)) s.stop();
  });

  function scheduler(specs: ScheduleSpec[], more: Partial<SchedulerDeps> = {}): Scheduler {
    const s = new Scheduler(
      {
        layout,
        log: quiet,
        clock: { now: () => Date.now(), after: REAL_TIMERS.after },
        ownerId: () => 'test-owner',
        check: () => undefined,
        readPause: async () => NOTHING_PAUSED,
        fsync: false,
        ...more,
      },
      specs,
    );
    schedulers.push(s);
    return s;
  }

  it('enqueues one task per slot at its time, named by the slot, and marks each slot', async () => {
    await scheduler([spec()]).start();
    expect(incoming()).toEqual([]);
    await clock.advanceAsync(3000);
    const names = incoming();
    expect(slotsIn(names)).toEqual([T0 + 1000, T0 + 2000, T0 + 3000]);
    expect(names[0]).toMatch(new RegExp(`^50-${T0 + 1000}-${T0 + 1000}[0-9a-f]{16}-a0-tick\\.msgpack$`));
    expect(listMarkers(layout, 'ticker').map((m) => slotOfMarker(m))).toEqual([T0 + 1000, T0 + 2000, T0 + 3000]);
    // The marker is the task file (one inode, two names) while the task is in the spool.
    const marker = lstatSync(markerPathOf(layout, 'ticker', T0 + 1000));
    expect(marker.nlink).toBe(2);
    expect(marker.ino).toBe(lstatSync(join(layout.incoming, names[0]!)).ino);
    expect(lastRun(layout, 'ticker')).toEqual({ slot: T0 + 3000, state: 'in-spool' });
    expect(readScheduleRecord(layout, 'ticker')).toMatchObject({ spec: spec(), since: T0 + 250, last: T0 + 3000, next: T0 + 4000, by: 'test-owner' });
  });

  it('two schedulers on one spool (two daemons) enqueue each slot once', async () => {
    await scheduler([spec()]).start();
    await scheduler([spec()]).start();
    await clock.advanceAsync(5000);
    expect(slotsIn(incoming())).toEqual([1, 2, 3, 4, 5].map((s) => T0 + s * 1000));
  });

  it('catch-up at start: none, last, all (at most catchUpLimit), from the newest marker', async () => {
    const taken = (slot: number) => writeFileSync(markerPathOf(layout, 'ticker', slot), 'x');
    mkdirSync(join(layout.schedules, 'ticker'));
    taken(T0 - 10_000); // 9 slots missed: T0-9s … T0
    await scheduler([spec({ catchUp: 'none' })]).start();
    expect(incoming()).toEqual([]);
    schedulers.pop()!.stop();
    await scheduler([spec({ catchUp: 'last' })]).start();
    expect(slotsIn(incoming())).toEqual([T0]);
    schedulers.pop()!.stop();
    // Back to the nine missed slots, for 'all'.
    rmSync(join(layout.schedules, 'ticker'), { recursive: true });
    rmSync(join(layout.incoming), { recursive: true });
    mkdirSync(layout.incoming);
    mkdirSync(join(layout.schedules, 'ticker'));
    taken(T0 - 10_000);
    await scheduler([spec({ catchUp: 'all', catchUpLimit: 4 })]).start();
    expect(slotsIn(incoming())).toEqual([T0 - 3000, T0 - 2000, T0 - 1000, T0]);
  });

  it('a new schedule catches up from when a daemon first served it (schedules/<name>.json "since")', async () => {
    await scheduler([spec({ catchUp: 'all' })]).start();
    schedulers.pop()!.stop();
    clock.advance(3000); // no daemon ran for 3 s, and no slot had been taken yet
    await scheduler([spec({ catchUp: 'all' })]).start();
    expect(slotsIn(incoming())).toEqual([T0 + 1000, T0 + 2000, T0 + 3000]);
  });

  it('a paused schedule takes its slots with empty markers and enqueues nothing; resumed, it goes on without catching up', async () => {
    let pause: PauseState = { all: false, tasks: [], schedules: ['ticker'] };
    await scheduler([spec({ catchUp: 'all' })], { readPause: async () => pause }).start();
    await clock.advanceAsync(3000);
    expect(incoming()).toEqual([]);
    expect(listMarkers(layout, 'ticker').map((m) => lstatSync(join(layout.schedules, 'ticker', m)).size)).toEqual([0, 0, 0]);
    expect(lastRun(layout, 'ticker')).toBeUndefined();
    pause = NOTHING_PAUSED;
    await clock.advanceAsync(1000);
    expect(slotsIn(incoming())).toEqual([T0 + 4000]);
    // `all` pauses tasks, not schedules.
    pause = { all: true, tasks: [], schedules: [] };
    await clock.advanceAsync(1000);
    expect(slotsIn(incoming())).toEqual([T0 + 4000, T0 + 5000]);
  });

  it('a slot reached late (a busy event loop) is still enqueued; a stall past STALL_MS starts over from the markers', async () => {
    await scheduler([spec({ catchUp: 'last' })]).start();
    // The clock jumps 3 s while the timer waits (as a blocked event loop sees it): four slots are due at once, none missed.
    vi.setSystemTime(Date.now() + 3000);
    await clock.advanceAsync(750);
    expect(slotsIn(incoming())).toEqual([T0 + 1000, T0 + 2000, T0 + 3000, T0 + 4000]);
    // A stall: the slots of over STALL_MS passed unseen; it starts over from the markers, and catch-up 'last' enqueues the newest only.
    vi.setSystemTime(Date.now() + STALL_MS + 5000);
    await clock.advanceAsync(1000);
    expect(slotsIn(incoming())).toEqual([T0 + 1000, T0 + 2000, T0 + 3000, T0 + 4000, T0 + 10_000 + STALL_MS]);
  });

  it('a slot months away: the timer wakes at most hourly and waits again (setTimeout cannot wait that long)', async () => {
    await scheduler([spec({ every: undefined, cron: '0 0 1 1 *' })]).start();
    await clock.advanceAsync(3 * MAX_WAIT_MS);
    expect(incoming()).toEqual([]);
    expect(clock.armed()).toBe(1);
  });

  it('a slot that cannot be written (a failing folder check, a full disk) is tried again a second later, not lost', async () => {
    let failing = false;
    await scheduler([spec()], {
      check: () => {
        if (failing) throw new Error('ENOSPC: no space left on device');
      },
    }).start();
    failing = true;
    await clock.advanceAsync(1000);
    expect(incoming()).toEqual([]);
    failing = false;
    await clock.advanceAsync(1000);
    expect(slotsIn(incoming())).toEqual([T0 + 1000, T0 + 2000]);
  });

  it('reads a pause file written as spool pause writes it', async () => {
    mkdirSync(join(layout.root, 'control'), { recursive: true });
    writeFileSync(join(layout.root, 'control', 'pause.json'), JSON.stringify({ version: 1, all: false, tasks: [], schedules: ['ticker'] }));
    await scheduler([spec()], { readPause: async () => readPauseStateSync(layout.root) }).start();
    await clock.advanceAsync(2000);
    expect(incoming()).toEqual([]);
    expect(listMarkers(layout, 'ticker')).toHaveLength(2);
  });

});

/** A slot's enqueue as the scheduler makes it (spooler/schedule/scheduler.ts: enqueue()). */
function enqueueSlotSync(l: SpoolLayout, marker: string, fileName: string, bytes: Uint8Array, o: { hardLinks: boolean; afterStep?: (step: SlotStep) => void; linkCounted?: (counted: boolean) => void }) {
  const links = new LinkSupport(() => o.linkCounted?.(false));
  if (!o.hardLinks) links.hardLinks = false;
  const outcome = enqueueOnce(l, { markerDir: dirname(marker), marker: basename(marker), stageDir: l.schedules, fileName, bytes, links, afterStep: o.afterStep });
  if (o.hardLinks && links.hardLinks) o.linkCounted?.(true);
  return outcome;
}
const finishStagedSlots = (l: SpoolLayout, names: readonly string[], now: number, graceMs: number) => finishStagedEnqueues(l, l.schedules, names, now, graceMs);

describe('enqueue a slot: a crash after each step', () => {
  const slot = 1_796_000_000_000;
  const fileName = `50-${slot}-${slot}0123456789abcdef-a0-tick.msgpack`;
  const bytes = Buffer.from([0x82, 0xa7, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x01, 0xa4, 0x74, 0x79, 0x70, 0x65, 0xa5, 0x66, 0x63, 0x61, 0x6c, 0x6c]);
  let marker: string;
  beforeEach(() => {
    mkdirSync(join(layout.schedules, 'ticker'));
    marker = markerPathOf(layout, 'ticker', slot);
  });
  class Crash extends Error {}
  const crashAfter = (at: SlotStep) => (step: SlotStep) => {
    if (step === at) throw new Crash(step);
  };
  const stages = () => readdirSync(layout.schedules).filter((n) => n.startsWith(SLOT_STAGE_PREFIX));
  const now = Date.now();

  it('no crash: the task in incoming/, the marker its second name, no stage left', () => {
    expect(enqueueSlotSync(layout, marker, fileName, bytes, { hardLinks: true })).toBe('enqueued');
    expect(incoming()).toEqual([fileName]);
    expect(lstatSync(marker).nlink).toBe(2);
    expect(stages()).toEqual([]);
    // A second enqueue of the slot, by anyone: taken, nothing written, nothing left behind.
    expect(enqueueSlotSync(layout, marker, fileName, bytes, { hardLinks: true })).toBe('exists');
    expect(incoming()).toEqual([fileName]);
    expect(stages()).toEqual([]);
  });

  it('after staging: the slot is not taken (the next daemon enqueues it); the stage is debris, swept after an hour', () => {
    expect(() => enqueueSlotSync(layout, marker, fileName, bytes, { hardLinks: true, afterStep: crashAfter('staged') })).toThrow(Crash);
    expect(stages()).toHaveLength(1);
    expect(finishStagedSlots(layout, readdirSync(layout.schedules), now, 0)).toEqual([]); // young debris: left alone, never published
    expect(incoming()).toEqual([]);
    expect(enqueueSlotSync(layout, marker, fileName, bytes, { hardLinks: true })).toBe('enqueued');
    expect(incoming()).toEqual([fileName]);
    const debris = stages();
    expect(debris).toHaveLength(1);
    expect(finishStagedSlots(layout, debris, now + DEBRIS_AGE_MS + 1000, 0)).toEqual([]);
    expect(stages()).toEqual([]);
    expect(incoming()).toEqual([fileName]);
  });

  it('after the link: the slot is taken (others see EEXIST) and the stage scan publishes the task, once', () => {
    expect(() => enqueueSlotSync(layout, marker, fileName, bytes, { hardLinks: true, afterStep: crashAfter('linked') })).toThrow(Crash);
    expect(enqueueSlotSync(layout, marker, fileName, bytes, { hardLinks: true })).toBe('exists');
    expect(incoming()).toEqual([]);
    // Within the grace the enqueuer may still be at it: left alone.
    expect(finishStagedSlots(layout, readdirSync(layout.schedules), now, 60_000)).toEqual([]);
    expect(finishStagedSlots(layout, readdirSync(layout.schedules), now + 120_000, 60_000)).toEqual([fileName]);
    expect(incoming()).toEqual([fileName]);
    expect(stages()).toEqual([]);
    expect(lstatSync(marker).ino).toBe(lstatSync(join(layout.incoming, fileName)).ino);
    expect(finishStagedSlots(layout, readdirSync(layout.schedules), now + 120_000, 0)).toEqual([]);
    expect(incoming()).toEqual([fileName]);
  });

  it('after the link, the stalled enqueuer resumes after the stage scan published its task: its rename finds nothing, no second task', () => {
    let resumed = false;
    const outcome = enqueueSlotSync(layout, marker, fileName, bytes, {
      hardLinks: true,
      afterStep: (step) => {
        if (step !== 'linked' || resumed) return;
        resumed = true;
        expect(finishStagedSlots(layout, readdirSync(layout.schedules), Date.now() + 60_000, 0)).toEqual([fileName]);
      },
    });
    expect(outcome).toBe('enqueued');
    expect(incoming()).toEqual([fileName]);
  });

  it('after publishing: done; the marker falls to one link once the task has finished', () => {
    expect(() => enqueueSlotSync(layout, marker, fileName, bytes, { hardLinks: true, afterStep: crashAfter('published') })).toThrow(Crash);
    expect(incoming()).toEqual([fileName]);
    expect(stages()).toEqual([]);
    rmSync(join(layout.incoming, fileName));
    expect(lstatSync(marker).nlink).toBe(1);
    expect(lastRun(layout, 'ticker')).toEqual({ slot, state: 'ended' });
  });

  it('without hard links: the marker first (a crash right after it loses the slot: the documented window), then the task', () => {
    expect(() => enqueueSlotSync(layout, marker, fileName, bytes, { hardLinks: false, afterStep: crashAfter('linked') })).toThrow(Crash);
    expect(incoming()).toEqual([]);
    expect(enqueueSlotSync(layout, marker, fileName, bytes, { hardLinks: false })).toBe('exists');
    rmSync(marker);
    expect(enqueueSlotSync(layout, marker, fileName, bytes, { hardLinks: false })).toBe('enqueued');
    expect(incoming()).toEqual([fileName]);
    expect(readdirSync(layout.tmp)).toEqual([]);
  });

  it('tells whether the filesystem counts links (sshfs shows every file with one link)', () => {
    const seen: boolean[] = [];
    enqueueSlotSync(layout, marker, fileName, bytes, { hardLinks: true, linkCounted: (counted) => seen.push(counted) });
    expect(seen).toEqual([true]);
  });

  it('a skipped slot: an empty marker, and the slot cannot be enqueued any more', () => {
    expect(takeSlotSync(marker)).toBe(true);
    expect(takeSlotSync(marker)).toBe(false);
    expect(enqueueSlotSync(layout, marker, fileName, bytes, { hardLinks: true })).toBe('exists');
    expect(incoming()).toEqual([]);
  });

  it('prune: only markers of ended tasks, over the age, never the newest few', () => {
    const dir = join(layout.schedules, 'ticker');
    const slots = [1, 2, 3, 4, 5, 6].map((i) => slot + i * 1000);
    for (const s of slots) writeFileSync(markerPathOf(layout, 'ticker', s), 'x');
    // Slot 2's task is still in the spool (two links): kept.
    linkSync(markerPathOf(layout, 'ticker', slots[1]!), join(layout.incoming, fileName));
    const names = listMarkers(layout, 'ticker');
    // Over 1 s old at slot + 5.5 s: slots 1 to 4; the newest two (5, 6) are kept whatever their age.
    expect(pruneMarkers(dir, names, (m) => slotOfMarker(m)!, slot + 5500, 1000, 2)).toBe(3); // 1, 3 and 4
    expect(listMarkers(layout, 'ticker').map((m) => slotOfMarker(m)! - slot)).toEqual([2000, 5000, 6000]);
  });

  it('stage debris and staged task bodies are read from nowhere but schedules/', () => {
    // A stage's name carries the task file name; anything else there is ignored.
    writeFileSync(join(layout.schedules, `${SLOT_STAGE_PREFIX}1-abcd-not-a-task`), 'x');
    linkSync(join(layout.schedules, `${SLOT_STAGE_PREFIX}1-abcd-not-a-task`), join(layout.schedules, 'ticker', '0000000000001'));
    expect(finishStagedSlots(layout, readdirSync(layout.schedules), now + 60_000, 0)).toEqual([]);
    expect(incoming()).toEqual([]);
    expect(readFileSync(join(layout.schedules, `${SLOT_STAGE_PREFIX}1-abcd-not-a-task`), 'utf8')).toBe('x');
  });
});
