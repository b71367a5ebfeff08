/**
 * What is paused on a spool: control/pause.json, written by `spool pause` and
 * `spool resume` (SPOOL-FORMAT.md, "Pausing"). A missing file pauses nothing.
 *
 *   {"version":1,"all":false,"tasks":["reindex"],"schedules":["nightly"]}
 *
 * `all` pauses every task (not schedules: they go on enqueuing, and the tasks wait).
 *
 * This is the reader only, with the API the pause feature declares; the writer
 * and the daemon's watch belong with `spool pause`.
 */
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { SpoolError } from './errors.js';
import { readRegularFile } from './safe-read.js';

export interface PauseState {
  all: boolean;
  tasks: string[];
  schedules: string[];
}

export const NOTHING_PAUSED: PauseState = Object.freeze({ all: false, tasks: [], schedules: [] }) as PauseState;

/** A pause.json is a few names: anything larger is not one. */
const PAUSE_FILE_MAX_BYTES = 1024 * 1024;

/** control/pause.json cannot be used: the message says what to do. */
export class BadPauseFileError extends SpoolError {
  constructor(path: string, problem: string) {
    super('SPOOL_BAD_PAUSE_FILE', `${path}: ${problem}; fix or remove it (spool resume rewrites it)`);
  }
}

/** control/pause.json; a missing file is NOTHING_PAUSED. Never follows a link; a bad file is an error that says what to do. */
export async function readPauseState(root: string): Promise<PauseState> {
  const path = join(root, 'control', 'pause.json');
  try {
    lstatSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return NOTHING_PAUSED;
    throw err;
  }
  const read = readRegularFile(path, PAUSE_FILE_MAX_BYTES);
  if (!read.ok) throw new BadPauseFileError(path, read.reason);
  let value: unknown;
  try {
    value = JSON.parse(read.bytes.toString('utf8'));
  } catch (err) {
    throw new BadPauseFileError(path, `not JSON (${(err as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new BadPauseFileError(path, 'not a JSON object');
  const v = value as Record<string, unknown>;
  if (v.version !== 1) throw new BadPauseFileError(path, `version ${JSON.stringify(v.version)} is not 1`);
  const names = (key: string): string[] => {
    const list = v[key] ?? [];
    if (!Array.isArray(list) || !list.every((n) => typeof n === 'string')) throw new BadPauseFileError(path, `"${key}" must be a list of names`);
    return list as string[];
  };
  if (v.all !== undefined && typeof v.all !== 'boolean') throw new BadPauseFileError(path, '"all" must be true or false');
  return { all: v.all === true, tasks: names('tasks'), schedules: names('schedules') };
}

export function isTaskPaused(state: PauseState, taskName: string): boolean {
  return state.all || state.tasks.includes(taskName);
}

export function isSchedulePaused(state: PauseState, scheduleName: string): boolean {
  return state.schedules.includes(scheduleName);
}
