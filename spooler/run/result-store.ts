/**
 * What the per-task path (task-path.ts) keeps of a task beyond its file:
 *
 *   - its result record, results/<id>.<encoding> (spool/results.ts), when the
 *     task ends (processed, skipped, dead; cancelled and expired by the
 *     outcomes that make them) and it asked to keep one (`keepResult` in its
 *     body) or the daemon keeps all (--keep-results);
 *   - each failed attempt in state/<id>.json (spool/failure-record.ts), before
 *     the task is rescheduled.
 *
 * A task that keeps nothing and does not fail costs one comparison here.
 * Neither write may lose or block a task: a failure (a full disk, an
 * unencodable value) is logged with what could not be written, and the task
 * is settled all the same (its function returned: it must not run again).
 */
import { basename } from 'node:path';
import { readLastError, FAILURE_HISTORY_MAX } from '../../spool/failure-record.js';
import { keepResult, writeFailureRecord, type AttemptFailure } from '../../spool/protocol.js';
import { encodeResult, resultFileName, type NewResult, type RemoteErrorInfo, type TaskEnding } from '../../spool/results.js';
import type { TaskFile } from '../../spool/task-file.js';
import type { Site } from './task-path.js';

/** How long task `task`'s result is kept (ms), 0 when it keeps none: its own `keepResult`, else the daemon's --keep-results. */
export function keepMsOf(task: TaskFile, site: Pick<Site, 'keepResults'>): number {
  return task.body.keepResult ?? site.keepResults;
}

export interface Ending {
  ending: TaskEnding;
  value?: unknown;
  reason?: string;
  error?: RemoteErrorInfo;
  /** processed: why its chain's next step was not enqueued. */
  nextError?: string;
  /** Attempts made, this one included. */
  attempts: number;
}

/** Writes the task's result record, if it keeps one. Never throws. */
export function keepEnding(site: Site, task: TaskFile, end: Ending): void {
  const keepMs = keepMsOf(task, site);
  if (keepMs <= 0) return;
  const finishedAt = site.clock.stampNow();
  const result: NewResult = {
    id: task.id,
    name: task.name,
    ending: end.ending,
    attempts: end.attempts,
    owner: basename(site.claimDirPath),
    finishedAt,
    keepUntil: finishedAt + keepMs,
  };
  if (end.value !== undefined) result.value = end.value;
  if (end.reason !== undefined) result.reason = end.reason;
  if (end.error !== undefined) result.error = end.error;
  if (end.nextError !== undefined) result.nextError = end.nextError;
  const fields = { task: task.name, id: task.id, ending: end.ending };
  let encoded;
  try {
    encoded = encodeResult(result, task.encoding, site.maxBytes);
  } catch (err) {
    return site.log.error('cannot encode the result of a task; no result is kept (the task is settled all the same)', { ...fields, err: (err as Error).message });
  }
  if (encoded.problem !== undefined) site.log.error('the value a task returned cannot be kept; its result record says so', { ...fields, problem: encoded.problem });
  try {
    site.check('results');
    keepResult(site.layout, resultFileName(task.id, task.encoding), encoded.bytes, result.keepUntil);
  } catch (err) {
    site.log.error('cannot write the result of a task; it is settled without one (waiters time out)', { ...fields, err: (err as Error).message });
  }
}

/**
 * Adds a failed attempt to state/<id>.json (read, appended, written whole:
 * only failing tasks pay). `retryAt`: when it runs again. Never throws.
 */
export function noteFailure(site: Site, task: TaskFile, error: RemoteErrorInfo, retryAt: number): void {
  const at = site.clock.now();
  const previous = readLastError(site.layout, task.id);
  const entry: AttemptFailure = { attempt: task.attempts + 1, at, owner: basename(site.claimDirPath), error: briefError(error), retryAt };
  const history = [...(previous?.history ?? []), entry].slice(-FAILURE_HISTORY_MAX);
  try {
    site.check('state');
    writeFailureRecord(site.layout, { id: task.id, name: task.name, attempts: task.attempts + 1, at, error, history });
  } catch (err) {
    site.log.error("cannot note a task's failed attempt in state/; it is retried all the same", { task: task.name, id: task.id, err: (err as Error).message });
  }
}

/** The history a dead letter's record is written with: the earlier attempts', and this last one. */
export function historyWithLast(site: Site, task: TaskFile, error: RemoteErrorInfo, attempts: number): AttemptFailure[] {
  const previous = readLastError(site.layout, task.id);
  const entry: AttemptFailure = { attempt: attempts, at: site.clock.now(), owner: basename(site.claimDirPath), error: briefError(error) };
  return [...(previous?.history ?? []), entry].slice(-FAILURE_HISTORY_MAX);
}

function briefError(error: RemoteErrorInfo): AttemptFailure['error'] {
  return error.name === undefined ? { message: error.message } : { name: error.name, message: error.message };
}
