/**
 * The orders the queue keeps task file names in, compared in place on the
 * fixed-width fields of the name (spool/name.ts: "PP-DUE-ID-…"): no slicing,
 * no allocation, as they run once per heap step and once per name listed.
 */
import { DUE_END, DUE_START } from '../../spool/name.js';

/** The execution order of due tasks: the whole name (priority, then due time, then id). */
export const byName = (a: string, b: string): boolean => a < b;

/** The best priority first (the first two characters), then the far end of the execution order. */
export function byPriorityThenLast(a: string, b: string): boolean {
  const p = a.charCodeAt(0) - b.charCodeAt(0) || a.charCodeAt(1) - b.charCodeAt(1);
  return p !== 0 ? p < 0 : a > b;
}

/** Whether `a` has a strictly better (lower) priority than `b`. */
export const betterPriority = (a: string, b: string): boolean =>
  a.charCodeAt(0) - b.charCodeAt(0) < 0 || (a.charCodeAt(0) === b.charCodeAt(0) && a.charCodeAt(1) < b.charCodeAt(1));

/** The order of future tasks: due time first (compared digit by digit: fixed width), then the whole name. */
export function byDue(a: string, b: string): boolean {
  for (let i = DUE_START; i < DUE_END; i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d < 0;
  }
  return a < b;
}

/** Whether a falls due strictly before b. */
export function dueBefore(a: string, b: string): boolean {
  for (let i = DUE_START; i < DUE_END; i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d < 0;
  }
  return false;
}

/** The due time of a task file name (ms epoch), read from its fixed place. */
export const dueOf = (fileName: string): number => Number(fileName.slice(DUE_START, DUE_END));
