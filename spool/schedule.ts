/**
 * Schedules of periodic tasks: what one is (ScheduleSpec, plain JSON, so that
 * it travels from a worker process to the daemon's main thread and sits in a
 * schedule file), how it is checked, and its slots: the instants at which it
 * enqueues one task each (SPOOL-FORMAT.md, "Schedules").
 *
 * Slots are in spool time (spool/clock.ts), so every daemon on a spool,
 * whatever its host's clock, computes the same ones:
 *   - `every`: the multiples of the period since the Unix epoch (every 10m:
 *     :00, :10, :20 …), whoever computes them and whenever;
 *   - `cron`: the times croner (https://github.com/Hexagon/croner) gives for the
 *     expression in the time zone `tz` (default UTC). Over a DST change croner
 *     follows Vixie cron: a fixed-time job (one value each in second, minute
 *     and hour, e.g. `30 2 * * *`) whose time does not exist that day runs at
 *     the first valid time after the gap, and one whose time occurs twice runs
 *     once, at the first occurrence; an interval job (a wildcard, step, list or
 *     range there, e.g. `*\/30 * * * *`) skips times in the gap and runs in
 *     both passes of a repeated hour (each pass is a distinct instant, so a
 *     distinct slot).
 */
import { createHash } from 'node:crypto';
import { Cron } from 'croner';
import { InvalidOptionError } from './errors.js';
import { checkPriority, checkTaskName, PRIORITY_DEFAULT, TASK_NAME_PATTERN, TIME_MAX } from './name.js';

export const CATCH_UP_MODES = ['none', 'last', 'all'] as const;
/** What happens to slots that passed while no daemon ran the schedule: none enqueued, the newest one, or all (the newest catchUpLimit). */
export type CatchUp = (typeof CATCH_UP_MODES)[number];

export const CATCH_UP_DEFAULT: CatchUp = 'none';
export const CATCH_UP_LIMIT_DEFAULT = 100;
/** The shortest `every`: a slot is a file, and a daemon's timer is not finer than this anyway. */
export const EVERY_MIN_MS = 1000;
/** A schedule name is a folder name under schedules/: the same characters as a task name (never a "." first, never a "/"). */
export const SCHEDULE_NAME_PATTERN = TASK_NAME_PATTERN;

/** Body fields a schedule's tasks carry besides args (from the task's options). */
export interface ScheduleTaskFields {
  retry?: { limit: number; backoff?: { kind: string; delay: number; [k: string]: unknown } };
  timeout?: number;
  keepResult?: number;
}

/** A checked schedule: plain JSON. */
export interface ScheduleSpec {
  /** Its name: the folder schedules/<name>/ and the file schedules/<name>.json. */
  name: string;
  /** The task each slot enqueues (an fcall task of this name). */
  task: string;
  /** The period in ms (exclusive with cron). */
  every?: number;
  /** A cron expression of 5, 6 (seconds first) or 7 fields (exclusive with every). */
  cron?: string;
  /** IANA time zone of the cron expression (default UTC). */
  tz?: string;
  catchUp: CatchUp;
  /** With catchUp 'all': at most this many missed slots, the newest. */
  catchUpLimit: number;
  /** The task's arguments, the same for every slot. */
  args: unknown[];
  priority: number;
  fields?: ScheduleTaskFields;
}

/** A schedule as written by hand (a schedule file) or passed to spooler.periodic(). */
export interface ScheduleInput {
  name?: unknown;
  task?: unknown;
  every?: unknown;
  cron?: unknown;
  tz?: unknown;
  catchUp?: unknown;
  catchUpLimit?: unknown;
  args?: unknown;
  priority?: unknown;
}

/**
 * Checks a schedule and fills in its defaults. `where` names it in errors
 * (a schedule file and its entry, or a spooler.periodic() call).
 * Throws InvalidOptionError saying what to change.
 */
export function checkSchedule(input: ScheduleInput, where: string, toMs: (value: number | string, what: string) => number): ScheduleSpec {
  const bad = (problem: string): never => {
    throw new InvalidOptionError(`${where}: ${problem}`);
  };
  const task = input.task;
  if (typeof task !== 'string') return bad('"task" must be the name of the task to enqueue');
  try {
    checkTaskName(task);
  } catch (err) {
    bad((err as Error).message);
  }
  const name = input.name ?? task;
  if (typeof name !== 'string' || !SCHEDULE_NAME_PATTERN.test(name)) {
    bad(`schedule name ${JSON.stringify(name)}: a letter or "_" first, then letters, digits, "_", ".", ":" or "-", at most 128 characters`);
  }
  if ((input.every === undefined) === (input.cron === undefined)) bad('give exactly one of "every" (a duration such as "10m") and "cron" (such as "0 3 * * *")');
  const spec: ScheduleSpec = { name: name as string, task, catchUp: CATCH_UP_DEFAULT, catchUpLimit: CATCH_UP_LIMIT_DEFAULT, args: [], priority: PRIORITY_DEFAULT };
  if (input.every !== undefined) {
    if (typeof input.every !== 'number' && typeof input.every !== 'string') bad('"every" must be a duration such as "10m" or a number of ms');
    const every = toMs(input.every as number | string, '"every"');
    if (every < EVERY_MIN_MS) bad(`"every" must be at least ${EVERY_MIN_MS} ms (1s)`);
    spec.every = every;
    if (input.tz !== undefined) bad('"tz" goes with "cron" only: "every" slots are multiples of the period since the Unix epoch');
  } else {
    if (typeof input.cron !== 'string') return bad('"cron" must be a cron expression such as "0 3 * * *"');
    spec.cron = input.cron.trim();
    if (input.tz !== undefined) {
      if (typeof input.tz !== 'string' || !isTimeZone(input.tz)) bad(`"tz" ${JSON.stringify(input.tz)} is not a time zone; use an IANA name such as "Europe/Berlin"`);
      spec.tz = input.tz as string;
    }
    try {
      new Cron(spec.cron, { paused: true, timezone: spec.tz ?? 'UTC' }).nextRun();
    } catch (err) {
      bad(`"cron" ${JSON.stringify(spec.cron)}: ${(err as Error).message}`);
    }
  }
  if (input.catchUp !== undefined) {
    if (!(CATCH_UP_MODES as readonly unknown[]).includes(input.catchUp)) bad(`"catchUp" must be one of ${CATCH_UP_MODES.join(', ')}`);
    spec.catchUp = input.catchUp as CatchUp;
  }
  if (input.catchUpLimit !== undefined) {
    if (!Number.isSafeInteger(input.catchUpLimit) || (input.catchUpLimit as number) < 1) bad('"catchUpLimit" must be a whole number ≥ 1');
    spec.catchUpLimit = input.catchUpLimit as number;
  }
  if (input.args !== undefined) {
    if (!Array.isArray(input.args)) bad('"args" must be an array of the arguments');
    spec.args = input.args as unknown[];
  }
  if (input.priority !== undefined) {
    try {
      checkPriority(input.priority as number);
    } catch (err) {
      bad((err as Error).message);
    }
    spec.priority = input.priority as number;
  }
  return spec;
}

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** How a schedule's spec reads in one line ("every 10m", "cron 0 3 * * * Europe/Berlin"). */
export function describeWhen(spec: Pick<ScheduleSpec, 'every' | 'cron' | 'tz'>): string {
  if (spec.every !== undefined) return `every ${formatPeriod(spec.every)}`;
  return `cron ${spec.cron}${spec.tz !== undefined ? ` ${spec.tz}` : ''}`;
}

function formatPeriod(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/**
 * The slots of one schedule. Pure: every answer depends on the spec and the
 * times given only (tests give fixed dates).
 */
export class ScheduleSlots {
  private readonly cron: Cron | undefined;
  private readonly every: number | undefined;

  constructor(spec: Pick<ScheduleSpec, 'every' | 'cron' | 'tz'>) {
    this.every = spec.every;
    // paused: croner starts no timer; it is used as a calculator only.
    this.cron = spec.cron !== undefined ? new Cron(spec.cron, { paused: true, timezone: spec.tz ?? 'UTC' }) : undefined;
  }

  /** The first slot after `t` (strictly), or undefined when there is none before TIME_MAX. */
  next(t: number): number | undefined {
    if (this.every !== undefined) {
      const slot = (Math.floor(t / this.every) + 1) * this.every;
      return slot <= TIME_MAX ? slot : undefined;
    }
    const next = this.cron!.nextRun(new Date(t))?.getTime();
    return next !== undefined && next <= TIME_MAX ? next : undefined;
  }

  /** The newest `n` slots at or before `t`, newest first, none at or before `after`. */
  latest(t: number, n: number, after = -1): number[] {
    const slots: number[] = [];
    if (this.every !== undefined) {
      for (let slot = Math.floor(t / this.every) * this.every; slots.length < n && slot > after && slot >= 0; slot -= this.every) slots.push(slot);
      return slots;
    }
    for (const d of this.cron!.previousRuns(n, new Date(t + 1))) {
      const slot = d.getTime();
      if (slot <= after) break;
      slots.push(slot);
    }
    return slots;
  }
}

/**
 * The slots a daemon enqueues at start for those that passed while no daemon ran
 * the schedule: after `lastTaken` (the newest slot any daemon took: its marker)
 * up to `now`, as `catchUp` says. Oldest first.
 */
export function missedSlots(slots: ScheduleSlots, spec: Pick<ScheduleSpec, 'catchUp' | 'catchUpLimit'>, lastTaken: number, now: number): number[] {
  if (spec.catchUp === 'none') return [];
  const n = spec.catchUp === 'last' ? 1 : spec.catchUpLimit;
  return slots.latest(now, n, lastTaken).reverse();
}

/**
 * The id of the task of a slot: the slot time as its 13 creation digits, then
 * 16 hex digits of a SHA-256 of the schedule name and the slot, so that every
 * daemon names a slot's task the same way (and a second enqueue of it would
 * have the same name: visible as a duplicate in any listing).
 */
export function slotTaskId(schedule: string, slot: number): string {
  const hash = createHash('sha256').update(`${schedule}\0${slot}`).digest('hex').slice(0, 16);
  return String(slot).padStart(13, '0') + hash;
}

/** The marker of a slot in schedules/<name>/: the slot time, 13 digits (so that names sort as times). */
export const slotMarkerName = (slot: number): string => String(slot).padStart(13, '0');

/** The slot of a marker name, or undefined when the name is not one. */
export function slotOfMarker(name: string): number | undefined {
  if (name.length !== 13) return undefined;
  for (let i = 0; i < 13; i++) {
    const c = name.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
  }
  return Number(name);
}
