/**
 * Pausing tasks and schedules: control/pause.json (SPOOL-FORMAT.md, "Pause").
 *
 *   {"version":1,"all":false,"tasks":["reindex"],"schedules":["nightly"]}
 *
 * `all` pauses every task (not the schedules: they go on enqueuing, and their
 * tasks wait); `tasks` pauses the tasks of those names; `schedules` stops
 * those schedules from enqueuing. A missing file pauses nothing. Written by
 * `spool pause` / `spool resume` (an administrator: control/ is not writable
 * by producers), atomically: staged in control/ beside it, then renamed over
 * it, so a reader sees the old state or the new one. Daemons look at it every
 * PAUSE_POLL_MS (spooler/pause-watch.ts).
 *
 * Read without ever following a link (O_NOFOLLOW, then fstat on the open
 * descriptor) and with a size cap: a bad file is a PauseFileError that says
 * what is wrong and how to fix it.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { SpoolError } from './errors.js';
import { TASK_NAME_PATTERN } from './name.js';

export interface PauseState {
  all: boolean;
  tasks: string[];
  schedules: string[];
}

export const NOTHING_PAUSED: PauseState = Object.freeze({ all: false, tasks: Object.freeze([]) as unknown as string[], schedules: Object.freeze([]) as unknown as string[] });

/** The folder and the file, relative to the spool. */
export const CONTROL_DIR = 'control';
export const PAUSE_FILE = 'pause.json';
export const PAUSE_FILE_VERSION = 1;
/** A pause file is a few names; anything larger is not one. */
export const PAUSE_MAX_BYTES = 64 * 1024;
/** How often a daemon looks at the file (one lstat); a pause takes effect within about this. */
export const PAUSE_POLL_MS = 250;
/** Staged copies are named so; one older than this was left by a `spool pause` that died, and is removed by the next. */
export const PAUSE_STAGING_PREFIX = '.pause-';
const STAGING_DEBRIS_MS = 3_600_000;
/** Schedule names: as task names (the periodic tasks' names default to them), at most 128 characters. */
const SCHEDULE_NAME_PATTERN = TASK_NAME_PATTERN;

export function pauseFilePath(root: string): string {
  return join(root, CONTROL_DIR, PAUSE_FILE);
}

/** control/pause.json is not a pause file: what is wrong, and the fix. */
export class PauseFileError extends SpoolError {
  readonly path: string;
  constructor(path: string, problem: string) {
    super('SPOOL_BAD_PAUSE_FILE', `${path} ${problem}. Fix it, or replace it: "spool resume" (resumes everything) writes a good one, or remove it (rm ${path}: nothing paused)`);
    this.path = path;
  }
}

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

/** control/pause.json; a missing file is NOTHING_PAUSED. Never follows a link; a bad file is an error that says what to do. */
export async function readPauseState(root: string): Promise<PauseState> {
  const path = pauseFilePath(root);
  let handle;
  try {
    handle = await open(path, OPEN_FLAGS);
  } catch (err) {
    return missingOrThrow(path, err as NodeJS.ErrnoException);
  }
  try {
    const st = await handle.stat();
    checkStat(path, st);
    const bytes = Buffer.alloc(st.size);
    const { bytesRead } = await handle.read(bytes, 0, st.size, 0);
    return parsePauseState(path, bytes.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

/** readPauseState(), synchronously (the daemon's poll, the `spool` commands). */
export function readPauseStateSync(root: string): PauseState {
  const path = pauseFilePath(root);
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (err) {
    return missingOrThrow(path, err as NodeJS.ErrnoException);
  }
  try {
    const st = fstatSync(fd);
    checkStat(path, st);
    const bytes = Buffer.alloc(st.size);
    let length = 0;
    while (length < bytes.length) {
      const n = readSync(fd, bytes, length, bytes.length - length, length);
      if (n === 0) break;
      length += n;
    }
    return parsePauseState(path, bytes.subarray(0, length));
  } finally {
    closeSync(fd);
  }
}

function missingOrThrow(path: string, err: NodeJS.ErrnoException): PauseState {
  if (err.code === 'ENOENT') {
    // No control/ folder at all (a spool made before it existed) is no pause either; a control/ that is a link or a file is not.
    const folder = lstatOrUndefined(join(path, '..'));
    if (folder === undefined || folder.isDirectory()) return NOTHING_PAUSED;
    throw new PauseFileError(path, `cannot be read: ${join(path, '..')} is ${folder.isSymbolicLink() ? 'a symbolic link (never followed)' : 'not a directory'}`);
  }
  if (err.code === 'ELOOP') throw new PauseFileError(path, 'is a symbolic link; it is never followed');
  if (err.code === 'ENOTDIR') throw new PauseFileError(path, `cannot be read: ${join(path, '..')} is not a directory`);
  if (err.code === 'ENXIO') throw new PauseFileError(path, 'is a socket or a device, not a regular file');
  if (err.code === 'EACCES' || err.code === 'EPERM') {
    throw new SpoolError('SPOOL_PERMISSION', `${path} cannot be read: permission denied; run as the spool's owner (or a member of its group)`, { cause: err });
  }
  throw new PauseFileError(path, `cannot be read: ${err.message}`);
}

function checkStat(path: string, st: { isFile(): boolean; size: number }): void {
  if (!st.isFile()) throw new PauseFileError(path, 'is not a regular file');
  if (st.size > PAUSE_MAX_BYTES) throw new PauseFileError(path, `is ${st.size} bytes, over the ${PAUSE_MAX_BYTES}-byte cap of a pause file`);
}

/** The state a pause file's bytes hold; throws PauseFileError for anything else. Unknown fields are ignored (later versions may add some). */
export function parsePauseState(path: string, bytes: Uint8Array): PauseState {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    throw new PauseFileError(path, `is not JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new PauseFileError(path, 'is not a JSON object');
  const v = value as Record<string, unknown>;
  if (v.version !== PAUSE_FILE_VERSION) throw new PauseFileError(path, `has version ${JSON.stringify(v.version)}; this spoolerd reads version ${PAUSE_FILE_VERSION}`);
  if (v.all !== undefined && typeof v.all !== 'boolean') throw new PauseFileError(path, `has "all": ${JSON.stringify(v.all)}, not true or false`);
  const tasks = names(path, v.tasks, 'tasks', TASK_NAME_PATTERN);
  const schedules = names(path, v.schedules, 'schedules', SCHEDULE_NAME_PATTERN);
  return { all: v.all === true, tasks, schedules };
}

function names(path: string, value: unknown, field: string, pattern: RegExp): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new PauseFileError(path, `has "${field}" that is not an array of names`);
  for (const n of value) {
    if (typeof n !== 'string' || !pattern.test(n)) throw new PauseFileError(path, `has ${JSON.stringify(n)} in "${field}", which is not a valid name`);
  }
  return [...new Set(value as string[])].sort();
}

export function isTaskPaused(state: PauseState, taskName: string): boolean {
  return state.all || state.tasks.includes(taskName);
}

export function isSchedulePaused(state: PauseState, scheduleName: string): boolean {
  return state.schedules.includes(scheduleName);
}

/** Whether the state pauses anything at all. */
export function pausesAnything(state: PauseState): boolean {
  return state.all || state.tasks.length > 0 || state.schedules.length > 0;
}

export function samePauseState(a: PauseState, b: PauseState): boolean {
  return a.all === b.all && sameList(a.tasks, b.tasks) && sameList(a.schedules, b.schedules);
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Writes `state` as control/pause.json atomically: staged beside it (O_EXCL),
 * then renamed over it (a link in its place is replaced, never followed).
 * NOTHING_PAUSED is written too (not a removal): the file's change is what
 * daemons notice. Stale staged copies of a `spool pause` that died are removed.
 */
export function writePauseState(root: string, state: PauseState): void {
  const dir = join(root, CONTROL_DIR);
  removeStaleStaging(dir);
  const staged = join(dir, `${PAUSE_STAGING_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  const body = { version: PAUSE_FILE_VERSION, all: state.all, tasks: [...new Set(state.tasks)].sort(), schedules: [...new Set(state.schedules)].sort() };
  try {
    writeFileSync(staged, JSON.stringify(body) + '\n', { flag: 'wx', mode: 0o644 });
    renameSync(staged, pauseFilePath(root));
  } catch (err) {
    try {
      unlinkSync(staged);
    } catch {
      // never made, or renamed already
    }
    throw err;
  }
}

function removeStaleStaging(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const now = Date.now();
  for (const n of names) {
    if (!n.startsWith(PAUSE_STAGING_PREFIX)) continue;
    const path = join(dir, n);
    const st = lstatOrUndefined(path);
    if (st !== undefined && st.isFile() && now - st.mtimeMs > STAGING_DEBRIS_MS) {
      try {
        unlinkSync(path);
      } catch {
        // another `spool pause` removed it
      }
    }
  }
}

function lstatOrUndefined(path: string): import('node:fs').Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}
