/**
 * Task bodies: the fields, their defaults, and the check a decoded body must
 * pass before anything acts on it. The file name (name.ts) carries priority,
 * due time, id, attempts and task name; the body carries what the task needs to
 * run. Bodies are never rewritten after enqueue: every change of state is a
 * rename (see SPOOL-FORMAT.md).
 */
import type { PlainValue } from './wire.js';

export const FORMAT_VERSION = 1;

export const BACKOFF_KINDS = ['constant', 'linear', 'exponential'] as const;
export type BackoffKind = (typeof BACKOFF_KINDS)[number];

/** How long to wait before attempt n+1 (see SPOOL-FORMAT.md, "retry"). All times in ms. */
export interface BackoffSpec {
  kind: BackoffKind;
  /** Base delay. */
  delay: number;
  /** Growth factor for `exponential` (default 2). */
  factor?: number;
  /** Lower bound on the computed delay (default 0). */
  floor?: number;
  /** Upper bound on the computed delay (default: none). */
  ceiling?: number;
  /** Fraction 0..1 of the delay to randomise by, up or down (default 0). */
  jitter?: number;
}

export interface RetrySpec {
  /** Retries after the first attempt; 0 means a failure goes straight to the dead letters. */
  limit: number;
  backoff?: BackoffSpec;
}

/** The decoded body of a task file, version 1. */
export interface TaskBody {
  version: 1;
  /** Task type: `fcall` for a function call; other types are registered by user code. */
  type: string;
  /** Positional arguments (fcall). */
  args?: PlainValue[];
  /** Free-form data for the handler: options for fcall, the payload of a raw message. */
  payload?: PlainValue;
  /** The message of a non-function task. */
  message?: string;
  retry?: RetrySpec;
  /** Run-time limit in ms. */
  timeout?: number;
  /** Id of the task that enqueued this one. */
  parent?: string;
  /** Producer's own annotations; carried, never interpreted. */
  meta?: { [key: string]: PlainValue };
}

/** Field names later versions will use; a version-1 file must not use them for something else. */
export const RESERVED_FIELDS = ['unique', 'chain', 'overlap', 'periodic', 'result', 'expires'] as const;
/** A task type: a lowercase identifier. */
export const TASK_TYPE_PATTERN = /^[a-z][a-z0-9_-]{0,63}$/;

/**
 * Checks a decoded body. Returns the problem as a sentence, or undefined when the
 * body is valid. Unknown fields are allowed (forward compatibility), except the
 * reserved ones.
 */
export function findBodyProblem(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || body instanceof Uint8Array) {
    return 'the body must be a map (a JSON object)';
  }
  const b = body as Record<string, unknown>;
  if (!('version' in b)) return 'the body has no "version" field';
  if (b.version !== FORMAT_VERSION) {
    // Quote the version only when it looks like one: nothing else of an invalid file is echoed.
    const v = b.version;
    const kind = v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'a map' : `a ${typeof v}`;
    const shown = Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < 1_000_000 ? ` ${v as number}` : ` (${kind})`;
    return `format version${shown} is not supported; this spoolerd reads version ${FORMAT_VERSION} (upgrade spoolerd, or write version ${FORMAT_VERSION})`;
  }
  if (typeof b.type !== 'string' || !TASK_TYPE_PATTERN.test(b.type)) {
    return '"type" must be a lowercase identifier such as "fcall"';
  }
  if (b.args !== undefined && !Array.isArray(b.args)) return '"args" must be an array';
  if (b.type === 'fcall' && b.message !== undefined) return 'an fcall task has "args", not "message"';
  if (b.message !== undefined && typeof b.message !== 'string') return '"message" must be a string';
  if (b.timeout !== undefined && !isPositiveInt(b.timeout)) return '"timeout" must be a positive integer of ms';
  if (b.parent !== undefined && (typeof b.parent !== 'string' || b.parent.length === 0)) return '"parent" must be a task id';
  if (b.meta !== undefined && !isMap(b.meta)) return '"meta" must be a map';
  if (b.retry !== undefined) {
    const problem = findRetryProblem(b.retry);
    if (problem) return problem;
  }
  for (const field of RESERVED_FIELDS) {
    if (field in b) return `"${field}" is reserved for a later format version`;
  }
  return undefined;
}

function findRetryProblem(retry: unknown): string | undefined {
  if (!isMap(retry)) return '"retry" must be a map';
  if (!isNonNegativeInt(retry.limit)) return '"retry.limit" must be a non-negative integer';
  if (retry.backoff === undefined) return undefined;
  const b = retry.backoff;
  if (!isMap(b)) return '"retry.backoff" must be a map';
  if (!(BACKOFF_KINDS as readonly unknown[]).includes(b.kind)) {
    return `"retry.backoff.kind" must be one of ${BACKOFF_KINDS.join(', ')}`;
  }
  if (!isNonNegativeInt(b.delay)) return '"retry.backoff.delay" must be a non-negative integer of ms';
  if (b.factor !== undefined && !(typeof b.factor === 'number' && b.factor >= 1)) return '"retry.backoff.factor" must be a number ≥ 1';
  if (b.floor !== undefined && !isNonNegativeInt(b.floor)) return '"retry.backoff.floor" must be a non-negative integer of ms';
  if (b.ceiling !== undefined && !isNonNegativeInt(b.ceiling)) return '"retry.backoff.ceiling" must be a non-negative integer of ms';
  if (b.jitter !== undefined && !(typeof b.jitter === 'number' && b.jitter >= 0 && b.jitter <= 1)) {
    return '"retry.backoff.jitter" must be a number from 0 to 1';
  }
  return undefined;
}

const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
const isNonNegativeInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isPositiveInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;
