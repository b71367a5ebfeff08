/**
 * Task file names. The name carries everything needed to order and route a task
 * without opening it, so a byte sort of names is the execution order among due
 * tasks and every change of state (claim, retry, dead letter) is one rename:
 *
 *   50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-send_email.msgpack
 *   |  |             |                              |  |          '- encoding
 *   |  |             |                              |  '- task name
 *   |  |             |                              '- attempts so far
 *   |  |             '- id: creation time (13 digits, ms) + 16 hex digits
 *   |  '- due time, ms since the Unix epoch, 13 digits
 *   '- priority, 2 digits, lower runs first
 *
 * SPOOL-FORMAT.md is the normative description; keep the two in step.
 */
import { randomBytes } from 'node:crypto';
import { InvalidOptionError, InvalidTaskNameError } from './errors.js';

export const PRIORITY_MIN = 0;
export const PRIORITY_MAX = 99;
export const PRIORITY_DEFAULT = 50;
/** Largest time that fits the 13-digit fields: 2286-11-20. */
export const TIME_MAX = 9_999_999_999_999;
export const ATTEMPTS_MAX = 999_999;
export const TASK_NAME_MAX_LENGTH = 128;

export type Encoding = 'msgpack' | 'json';
export const ENCODINGS: readonly Encoding[] = ['msgpack', 'json'];

/** The fields a task file name carries. */
export interface TaskName {
  priority: number;
  /** Due time, ms since the epoch. */
  due: number;
  /** Unique id: 13-digit creation time followed by 16 lowercase hex digits. */
  id: string;
  /** Creation time in ms, the first 13 digits of the id. */
  created: number;
  /** How many times the task has been attempted and failed or been interrupted. */
  attempts: number;
  /** Task name: the registered function for `fcall` tasks, the handler key otherwise. */
  name: string;
  encoding: Encoding;
}

export const TASK_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$/;
export const TASK_ID_PATTERN = /^\d{13}[0-9a-f]{16}$/;

/*
 * Every field before NAME has a fixed width, so it sits at a fixed offset:
 *
 *   PP-DUE-ID-aN-NAME.EXT
 *   0  3   17 47
 *
 * The daemon's queue compares names by these offsets (spooler/order/task-queue.ts).
 */
/** Offsets of the 2-digit priority. */
export const PRIORITY_START = 0;
export const PRIORITY_END = 2;
/** Offsets of the 13-digit due time. */
export const DUE_START = 3;
export const DUE_END = 16;
/** Offsets of the 29-character id (its first 13 digits are the creation time). */
export const ID_START = 17;
export const ID_END = 46;
/** Offset of the "a" that starts the attempts field. */
const ATTEMPTS_START = 47;
/** The shortest task file name: "00-" + 13 digits + "-" + 29-character id + "-a0-" + "x" + ".json". */
const MIN_FILE_NAME_LENGTH = 56;

/**
 * Where NAME starts in a task file name, or -1 when `s` is not one. The one
 * parser of task file names: it reads character codes (a regular expression
 * costs several times as much, and the daemon and `spool ls` look at every name
 * of a backlog that may hold millions). It accepts exactly the names of the
 * pattern in SPOOL-FORMAT.md, "File name" (test/name.test.ts holds the two
 * against each other).
 */
function nameStartOf(s: string): number {
  const length = s.length;
  if (length < MIN_FILE_NAME_LENGTH || s.charCodeAt(2) !== DASH || s.charCodeAt(16) !== DASH || s.charCodeAt(46) !== DASH || s.charCodeAt(ATTEMPTS_START) !== LOWER_A) {
    return -1;
  }
  if (!isDigit(s.charCodeAt(0)) || !isDigit(s.charCodeAt(1))) return -1;
  for (let i = DUE_START; i < DUE_END; i++) if (!isDigit(s.charCodeAt(i))) return -1;
  for (let i = ID_START; i < ID_START + 13; i++) if (!isDigit(s.charCodeAt(i))) return -1;
  for (let i = ID_START + 13; i < ID_END; i++) {
    const c = s.charCodeAt(i);
    if (!(isDigit(c) || (c >= LOWER_A && c <= LOWER_F))) return -1;
  }
  // Attempts: "0", or 1 to 6 digits without a leading zero; then "-".
  const first = s.charCodeAt(ATTEMPTS_START + 1);
  if (!isDigit(first)) return -1;
  let i = ATTEMPTS_START + 2;
  if (first !== ZERO) while (i < ATTEMPTS_START + 7 && isDigit(s.charCodeAt(i))) i++;
  if (s.charCodeAt(i) !== DASH) return -1;
  const nameStart = i + 1;
  const nameEnd = length - extensionLength(s);
  const nameLength = nameEnd - nameStart;
  if (nameLength < 1 || nameLength > TASK_NAME_MAX_LENGTH) return -1;
  // NAME: [A-Za-z_][A-Za-z0-9_.:-]*
  const c0 = s.charCodeAt(nameStart);
  if (!((c0 >= UPPER_A && c0 <= UPPER_Z) || (c0 >= LOWER_A && c0 <= LOWER_Z) || c0 === UNDERSCORE)) return -1;
  for (let k = nameStart + 1; k < nameEnd; k++) {
    const c = s.charCodeAt(k);
    if ((c >= LOWER_A && c <= LOWER_Z) || (c >= UPPER_A && c <= UPPER_Z) || isDigit(c) || c === UNDERSCORE || c === DOT || c === COLON || c === DASH) continue;
    return -1;
  }
  return nameStart;
}

/**
 * The length of ".msgpack" or ".json" when the name ends with it, else a length
 * that makes NAME too long to pass. A NAME may hold dots, but the two
 * extensions exclude each other: the name ends with one or neither.
 */
function extensionLength(s: string): number {
  if (s.endsWith('.msgpack')) return 8;
  if (s.endsWith('.json')) return 5;
  return -s.length;
}

/** Reads digits s[start, end) as a number; the caller has checked they are digits. */
function digitsAt(s: string, start: number, end: number): number {
  let n = 0;
  for (let i = start; i < end; i++) n = n * 10 + (s.charCodeAt(i) - ZERO);
  return n;
}

/** Parses a file name; returns undefined when it is not a task name (see explainBadName). */
export function parseTaskName(fileName: string): TaskName | undefined {
  const nameStart = nameStartOf(fileName);
  if (nameStart < 0) return undefined;
  const msgpack = fileName.charCodeAt(fileName.length - 1) === LOWER_K;
  return {
    priority: digitsAt(fileName, PRIORITY_START, PRIORITY_END),
    due: digitsAt(fileName, DUE_START, DUE_END),
    id: fileName.slice(ID_START, ID_END),
    created: digitsAt(fileName, ID_START, ID_START + 13),
    attempts: digitsAt(fileName, ATTEMPTS_START + 1, nameStart - 1),
    name: fileName.slice(nameStart, fileName.length - (msgpack ? 8 : 5)),
    encoding: msgpack ? 'msgpack' : 'json',
  };
}

/** Whether a file name is a task name. */
export function isTaskName(fileName: string): boolean {
  return nameStartOf(fileName) >= 0;
}

/** The task's NAME in a task file name (what a daemon runs it by), or undefined when it is not a task name. */
export function taskNameOf(fileName: string): string | undefined {
  const start = nameStartOf(fileName);
  return start < 0 ? undefined : fileName.slice(start, fileName.length - extensionLength(fileName));
}

/** The file name at the end of a path to a task file (a claimed one, say): what follows the last "/". */
export function fileNameOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

const isDigit = (c: number): boolean => c >= ZERO && c <= NINE;
const ZERO = 0x30;
const NINE = 0x39;
const DASH = 0x2d;
const DOT = 0x2e;
const COLON = 0x3a;
const UNDERSCORE = 0x5f;
const UPPER_A = 0x41;
const UPPER_Z = 0x5a;
const LOWER_A = 0x61;
const LOWER_F = 0x66;
const LOWER_K = 0x6b;
const LOWER_Z = 0x7a;

/** Says which part of a file name is wrong. Only called for names that did not parse. */
export function explainBadName(fileName: string): string {
  if (fileName.startsWith('.')) return 'names beginning with "." are never tasks';
  const ext = /\.([^.]*)$/.exec(fileName)?.[1];
  if (ext === undefined || !(ENCODINGS as readonly string[]).includes(ext)) {
    return `the extension must be .msgpack or .json (got ${ext === undefined ? 'none' : `.${ext}`})`;
  }
  const parts = fileName.slice(0, -(ext.length + 1)).split('-');
  const [priority, due, id, attempts] = parts;
  const name = parts.slice(4).join('-');
  if (priority === undefined || !/^\d{2}$/.test(priority)) return 'the priority must be two digits, 00 to 99';
  if (due === undefined || !/^\d{13}$/.test(due)) return 'the due time must be 13 digits of ms since the epoch';
  if (id === undefined || !TASK_ID_PATTERN.test(id)) {
    return 'the id must be 13 digits of creation time followed by 16 lowercase hex digits';
  }
  if (attempts === undefined || !/^a(0|[1-9]\d{0,5})$/.test(attempts)) {
    return 'the attempts field must be "a" followed by a number, e.g. a0';
  }
  if (!TASK_NAME_PATTERN.test(name)) return describeTaskNameProblem(name);
  return 'it does not follow the pattern PP-DUE-ID-aN-NAME.EXT';
}

/**
 * The due time of a task file name, or undefined when the name is not a task
 * name. Allocates nothing but the number: the daemon calls it for every file of
 * a backlog that may hold millions.
 */
export function dueOfTaskName(fileName: string): number | undefined {
  if (nameStartOf(fileName) < 0) return undefined;
  return digitsAt(fileName, DUE_START, DUE_END);
}

/**
 * A cheap look at a name from a listing, for the names a listing passes over
 * by the million: its shape ("PP-" and the "-" after the due time) and its due
 * time read digit by digit (no allocation, no regular expression: the full
 * check, dueOfTaskName, reads the whole name). NaN: not the shape of a task name.
 * Only names that enter the window are checked in full.
 */
export function roughDue(fileName: string): number {
  if (fileName.length < 50 || fileName.charCodeAt(2) !== DASH || fileName.charCodeAt(DUE_END) !== DASH) return NaN;
  let due = 0;
  for (let i = DUE_START; i < DUE_END; i++) {
    const d = fileName.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return NaN;
    due = due * 10 + d;
  }
  return due;
}

/** Builds a file name. Throws InvalidOptionError for a field out of range. */
export function formatTaskName(t: Omit<TaskName, 'created'>): string {
  checkPriority(t.priority);
  checkTime(t.due, 'due time');
  if (!TASK_ID_PATTERN.test(t.id)) throw new InvalidTaskNameError(t.id, 'not a task id');
  if (!Number.isInteger(t.attempts) || t.attempts < 0 || t.attempts > ATTEMPTS_MAX) {
    throw new InvalidOptionError(`attempts must be an integer from 0 to ${ATTEMPTS_MAX}, got ${t.attempts}`);
  }
  checkTaskName(t.name);
  return `${pad2(t.priority)}-${pad13(t.due)}-${t.id}-a${t.attempts}-${t.name}.${t.encoding}`;
}

/** The same task under a new due time and attempt count: what a retry or reclaim renames to. */
export function renameTask(t: TaskName, change: { due?: number; attempts?: number; priority?: number }): string {
  return formatTaskName({ ...t, ...change });
}

export function checkPriority(priority: number): void {
  if (!Number.isInteger(priority) || priority < PRIORITY_MIN || priority > PRIORITY_MAX) {
    throw new InvalidOptionError(
      `priority must be an integer from ${PRIORITY_MIN} (runs first) to ${PRIORITY_MAX}, got ${String(priority)}`,
    );
  }
}

export function checkTime(ms: number, what: string): void {
  if (!Number.isInteger(ms) || ms < 0 || ms > TIME_MAX) {
    throw new InvalidOptionError(`${what} must be whole ms between 1970 and 2286, got ${String(ms)}`);
  }
}

export function checkTaskName(name: string): void {
  if (!TASK_NAME_PATTERN.test(name)) throw new InvalidOptionError(`task name ${JSON.stringify(name)}: ${describeTaskNameProblem(name)}`);
}

function describeTaskNameProblem(name: string): string {
  if (name.length === 0) return 'the task name is empty';
  if (name.length > TASK_NAME_MAX_LENGTH) return `the task name is longer than ${TASK_NAME_MAX_LENGTH} characters`;
  return 'a task name starts with a letter or "_" and holds only letters, digits, "_", ".", ":" and "-"';
}

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));
const pad13 = (n: number): string => String(n).padStart(13, '0');

/**
 * Makes ids that are unique without coordination and increase within this
 * process: the creation time, then 64 bits that start random each millisecond
 * and count up within it, so tasks enqueued in the same ms keep their order.
 */
export class TaskIdGenerator {
  private lastMs = -1;
  private hi = 0;
  private lo = 0;
  private pool = Buffer.alloc(0);
  private poolOffset = 0;

  /** Returns [id, creation time]. The time never goes backwards within this process. */
  next(now: number = Date.now()): [string, number] {
    if (now > this.lastMs) {
      this.lastMs = now;
      if (this.poolOffset + 8 > this.pool.length) {
        this.pool = randomBytes(8 * 512);
        this.poolOffset = 0;
      }
      // The top bit of hi stays clear so counting up within a ms cannot overflow 64 bits.
      this.hi = this.pool.readUInt32BE(this.poolOffset) >>> 1;
      this.lo = this.pool.readUInt32BE(this.poolOffset + 4);
      this.poolOffset += 8;
    } else if (this.lo === 0xffffffff) {
      this.lo = 0;
      this.hi += 1;
    } else {
      this.lo += 1;
    }
    const id = pad13(this.lastMs) + this.hi.toString(16).padStart(8, '0') + this.lo.toString(16).padStart(8, '0');
    return [id, this.lastMs];
  }
}

export const taskIds = new TaskIdGenerator();
