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
