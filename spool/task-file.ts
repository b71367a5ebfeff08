/**
 * A task file = a name (name.ts) + a body (body.ts). Building one from a new
 * task, and reading one back with every check the format asks for.
 */
import { basename } from 'node:path';
import { FORMAT_VERSION, findBodyProblem, type TaskBody } from './body.js';
import { InvalidOptionError, InvalidTaskFileError, UnencodableValueError } from './errors.js';
import { explainBadName, formatTaskName, parseTaskName, taskIds, type Encoding, type TaskName } from './name.js';
import { DEFAULT_MAX_BYTES, formatBytes, readRegularFile } from './safe-read.js';
import { decodeWire, encodeWire, toWire } from './wire.js';

export interface TaskFile extends TaskName {
  fileName: string;
  body: TaskBody;
}

/** What a producer supplies; the body's version is filled in. */
export interface NewTask {
  name: string;
  priority: number;
  /** Due time in ms; default: the creation time (run as soon as possible). */
  due?: number;
  body: Omit<TaskBody, 'version'>;
  encoding?: Encoding;
  /** Now, for tests and bulk enqueue; default Date.now(). */
  now?: number;
  /** A deterministic id (spool/derived-id.ts) instead of a new one; its first 13 digits are the creation time. */
  id?: string;
}

export interface EncodedTask {
  fileName: string;
  bytes: Buffer;
  id: string;
  created: number;
  due: number;
}

/**
 * Builds the file name and bytes of a new task. Throws UnencodableValueError for
 * arguments that cannot be stored and InvalidOptionError for bad options, before
 * anything touches the disk.
 */
export function encodeTask(task: NewTask, maxBytes: number = DEFAULT_MAX_BYTES): EncodedTask {
  const encoding = task.encoding ?? 'msgpack';
  const [id, created] = task.id !== undefined ? [task.id, Number(task.id.slice(0, 13))] : taskIds.next(task.now);
  const due = task.due ?? created;
  const fileName = formatTaskName({ priority: task.priority, due, id, attempts: 0, name: task.name, encoding });
  const body = { version: FORMAT_VERSION, ...task.body };
  const bytes = encodeWire(toWire(body, encoding, 'task'), encoding);
  if (bytes.length > maxBytes) {
    throw new InvalidOptionError(
      `task ${task.name} encodes to ${formatBytes(bytes.length)}, over the spool's ${formatBytes(maxBytes)} cap; ` +
        'pass large data by reference (a path or URL) instead of as an argument',
    );
  }
  return { fileName, bytes, id, created, due };
}

export type DecodeOutcome = { ok: true; task: TaskFile } | { ok: false; reason: string };

/** Decodes and checks a task file's bytes. Never throws for the file's own faults. */
export function decodeTask(fileName: string, bytes: Uint8Array): DecodeOutcome {
  const name = parseTaskName(fileName);
  if (name === undefined) return { ok: false, reason: `bad file name: ${explainBadName(fileName)}` };
  let body: unknown;
  try {
    body = decodeWire(bytes, name.encoding);
  } catch (err) {
    // Structural problems come as Error, disallowed values as UnencodableValueError (which names the path).
    const reason = err instanceof UnencodableValueError ? err.message : `the body is not valid ${name.encoding === 'json' ? 'JSON' : 'MessagePack'}: ${(err as Error).message}`;
    return { ok: false, reason };
  }
  const problem = findBodyProblem(body);
  if (problem !== undefined) return { ok: false, reason: problem };
  // Spelled out rather than `{ ...name, fileName, body }`: V8's object spread cost ~3 µs here,
  // on a path a daemon takes for every task.
  const task: TaskFile = {
    priority: name.priority,
    due: name.due,
    id: name.id,
    created: name.created,
    attempts: name.attempts,
    name: name.name,
    encoding: name.encoding,
    fileName,
    body: body as TaskBody,
  };
  return { ok: true, task };
}

/** Reads and checks a task file. Throws InvalidTaskFileError with the reason. */
export function readTaskFile(path: string, maxBytes: number = DEFAULT_MAX_BYTES): TaskFile {
  const read = readRegularFile(path, maxBytes);
  if (!read.ok) throw new InvalidTaskFileError(path, read.reason);
  const decoded = decodeTask(basename(path), read.bytes);
  if (!decoded.ok) throw new InvalidTaskFileError(path, decoded.reason);
  return decoded.task;
}
