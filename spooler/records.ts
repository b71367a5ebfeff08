/** Small JSON records the daemon keeps beside tasks: failure records in state/, reasons in quarantine/. */
import { randomBytes } from 'node:crypto';
import { renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { SpoolLayout } from '../spool/layout.js';
import { QUARANTINE_REASON_SUFFIX } from '../spool/listing.js';
import { parseTaskName } from '../spool/name.js';

/**
 * Writes JSON to `target` atomically: a dot-file beside it first, then rename.
 * Staged in the target's own (daemon-only) folder, not in tmp/, which
 * producers can write: there they could replace the staged file before the rename.
 */
export function writeJsonAtomic(layout: SpoolLayout, target: string, value: unknown): void {
  const staged = join(dirname(target), `.record-${process.pid}-${randomBytes(4).toString('hex')}`);
  writeFileSync(staged, JSON.stringify(value) + '\n');
  renameSync(staged, target);
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
  // A valid task name is unique (its id); anything else gets a unique prefix so two bad files never collide.
  let target = parseTaskName(fileName) ? fileName : `${now}-${randomBytes(3).toString('hex')}-${fileName}`;
  if (target.endsWith(QUARANTINE_REASON_SUFFIX)) target += '_';
  const targetPath = join(layout.quarantine, target);
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
