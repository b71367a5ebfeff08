/**
 * `state/<id>.json`, the failures of a task: the daemon writes it at each
 * failed attempt (spooler/run/result-store.ts, noteFailure; only failing tasks
 * pay for it) and when the task becomes a dead letter (spool/protocol.ts,
 * bury). It holds the last error with its stack and a bounded history of the
 * attempts' errors. `spool show` prints both; `spool ls` shows the message
 * beside dead letters.
 */
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { SpoolLayout } from './layout.js';
import { TASK_ID_PATTERN } from './name.js';
import type { AttemptFailure } from './protocol.js';
import { readRegularFile } from './safe-read.js';

/** What a failure record says, as far as it says it in the expected shape. */
export interface LastError {
  name: string | null;
  message: string;
  stack: string | null;
  /** When the failure was recorded (ms since the epoch). */
  at: number | null;
  /** The attempts count the task had when it failed. */
  attempts: number | null;
  /** The failed attempts, oldest first (the last FAILURE_HISTORY_MAX). */
  history: AttemptFailure[];
}

/** How many failed attempts a record remembers: a task retried a thousand times keeps a small record. */
export const FAILURE_HISTORY_MAX = 20;

/** Records are small; a larger one is not read (anyone who can write state/ is a daemon, but a cap costs nothing). */
const RECORD_MAX_BYTES = 1024 * 1024;

/** The path of a task's failure record, or undefined for a string that is not an id (it names a file in state/). */
export function failureRecordPath(layout: SpoolLayout, id: string): string | undefined {
  return TASK_ID_PATTERN.test(id) ? join(layout.state, `${id}.json`) : undefined;
}

/**
 * The last error recorded for task `id`, or undefined when there is none (or it
 * cannot be read as a record). Never follows a link; reads at most 1 MiB.
 */
export function readLastError(layout: SpoolLayout, id: string): LastError | undefined {
  const path = failureRecordPath(layout, id);
  if (path === undefined) return undefined;
  const read = readRegularFile(path, RECORD_MAX_BYTES);
  if (!read.ok) return undefined;
  let record: unknown;
  try {
    record = JSON.parse(read.bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof record !== 'object' || record === null) return undefined;
  const { error, at, attempts, history } = record as { error?: unknown; at?: unknown; attempts?: unknown; history?: unknown };
  if (typeof error !== 'object' || error === null) return undefined;
  const { name, message, stack } = error as { name?: unknown; message?: unknown; stack?: unknown };
  if (typeof message !== 'string') return undefined;
  return {
    name: typeof name === 'string' ? name : null,
    message,
    stack: typeof stack === 'string' ? stack : null,
    at: typeof at === 'number' && Number.isFinite(at) ? at : null,
    attempts: typeof attempts === 'number' && Number.isFinite(attempts) ? attempts : null,
    history: Array.isArray(history) ? history.filter(isAttemptFailure) : [],
  };
}

function isAttemptFailure(v: unknown): v is AttemptFailure {
  if (typeof v !== 'object' || v === null) return false;
  const a = v as Record<string, unknown>;
  return typeof a.attempt === 'number' && typeof a.at === 'number' && typeof a.error === 'object' && a.error !== null && typeof (a.error as { message?: unknown }).message === 'string';
}

/**
 * Deletes the failure record of a task that has been removed from the spool.
 * Best effort: the record is only an orphan if this fails (state/ may be the
 * daemon's alone and not writable by whoever runs `spool rm`).
 */
export function removeFailureRecord(layout: SpoolLayout, id: string): void {
  const path = failureRecordPath(layout, id);
  if (path === undefined) return;
  try {
    unlinkSync(path);
  } catch {
    // No record, or not ours to delete: nothing is lost either way.
  }
}
