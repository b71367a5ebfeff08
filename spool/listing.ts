/**
 * Listing a spool: every entry of the task directories, classified into a state,
 * in execution order. Used by `spool ls`, `spool stats`, `spool rm` and
 * `Spooler.getTasks()`. Only reads; never moves anything.
 */
import { readdirSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import type { TaskBody } from './body.js';
import type { SpoolLayout, TaskLocation } from './layout.js';
import { explainBadName, parseTaskName, type TaskName } from './name.js';
import { DEFAULT_MAX_BYTES, describeIrregular, readRegularFile } from './safe-read.js';
import { decodeTask } from './task-file.js';

/**
 * due: waiting to run now; scheduled: due later; active: claimed by a daemon;
 * dead: out of retries; quarantined: moved aside by a daemon; archived: processed
 * and kept; invalid: in incoming/ or pending/ but not a usable task.
 */
export const TASK_STATES = ['active', 'due', 'scheduled', 'invalid', 'dead', 'quarantined', 'archived'] as const;
export type TaskState = (typeof TASK_STATES)[number];

export interface SpoolEntry {
  state: TaskState;
  location: TaskLocation;
  fileName: string;
  path: string;
  /** The parsed name, when the name is a task name. */
  task?: TaskName;
  /** Daemon id holding the claim, for active tasks. */
  owner?: string;
  /** Why the entry is invalid or quarantined. */
  reason?: string;
  /** Modification time, when the file was read. */
  mtimeMs?: number;
  /** The decoded body, with ListOptions.keepBodies. */
  body?: TaskBody;
}

export interface ListOptions {
  /** Which directories to read (default: incoming, pending, active, dead, quarantine). */
  locations?: readonly TaskLocation[];
  /** Open and check every body (default true). Without it only names are checked. */
  checkBodies?: boolean;
  /** Keep decoded bodies on the entries (default false). */
  keepBodies?: boolean;
  maxBytes?: number;
  now?: number;
}

export const DEFAULT_LOCATIONS: readonly TaskLocation[] = ['incoming', 'pending', 'active', 'dead', 'quarantine'];
const QUARANTINE_REASON_SUFFIX = '.reason.json';

export function listSpool(layout: SpoolLayout, options: ListOptions = {}): SpoolEntry[] {
  const now = options.now ?? Date.now();
  const entries: SpoolEntry[] = [];
  for (const location of options.locations ?? DEFAULT_LOCATIONS) {
    if (location === 'active') {
      for (const owner of readDirEntries(layout.active)) {
        if (!owner.isDirectory()) continue;
        const dir = join(layout.active, owner.name);
        for (const entry of readDirEntries(dir)) {
          const e = classify(dir, entry, location, now, options);
          if (e) entries.push({ ...e, owner: owner.name });
        }
      }
    } else if (location === 'quarantine') {
      entries.push(...listQuarantine(layout.quarantine));
    } else {
      const dir = layout[location];
      for (const entry of readDirEntries(dir)) {
        const e = classify(dir, entry, location, now, options);
        if (e) entries.push(e);
      }
    }
  }
  return entries.sort(executionOrder);
}

function classify(dir: string, entry: Dirent, location: TaskLocation, now: number, options: ListOptions): SpoolEntry | undefined {
  const fileName = entry.name;
  // Names beginning with "." are never tasks: producers may use them for files in progress.
  if (fileName.startsWith('.')) return undefined;
  const path = join(dir, fileName);
  const base = { location, fileName, path };
  const invalidState: TaskState = location === 'dead' || location === 'archive' ? stateOf(location, undefined, now) : 'invalid';
  const irregular = describeIrregular(entry);
  if (irregular !== undefined) return { ...base, state: invalidState, reason: irregular };
  const task = parseTaskName(fileName);
  if (task === undefined) return { ...base, state: invalidState, reason: `bad file name: ${explainBadName(fileName)}` };
  const state = stateOf(location, task, now);
  if (options.checkBodies === false) return { ...base, state, task };
  const read = readRegularFile(path, options.maxBytes ?? DEFAULT_MAX_BYTES);
  if (!read.ok) {
    // A file claimed or removed while we listed is simply gone, not invalid.
    if (read.reason.startsWith('it disappeared')) return undefined;
    return { ...base, state: invalidState, task, reason: read.reason, ...(read.mtimeMs !== undefined && { mtimeMs: read.mtimeMs }) };
  }
  const decoded = decodeTask(fileName, read.bytes);
  if (!decoded.ok) return { ...base, state: invalidState, task, reason: decoded.reason, mtimeMs: read.mtimeMs };
  return { ...base, state, task, mtimeMs: read.mtimeMs, ...(options.keepBodies && { body: decoded.task.body }) };
}

function stateOf(location: TaskLocation, task: TaskName | undefined, now: number): TaskState {
  switch (location) {
    case 'active':
      return 'active';
    case 'dead':
      return 'dead';
    case 'archive':
      return 'archived';
    case 'quarantine':
      return 'quarantined';
    default:
      return task !== undefined && task.due > now ? 'scheduled' : 'due';
  }
}

function listQuarantine(dir: string): SpoolEntry[] {
  const entries: SpoolEntry[] = [];
  for (const entry of readDirEntries(dir)) {
    if (entry.name.endsWith(QUARANTINE_REASON_SUFFIX) || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    const task = parseTaskName(entry.name);
    entries.push({
      state: 'quarantined',
      location: 'quarantine',
      fileName: entry.name,
      path,
      reason: readQuarantineReason(path),
      ...(task !== undefined && { task }),
    });
  }
  return entries;
}

/** The reason a daemon wrote beside a quarantined file (see SPOOL-FORMAT.md, "quarantine/"). */
export function readQuarantineReason(path: string): string {
  const sidecar = path + QUARANTINE_REASON_SUFFIX;
  const read = readRegularFile(sidecar, 64 * 1024);
  if (!read.ok) return 'no reason recorded';
  try {
    const parsed = JSON.parse(read.bytes.toString('utf8')) as { reason?: unknown };
    return typeof parsed.reason === 'string' ? parsed.reason : 'no reason recorded';
  } catch {
    return 'no reason recorded (the reason file is not JSON)';
  }
}

export { QUARANTINE_REASON_SUFFIX };

/** A directory's entries, or none when it does not exist (a spool made by an older or foreign producer). */
function readDirEntries(dir: string): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

const STATE_RANK: Record<TaskState, number> = Object.fromEntries(TASK_STATES.map((s, i) => [s, i])) as Record<TaskState, number>;

/**
 * Execution order: running tasks, then due tasks by priority, due time and id
 * (the byte order of their names), then scheduled tasks by due time, then the
 * rest. Within a state without a task name, by file name.
 */
export function executionOrder(a: SpoolEntry, b: SpoolEntry): number {
  const rank = STATE_RANK[a.state] - STATE_RANK[b.state];
  if (rank !== 0) return rank;
  if (a.state === 'scheduled' && a.task && b.task && a.task.due !== b.task.due) return a.task.due - b.task.due;
  return a.fileName < b.fileName ? -1 : a.fileName > b.fileName ? 1 : 0;
}

