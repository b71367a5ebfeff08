/**
 * What a task can ask the daemon to do with it, and how plain returns and thrown
 * errors map onto that:
 *
 *   return processed(value) or any other value   -> processed: removed (or archived)
 *   return skipped(reason)                       -> skipped: removed (or archived), reason logged
 *   return rescheduled({ delay })                -> due again after `delay`, or after the backoff
 *   return failed(reason), throw PermanentError  -> failed: a dead letter at once, reason recorded, no retry spent
 *   throw                                        -> rescheduled by the backoff, error recorded (unless the
 *                                                   task's retryOn / noRetryOn says not to retry it: failed)
 *   (cancelled while it ran)                     -> cancelled: removed (or archived) whatever it returned
 *
 * A plain return, `undefined` included, means processed. uWSGI's spooler (and
 * uwsgiconf) read None as "skipped"; in JavaScript every function without a
 * return statement returns undefined, so that rule would skip every void task.
 * Rescheduling counts an attempt; past the retry limit the task becomes a dead letter.
 */
import { toMs, type Duration } from './duration.js';
import { backoffDelay, DEFAULT_RETRY } from './backoff.js';
import type { RetrySpec } from '../spool/body.js';
import type { RemoteErrorInfo } from '../spool/results.js';

export type TaskOutcome =
  | { kind: 'processed'; value?: unknown }
  | { kind: 'skipped'; reason?: string }
  | { kind: 'rescheduled'; delay?: number; reason?: string; error?: unknown }
  | { kind: 'failed'; reason: string; error?: unknown }
  | { kind: 'cancelled' };

const RESULT_MARK: unique symbol = Symbol.for('spoolerd.TaskResult');
const PERMANENT_MARK: unique symbol = Symbol.for('spoolerd.PermanentError');

/** A typed result a task returns to say how it ended. Build one with processed(), skipped() or rescheduled(). */
export class TaskResult {
  readonly [RESULT_MARK] = true;
  constructor(readonly outcome: TaskOutcome) {}

  static is(value: unknown): value is TaskResult {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[RESULT_MARK] === true;
  }
}

/** The task did its work. The value is kept as its result when the task keeps one (keepResult, --keep-results: runtime/wait.ts). */
export const processed = (value?: unknown): TaskResult =>
  new TaskResult(value === undefined ? { kind: 'processed' } : { kind: 'processed', value });

/** The task chose not to do its work; the file is removed like a processed one and the reason logged. */
export const skipped = (reason?: string): TaskResult =>
  new TaskResult(reason === undefined ? { kind: 'skipped' } : { kind: 'skipped', reason });

/** Run the task again later: after `delay`, or after the task's backoff when no delay is given. */
export const rescheduled = (options: { delay?: Duration; reason?: string } = {}): TaskResult =>
  new TaskResult({
    kind: 'rescheduled',
    ...(options.delay !== undefined && { delay: toMs(options.delay, 'rescheduled delay') }),
    ...(options.reason !== undefined && { reason: options.reason }),
  });

/**
 * The task cannot succeed however often it is tried (bad input, a refused
 * request): throw it and the task becomes a dead letter at once, its message
 * recorded as the reason, without spending its retries.
 */
export class PermanentError extends Error {
  override name = 'PermanentError';
  readonly [PERMANENT_MARK] = true;

  /** Also true for a PermanentError of another copy of spoolerd loaded in the same process. */
  static is(error: unknown): error is PermanentError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[PERMANENT_MARK] === true;
  }
}

/** Fail for good: the task becomes a dead letter at once with `reason` in state/<id>.json and the log; no retry is spent. */
export const failed = (reason: string, error?: unknown): TaskResult => {
  if (typeof reason !== 'string' || reason === '') throw new TypeError('failed(reason): the reason must be a non-empty string (it is what the dead letter\'s record says)');
  return new TaskResult(error === undefined ? { kind: 'failed', reason } : { kind: 'failed', reason, error });
};

/** Maps how a task function settled onto an outcome. */
export function outcomeOf(settled: { value: unknown } | { error: unknown }): TaskOutcome {
  if ('error' in settled) {
    const error = settled.error;
    if (PermanentError.is(error)) return { kind: 'failed', reason: error.message, error };
    return { kind: 'rescheduled', error };
  }
  if (TaskResult.is(settled.value)) return settled.value.outcome;
  return settled.value === undefined ? { kind: 'processed' } : { kind: 'processed', value: settled.value };
}

/**
 * What becomes of a task whose attempt asked to run again (it threw, or
 * returned rescheduled()), after `attempts` earlier attempts: run again after
 * `delay` ms (the one it asked for, else its backoff's), or, past its retry
 * limit, a dead letter. The one rule for the daemon (spooler/run/task-path.ts)
 * and the inline test mode (runtime/inline/).
 */
export type NextAttempt =
  | { retry: true; failures: number; delay: number; retriesLeft: number }
  | { retry: false; failures: number; limit: number };

export function nextAttempt(attempts: number, retry: RetrySpec | undefined, requestedDelay: number | undefined, random?: number): NextAttempt {
  const failures = attempts + 1;
  const spec = retry ?? DEFAULT_RETRY;
  if (failures > spec.limit) return { retry: false, failures, limit: spec.limit };
  const delay = requestedDelay ?? backoffDelay(spec.backoff ?? DEFAULT_RETRY.backoff!, failures, random);
  return { retry: true, failures, delay, retriesLeft: spec.limit - failures };
}

/** The retry limit of a task (its own, else the daemon's default), as a dead letter's record states it. */
export function retryLimitOf(retry: RetrySpec | undefined): number {
  return retry?.limit ?? DEFAULT_RETRY.limit;
}

/** An error as a result or failure record keeps it: name, message and stack (a thrown non-Error as text). */
export function describeError(error: unknown): RemoteErrorInfo {
  if (error instanceof Error) return { name: error.name, message: error.message, ...(error.stack !== undefined && { stack: error.stack }) };
  return { message: typeof error === 'string' ? error : `non-Error thrown: ${safeString(error)}` };
}

/** The error a task failed for good with (failed(), PermanentError, retryOn/noRetryOn): its reason is the message. */
export function failedError(outcome: Extract<TaskOutcome, { kind: 'failed' }>): RemoteErrorInfo {
  return { ...describeError(outcome.error ?? { name: 'PermanentError', message: outcome.reason }), message: outcome.reason };
}

/** The error a rescheduled attempt is recorded with: what it threw, else the reason it gave. */
export function rescheduledError(outcome: Extract<TaskOutcome, { kind: 'rescheduled' }>): RemoteErrorInfo {
  return describeError(outcome.error ?? outcome.reason ?? 'rescheduled by the task');
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
