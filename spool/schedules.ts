/**
 * The schedules/ folder (SPOOL-FORMAT.md, "Schedules"): written by daemons only.
 *
 *   schedules/<name>.json     the schedule as the daemons that serve it know it:
 *                             its spec, since when it exists, its last and next slot
 *   schedules/<name>/<slot>   one marker per slot taken (13 digits, ms): the slot's
 *                             task file itself (a hard link) or an empty file for a
 *                             slot skipped while the schedule was paused
 *   schedules/.stage-*        a slot's task being enqueued (spool/protocol.ts)
 *
 * The markers are the truth (exactly one per slot); the .json file is what
 * `spool schedules` shows and where a schedule's first appearance is kept (the
 * start of catch-up before its first slot).
 */
import { lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { SpoolLayout } from './layout.js';
import { writeJsonAtomic } from './protocol.js';
import { readRegularFile } from './safe-read.js';
import { slotMarkerName, slotOfMarker, SCHEDULE_NAME_PATTERN, type ScheduleSpec } from './schedule.js';

/** schedules/<name>.json. */
export interface ScheduleRecord {
  version: 1;
  spec: ScheduleSpec;
  /** When a daemon first served the schedule (spool time): catch-up looks no further back. */
  since: number;
  /** When this file was last written, and by which daemon (owner id). */
  updated: number;
  by: string;
  /** The newest slot taken when it was written (enqueued or skipped), and the slot after it. */
  last?: number;
  next?: number;
}

const RECORD_MAX_BYTES = 1024 * 1024;
const RECORD_SUFFIX = '.json';

export const scheduleDirOf = (layout: SpoolLayout, name: string): string => join(layout.schedules, name);
export const markerPathOf = (layout: SpoolLayout, name: string, slot: number): string => join(layout.schedules, name, slotMarkerName(slot));

/** Makes schedules/<name>/ if missing (mode as schedules/ itself). Throws if it is there but not a real directory (never followed). */
export function ensureScheduleDir(layout: SpoolLayout, name: string): string {
  const dir = scheduleDirOf(layout, name);
  try {
    mkdirSync(dir, { mode: lstatSync(layout.schedules).mode & 0o7777 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  if (!lstatSync(dir).isDirectory()) throw new Error(`${dir} is not a directory; remove it so that the schedule can keep its slot markers there`);
  return dir;
}

/** The marker names in schedules/<name>/, oldest slot first (none when the folder is missing). */
export function listMarkers(layout: SpoolLayout, name: string): string[] {
  let names: string[];
  try {
    names = readdirSync(scheduleDirOf(layout, name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names.filter((n) => slotOfMarker(n) !== undefined).sort();
}

/** What a marker says about its slot. */
export type MarkerState =
  /** The task is staged or somewhere in the spool (waiting, running, retried, dead, archived): the marker's link count is 2. */
  | 'in-spool'
  /** The task has ended and is gone (count 1), or the spool has no hard links. */
  | 'ended'
  /** Skipped while the schedule was paused (an empty marker). */
  | 'skipped';

export function markerState(layout: SpoolLayout, name: string, marker: string): MarkerState | undefined {
  try {
    const st = lstatSync(join(scheduleDirOf(layout, name), marker));
    if (!st.isFile()) return undefined;
    if (st.size === 0) return 'skipped';
    return st.nlink >= 2 ? 'in-spool' : 'ended';
  } catch {
    return undefined;
  }
}

/** The newest slot whose marker is not a skip, and what became of it. */
export function lastRun(layout: SpoolLayout, name: string, markers: readonly string[] = listMarkers(layout, name)): { slot: number; state: MarkerState } | undefined {
  for (let i = markers.length - 1; i >= 0; i--) {
    const state = markerState(layout, name, markers[i]!);
    if (state === undefined || state === 'skipped') continue;
    return { slot: slotOfMarker(markers[i]!)!, state };
  }
  return undefined;
}

export function readScheduleRecord(layout: SpoolLayout, name: string): ScheduleRecord | undefined {
  const read = readRegularFile(join(layout.schedules, name + RECORD_SUFFIX), RECORD_MAX_BYTES);
  if (!read.ok) return undefined;
  try {
    const value = JSON.parse(read.bytes.toString('utf8')) as ScheduleRecord;
    return value?.version === 1 && typeof value.spec === 'object' && value.spec !== null && typeof value.since === 'number' ? value : undefined;
  } catch {
    return undefined;
  }
}

export function writeScheduleRecord(layout: SpoolLayout, record: ScheduleRecord): void {
  writeJsonAtomic(join(layout.schedules, record.spec.name + RECORD_SUFFIX), record);
}

/** The names of the schedules that have a record in schedules/, sorted. */
export function listScheduleNames(layout: SpoolLayout): string[] {
  let names: string[];
  try {
    names = readdirSync(layout.schedules);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .filter((n) => n.endsWith(RECORD_SUFFIX))
    .map((n) => n.slice(0, -RECORD_SUFFIX.length))
    .filter((n) => SCHEDULE_NAME_PATTERN.test(n))
    .sort();
}
