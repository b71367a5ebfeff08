/**
 * Listing a spool: every entry of the task directories, classified into a state,
 * in execution order, with the bodies checked. Used by `spool ls`, `spool stats`,
 * `spool rm` and the other `spool` commands; the folders are read by
 * read-names.ts (readTaskFolders), each entry made by its name by entries.ts
 * (which is all getTasks() needs), and sorted by execution-order.ts. Only
 * reads; never moves anything.
 */
import type { Dirent } from 'node:fs';
import { join, sep } from 'node:path';
import { expiresOfLastValidBody, isValidBody } from './body.js';
import { entryByName, type SpoolEntry } from './entries.js';
import { byName, sortInExecutionOrder, STATE_RANK, stateGroups } from './execution-order.js';
import { invalidStateAt, LOCATIONS_OF, locationsOf, QUARANTINE_REASON_SUFFIX, TASK_LOCATIONS, TASK_STATES, type SpoolLayout, type TaskLocation } from './layout.js';
import { parseTaskName } from './name.js';
import { BodyChecks, VALID } from './parallel-check.js';
import { readTaskFolders, type TaskFolder } from './read-names.js';
import { DEFAULT_MAX_BYTES, readRegularFile } from './safe-read.js';
import { decodeTask } from './task-file.js';

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

/** The folders listed unless told otherwise: those of every state but archived. */
export const DEFAULT_LOCATIONS: readonly TaskLocation[] = locationsOf(TASK_STATES.filter((s) => s !== 'archived'));

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
  const byState = stateGroups();
  const add = (e: SpoolEntry): void => {
    entries.push(e);
    byState[STATE_RANK[e.state]]!.push(e);
  };
  readLocations(layout, options.locations ?? DEFAULT_LOCATIONS, ctx, (e) => add(e), () => entries.length);
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
  const byState = stateGroups();
  let count = 0;
  const add = (e: SpoolEntry): void => {
    byState[STATE_RANK[e.state]]!.push(e);
    count++;
  };
  const groups = LOCATION_GROUPS.map((group) => group.filter((l) => locations.includes(l))).filter((group) => group.length > 0);
  let first: SpoolEntry[] = [];
  for (const here of groups) {
    readLocations(layout, here, ctx, add, () => 0);
    // Sorting again each round costs little: the groups read later are the rarer ones.
    first = firstChecked(sortInExecutionOrder(byState.map((g) => [...g]), count), limit, accept, check);
    // Every folder not read yet holds only entries that come after all of these.
    if (first.length >= limit) break;
  }
  return first;
}

/**
 * The folders in groups such that every entry of a group comes after every
 * entry of the groups before it: folders ordered by the lowest-ranking state
 * they can hold (TASK_STATES order), a folder joining the group before it
 * where their ranges of states overlap. A folder can hold its states in
 * LOCATIONS_OF and, for a file that is not a task, invalidStateAt's: active/
 * may hold invalid files, which come after due and scheduled ones, so it is
 * read with incoming/ and pending/. [active, incoming, pending], [dead],
 * [quarantine], [archive].
 */
const LOCATION_GROUPS: readonly (readonly TaskLocation[])[] = (() => {
  const ranks = (l: TaskLocation): number[] => [...TASK_STATES.filter((s) => LOCATIONS_OF[s].includes(l)), invalidStateAt(l)].map((s) => STATE_RANK[s]);
  const spans = TASK_LOCATIONS.map((l) => ({ l, low: Math.min(...ranks(l)), high: Math.max(...ranks(l)) })).sort((a, b) => a.low - b.low);
  const groups: { locations: TaskLocation[]; high: number }[] = [];
  for (const { l, low, high } of spans) {
    const last = groups.at(-1);
    if (last !== undefined && low <= last.high) {
      last.locations.push(l);
      last.high = Math.max(last.high, high);
    } else {
      groups.push({ locations: [l], high });
    }
  }
  return groups.map((g) => g.locations);
})();

/**
 * Reads the folders `locations` (read-names.ts) and adds their entries as
 * classify() makes them; quarantine/ with the reasons beside its files.
 */
function readLocations(layout: SpoolLayout, locations: readonly TaskLocation[], ctx: Context, add: (e: SpoolEntry) => void, position: () => number): void {
  readTaskFolders(
    layout,
    locations.filter((l) => l !== 'quarantine'),
    (entry, folder) => {
      const e = classify(entry, folder, ctx, position());
      if (e !== undefined) add(e);
    },
  );
  if (locations.includes('quarantine')) for (const e of listQuarantine(layout)) add(e);
}

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

/** The note of a waiting task past its `expires` time: no daemon will run it (it ends as expired when one claims it). */
export const EXPIRED_NOTE_PREFIX = 'expired: ';
const expiredNote = (expires: number): string => `${EXPIRED_NOTE_PREFIX}not started by ${new Date(expires).toISOString()}; it will not run`;

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

/**
 * The entry of a directory entry (entries.ts, by its name), and where the
 * bodies are checked, the check: done now, or queued on other threads
 * (ctx.checks) for finish() with its position in the entries.
 */
function classify(entry: Dirent, folder: TaskFolder, ctx: Context, position: number): SpoolEntry | undefined {
  const e = entryByName(entry, folder, ctx.now);
  if (e === undefined || !ctx.checkBodies || e.task === undefined || e.reason !== undefined) return e;
  if (ctx.checks === undefined) {
    const checked = checkEntry(e, ctx, folder.path);
    if (checked !== undefined && e.owner !== undefined) checked.owner = e.owner;
    return checked;
  }
  // A new literal with its mtimeMs slot, as checkEntry makes them: adding the property to `e` would move
  // each entry of a large listing to a bigger, out-of-object layout (the likely cause of most of the ~10 MB
  // more peak RSS that `spool ls` of 100,000 tasks showed with it).
  const checking: SpoolEntry = { location: e.location, fileName: e.fileName, path: e.path, state: e.state, task: e.task, mtimeMs: undefined };
  if (e.owner !== undefined) checking.owner = e.owner;
  ctx.checks.add(folder.path, e.fileName);
  ctx.toCheck.push(position);
  ctx.toCheckDirs.push(folder.path);
  return checking;
}

/**
 * Reads and checks the body of a task entry (a regular file whose name parsed);
 * returns the entry as the listing shows it, or undefined if the file is gone.
 */
function checkEntry(e: SpoolEntry, ctx: Context, dir: string): SpoolEntry | undefined {
  const { location, fileName, path, task } = e;
  const state = e.state;
  const invalidState = invalidStateAt(location);
  // A path of its own for open(), which flattens the string it is given (see checkBodies).
  const read = readRegularFile(dir + sep + fileName, ctx.maxBytes, ctx.scratch);
  if (!read.ok) {
    // A file claimed or removed while we listed is simply gone, not invalid.
    if (read.reason.startsWith('it disappeared')) return undefined;
    if (read.mtimeMs === undefined) return { location, fileName, path, state: invalidState, task, reason: read.reason };
    return { location, fileName, path, state: invalidState, task, reason: read.reason, mtimeMs: read.mtimeMs };
  }
  if (!ctx.keepBodies && isValidBody(read.bytes, task!.encoding)) {
    const expires = expiresOfLastValidBody();
    if (expires !== undefined && expires <= ctx.now && (location === 'incoming' || location === 'pending')) return { location, fileName, path, state, task, reason: expiredNote(expires), mtimeMs: read.mtimeMs };
    return { location, fileName, path, state, task, mtimeMs: read.mtimeMs };
  }
  const decoded = decodeTask(fileName, read.bytes);
  if (!decoded.ok) return { location, fileName, path, state: invalidState, task, reason: decoded.reason, mtimeMs: read.mtimeMs };
  const expires = decoded.task.body.expires;
  if (expires !== undefined && expires <= ctx.now && (location === 'incoming' || location === 'pending')) {
    const note = expiredNote(expires);
    if (ctx.keepBodies) return { location, fileName, path, state, task, reason: note, mtimeMs: read.mtimeMs, body: decoded.task.body };
    return { location, fileName, path, state, task, reason: note, mtimeMs: read.mtimeMs };
  }
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

function listQuarantine(layout: SpoolLayout): SpoolEntry[] {
  const entries: SpoolEntry[] = [];
  readTaskFolders(layout, ['quarantine'], (entry, folder) => {
    if (entry.name.endsWith(QUARANTINE_REASON_SUFFIX) || entry.name.startsWith('.')) return;
    const path = join(folder.path, entry.name);
    const task = parseTaskName(entry.name);
    entries.push({
      state: 'quarantined',
      location: 'quarantine',
      fileName: entry.name,
      path,
      reason: readQuarantineReason(path),
      ...(task !== undefined && { task }),
    });
  });
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
