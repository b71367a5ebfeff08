/**
 * Durations and due times as users write them: a number of ms, a string such as
 * "30s", "1h30m" or "250ms", or (for due times) a Date.
 */
import { InvalidOptionError } from '../spool/errors.js';
import { checkTime } from '../spool/name.js';

export type Duration = number | string;
export type Postpone = Duration | Date;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const DURATION_PATTERN = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$/;
const PART_PATTERN = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g;

/** Converts a duration to whole ms. Throws InvalidOptionError naming the option. */
export function toMs(value: Duration, what = 'duration'): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new InvalidOptionError(`${what} must be a non-negative number of ms, got ${value}`);
    return Math.round(value);
  }
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  if (!DURATION_PATTERN.test(text)) {
    throw new InvalidOptionError(`${what} ${JSON.stringify(value)} is not a duration; write ms as a number or e.g. "250ms", "30s", "5m", "1h30m", "2d"`);
  }
  let total = 0;
  for (const [, amount, unit] of text.matchAll(PART_PATTERN)) total += Number(amount) * UNIT_MS[unit!]!;
  return Math.round(total);
}

/** The due time for a postpone option: a delay from `now`, or an absolute Date. */
export function toDueTime(postpone: Postpone | undefined, now: number): number {
  if (postpone === undefined) return now;
  const due = postpone instanceof Date ? postpone.getTime() : now + toMs(postpone, 'postpone');
  checkTime(due, 'postpone');
  return due;
}
