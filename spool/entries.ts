/**
 * The entries of a spool's task folders as their names describe them: which
 * folder, which state, the parsed task name. Nothing is opened. The producer
 * API's getTasks() lists by name alone here; `spool ls` (listing.ts) starts
 * from the same entries and checks the bodies on top.
 */
import type { Progress } from './progress.js';
import type { Dirent } from 'node:fs';
import type { TaskBody } from './body.js';
import { sortInExecutionOrder, STATE_RANK, stateGroups } from './execution-order.js';
import { invalidStateAt, stateAt, type SpoolLayout, type TaskLocation, type TaskState } from './layout.js';
import { explainBadName, parseTaskName, type TaskName } from './name.js';
import { readTaskFolders, type TaskFolder } from './read-names.js';
import { describeIrregular } from './safe-read.js';

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
  /** The decoded body, when a listing kept it. */
  body?: TaskBody;
  /** A waiting task whose name is paused (control/pause.json), when the command looked (spool ls). */
  paused?: boolean;
  /** A running task's last progress (progress/<id>.json), when the command looked (spool ls, spool show). */
  progress?: Progress;
}

/*
 * Entries are object literals with their keys always in the same order (location,
 * fileName, path, state, then task, reason, mtimeMs, body, owner as they apply),
 * so that the hundreds of thousands of a large listing share a few hidden classes
 * and whatever reads them stays monomorphic.
 */

/**
 * The entry of a directory entry of a task folder, by its name and type;
 * undefined for a name beginning with "." (never a task: producers may use
 * such names for files in progress). Not a regular file, or not a task name:
 * invalid with the reason (or, in dead/ and archive/, their state).
 */
export function entryByName(entry: Dirent, folder: TaskFolder, now: number): SpoolEntry | undefined {
  const fileName = entry.name;
  if (fileName.charCodeAt(0) === DOT) return undefined;
  const location = folder.location;
  const path = folder.prefix + fileName;
  const task = parseTaskName(fileName);
  const irregular = describeIrregular(entry);
  let e: SpoolEntry;
  // A link or FIFO under a task name still shows what its name says (so `spool rm <id>` reaches it).
  if (irregular !== undefined) {
    e = task === undefined ? { location, fileName, path, state: invalidStateAt(location), reason: irregular } : { location, fileName, path, state: invalidStateAt(location), task, reason: irregular };
  } else if (task === undefined) {
    e = { location, fileName, path, state: invalidStateAt(location), reason: `bad file name: ${explainBadName(fileName)}` };
  } else {
    e = { location, fileName, path, state: stateAt(location, task.due, now), task };
  }
  if (folder.owner !== undefined) e.owner = folder.owner;
  return e;
}

const DOT = 0x2e;

/**
 * The entries of the folders `locations` by name alone, in execution order.
 * quarantine/ is not for this: its entries come with the reasons beside them
 * (listing.ts).
 */
export function listByName(layout: SpoolLayout, locations: readonly TaskLocation[], now = Date.now()): SpoolEntry[] {
  if (locations.includes('quarantine')) throw new Error('listByName: quarantine/ is listed with its reasons (listSpool)');
  const byState = stateGroups();
  let count = 0;
  readTaskFolders(layout, locations, (entry, folder) => {
    const e = entryByName(entry, folder, now);
    if (e === undefined) return;
    byState[STATE_RANK[e.state]]!.push(e);
    count++;
  });
  return sortInExecutionOrder(byState, count);
}
