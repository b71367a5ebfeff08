/**
 * Result records: how a finished task ended, kept in results/<id>.<encoding>
 * (SPOOL-FORMAT.md, "results/"). Written by the daemon (spool/protocol.ts,
 * keepResult) only for tasks that ask for it (`keepResult` in the body) or
 * when the daemon keeps every result (--keep-results); read by waiters
 * (runtime/wait.ts), `spool show`, `spool ls` and `spool wait`.
 *
 * The record is in the task's own encoding, so a producer that can write a
 * task can read its result: a Python producer without a MessagePack module
 * writes JSON tasks and reads JSON results with `json.loads`.
 *
 * Expiry is read without opening the file: the record's mtime is set to its
 * keep-until time (by the spool clock) before it is renamed into place, so
 * the daemon's sweep (spooler/discover/sweep.ts) needs one listing and one
 * lstat per record, never a read.
 */
import { InvalidTaskNameError, UnencodableValueError } from './errors.js';
import type { SpoolLayout } from './layout.js';
import { TASK_ID_PATTERN, type Encoding } from './name.js';
import { readRegularFile } from './safe-read.js';
import { decodeWire, encodeWire, toWire } from './wire.js';

/** How a task ended: one closed set, spelled the same in logs, records, `spool ls --state` and `spool wait` exit codes. */
export const TASK_ENDINGS = ['processed', 'skipped', 'dead', 'cancelled', 'expired'] as const;
export type TaskEnding = (typeof TASK_ENDINGS)[number];

export const RESULT_VERSION = 1;
/** Results are small; a record larger than this is not read. Writers keep values under the spool's --max-bytes. */
export const RESULT_READ_MAX_BYTES = 64 * 1024 * 1024;

export interface RemoteErrorInfo {
  name?: string;
  message: string;
  stack?: string;
}

/** A result record as written (and, after the checks of readResult, as read). */
export interface ResultRecord {
  version: 1;
  id: string;
  /** The task's registered name. */
  name: string;
  ending: TaskEnding;
  /** processed: what the task returned, when it returned something that could be kept. */
  value?: unknown;
  /** processed: why the value is not here (it could not be encoded, or was too large). */
  valueError?: string;
  /** processed: why the next step of its chain was not enqueued (its value cannot be stored in a task file); the chain ends here. */
  nextError?: string;
  /** skipped, cancelled, expired: why, when a reason was given. */
  reason?: string;
  /** dead: the final error. */
  error?: RemoteErrorInfo;
  /** Attempts made, this one included. */
  attempts: number;
  /** The daemon that ran it last (its owner id). */
  owner?: string;
  /** When it ended, ms since the epoch (spool clock). */
  finishedAt: number;
  /** When the daemon's sweep deletes this record, ms since the epoch (spool clock); also the file's mtime. */
  keepUntil: number;
}

/** What the caller of encodeResult gives; version is filled in. */
export type NewResult = Omit<ResultRecord, 'version'>;

/** results/<id>.<encoding>: the name is the task's id and the encoding, nothing else, so a waiter knows it in advance. */
export function resultFileName(id: string, encoding: Encoding): string {
  return `${id}.${encoding}`;
}

/** The id and encoding of a file name in results/, or undefined for anything else (debris, a staged record). */
export function parseResultFileName(fileName: string): { id: string; encoding: Encoding } | undefined {
  const dot = fileName.lastIndexOf('.');
  if (dot <= 0) return undefined;
  const ext = fileName.slice(dot + 1);
  if (ext !== 'msgpack' && ext !== 'json') return undefined;
  const id = fileName.slice(0, dot);
  return TASK_ID_PATTERN.test(id) ? { id, encoding: ext } : undefined;
}

export function resultPath(layout: SpoolLayout, id: string, encoding: Encoding): string {
  if (!TASK_ID_PATTERN.test(id)) throw new InvalidTaskNameError(id, 'not a task id');
  return layout.results + '/' + resultFileName(id, encoding);
}

/**
 * The bytes of a record. A value that is not a plain value for the encoding
 * (spool/wire.ts), or that makes the record larger than `maxBytes`, is left
 * out and the record says why in `valueError` (returned as `problem` too, for
 * the log): a task's return value never makes the daemon fail.
 */
export function encodeResult(result: NewResult, encoding: Encoding, maxBytes: number): { bytes: Buffer; problem?: string } {
  const record: ResultRecord = { version: RESULT_VERSION, ...result };
  if (record.value === undefined) delete record.value;
  let problem: string | undefined;
  let wire: unknown;
  try {
    wire = toWire(record, encoding, 'result');
  } catch (err) {
    problem = err instanceof UnencodableValueError ? `the value cannot be kept: ${err.message}` : `the result cannot be encoded: ${(err as Error).message}`;
  }
  if (problem === undefined) {
    const bytes = encodeWire(wire, encoding);
    if (bytes.length <= maxBytes) return { bytes };
    problem = `the value is not kept: the record would take ${bytes.length} bytes, over the spool's --max-bytes of ${maxBytes}`;
  }
  const { value: _dropped, ...rest } = record;
  void _dropped;
  // Without the value, only the error's stack (a string) and the reason could still be at fault: keep them as text.
  const bare: ResultRecord = { ...rest, valueError: problem };
  return { bytes: encodeWire(toWire(bare, encoding, 'result'), encoding), problem };
}

export type ReadResult = { ok: true; record: ResultRecord } | { ok: false; reason: string; missing?: true };

/** Reads and checks results/<id>.<encoding> (never following a link). `missing`: no such record (yet, or any more). */
export function readResultFile(path: string, encoding: Encoding): ReadResult {
  const read = readRegularFile(path, RESULT_READ_MAX_BYTES);
  if (!read.ok) return read.reason.startsWith('it disappeared') || read.reason.includes('no such file') ? { ok: false, reason: read.reason, missing: true } : { ok: false, reason: read.reason };
  let decoded: unknown;
  try {
    decoded = decodeWire(read.bytes, encoding);
  } catch (err) {
    return { ok: false, reason: `the result record does not decode: ${(err as Error).message}` };
  }
  const problem = findResultProblem(decoded);
  return problem === undefined ? { ok: true, record: decoded as ResultRecord } : { ok: false, reason: `not a result record: ${problem}` };
}

/** The record of task `id` in either encoding, or undefined when there is none. */
export function readResult(layout: SpoolLayout, id: string): ReadResult {
  let last: ReadResult = { ok: false, reason: 'no result is kept for this task', missing: true };
  for (const encoding of ['msgpack', 'json'] as const) {
    const r = readResultFile(resultPath(layout, id, encoding), encoding);
    if (r.ok || r.missing !== true) return r;
    last = r;
  }
  return last;
}

function findResultProblem(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not a map';
  const r = v as Record<string, unknown>;
  if (r.version !== RESULT_VERSION) return `version ${String(r.version)} is not supported (this spoolerd reads ${RESULT_VERSION})`;
  if (typeof r.id !== 'string' || !TASK_ID_PATTERN.test(r.id)) return '"id" must be a task id';
  if (typeof r.name !== 'string') return '"name" must be a string';
  if (!(TASK_ENDINGS as readonly unknown[]).includes(r.ending)) return `"ending" must be one of ${TASK_ENDINGS.join(', ')}`;
  if (!Number.isSafeInteger(r.attempts)) return '"attempts" must be an integer';
  if (!Number.isSafeInteger(r.finishedAt)) return '"finishedAt" must be an integer of ms';
  if (!Number.isSafeInteger(r.keepUntil)) return '"keepUntil" must be an integer of ms';
  if (r.error !== undefined && (typeof r.error !== 'object' || r.error === null || typeof (r.error as { message?: unknown }).message !== 'string')) return '"error" must be a map with a "message"';
  return undefined;
}

/** Every readable result record in results/, oldest ending first (for `spool ls --state processed,...`). Reads each record. */
export function listResults(layout: SpoolLayout, names: readonly string[]): ResultRecord[] {
  const records: ResultRecord[] = [];
  for (const n of names) {
    const parsed = parseResultFileName(n);
    if (parsed === undefined) continue;
    const r = readResultFile(layout.results + '/' + n, parsed.encoding);
    if (r.ok) records.push(r.record);
  }
  return records.sort((a, b) => a.finishedAt - b.finishedAt || (a.id < b.id ? -1 : 1));
}
