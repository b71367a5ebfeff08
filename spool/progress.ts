/**
 * Progress records: progress/<id>.json = { "fraction": 0.4, "message": "…", "at": <ms> },
 * the last value a running task reported with ctx.progress() (SPOOL-FORMAT.md, "progress/").
 *
 * Written by the runner that runs the task (runtime/progress.ts throttles it to
 * one write per PROGRESS_WRITE_EVERY_MS), always whole:
 *
 *   step     system calls                                   a crash after it leaves            who picks it up
 *   write    1 open progress/.record-P-X O_EXCL, write,     debris                             the record sweep (hourly, over an hour old)
 *              close
 *            2 rename .record-P-X -> progress/<id>.json     the task's last progress           -
 *   remove   unlink progress/<id>.json (when the run ends,  nothing                            -
 *            before its result is kept and its file moved)
 *   (a runner killed while its task reported: an orphan    progress/<id>.json, no task        the orphan sweep: every daemon's reconciliation scan,
 *    progress/<id>.json)                                   running it                         once a minute (sweepOrphanProgress)
 *
 * Read by `spool show`, `spool ls` and waiting producers (runtime/progress-watch.ts).
 * Always JSON, whatever the task's encoding: a shell or Python producer reads it
 * with a JSON parser.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, lstatSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { sep } from 'node:path';
import type { SpoolLayout } from './layout.js';
import { TASK_ID_PATTERN } from './name.js';
import { RECORD_STAGING_PREFIX } from './protocol.js';
import { readRegularFile } from './safe-read.js';

/** The last progress a running task reported. */
export interface Progress {
  /** How far it is, 0 to 1. */
  fraction: number;
  /** What it is doing, at most PROGRESS_MESSAGE_MAX characters. */
  message?: string;
  /** When it reported it, ms since the epoch (the runner's clock). */
  at: number;
}

/** A task writes its progress at most this often; its latest value always lands (a trailing write). */
export const PROGRESS_WRITE_EVERY_MS = 200;
/** Longer messages are cut to this many characters (with an ellipsis). */
export const PROGRESS_MESSAGE_MAX = 200;
/** A progress file is never larger than this; a larger one is not read. */
const PROGRESS_READ_MAX_BYTES = 4096;
/** How old a progress file must be before the orphan sweep judges it (a task may have just been claimed). */
export const PROGRESS_ORPHAN_AGE_MS = 10_000;

const SUFFIX = '.json';
const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;

export const progressFileName = (id: string): string => id + SUFFIX;

/** The task id of a progress file's name, or undefined for any other name (staged records, debris). */
export function progressIdOf(fileName: string): string | undefined {
  if (!fileName.endsWith(SUFFIX)) return undefined;
  const id = fileName.slice(0, -SUFFIX.length);
  return TASK_ID_PATTERN.test(id) ? id : undefined;
}

/** Writes the record whole: staged beside it, then renamed over the last one. Throws on a full disk and the like. */
export function writeProgress(layout: SpoolLayout, id: string, progress: Progress): void {
  const staged = layout.progress + sep + `${RECORD_STAGING_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`;
  const bytes = Buffer.from(JSON.stringify(progress));
  const fd = openSync(staged, CREATE_NEW, 0o640);
  try {
    let offset = 0;
    while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
  } catch (err) {
    closeSync(fd);
    unlinkQuietly(staged);
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(staged, layout.progress + sep + progressFileName(id));
  } catch (err) {
    unlinkQuietly(staged);
    throw err;
  }
}

/** Removes the task's record; false when there was none. */
export function removeProgress(layout: SpoolLayout, id: string): boolean {
  try {
    unlinkSync(layout.progress + sep + progressFileName(id));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** The task's last progress, or undefined (none, unreadable, not a progress record). Never follows a link. */
export function readProgress(layout: SpoolLayout, id: string): Progress | undefined {
  return readProgressFile(layout.progress + sep + progressFileName(id));
}

export function readProgressFile(path: string): Progress | undefined {
  const read = readRegularFile(path, PROGRESS_READ_MAX_BYTES);
  if (!read.ok) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(read.bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  return asProgress(value);
}

/** `value` as a Progress when it is one (a record written by hand or by another version is checked, not trusted). */
export function asProgress(value: unknown): Progress | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.fraction !== 'number' || !(v.fraction >= 0 && v.fraction <= 1)) return undefined;
  if (typeof v.at !== 'number' || !Number.isFinite(v.at)) return undefined;
  if (v.message !== undefined && typeof v.message !== 'string') return undefined;
  return { fraction: v.fraction, ...(v.message !== undefined && { message: v.message.slice(0, PROGRESS_MESSAGE_MAX + 1) }), at: v.at };
}

/**
 * The orphan sweep: removes progress records (among `names`, the listing of
 * progress/, taken BEFORE `running` was) whose task is not running and that
 * are older than PROGRESS_ORPHAN_AGE_MS; also anything else there of that age
 * that is neither a record nor a staged one. A record listed before the
 * running tasks were was written by a task that was running then; if it is not
 * running now, its run ended without removing it (its runner was killed).
 * Returns how many it removed.
 */
export function sweepOrphanProgress(layout: SpoolLayout, names: readonly string[], running: () => ReadonlySet<string>, now: number): number {
  let removed = 0;
  let ids: ReadonlySet<string> | undefined;
  for (const n of names) {
    if (n.startsWith(RECORD_STAGING_PREFIX)) continue; // the record sweep's
    const path = layout.progress + sep + n;
    let st;
    try {
      st = lstatSync(path);
    } catch {
      continue;
    }
    if (now - st.mtimeMs < PROGRESS_ORPHAN_AGE_MS) continue;
    const id = progressIdOf(n);
    if (id !== undefined && st.isFile()) {
      ids ??= running();
      if (ids.has(id)) continue;
    } else if (st.isDirectory()) {
      continue; // only daemons write here; nothing of theirs is a directory, and none is removed blindly
    }
    unlinkQuietly(path);
    removed++;
  }
  return removed;
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Gone already.
  }
}
