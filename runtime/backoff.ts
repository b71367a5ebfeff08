/**
 * Retry policy: the options users write, the form stored in a task body, and the
 * pure function that turns an attempt number into a delay.
 */
import { BACKOFF_KINDS, type BackoffKind, type BackoffSpec, type RetrySpec } from '../spool/body.js';
import { InvalidOptionError } from '../spool/errors.js';
import { toMs, type Duration } from './duration.js';

export interface BackoffOptions {
  /** Default 'exponential'. */
  kind?: BackoffKind;
  /** Base delay; default 1s. */
  delay?: Duration;
  /** Growth per attempt for 'exponential'; default 2. */
  factor?: number;
  floor?: Duration;
  ceiling?: Duration;
  /** 0..1: spread each delay randomly by up to this fraction; default 0. */
  jitter?: number;
}

/** What a daemon applies to tasks whose body carries no retry policy. */
export const DEFAULT_RETRY: Readonly<RetrySpec> = Object.freeze<RetrySpec>({
  limit: 3,
  backoff: { kind: 'exponential', delay: 1000, factor: 2, ceiling: 3_600_000, jitter: 0.1 },
});

/** Builds the stored retry policy from task options. */
export function toRetrySpec(retries: number | undefined, backoff: BackoffOptions | BackoffKind | undefined): RetrySpec | undefined {
  if (retries === undefined && backoff === undefined) return undefined;
  const limit = retries ?? DEFAULT_RETRY.limit;
  if (!Number.isSafeInteger(limit) || limit < 0) throw new InvalidOptionError(`retries must be a non-negative integer, got ${String(retries)}`);
  if (backoff === undefined) return { limit };
  const b: BackoffOptions = typeof backoff === 'string' ? { kind: backoff } : backoff;
  const kind = b.kind ?? 'exponential';
  if (!BACKOFF_KINDS.includes(kind)) {
    throw new InvalidOptionError(`backoff kind ${JSON.stringify(kind)} is unknown; use one of ${BACKOFF_KINDS.join(', ')}`);
  }
  const spec: BackoffSpec = { kind, delay: toMs(b.delay ?? 1000, 'backoff.delay') };
  if (b.factor !== undefined) {
    if (!(b.factor >= 1)) throw new InvalidOptionError(`backoff.factor must be ≥ 1, got ${b.factor}`);
    spec.factor = b.factor;
  }
  if (b.floor !== undefined) spec.floor = toMs(b.floor, 'backoff.floor');
  if (b.ceiling !== undefined) spec.ceiling = toMs(b.ceiling, 'backoff.ceiling');
  if (b.jitter !== undefined) {
    if (!(b.jitter >= 0 && b.jitter <= 1)) throw new InvalidOptionError(`backoff.jitter must be from 0 to 1, got ${b.jitter}`);
    spec.jitter = b.jitter;
  }
  return { limit, backoff: spec };
}

/**
 * The delay before the next attempt, after `failures` failed attempts (1 for the
 * first failure). `random` is in [0, 1) and only used for jitter.
 */
export function backoffDelay(spec: BackoffSpec, failures: number, random: number = Math.random()): number {
  const n = Math.max(1, failures);
  let delay: number;
  switch (spec.kind) {
    case 'constant':
      delay = spec.delay;
      break;
    case 'linear':
      delay = spec.delay * n;
      break;
    case 'exponential':
      delay = spec.delay * (spec.factor ?? 2) ** (n - 1);
      break;
  }
  if (spec.jitter) delay *= 1 + spec.jitter * (2 * random - 1);
  if (spec.ceiling !== undefined) delay = Math.min(delay, spec.ceiling);
  if (spec.floor !== undefined) delay = Math.max(delay, spec.floor);
  return Math.round(delay);
}
