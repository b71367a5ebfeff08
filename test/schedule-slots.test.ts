/**
 * Slots of schedules (spool/schedule.ts), with fixed dates: `every` aligned to
 * the epoch, cron in UTC and in a time zone, both directions of a DST change
 * (a fixed-time job whose time does not exist runs at the first valid time
 * after the gap, one whose time occurs twice runs once; an interval job skips
 * the gap and runs in both passes of the repeated hour), catch-up, the slot's
 * deterministic task id, and the checks of a schedule's options (a schedule
 * file's and spooler.periodic()'s).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/spooler.js';
import { toMs } from '../runtime/duration.js';
import { InvalidOptionError } from '../spool/errors.js';
import { checkSchedule, missedSlots, ScheduleSlots, slotMarkerName, slotOfMarker, slotTaskId, type ScheduleSpec } from '../spool/schedule.js';
import { TASK_ID_PATTERN } from '../spool/name.js';

const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number): string => new Date(ms).toISOString();
const spec = (input: Record<string, unknown>): ScheduleSpec => checkSchedule({ task: 't', ...input }, 'test', toMs);

describe('every', () => {
  it('slots are the multiples of the period since the epoch, whenever computed', () => {
    const slots = new ScheduleSlots(spec({ every: '10m' }));
    expect(iso(slots.next(at('2026-03-01T12:03:07.250Z'))!)).toBe('2026-03-01T12:10:00.000Z');
    // Strictly after: a time on a slot gives the one after it.
    expect(iso(slots.next(at('2026-03-01T12:10:00.000Z'))!)).toBe('2026-03-01T12:20:00.000Z');
    expect(slots.latest(at('2026-03-01T12:10:00.000Z'), 3).map(iso)).toEqual(['2026-03-01T12:10:00.000Z', '2026-03-01T12:00:00.000Z', '2026-03-01T11:50:00.000Z']);
    // Never at or before `after`.
    expect(slots.latest(at('2026-03-01T12:10:00.000Z'), 3, at('2026-03-01T12:00:00.000Z')).map(iso)).toEqual(['2026-03-01T12:10:00.000Z']);
  });

  it('every second', () => {
    const slots = new ScheduleSlots(spec({ every: '1s' }));
    expect(slots.next(1_000_999)).toBe(1_001_000);
    expect(slots.next(1_001_000)).toBe(1_002_000);
  });
});

describe('cron', () => {
  it('in UTC by default, 5 fields (minutes) or 6 (seconds first)', () => {
    const nightly = new ScheduleSlots(spec({ cron: '0 3 * * *' }));
    expect(iso(nightly.next(at('2026-06-10T02:59:59Z'))!)).toBe('2026-06-10T03:00:00.000Z');
    expect(iso(nightly.next(at('2026-06-10T03:00:00Z'))!)).toBe('2026-06-11T03:00:00.000Z');
    const everySecond = new ScheduleSlots(spec({ cron: '* * * * * *' }));
    expect(everySecond.next(at('2026-06-10T03:00:00.400Z'))).toBe(at('2026-06-10T03:00:01Z'));
  });

  it('in a time zone: local time, summer and winter', () => {
    const slots = new ScheduleSlots(spec({ cron: '0 3 * * *', tz: 'Europe/Berlin' }));
    expect(iso(slots.next(at('2026-07-01T00:00:00Z'))!)).toBe('2026-07-01T01:00:00.000Z'); // CEST, UTC+2
    expect(iso(slots.next(at('2026-01-15T00:00:00Z'))!)).toBe('2026-01-15T02:00:00.000Z'); // CET, UTC+1
  });

  it('DST forward (Europe/Berlin, 2026-03-29 02:00 -> 03:00): a fixed time in the gap runs at the first valid time after it, once', () => {
    const slots = new ScheduleSlots(spec({ cron: '30 2 * * *', tz: 'Europe/Berlin' }));
    let t = at('2026-03-27T12:00:00Z');
    const runs: string[] = [];
    for (let i = 0; i < 4; i++) runs.push(iso((t = slots.next(t)!)));
    expect(runs).toEqual([
      '2026-03-28T01:30:00.000Z', // 02:30 CET
      '2026-03-29T01:00:00.000Z', // 02:30 does not exist: 03:00 CEST, the first valid time after the gap
      '2026-03-30T00:30:00.000Z', // 02:30 CEST
      '2026-03-31T00:30:00.000Z',
    ]);
  });

  it('DST back (Europe/Berlin, 2026-10-25 03:00 -> 02:00): a fixed time that occurs twice runs once, at the first', () => {
    const slots = new ScheduleSlots(spec({ cron: '30 2 * * *', tz: 'Europe/Berlin' }));
    let t = at('2026-10-24T12:00:00Z');
    const runs: string[] = [];
    for (let i = 0; i < 3; i++) runs.push(iso((t = slots.next(t)!)));
    expect(runs).toEqual(['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z', '2026-10-27T01:30:00.000Z']);
  });

  it('DST back (America/New_York, 2026-11-01): the same, on another continent', () => {
    const slots = new ScheduleSlots(spec({ cron: '30 1 * * *', tz: 'America/New_York' }));
    let t = at('2026-10-31T12:00:00Z');
    const runs: string[] = [];
    for (let i = 0; i < 2; i++) runs.push(iso((t = slots.next(t)!)));
    expect(runs).toEqual(['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']);
  });

  it('an interval job over DST: the gap is skipped, the repeated hour runs in both passes (distinct instants)', () => {
    const slots = new ScheduleSlots(spec({ cron: '*/30 * * * *', tz: 'Europe/Berlin' }));
    let t = at('2026-03-29T00:00:00Z'); // 01:00 CET
    const forward: string[] = [];
    for (let i = 0; i < 3; i++) forward.push(iso((t = slots.next(t)!)));
    // 01:30 CET, then 03:00 CEST (02:00 and 02:30 do not exist), 03:30 CEST: one hour of real time has two slots less.
    expect(forward).toEqual(['2026-03-29T00:30:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-29T01:30:00.000Z']);
    t = at('2026-10-25T00:00:00Z'); // 02:00 CEST
    const back: string[] = [];
    for (let i = 0; i < 4; i++) back.push(iso((t = slots.next(t)!)));
    // 02:30 CEST, 02:00 CET, 02:30 CET, 03:00 CET: every 30 minutes of real time.
    expect(back).toEqual(['2026-10-25T00:30:00.000Z', '2026-10-25T01:00:00.000Z', '2026-10-25T01:30:00.000Z', '2026-10-25T02:00:00.000Z']);
  });

  it('latest() goes back over a DST change as next() goes forward', () => {
    const slots = new ScheduleSlots(spec({ cron: '30 2 * * *', tz: 'Europe/Berlin' }));
    expect(slots.latest(at('2026-03-30T12:00:00Z'), 3).map(iso)).toEqual(['2026-03-30T00:30:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-28T01:30:00.000Z']);
  });
});

describe('catch-up', () => {
  const slots = new ScheduleSlots(spec({ every: '1m' }));
  const last = at('2026-05-01T10:00:00Z');
  const now = at('2026-05-01T10:05:30Z'); // 10:01 … 10:05 were missed

  it('none: nothing; last: the newest; all: every one, oldest first, at most the limit (the newest)', () => {
    expect(missedSlots(slots, { catchUp: 'none', catchUpLimit: 100 }, last, now)).toEqual([]);
    expect(missedSlots(slots, { catchUp: 'last', catchUpLimit: 100 }, last, now).map(iso)).toEqual(['2026-05-01T10:05:00.000Z']);
    expect(missedSlots(slots, { catchUp: 'all', catchUpLimit: 100 }, last, now).map(iso)).toEqual(
      ['10:01', '10:02', '10:03', '10:04', '10:05'].map((hm) => `2026-05-01T${hm}:00.000Z`),
    );
    expect(missedSlots(slots, { catchUp: 'all', catchUpLimit: 2 }, last, now).map(iso)).toEqual(['2026-05-01T10:04:00.000Z', '2026-05-01T10:05:00.000Z']);
  });

  it('nothing is missed when the last slot taken is the newest', () => {
    expect(missedSlots(slots, { catchUp: 'all', catchUpLimit: 100 }, at('2026-05-01T10:05:00Z'), now)).toEqual([]);
  });
});

describe('slot names', () => {
  it('a slot task id is the slot time and 16 hex of a hash: the same from every daemon, different per schedule and slot', () => {
    const id = slotTaskId('nightly', 1_796_000_000_000);
    expect(id).toMatch(TASK_ID_PATTERN);
    expect(id.startsWith('1796000000000')).toBe(true);
    expect(slotTaskId('nightly', 1_796_000_000_000)).toBe(id);
    expect(slotTaskId('hourly', 1_796_000_000_000)).not.toBe(id);
    expect(slotTaskId('nightly', 1_796_000_001_000)).not.toBe(id);
  });

  it('markers are 13 digits that sort as times', () => {
    expect(slotMarkerName(999)).toBe('0000000000999');
    expect(slotOfMarker('0000000000999')).toBe(999);
    for (const bad of ['.stage-1', '123', '12345678901234', '000000000099x']) expect(slotOfMarker(bad)).toBeUndefined();
  });
});

describe('checking a schedule', () => {
  const bad = (input: Record<string, unknown>, message: RegExp) => expect(() => spec(input)).toThrow(message);

  it('fills in the defaults', () => {
    expect(spec({ every: '10m' })).toEqual({ name: 't', task: 't', every: 600_000, catchUp: 'none', catchUpLimit: 100, args: [], priority: 50 });
  });

  it('says what is wrong', () => {
    bad({}, /exactly one of "every".*and "cron"/);
    bad({ every: '1m', cron: '* * * * *' }, /exactly one of/);
    bad({ every: '500ms' }, /at least 1000 ms/);
    bad({ every: 'soon' }, /not a duration/);
    bad({ every: '1m', tz: 'Europe/Berlin' }, /"tz" goes with "cron" only/);
    bad({ cron: '* * *' }, /"cron" "\* \* \*"/);
    bad({ cron: '0 3 * * *', tz: 'Mars/Olympus' }, /not a time zone/);
    bad({ every: '1m', catchUp: 'some' }, /"catchUp" must be one of none, last, all/);
    bad({ every: '1m', catchUpLimit: 0 }, /"catchUpLimit" must be a whole number/);
    bad({ every: '1m', args: 'x' }, /"args" must be an array/);
    bad({ every: '1m', priority: 100 }, /priority/);
    bad({ every: '1m', name: '../etc' }, /schedule name/);
    bad({ every: '1m', name: '.hidden' }, /schedule name/);
    expect(() => checkSchedule({ every: '1m' }, 'test', toMs)).toThrow(/"task" must be/);
  });
});

describe('spooler.periodic()', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  const open = () => Spooler.open(join((dir = mkdtempSync(join(tmpdir(), 'periodic-'))), 'spool'));

  it('registers the task and its schedule (plain JSON, with the task options a body carries), and returns the task wrapper', () => {
    const spooler = open();
    const wrapper = spooler.periodic(function report(kind: string) {
      return kind;
    }, { cron: '0 3 * * *', tz: 'Europe/Berlin', catchUp: 'last', args: ['daily'], priority: 20, retries: 2, timeout: '1m' });
    expect(wrapper.taskName).toBe('report');
    expect(spooler.taskNames).toEqual(['report']);
    expect(spooler.schedules).toEqual([
      { name: 'report', task: 'report', cron: '0 3 * * *', tz: 'Europe/Berlin', catchUp: 'last', catchUpLimit: 100, args: ['daily'], priority: 20, fields: { retry: { limit: 2 }, timeout: 60_000 } },
    ]);
    expect(JSON.parse(JSON.stringify(spooler.schedules))).toEqual(spooler.schedules);
  });

  it('takes a task() wrapper, and a second schedule of one task by another name', () => {
    const spooler = open();
    const ping = spooler.task(function ping() {});
    spooler.periodic(ping, { every: '1m' });
    spooler.periodic(ping, { every: '1h', schedule: 'ping-hourly' });
    expect(spooler.schedules.map((s) => [s.name, s.task, s.every])).toEqual([
      ['ping', 'ping', 60_000],
      ['ping-hourly', 'ping', 3_600_000],
    ]);
  });

  it('refuses a schedule name defined twice differently, and arguments that cannot be stored, at definition', () => {
    const spooler = open();
    spooler.periodic(function a() {}, { every: '1m', schedule: 's' });
    expect(() => spooler.periodic(function b() {}, { every: '1m', schedule: 's' })).toThrow(/defined twice/);
    expect(() => spooler.periodic(function c() {}, { every: '1m', args: [() => 1] })).toThrow(/function/i);
    expect(() => spooler.periodic(function d() {}, { every: '1m', cron: '* * * * *' })).toThrow(InvalidOptionError);
  });
});
