/**
 * The children of a flow parent, on disk (SPOOL-FORMAT.md, "Children and
 * continuations"). children/ is daemon-only (the parent runs in a daemon or
 * its worker process, so only daemons write here); `spool show` reads it.
 *
 *   children/<P>/<childId>                 one EMPTY entry per child, made O_EXCL before the child is
 *                                          enqueued (EEXIST: enqueued before, by a rerun of P or a
 *                                          second enqueueChildOnce: not enqueued again)
 *   children/<P>/<childId>.done            EMPTY; made by the child's runner once its ending is kept
 *                                          in results/ (any ending: processed, skipped, dead, cancelled,
 *                                          expired), before its file is finished
 *   children/<P>/.q-<pool>-<seq>-<file>    a child over its batch's limit: its whole task file, waiting;
 *                                          a sibling of the same pool that ends renames the lowest
 *                                          one into incoming/<file> (rename: exactly one sibling wins)
 *   children/<P>/.then                     JSON { version, step, children: [{ id, name }] }: the
 *                                          continuation and the children it waits for, in order; staged
 *                                          as .then-<pid>-<hex> and renamed, written by P's runner after
 *                                          P's result is kept
 *   children/<P>/.cancelled                EMPTY; P was cancelled: no continuation, no promotion
 *
 * The continuation is due when .then is there, .cancelled is not, and every
 * child .then lists has its .done (continuationDue()). Whoever sees it due
 * (the runner of the child that ended last, or P's runner right after .then)
 * enqueues it with enqueue-once (marker flows/<P>.then): several seeing it at
 * once still enqueue one task.
 *
 * The folder goes (removeFlow(): rename to children/.gone-<P>-<hex>, then
 * the tree; a crash between leaves a .gone- folder the next sweep removes)
 * once nothing was added to it for FLOW_KEEP_MS and it is settled
 * (flowSettled()): cancelled, its continuation enqueued, or every entry done;
 * or, whatever its state, after FLOW_ABANDON_MS.
 */
import { closeSync, constants, lstatSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { StepSpec } from './body.js';
import type { SpoolLayout } from './layout.js';
import { parseTaskName, TASK_ID_PATTERN } from './name.js';
import { readNames } from './read-names.js';
import { removeTree } from './remove-tree.js';

/** A flow's children keep their results at least this long (forced keepResult), so a late continuation can read them. */
export const FLOW_KEEP_MS = 24 * 3600_000;
/** A children/<P>/ folder untouched this long goes whatever its state (a child removed by hand never gets its .done). */
export const FLOW_ABANDON_MS = 7 * 24 * 3600_000;
export const THEN_FILE = '.then';
export const CANCELLED_FILE = '.cancelled';
export const DONE_SUFFIX = '.done';
const QUEUED_PREFIX = '.q-';
const GONE_PREFIX = '.gone-';
/** A batch's pool name (body field flowPool): what a queued child's file name carries. */
export const POOL_PATTERN = /^[0-9a-z]{1,32}$/;

const CREATE_EXCL = constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW;

/** A continuation as .then stores it: the step (a StepSpec) and the children it waits for, in the order they were enqueued. */
export interface ThenRecord {
  version: 1;
  step: StepSpec;
  children: { id: string; name: string }[];
}


/** One child's ending as the continuation receives it. */
export interface ChildEnding {
  id: string;
  name: string;
  /** processed, skipped, dead, cancelled, expired; `unknown` when its result was gone (removed by hand). */
  ending: string;
  value?: unknown;
  error?: { name?: string; message: string };
  reason?: string;
}

export function flowDir(layout: SpoolLayout, parent: string): string {
  if (!TASK_ID_PATTERN.test(parent)) throw new TypeError(`not a task id: ${JSON.stringify(parent)}`);
  return join(layout.children, parent);
}

/**
 * Makes the entry of child `id` of `parent` (and the parent's folder). True:
 * made now, enqueue the child; false: it was there (enqueued before).
 */
export function addChildEntry(layout: SpoolLayout, parent: string, id: string): boolean {
  const dir = flowDir(layout, parent);
  try {
    mkdirSync(dir, { mode: 0o2750 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return createEmpty(join(dir, id));
}

/** Makes an empty file O_EXCL: true if made now, false if it was there. */
function createEmpty(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, CREATE_EXCL, 0o640);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  closeSync(fd);
  return true;
}

/** Writes a file whole under a stage name in `dir`, then renames it to `name`: readers see none or all of it. */
function writeStaged(dir: string, name: string, bytes: Uint8Array): void {
  const stage = join(dir, `${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fd = openSync(stage, CREATE_EXCL, 0o640);
  try {
    writeSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(stage, join(dir, name));
  } catch (err) {
    unlinkQuietly(stage);
    throw err;
  }
}

/** Holds a child back (over its batch's limit): its task file waits in the parent's folder until a sibling of `pool` ends. */
export function queueChild(layout: SpoolLayout, parent: string, pool: string, seq: number, fileName: string, bytes: Uint8Array): void {
  writeStaged(flowDir(layout, parent), `${QUEUED_PREFIX}${pool}-${String(seq).padStart(6, '0')}-${fileName}`, bytes);
}

/**
 * A child of `pool` ended: starts the next waiting child of that pool (the
 * lowest sequence) by renaming it into incoming/. Returns its file name, or
 * undefined when none waits (or the flow was cancelled).
 */
export function promoteQueued(layout: SpoolLayout, parent: string, pool: string, names?: readonly string[]): string | undefined {
  const dir = flowDir(layout, parent);
  const all = names ?? readNamesOrEmpty(dir);
  if (all.includes(CANCELLED_FILE)) return undefined;
  const prefix = `${QUEUED_PREFIX}${pool}-`;
  const queued = all.filter((n) => n.startsWith(prefix)).sort();
  for (const name of queued) {
    const fileName = name.slice(prefix.length + 7);
    try {
      renameSync(join(dir, name), join(layout.incoming, fileName));
      return fileName;
    } catch (err) {
      // Another sibling's runner took this one: try the next.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return undefined;
}

/** The id of a waiting (queued) child's file name in children/<P>/, or undefined. */
export function queuedChildId(name: string): string | undefined {
  if (!name.startsWith(QUEUED_PREFIX)) return undefined;
  const pool = name.indexOf('-', QUEUED_PREFIX.length);
  if (pool < 0) return undefined;
  const parsed = parseTaskName(name.slice(pool + 8));
  return parsed?.id;
}

/** Child `id` of `parent` has ended and its ending is kept: its .done. False when the parent's folder is gone (removed as settled). */
export function markChildDone(layout: SpoolLayout, parent: string, id: string): boolean {
  try {
    createEmpty(join(flowDir(layout, parent), id + DONE_SUFFIX));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Writes the continuation of `parent` (staged, renamed). */
export function writeThen(layout: SpoolLayout, parent: string, record: ThenRecord): void {
  const dir = flowDir(layout, parent);
  try {
    mkdirSync(dir, { mode: 0o2750 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  writeStaged(dir, THEN_FILE, Buffer.from(JSON.stringify(record)));
}

export function readThen(layout: SpoolLayout, parent: string): ThenRecord | undefined {
  let text: string;
  try {
    const path = join(flowDir(layout, parent), THEN_FILE);
    if (!lstatSync(path).isFile()) return undefined;
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const r = JSON.parse(text) as ThenRecord;
  if (r?.version !== 1 || !Array.isArray(r.children) || typeof r.step?.name !== 'string') throw new Error(`children/${parent}/.then is not a continuation record`);
  return r;
}

/** Marks `parent`'s flow cancelled (no continuation, no more promotions). False when it has no folder. */
export function markFlowCancelled(layout: SpoolLayout, parent: string): boolean {
  try {
    createEmpty(join(flowDir(layout, parent), CANCELLED_FILE));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** What children/<P>/ holds, by name. */
export interface FlowListing {
  /** Child ids with an entry, in name order. */
  children: string[];
  done: Set<string>;
  /** Ids of children still held back by a limit. */
  queued: string[];
  queuedNames: string[];
  hasThen: boolean;
  cancelled: boolean;
}

/** Sorts a folder's names into a FlowListing (pure: unit-tested with fakes). Unknown names are ignored. */
export function parseFlowNames(names: readonly string[]): FlowListing {
  const out: FlowListing = { children: [], done: new Set(), queued: [], queuedNames: [], hasThen: false, cancelled: false };
  for (const n of names) {
    if (n === THEN_FILE) out.hasThen = true;
    else if (n === CANCELLED_FILE) out.cancelled = true;
    else if (n.endsWith(DONE_SUFFIX)) {
      const id = n.slice(0, -DONE_SUFFIX.length);
      if (TASK_ID_PATTERN.test(id)) out.done.add(id);
    } else if (TASK_ID_PATTERN.test(n)) out.children.push(n);
    else {
      const q = queuedChildId(n);
      if (q !== undefined) {
        out.queued.push(q);
        out.queuedNames.push(n);
      }
    }
  }
  out.children.sort();
  return out;
}

/** Whether the continuation is due: written, not cancelled, and every child it waits for done. */
export function continuationDue(listing: FlowListing, then: Pick<ThenRecord, 'children'> | undefined): boolean {
  if (!listing.hasThen || listing.cancelled || then === undefined) return false;
  return then.children.every((c) => listing.done.has(c.id));
}

/**
 * Whether a flow's folder has nothing left to do: cancelled, its continuation
 * enqueued (`enqueued`: the marker flows/<P>.then exists), or no continuation
 * and every child done.
 */
export function flowSettled(listing: FlowListing, enqueued: boolean): boolean {
  if (listing.cancelled || enqueued) return true;
  if (listing.hasThen) return false;
  return listing.queued.length === 0 && listing.children.every((id) => listing.done.has(id));
}

export function readFlow(layout: SpoolLayout, parent: string): FlowListing | undefined {
  const dir = flowDir(layout, parent);
  let names: string[];
  try {
    names = readNames(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw err;
  }
  return parseFlowNames(names);
}

/** Removes queued (never started) children of a cancelled flow; returns how many. */
export function dropQueued(layout: SpoolLayout, parent: string, listing: FlowListing): number {
  const dir = flowDir(layout, parent);
  let n = 0;
  for (const name of listing.queuedNames) {
    try {
      unlinkSync(join(dir, name));
      n++;
    } catch {
      // promoted meanwhile (before .cancelled was seen): it is cancelled as a waiting task
    }
  }
  return n;
}

/**
 * Removes children/<P>/ crash-safely: renamed to children/.gone-<P>-<hex>
 * (from then on no writer finds it), then deleted; a crash between leaves the
 * .gone- folder, which sweepGone() removes.
 */
export function removeFlow(layout: SpoolLayout, parent: string): void {
  const gone = join(layout.children, `${GONE_PREFIX}${parent}-${randomBytes(4).toString('hex')}`);
  try {
    renameSync(flowDir(layout, parent), gone);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  removeTree(gone);
}

/** The names in children/: parents' folders (ids) and removal debris (.gone-). */
export function listFlows(layout: SpoolLayout): { parents: string[]; gone: string[] } {
  const names = readNamesOrEmpty(layout.children);
  return { parents: names.filter((n) => TASK_ID_PATTERN.test(n)), gone: names.filter((n) => n.startsWith(GONE_PREFIX)) };
}

export function removeGone(layout: SpoolLayout, name: string): void {
  if (!name.startsWith(GONE_PREFIX)) return;
  try {
    removeTree(join(layout.children, name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * Whether task `id` (a child of `parent`) is anywhere: waiting in the parent's
 * folder, in incoming/, pending/, a claim directory or dead/. A scan by id,
 * for the rare path only (an entry found by a rerun of the parent).
 */
export function childTaskExists(layout: SpoolLayout, parent: string, id: string): boolean {
  const listing = readFlow(layout, parent);
  if (listing !== undefined && (listing.done.has(id) || listing.queued.includes(id))) return true;
  const has = (dir: string) => readNamesOrEmpty(dir).some((n) => n.includes(id) && parseTaskName(n)?.id === id);
  if (has(layout.incoming) || has(layout.pending) || has(layout.dead)) return true;
  for (const owner of readNamesOrEmpty(layout.active)) if (has(join(layout.active, owner))) return true;
  return false;
}

function readNamesOrEmpty(dir: string): string[] {
  try {
    return readNames(dir);
  } catch {
    return [];
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}
