/**
 * Listing a spool: every entry of the task directories, classified into a state,
 * in execution order. Used by `spool ls`, `spool stats`, `spool rm` and
 * `Spooler.getTasks()`. Only reads; never moves anything.
 */
import type { Dirent } from 'node:fs';
import { join, sep } from 'node:path';
import { isValidBody, type TaskBody } from './body.js';
import type { SpoolLayout, TaskLocation } from './layout.js';
import { explainBadName, parseTaskName, type TaskName } from './name.js';
import { BodyChecks, VALID } from './parallel-check.js';
import { readEntries } from './read-names.js';
import { DEFAULT_MAX_BYTES, describeIrregular, readRegularFile } from './safe-read.js';
import { decodeTask } from './task-file.js';
import { assertRealFolder } from './trust.js';

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
  return startListing(layout, options).finish().entries;
}

/**
 * A listing whose body checks may still be running on other threads
 * (startListing). Nothing is decided until finish(); the provisional entries
 * let a caller prepare what it will do with them meanwhile.
 */
export interface PendingListing {
  /**
   * The entries in execution order, taking every body whose check is still
   * running as valid. Final unless finish() says otherwise.
   */
  readonly entries: SpoolEntry[];
  /** Whether any body check is still running (and so whether finish() may change anything). */
  readonly pending: boolean;
  /**
   * Waits for the body checks (helping with them) and returns the listing, the
   * same as listSpool, and whether it differs from `entries`: false means it is
   * `entries` itself, unchanged. Once only.
   */
  finish(): { entries: SpoolEntry[]; changed: boolean };
}

/**
 * listSpool in two steps: reads and sorts the listing, with the body checks
 * started but not waited for; finish() waits for them.
 */
export function startListing(layout: SpoolLayout, options: ListOptions = {}): PendingListing {
  const checkBodies = options.checkBodies !== false;
  const keepBodies = options.keepBodies === true;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const ctx: Context = {
    now: options.now ?? Date.now(),
    checkBodies,
    keepBodies,
    maxBytes,
    // Bodies that are only checked are read into one buffer; kept bodies may point into theirs.
    scratch: keepBodies ? undefined : Buffer.allocUnsafe(SCRATCH_BYTES),
    // Checked as they are found, on other threads too (parallel-check.ts), while the listing goes on.
    checks: checkBodies && !keepBodies ? new BodyChecks(maxBytes) : undefined,
    toCheck: [],
    toCheckDirs: [],
  };
  const entries: SpoolEntry[] = [];
  // The entries of each state (TASK_STATES order), gathered as they are found, for the sort.
  const byState: SpoolEntry[][] = TASK_STATES.map(() => []);
  const add = (e: SpoolEntry): void => {
    entries.push(e);
    byState[STATE_RANK[e.state]]!.push(e);
  };
  for (const location of options.locations ?? DEFAULT_LOCATIONS) {
    if (location === 'active') {
      for (const owner of readDirEntries(layout.active)) {
        if (!owner.isDirectory()) continue;
        const dir = join(layout.active, owner.name);
        const dirPrefix = dir + sep;
        for (const entry of readDirEntries(dir)) {
          const e = classify(dir, dirPrefix, entry, location, ctx, entries.length);
          // Appended last, as the owner always was.
          if (e) {
            e.owner = owner.name;
            add(e);
          }
        }
      }
    } else if (location === 'quarantine') {
      for (const e of listQuarantine(layout.quarantine)) add(e);
    } else {
      const dir = layout[location];
      const dirPrefix = dir + sep;
      for (const entry of readDirEntries(dir)) {
        const e = classify(dir, dirPrefix, entry, location, ctx, entries.length);
        if (e) add(e);
      }
    }
  }
  // Sorted while the checks still run: they rarely change anything (see finishChecks).
  const sorted = sortInExecutionOrder(byState, entries.length);
  const checks = ctx.toCheck.length === 0 ? undefined : ctx.checks;
  let finished = false;
  return {
    entries: sorted,
    pending: checks !== undefined,
    finish: () => {
      if (finished) throw new Error('a listing is finished once');
      finished = true;
      if (checks === undefined) return { entries: sorted, changed: false };
      const final = finishChecks(entries, sorted, ctx, checks);
      return { entries: final, changed: final !== sorted };
    },
  };
}

/**
 * The first `limit` entries of the listing in execution order that `accept`
 * takes, as listSpool would give them, reading no more than it must. Folders
 * are read in the order their states rank (active/; incoming/ and pending/;
 * dead/; quarantine/; archive/), and the later ones not at all once enough
 * entries are found, since everything in them comes after. Only the bodies of
 * the entries returned (and of any that turn out invalid on the way) are
 * opened: `spool ls --limit 5` on a spool of 100,000 tasks reads the names of
 * incoming/ and pending/ and five files.
 *
 * `accept` sees entries as listSpool would give them (state after the body
 * check); it must not depend on the body check for anything but the state.
 */
export function listFirst(layout: SpoolLayout, limit: number, accept: (e: SpoolEntry) => boolean, options: ListOptions = {}): SpoolEntry[] {
  const locations = options.locations ?? DEFAULT_LOCATIONS;
  const ctx: Context = {
    now: options.now ?? Date.now(),
    checkBodies: false,
    keepBodies: options.keepBodies === true,
    maxBytes: options.maxBytes ?? DEFAULT_MAX_BYTES,
    scratch: options.keepBodies === true ? undefined : Buffer.allocUnsafe(SCRATCH_BYTES),
    checks: undefined,
    toCheck: [],
    toCheckDirs: [],
  };
  const checkBodies = options.checkBodies !== false;
  /** Entries already checked, so that a later round does not open them again. */
  const checked = new Map<SpoolEntry, SpoolEntry | undefined>();
  const check = (e: SpoolEntry): SpoolEntry | undefined => {
    if (!checkBodies || e.task === undefined || e.reason !== undefined || e.location === 'quarantine') return e;
    if (checked.has(e)) return checked.get(e);
    const dir = e.path.slice(0, e.path.length - e.fileName.length - 1);
    const c = checkEntry(e, { ...ctx, checkBodies: true }, dir);
    if (c !== undefined && e.owner !== undefined) c.owner = e.owner;
    checked.set(e, c);
    return c;
  };
  const byState: SpoolEntry[][] = TASK_STATES.map(() => []);
  let count = 0;
  const add = (e: SpoolEntry): void => {
    byState[STATE_RANK[e.state]]!.push(e);
    count++;
  };
  const groups = LOCATION_GROUPS.map((group) => group.filter((l) => locations.includes(l))).filter((group) => group.length > 0);
  let first: SpoolEntry[] = [];
  for (const here of groups) {
    for (const location of here) {
      if (location === 'active') {
        for (const owner of readDirEntries(layout.active)) {
          if (!owner.isDirectory()) continue;
          const dir = join(layout.active, owner.name);
          for (const entry of readDirEntries(dir)) {
            const e = classify(dir, dir + sep, entry, location, ctx, 0);
            if (e) {
              e.owner = owner.name;
              add(e);
            }
          }
        }
      } else if (location === 'quarantine') {
        for (const e of listQuarantine(layout.quarantine)) add(e);
      } else {
        const dir = layout[location];
        for (const entry of readDirEntries(dir)) {
          const e = classify(dir, dir + sep, entry, location, ctx, 0);
          if (e) add(e);
        }
      }
    }
    // Sorting again each round costs little: the groups read later are the rarer ones.
    first = firstChecked(sortInExecutionOrder(byState.map((g) => [...g]), count), limit, accept, check);
    // Every folder not read yet holds only entries that come after all of these.
    if (first.length >= limit) break;
  }
  return first;
}

/** Folders in the order of the states they hold (TASK_STATES); a folder's entries all come after an earlier group's. */
const LOCATION_GROUPS: readonly (readonly TaskLocation[])[] = [['active', 'incoming', 'pending'], ['dead'], ['quarantine'], ['archive']];

/**
 * The first `limit` entries of a provisional listing (sorted as if every body
 * were valid) that `accept` takes, once checked. A body that turns out invalid
 * moves its entry back among the invalid ones (by name); the entries before it
 * keep their places. Checks entries only until `limit` are found.
 */
function firstChecked(sorted: SpoolEntry[], limit: number, accept: (e: SpoolEntry) => boolean, check: (e: SpoolEntry) => SpoolEntry | undefined): SpoolEntry[] {
  const out: SpoolEntry[] = [];
  const turnedInvalid: SpoolEntry[] = [];
  let i = 0;
  // Running, due and scheduled entries: the ones a body check can move.
  for (; i < sorted.length && out.length < limit; i++) {
    if (STATE_RANK[sorted[i]!.state] >= STATE_RANK.invalid) break;
    const e = check(sorted[i]!);
    if (e === undefined) continue;
    if (e.state === 'invalid') turnedInvalid.push(e);
    else if (accept(e)) out.push(e);
  }
  if (out.length >= limit) return out;
  // Every entry before the invalid ones has been checked: the invalid ones are now known.
  let end = i;
  while (end < sorted.length && sorted[end]!.state === 'invalid') end++;
  const invalid = sorted.slice(i, end).concat(turnedInvalid).sort(byName);
  for (const e of invalid) {
    if (out.length >= limit) return out;
    if (accept(e)) out.push(e);
  }
  // Dead, quarantined, archived: a check may give a reason but never moves them.
  for (let k = end; k < sorted.length && out.length < limit; k++) {
    const e = check(sorted[k]!);
    if (e !== undefined && accept(e)) out.push(e);
  }
  return out;
}

/**
 * Waits for the body checks that classify() queued (helping with what is left),
 * and applies them to the listing, which `sorted` holds in execution order as
 * if every body were valid. A file that is not valid there is read again here,
 * by checkEntry, which says why. An entry that thus turns invalid (or is gone)
 * leaves its place; keeping the others in theirs is what sorting the rest anew
 * would give, as the sort is stable. The invalid ones are sorted anew.
 */
function finishChecks(entries: SpoolEntry[], sorted: SpoolEntry[], ctx: Context, checks: BodyChecks): SpoolEntry[] {
  const { status, mtimes } = checks.finish();
  let changed: Map<SpoolEntry, SpoolEntry> | undefined;
  for (let k = 0; k < ctx.toCheck.length; k++) {
    const index = ctx.toCheck[k]!;
    const e = entries[index]!;
    if (status[k] === VALID) {
      e.mtimeMs = mtimes[k];
    } else {
      const checked = checkEntry(e, ctx, ctx.toCheckDirs[k]!) ?? GONE;
      // checkEntry makes a new entry; a claimed file keeps the owner startListing gave it.
      if (checked !== GONE && e.owner !== undefined) checked.owner = e.owner;
      entries[index] = checked;
      (changed ??= new Map()).set(e, checked);
    }
  }
  if (changed === undefined) return sorted;
  const invalid = entries.filter((e) => e !== GONE && e.state === 'invalid').sort(byName);
  const out: SpoolEntry[] = [];
  let invalidPlaced = false;
  for (const e of sorted) {
    const current = changed.get(e) ?? e;
    // checkEntry keeps an entry's state or makes it invalid: the invalid ones are all in `invalid`.
    if (current === GONE || current.state === 'invalid') continue;
    if (!invalidPlaced && STATE_RANK[current.state] > STATE_RANK.invalid) {
      for (const i of invalid) out.push(i);
      invalidPlaced = true;
    }
    out.push(current);
  }
  if (!invalidPlaced) for (const i of invalid) out.push(i);
  return out;
}

/** Marks an entry whose file disappeared while the listing ran. */
const GONE = {} as SpoolEntry;

interface Context {
  now: number;
  checkBodies: boolean;
  keepBodies: boolean;
  maxBytes: number;
  scratch: Buffer | undefined;
  /** The body checks under way (without keepBodies). */
  checks: BodyChecks | undefined;
  /** Positions in the entries of task files whose bodies are being checked (without keepBodies). */
  toCheck: number[];
  /** The directory of each of those. */
  toCheckDirs: string[];
}

/** Task files are small; larger ones get a buffer of their own. */
const SCRATCH_BYTES = 64 * 1024;

/*
 * Entries are object literals with their keys always in the same order (location,
 * fileName, path, state, then task, reason, mtimeMs, body, owner as they apply),
 * so that the hundreds of thousands of a large listing share a few hidden classes
 * and whatever reads them stays monomorphic.
 */
function classify(dir: string, dirPrefix: string, entry: Dirent, location: TaskLocation, ctx: Context, position: number): SpoolEntry | undefined {
  const fileName = entry.name;
  // Names beginning with "." are never tasks: producers may use them for files in progress.
  if (fileName.startsWith('.')) return undefined;
  // join() would normalise; a directory entry's name never holds a "/", "." or "..", so this is the same
  // path. dirPrefix is dir + sep, made once per directory: each path is then one rope of two strings.
  const path = dirPrefix + fileName;
  const invalidState: TaskState = location === 'dead' || location === 'archive' ? stateOf(location, undefined, ctx.now) : 'invalid';
  const task = parseTaskName(fileName);
  const irregular = describeIrregular(entry);
  // A link or FIFO under a task name still shows what its name says (so `spool rm <id>` reaches it).
  if (irregular !== undefined) {
    if (task === undefined) return { location, fileName, path, state: invalidState, reason: irregular };
    return { location, fileName, path, state: invalidState, task, reason: irregular };
  }
  if (task === undefined) return { location, fileName, path, state: invalidState, reason: `bad file name: ${explainBadName(fileName)}` };
  const state = stateOf(location, task, ctx.now);
  if (!ctx.checkBodies) return { location, fileName, path, state, task };
  const e: SpoolEntry = { location, fileName, path, state, task, mtimeMs: undefined };
  if (ctx.checks === undefined) return checkEntry(e, ctx, dir);
  ctx.checks.add(dir, fileName);
  ctx.toCheck.push(position);
  ctx.toCheckDirs.push(dir);
  return e;
}

/**
 * Reads and checks the body of a task entry (a regular file whose name parsed);
 * returns the entry as the listing shows it, or undefined if the file is gone.
 */
function checkEntry(e: SpoolEntry, ctx: Context, dir: string): SpoolEntry | undefined {
  const { location, fileName, path, task } = e;
  const state = e.state;
  const invalidState: TaskState = location === 'dead' || location === 'archive' ? stateOf(location, undefined, ctx.now) : 'invalid';
  // A path of its own for open(), which flattens the string it is given (see checkBodies).
  const read = readRegularFile(dir + sep + fileName, ctx.maxBytes, ctx.scratch);
  if (!read.ok) {
    // A file claimed or removed while we listed is simply gone, not invalid.
    if (read.reason.startsWith('it disappeared')) return undefined;
    if (read.mtimeMs === undefined) return { location, fileName, path, state: invalidState, task, reason: read.reason };
    return { location, fileName, path, state: invalidState, task, reason: read.reason, mtimeMs: read.mtimeMs };
  }
  if (!ctx.keepBodies && isValidBody(read.bytes, task!.encoding)) return { location, fileName, path, state, task, mtimeMs: read.mtimeMs };
  const decoded = decodeTask(fileName, read.bytes);
  if (!decoded.ok) return { location, fileName, path, state: invalidState, task, reason: decoded.reason, mtimeMs: read.mtimeMs };
  if (ctx.keepBodies) return { location, fileName, path, state, task, mtimeMs: read.mtimeMs, body: decoded.task.body };
  return { location, fileName, path, state, task, mtimeMs: read.mtimeMs };
}

/**
 * One entry of a names-only listing (checkBodies: false), read and checked as
 * a full listing would have (with keepBodies, its body decoded); undefined if
 * the file is gone. Entries without a task name are returned as they are.
 */
export function readEntry(e: SpoolEntry, options: Pick<ListOptions, 'keepBodies' | 'maxBytes' | 'now'> = {}): SpoolEntry | undefined {
  if (e.task === undefined || e.reason !== undefined || e.location === 'quarantine') return e;
  const ctx: Context = {
    now: options.now ?? Date.now(),
    checkBodies: true,
    keepBodies: options.keepBodies === true,
    maxBytes: options.maxBytes ?? DEFAULT_MAX_BYTES,
    scratch: undefined,
    checks: undefined,
    toCheck: [],
    toCheckDirs: [],
  };
  const checked = checkEntry(e, ctx, e.path.slice(0, e.path.length - e.fileName.length - 1));
  if (checked !== undefined && e.owner !== undefined) checked.owner = e.owner;
  return checked;
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

/**
 * A directory's entries, or none when it does not exist (a spool made by an older
 * or foreign producer). Read a batch at a time (opendir, where the listing has
 * types) rather than all at once (readdir), so that each entry is garbage as soon
 * as it has been looked at instead of living, with an array of 100,000 of them,
 * until the listing ends. Entries that vanish while being read are left out
 * (read-names.ts).
 */
function* readDirEntries(dir: string): Generator<Dirent, void, undefined> {
  // opendir follows links: a folder that is one (a neighbour's trick to list, or have us list,
  // another place) is refused here. Claim directories that are links are skipped by their type.
  if (assertRealFolder(dir) === undefined) return;
  const entries = readEntries(dir);
  let first: IteratorResult<Dirent, void>;
  try {
    first = entries.next();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    // Node's opendir errors name no path; the message for the user (EACCES: which directory) needs it.
    (err as NodeJS.ErrnoException).path ??= dir;
    throw err;
  }
  if (first.done) return;
  yield first.value;
  yield* entries;
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

/**
 * Sorts `count` entries, given split by state (in rank order, each keeping the
 * order the entries were found in), by executionOrder, with the same result as
 * a stable sort of them all by it: each state is sorted on its own, and the
 * states are joined in rank order.
 */
function sortInExecutionOrder(byState: SpoolEntry[][], count: number): SpoolEntry[] {
  const sorted = new Array<SpoolEntry>(count);
  let at = 0;
  for (let rank = 0; rank < byState.length; rank++) {
    const state = TASK_STATES[rank]!;
    const group = state === 'due' || state === 'scheduled' ? sortTasks(byState[rank]!, state) : byState[rank]!.sort(byName);
    for (let i = 0; i < group.length; i++) sorted[at++] = group[i]!;
  }
  return sorted;
}

function byName(a: SpoolEntry, b: SpoolEntry): number {
  return a.fileName < b.fileName ? -1 : a.fileName > b.fileName ? 1 : 0;
}

function byDueThenName(a: SpoolEntry, b: SpoolEntry): number {
  if (a.task && b.task && a.task.due !== b.task.due) return a.task.due - b.task.due;
  return a.fileName < b.fileName ? -1 : a.fileName > b.fileName ? 1 : 0;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Due tasks in the byte order of their names, scheduled ones by due time and then
 * name; stable. A task name begins with fixed-width digits, `PP-DUE-`, so that
 * order is: due tasks by (priority, due time), scheduled ones by (due time,
 * priority), then by the rest of the name. Rather than a million or more calls
 * of a comparison function, each task gets a 64-bit key packing those two
 * numbers and its position, the keys are sorted natively, and only runs of tasks
 * with the same two numbers (tasks enqueued in the same ms) are sorted by name.
 * When the numbers do not fit 64 bits (due times centuries apart), it sorts with
 * the comparison function instead.
 */
function sortTasks(group: SpoolEntry[], state: 'due' | 'scheduled'): SpoolEntry[] {
  const compare = state === 'due' ? byName : byDueThenName;
  const n = group.length;
  if (n < 2) return group;
  let minDue = Infinity;
  let maxDue = -Infinity;
  for (const e of group) {
    if (e.task === undefined) return group.sort(compare);
    if (e.task.due < minDue) minDue = e.task.due;
    if (e.task.due > maxDue) maxDue = e.task.due;
  }
  const dueBits = bitLength(maxDue - minDue);
  const indexBits = bitLength(n - 1);
  // Key: high field, low field, position. Due tasks: (priority, due); scheduled: (due, priority).
  const [highBits, lowBits] = state === 'due' ? [7, dueBits] : [dueBits, 7];
  if (highBits + lowBits + indexBits > 64 || lowBits + indexBits > 53 || indexBits > 31) return group.sort(compare);
  const shift = lowBits + indexBits;
  const keys = new BigUint64Array(n);
  const words = new Uint32Array(keys.buffer);
  const lo = LITTLE_ENDIAN ? 0 : 1;
  const hi = 1 - lo;
  const due = state === 'due';
  const indexScale = 2 ** indexBits;
  const topScale = shift >= 32 ? 2 ** (shift - 32) : 2 ** shift;
  const topSplit = shift >= 32 ? 0 : 2 ** (32 - shift);
  for (let i = 0; i < n; i++) {
    const task = group[i]!.task!;
    const high = due ? task.priority : task.due - minDue;
    const low = due ? task.due - minDue : task.priority;
    // Below 2^53, so exact: the low field and the position.
    const bottom = low * indexScale + i;
    const bottomLo = bottom % 4294967296;
    // The high field, shifted: all in the high word, or split between the two words.
    const topLo = shift >= 32 ? 0 : (high % topSplit) * topScale;
    const topHi = shift >= 32 ? high * topScale : Math.floor(high / topSplit);
    words[2 * i + lo] = bottomLo + topLo; // disjoint bits: no carry
    words[2 * i + hi] = (bottom - bottomLo) / 4294967296 + topHi;
  }
  keys.sort();
  const mask = 2 ** indexBits - 1;
  const sorted = new Array<SpoolEntry>(n);
  for (let i = 0; i < n; i++) sorted[i] = group[(words[2 * i + lo]! & mask) >>> 0]!;
  // Runs with the same (priority, due): still in their original order; sort each by name. The
  // keys tell where they are (the same bits above the position), without a look at the entries.
  let start = 0;
  for (let i = 1; i <= n; i++) {
    if (i < n && words[2 * i + hi] === words[2 * start + hi] && words[2 * i + lo]! >>> indexBits === words[2 * start + lo]! >>> indexBits) continue;
    if (i - start > 1) {
      const run = sorted.slice(start, i).sort(byName);
      for (let k = 0; k < run.length; k++) sorted[start + k] = run[k]!;
    }
    start = i;
  }
  return sorted;
}

/** How many bits a non-negative integer below 2^53 needs (0 for 0). */
function bitLength(value: number): number {
  let bits = 0;
  while (bits < 53 && 2 ** bits <= value) bits++;
  return bits;
}
