/** Small JSON records the daemon keeps beside tasks: failure records in state/, reasons in quarantine/. */
import { randomBytes } from 'node:crypto';
import { renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { QUARANTINE_REASON_SUFFIX, type SpoolLayout } from '../spool/layout.js';
import { parseTaskName } from '../spool/name.js';

/** The name a record has while it is written, beside its target; the daemon sweeps old ones (a crash between write and rename). */
export const RECORD_STAGING_PREFIX = '.record-';

/**
 * Writes JSON to `target` atomically: a dot-file beside it first, then rename.
 * Staged in the target's own (daemon-only) folder, not in tmp/, which
 * producers can write: there they could replace the staged file before the rename.
 * On any failure the staged file is deleted.
 */
export function writeJsonAtomic(layout: SpoolLayout, target: string, value: unknown): void {
  const staged = join(dirname(target), `${RECORD_STAGING_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    writeFileSync(staged, JSON.stringify(value) + '\n', { flag: 'wx' });
    renameSync(staged, target);
  } catch (err) {
    // A full disk fails the write after the file was created, and a rename can fail on its own.
    try {
      unlinkSync(staged);
    } catch {
      // Never created.
    }
    throw err;
  }
}

/**
 * The longest file name a quarantined file may have: its reason file adds
 * QUARANTINE_REASON_SUFFIX, and both must fit the 255 bytes Linux filesystems allow.
 */
export const QUARANTINE_NAME_MAX_BYTES = 255 - Buffer.byteLength(QUARANTINE_REASON_SUFFIX);

/**
 * The name a file gets in quarantine/. A valid task name is kept (its id makes it
 * unique, and it fits). Anything else gets a `<ms>-<6 hex>-` prefix so two bad
 * files never collide, and is cut to QUARANTINE_NAME_MAX_BYTES (at a character
 * boundary): the full original name is kept in the reason file.
 */
export function quarantineName(fileName: string, now: number): string {
  if (parseTaskName(fileName)) return fileName;
  const prefix = `${now}-${randomBytes(3).toString('hex')}-`;
  // One byte spare for the "_" that keeps a name from ending like a reason file.
  let tail = fileName;
  const room = QUARANTINE_NAME_MAX_BYTES - 1 - prefix.length;
  if (Buffer.byteLength(tail) > room) tail = cutToBytes(tail, room);
  let name = prefix + tail;
  if (name.endsWith(QUARANTINE_REASON_SUFFIX)) name += '_';
  return name;
}

/** The longest start of `s` that takes at most `max` bytes in UTF-8, never splitting a character. */
function cutToBytes(s: string, max: number): string {
  let bytes = 0;
  let end = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > max) break;
    bytes += n;
    end += ch.length;
  }
  return s.slice(0, end);
}

export interface FailureRecord {
  id: string;
  name: string;
  attempts: number;
  at: number;
  error: { name?: string; message: string; stack?: string };
}

/** state/<id>.json: the last failure of a task, kept while it is retried and after it is dead. */
export function writeFailureRecord(layout: SpoolLayout, record: FailureRecord): void {
  writeJsonAtomic(layout, join(layout.state, `${record.id}.json`), record);
}

/**
 * Moves a file that is not a valid task into quarantine/, after writing the
 * reason beside it. The file is renamed, never read or copied, so nothing of its
 * content (or of a symlink's target) leaves it. Returns the quarantined path, or
 * undefined when the file was gone.
 */
export function quarantine(layout: SpoolLayout, path: string, fileName: string, reason: string, from: string, now: number): string | undefined {
  const targetPath = join(layout.quarantine, quarantineName(fileName, now));
  const sidecar = targetPath + QUARANTINE_REASON_SUFFIX;
  writeJsonAtomic(layout, sidecar, { reason, from, file: fileName, at: now });
  try {
    renameSync(path, targetPath);
    return targetPath;
  } catch (err) {
    try {
      unlinkSync(sidecar);
    } catch {
      // Nothing to undo.
    }
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
