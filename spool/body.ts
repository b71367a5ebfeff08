/**
 * Task bodies: the fields, their defaults, and the check a decoded body must
 * pass before anything acts on it. The file name (name.ts) carries priority,
 * due time, id, attempts and task name; the body carries what the task needs to
 * run. Bodies are never rewritten after enqueue: every change of state is a
 * rename (see SPOOL-FORMAT.md).
 */
import { findMsgpackProblem, NOT_SIMPLE, RootEntries, scalarAt } from './msgpack-scan.js';
import { ENCODINGS, TASK_NAME_PATTERN, type Encoding } from './name.js';
import { decodeScannedMsgpack, decodeWire, type PlainValue } from './wire.js';

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
  /** Keep how the task ended (results/<id>.<encoding>) this many ms after it ends; overrides the daemon's --keep-results. */
  keepResult?: number;
  /** Unique key: while this task holds it, an enqueue of the same task name and key adds nothing (spool/unique.ts). */
  unique?: string;
  /** How long the key is held: while the task waits (default), or until it has ended. */
  uniqueWhile?: UniqueWhile;
  /** Spool-clock ms: a task not started by then is not run and ends as expired. */
  expires?: number;
  /** The steps that follow this task, in order (SPOOL-FORMAT.md, "Chains"): the first is enqueued once this task is processed, with its value as first argument. */
  chain?: StepSpec[];
  /** Enqueued once if this task ends as dead, with its failure as first argument; the steps of a chain inherit it. */
  onError?: StepSpec;
}

/**
 * One step of a chain, or an onError task, as written in a body (SPOOL-FORMAT.md,
 * "Chains"): a task name and what its enqueue would give it. Other fields are carried.
 */
export interface StepSpec {
  /** The task name (an fcall). */
  name: string;
  /** Its own arguments, after the value it is given first. */
  args?: PlainValue[];
  /** 0..99 (default 50). */
  priority?: number;
  /** Postpone it this many ms from when it is enqueued. */
  delay?: number;
  retry?: RetrySpec;
  timeout?: number;
  keepResult?: number;
  meta?: { [key: string]: PlainValue };
  /** The encoding of its file (default: the encoding of the task before it). */
  encoding?: Encoding;
}

/** How long a unique key is held (SPOOL-FORMAT.md, "Unique keys"): `pending` until a daemon starts the task, `running` until it has ended. */
export const UNIQUE_WHILE = ['pending', 'running'] as const;
export type UniqueWhile = (typeof UNIQUE_WHILE)[number];
/** The longest unique key, in characters (its file name is a hash, so only the key file's size limits it). */
export const UNIQUE_KEY_MAX = 1024;
const UNIQUE_KEY_PATTERN = new RegExp(`^[\\s\\S]{1,${UNIQUE_KEY_MAX}}$`, 'u');

/** Field names later versions will use; a version-1 file must not use them for something else. */
export const RESERVED_FIELDS = ['overlap', 'periodic', 'result'] as const;
/** A task type: a lowercase identifier. */
export const TASK_TYPE_PATTERN = /^[a-z][a-z0-9_-]{0,63}$/;

/**
 * What a field's value must be. A rule looks at as little of the value as it
 * needs, and `array`, `map`, `any` and `reserved` never look inside: the check
 * of raw MessagePack bytes (isValidBody) relies on it, and decodes only what
 * `valueNeeded` says.
 */
export type FieldRule =
  | { kind: 'version' }
  | { kind: 'string'; pattern?: RegExp; nonEmpty?: boolean }
  | { kind: 'integer'; min: 0 | 1; max?: number }
  | { kind: 'number'; min: number; max?: number }
  | { kind: 'oneOf'; values: readonly string[] }
  | { kind: 'array' }
  | { kind: 'map' }
  | { kind: 'any' }
  | { kind: 'record'; fields: readonly BodyField[] }
  /** An array of maps, each checked as a record (a chain's steps): its problem says which one. */
  | { kind: 'records'; fields: readonly BodyField[] }
  | { kind: 'reserved' };

/** One field of the body, or of a map inside it. */
export interface BodyField {
  name: string;
  rule: FieldRule;
  required: boolean;
  /** The problem with a value that breaks the rule (or is missing, when required). */
  problem: string;
  /** The problem when a required field is missing, where it is not `problem`. */
  missing?: string;
  /** A task type this field is not allowed on, and the problem if it is there. */
  notOnType?: { type: string; problem: string };
}

const field = (name: string, rule: FieldRule, problem: string, more: Partial<BodyField> = {}): BodyField => ({ name, rule, required: false, problem, ...more });

/** retry.backoff (SPOOL-FORMAT.md, "Body": the backoff table). Other fields are carried and ignored. */
export const BACKOFF_FIELDS: readonly BodyField[] = [
  field('kind', { kind: 'oneOf', values: BACKOFF_KINDS }, `"retry.backoff.kind" must be one of ${BACKOFF_KINDS.join(', ')}`, { required: true }),
  field('delay', { kind: 'integer', min: 0 }, '"retry.backoff.delay" must be a non-negative integer of ms', { required: true }),
  field('factor', { kind: 'number', min: 1 }, '"retry.backoff.factor" must be a number ≥ 1'),
  field('floor', { kind: 'integer', min: 0 }, '"retry.backoff.floor" must be a non-negative integer of ms'),
  field('ceiling', { kind: 'integer', min: 0 }, '"retry.backoff.ceiling" must be a non-negative integer of ms'),
  field('jitter', { kind: 'number', min: 0, max: 1 }, '"retry.backoff.jitter" must be a number from 0 to 1'),
];

/** retry. Other fields are carried and ignored. */
export const RETRY_FIELDS: readonly BodyField[] = [
  field('limit', { kind: 'integer', min: 0 }, '"retry.limit" must be a non-negative integer', { required: true }),
  field('backoff', { kind: 'record', fields: BACKOFF_FIELDS }, '"retry.backoff" must be a map'),
];

/** A step of `chain`, and `onError` (SPOOL-FORMAT.md, "Chains": the step table). Other fields are carried and ignored. */
export const STEP_FIELDS: readonly BodyField[] = [
  field('name', { kind: 'string', pattern: TASK_NAME_PATTERN }, '"name" must be a task name (a letter or _ first, then letters, digits, _ . : -, at most 128)', { required: true }),
  field('args', { kind: 'array' }, '"args" must be an array'),
  field('priority', { kind: 'integer', min: 0, max: 99 }, '"priority" must be an integer from 0 to 99'),
  field('delay', { kind: 'integer', min: 0 }, '"delay" must be a non-negative integer of ms'),
  field('retry', { kind: 'record', fields: RETRY_FIELDS }, '"retry" must be a map'),
  field('timeout', { kind: 'integer', min: 1 }, '"timeout" must be a positive integer of ms'),
  field('keepResult', { kind: 'integer', min: 0 }, '"keepResult" must be a non-negative integer of ms'),
  field('meta', { kind: 'map' }, '"meta" must be a map'),
  field('encoding', { kind: 'oneOf', values: ENCODINGS }, `"encoding" must be one of ${ENCODINGS.join(', ')}`),
];

/**
 * The fields of a version-1 body (SPOOL-FORMAT.md, "Body", lists the same:
 * test/body.test.ts holds the two together). Checked in this order, so a body
 * with several problems is told the first. Any other field is carried and
 * ignored (forward compatibility), except the reserved ones.
 */
export const BODY_FIELDS: readonly BodyField[] = [
  field('version', { kind: 'version' }, '', { required: true, missing: 'the body has no "version" field' }),
  field('type', { kind: 'string', pattern: TASK_TYPE_PATTERN }, '"type" must be a lowercase identifier such as "fcall"', { required: true }),
  field('args', { kind: 'array' }, '"args" must be an array'),
  field('message', { kind: 'string' }, '"message" must be a string', { notOnType: { type: 'fcall', problem: 'an fcall task has "args", not "message"' } }),
  field('timeout', { kind: 'integer', min: 1 }, '"timeout" must be a positive integer of ms'),
  field('parent', { kind: 'string', nonEmpty: true }, '"parent" must be a task id'),
  field('meta', { kind: 'map' }, '"meta" must be a map'),
  field('retry', { kind: 'record', fields: RETRY_FIELDS }, '"retry" must be a map'),
  field('keepResult', { kind: 'integer', min: 0 }, '"keepResult" must be a non-negative integer of ms'),
  field('unique', { kind: 'string', pattern: UNIQUE_KEY_PATTERN }, `"unique" must be a key of 1 to ${UNIQUE_KEY_MAX} characters`),
  field('uniqueWhile', { kind: 'oneOf', values: UNIQUE_WHILE }, `"uniqueWhile" must be one of ${UNIQUE_WHILE.join(', ')}`),
  field('expires', { kind: 'integer', min: 0 }, '"expires" must be a time: a non-negative integer of ms since the epoch (spool clock)'),
  field('chain', { kind: 'records', fields: STEP_FIELDS }, '"chain" must be an array of steps: maps with a task "name"'),
  field('onError', { kind: 'record', fields: STEP_FIELDS }, '"onError" must be a step: a map with a task "name"'),
  field('payload', { kind: 'any' }, ''),
  ...RESERVED_FIELDS.map((name) => field(name, { kind: 'reserved' }, `"${name}" is reserved for a later format version`)),
];

/**
 * Checks a decoded body. Returns the problem as a sentence, or undefined when the
 * body is valid. Unknown fields are allowed (forward compatibility), except the
 * reserved ones.
 */
export function findBodyProblem(body: unknown): string | undefined {
  if (!isMap(body)) return 'the body must be a map (a JSON object)';
  return findFieldsProblem(body, BODY_FIELDS, body);
}

function findFieldsProblem(value: Record<string, unknown>, fields: readonly BodyField[], body: Record<string, unknown>): string | undefined {
  for (const f of fields) {
    const v = value[f.name];
    if (v === undefined) {
      if (f.required) return f.missing ?? f.problem;
      continue;
    }
    if (f.notOnType !== undefined && body.type === f.notOnType.type) return f.notOnType.problem;
    const problem = findValueProblem(v, f, body);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function findValueProblem(v: unknown, f: BodyField, body: Record<string, unknown>): string | undefined {
  const rule = f.rule;
  switch (rule.kind) {
    case 'version':
      return v === FORMAT_VERSION ? undefined : unsupportedVersion(v);
    case 'string':
      return typeof v === 'string' && (rule.pattern === undefined || rule.pattern.test(v)) && (rule.nonEmpty !== true || v.length > 0) ? undefined : f.problem;
    case 'integer':
      return Number.isSafeInteger(v) && (v as number) >= rule.min && (rule.max === undefined || (v as number) <= rule.max) ? undefined : f.problem;
    case 'number':
      return typeof v === 'number' && v >= rule.min && (rule.max === undefined || v <= rule.max) ? undefined : f.problem;
    case 'oneOf':
      return rule.values.includes(v as string) ? undefined : f.problem;
    case 'array':
      return Array.isArray(v) ? undefined : f.problem;
    case 'map':
      return isMap(v) ? undefined : f.problem;
    case 'any':
      return undefined;
    case 'record': {
      if (!isMap(v)) return f.problem;
      const problem = findFieldsProblem(v, rule.fields, body);
      // A step's fields are named within it: the problem says which field of the body holds them.
      return problem !== undefined && rule.fields === STEP_FIELDS ? `"${f.name}": ${problem}` : problem;
    }
    case 'records': {
      if (!Array.isArray(v)) return f.problem;
      for (let i = 0; i < v.length; i++) {
        const step: unknown = v[i];
        if (!isMap(step)) return `${f.problem} (step ${i + 1} is not a map)`;
        const problem = findFieldsProblem(step, rule.fields, body);
        if (problem !== undefined) return `"${f.name}" step ${i + 1}: ${problem}`;
      }
      return undefined;
    }
    case 'reserved':
      return f.problem;
  }
}

/** Quotes the version only when it looks like one: nothing else of an invalid file is echoed. */
function unsupportedVersion(v: unknown): string {
  const kind = v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'a map' : `a ${typeof v}`;
  const shown = Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < 1_000_000 ? ` ${v as number}` : ` (${kind})`;
  return `format version${shown} is not supported; this spoolerd reads version ${FORMAT_VERSION} (upgrade spoolerd, or write version ${FORMAT_VERSION})`;
}

/**
 * How much of a field's value its rule looks at: nothing but that it is there
 * (`any`, `reserved`), whether it is an array or a map (`array`, `map`: what
 * is inside is not looked at), or the value itself.
 */
export function valueNeeded(rule: FieldRule): 'presence' | 'kind' | 'value' {
  switch (rule.kind) {
    case 'any':
    case 'reserved':
      return 'presence';
    case 'array':
    case 'map':
      return 'kind';
    default:
      return 'value';
  }
}

const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

/**
 * Whether a task file's bytes hold a valid body: what decodeTask (task-file.ts)
 * accepts, as a yes or no, for `spool ls`, which checks every body of a spool.
 *
 * A MessagePack body is not decoded whole. The scan that the full decode makes
 * first (msgpack-scan.ts) also notes where the root map's entries are, and only
 * the values of BODY_FIELDS are decoded, as much as their rules look at
 * (valueNeeded): an `args` array of any size is seen as an empty array, a
 * `payload` only as being there. findBodyProblem then checks that view, so the
 * body's rules are applied by the same code as for a full decode. The only
 * thing the full decode refuses after a clean scan is a NaN or an infinity
 * (wire.ts, checkDecoded), which the scan notes. JSON bodies are decoded whole.
 */
export function isValidBody(bytes: Uint8Array, encoding: Encoding): boolean {
  lastExpires = undefined;
  let view: unknown;
  if (encoding === 'json') {
    try {
      view = decodeWire(bytes, encoding);
    } catch {
      return false;
    }
  } else {
    if (findMsgpackProblem(bytes, root) !== undefined || root.nonFinite) return false;
    // A root that is not a map decodes to a value findBodyProblem refuses.
    if (!root.isMap) return false;
    view = viewOfFields(bytes, root);
  }
  if (findBodyProblem(view) !== undefined) return false;
  lastExpires = (view as { expires?: number }).expires;
  return true;
}

let lastExpires: number | undefined;
/** The `expires` time of the body isValidBody last found valid (undefined: it has none), for `spool ls`'s note on expired tasks. */
export const expiresOfLastValidBody = (): number | undefined => lastExpires;

const root = new RootEntries();
/** Stand-ins for a value whose rule looks only at its kind (array, map) or only at its presence. */
const SOME_ARRAY: readonly never[] = Object.freeze([]);
const SOME_MAP: Readonly<Record<string, never>> = Object.freeze({});
const PRESENT = true;

/** The body as findBodyProblem sees it: the BODY_FIELDS entries of the root map, each decoded as far as its rule looks. */
function viewOfFields(bytes: Uint8Array, entries: RootEntries): Record<string, unknown> {
  const view: Record<string, unknown> = {};
  const count = entries.count;
  for (let i = 0; i < count; i++) {
    const text = entries.keyText[i]!;
    // An integer key reads as digits, which no field's name is.
    if (text < 0) continue;
    const f = fieldNamed(bytes, text, entries.keyLength[i]!);
    if (f === undefined) continue;
    const start = entries.valueAt[i]!;
    const end = i + 1 < count ? entries.keyAt[i + 1]! : bytes.length;
    // Assigned in the order found: for a key written twice, the last value counts, as in a decode.
    view[f.name] = valueOf(bytes, start, end, valueNeeded(f.rule));
  }
  return view;
}

function valueOf(bytes: Uint8Array, start: number, end: number, needed: 'presence' | 'kind' | 'value'): unknown {
  if (needed === 'presence') return PRESENT;
  if (needed === 'kind') {
    const b = bytes[start]!;
    if ((b >= 0x90 && b <= 0x9f) || b === 0xdc || b === 0xdd) return SOME_ARRAY;
    if ((b >= 0x80 && b <= 0x8f) || b === 0xde || b === 0xdf) return SOME_MAP;
  }
  const scalar = scalarAt(bytes, start, end);
  return scalar !== NOT_SIMPLE ? scalar : decodeScannedMsgpack(bytes.subarray(start, end));
}

/** BODY_FIELDS by the length of their names: a key is matched by its UTF-8 bytes, whatever string format holds it. */
const FIELDS_BY_LENGTH: BodyField[][] = [];
for (const f of BODY_FIELDS) (FIELDS_BY_LENGTH[f.name.length] ??= []).push(f);

function fieldNamed(bytes: Uint8Array, text: number, length: number): BodyField | undefined {
  const candidates = FIELDS_BY_LENGTH[length];
  if (candidates === undefined) return undefined;
  next: for (const f of candidates) {
    const name = f.name;
    for (let k = 0; k < length; k++) if (bytes[text + k] !== name.charCodeAt(k)) continue next;
    return f;
  }
  return undefined;
}
