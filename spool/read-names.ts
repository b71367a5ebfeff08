/**
 * Reading directories without failing when an entry vanishes meanwhile: the
 * one directory reader of the daemon and the `spool` commands. readNames for
 * names alone, readEntries for entries with their types, readTaskFolders for
 * every entry of a spool's task folders (what `spool ls` and getTasks() list).
 *
 * fs.readdirSync collects every entry in native memory (libuv's scandir) before
 * it makes the JavaScript array: for a million task files that is ~120 MB more
 * at the peak than the names themselves, and on tmpfs here it took 3.5 s
 * against 1.3 s for the same listing read in batches of 1,024 through opendir.
 * Measured in BENCHMARKS.md ("backlog").
 *
 * But opendir's Dir makes a Dirent of every entry, and where the directory
 * listing carries no file type (DT_UNKNOWN: NFS read with plain READDIR,
 * fuse-nfs, ext2/ext4 without the filetype feature) Node lstats each entry to
 * find one. That costs a stat per task file, and an entry renamed away between
 * the listing and its lstat (another daemon claimed it) throws ENOENT out of
 * readSync, losing the rest of the batch: the whole listing failed. So each
 * directory is probed once (one entry read): where listings carry types, Dir it
 * is (no stat at all); where they do not, readdirSync, which never stats, and
 * for the callers that need types, our own lstat per entry that skips the
 * vanished ones. A directory whose listing types only some entries (the Linux
 * NFS client can switch between READDIRPLUS and READDIR within one listing)
 * is caught by the ENOENT and read again that way.
 */
import { Dirent, lstatSync, opendirSync, readdirSync, type Dir } from 'node:fs';
import { sep } from 'node:path';
import type { SpoolLayout, TaskLocation } from './layout.js';
import { assertRealFolder } from './trust.js';

const BATCH = 1024;

/** Per directory: whether its listings carry file types (probed once per process). */
const listingHasTypes = new Map<string, boolean>();

/** Every name in `dir` (unsorted, "." and ".." excluded). Throws what opendir throws; never stats an entry. */
export function readNames(dir: string): string[] {
  if (!hasTypes(dir)) return readdirSync(dir);
  const handle = opendirSync(dir, { bufferSize: BATCH });
  const names: string[] = [];
  try {
    for (let entry = handle.readSync(); entry !== null; entry = handle.readSync()) names.push(entry.name);
  } catch (err) {
    if (!isMissing(err)) throw err;
    // An entry without a type vanished before Node could lstat it: this directory is read by name from now on.
    listingHasTypes.set(dir, false);
    return readdirSync(dir);
  } finally {
    handle.closeSync();
  }
  return names;
}

/**
 * Every name in `dir`, a batch at a time where listings carry types, so a
 * million names are never one array (the daemon's queue keeps only the best
 * few it has room for). Where they do not, readdirSync's one array, as in
 * readNames(). Never stats an entry; throws what opendir throws.
 */
export function* eachName(dir: string): Generator<string, void, undefined> {
  if (!hasTypes(dir)) return yield* readdirSync(dir);
  const handle = opendirSync(dir, { bufferSize: BATCH });
  let byName = false;
  try {
    try {
      for (let entry = handle.readSync(); entry !== null; entry = handle.readSync()) yield entry.name;
    } catch (err) {
      if (!isMissing(err)) throw err;
      listingHasTypes.set(dir, false);
      byName = true;
    }
  } finally {
    handle.closeSync();
  }
  // An entry without a type vanished under Node's lstat: all again by name (the queue takes a name given twice once).
  if (byName) yield* readdirSync(dir);
}

/**
 * Every entry of `dir` with its type, a batch at a time where the listing has
 * types; entries that vanish while being read are left out. Throws what
 * opendir throws (ENOENT for a missing `dir` among them).
 */
export function* readEntries(dir: string, bufferSize = 128): Generator<Dirent, void, undefined> {
  if (!hasTypes(dir)) return yield* entriesByName(dir, readdirSync(dir), undefined);
  const handle = opendirSync(dir, { bufferSize });
  // Names given so far, only for the rare fallback below (a directory that types some entries but not others).
  const given = new Set<string>();
  let byName = false;
  try {
    try {
      for (let entry = handle.readSync(); entry !== null; entry = handle.readSync()) {
        given.add(entry.name);
        yield entry;
      }
    } catch (err) {
      if (!isMissing(err)) throw err;
      listingHasTypes.set(dir, false);
      byName = true;
    }
  } finally {
    handle.closeSync();
  }
  if (byName) yield* entriesByName(dir, readdirSync(dir), given);
}

/** A folder that holds task files, as readTaskFolders gives it with each of its entries. */
export interface TaskFolder {
  readonly location: TaskLocation;
  readonly path: string;
  /** path + "/": an entry's path is prefix + name (one string rope, no join). */
  readonly prefix: string;
  /** In active/: the daemon whose claim folder this is (active/<owner>). */
  readonly owner: string | undefined;
}

/**
 * Calls `visit` with every entry of the spool's folders `locations`, in that
 * order, and in active/ of every claim folder (active/<owner>/; what else is
 * there is nobody's claim and is passed over). A missing folder is empty (a
 * spool made by an older or foreign producer). A folder that is a symbolic
 * link is refused (SpoolDirectoryError from assertRealFolder): a neighbour
 * could point it at another place to have us list, or act on, that place; a
 * claim folder that is a link is passed over by its type. Entries are read a
 * batch at a time, so each is garbage once visited; those that vanish while
 * being read are left out.
 */
export function readTaskFolders(layout: SpoolLayout, locations: Iterable<TaskLocation>, visit: (entry: Dirent, folder: TaskFolder) => void): void {
  for (const location of locations) {
    const path = layout[location];
    if (location !== 'active') {
      for (const entry of folderEntries(path)) visit(entry, { location, path, prefix: path + sep, owner: undefined });
      continue;
    }
    for (const claims of folderEntries(path)) {
      if (!claims.isDirectory()) continue;
      const dir = path + sep + claims.name;
      const folder: TaskFolder = { location, path: dir, prefix: dir + sep, owner: claims.name };
      for (const entry of folderEntries(dir)) visit(entry, folder);
    }
  }
}

/** The entries of a real folder, none if it does not exist; see readTaskFolders. */
function* folderEntries(dir: string): Generator<Dirent, void, undefined> {
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

/** Entries made from names by our own lstat, skipping what vanished (and names in `skip`). */
function* entriesByName(dir: string, names: string[], skip: Set<string> | undefined): Generator<Dirent, void, undefined> {
  for (const name of names) {
    if (skip?.has(name)) continue;
    const entry = direntByLstat(dir, name);
    if (entry !== undefined) yield entry;
  }
}

/** A Dirent-alike for a name, from lstat; undefined if it is gone. */
function direntByLstat(dir: string, name: string): Dirent | undefined {
  let stats;
  try {
    stats = lstatSync(dir + '/' + name);
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  const entry = Object.create(Dirent.prototype) as Dirent;
  const type = stats.isFile() ? 'File' : stats.isDirectory() ? 'Directory' : stats.isSymbolicLink() ? 'SymbolicLink' : stats.isFIFO() ? 'FIFO' : stats.isSocket() ? 'Socket' : stats.isCharacterDevice() ? 'CharacterDevice' : stats.isBlockDevice() ? 'BlockDevice' : 'Unknown';
  const is = (t: string) => () => type === t;
  Object.defineProperties(entry, {
    name: { value: name, enumerable: true },
    parentPath: { value: dir, enumerable: true },
    path: { value: dir, enumerable: true },
    isFile: { value: is('File') },
    isDirectory: { value: is('Directory') },
    isSymbolicLink: { value: is('SymbolicLink') },
    isFIFO: { value: is('FIFO') },
    isSocket: { value: is('Socket') },
    isCharacterDevice: { value: is('CharacterDevice') },
    isBlockDevice: { value: is('BlockDevice') },
  });
  return entry;
}

/**
 * Whether listings of `dir` carry file types: one entry read, once per
 * directory and process. A Dirent Node had to lstat for is not a plain Dirent
 * (Node makes those from the stats); a probe entry that vanished before that
 * lstat says the same. An empty directory tells nothing and is probed again
 * next time (one opendir).
 */
function hasTypes(dir: string): boolean {
  const known = listingHasTypes.get(dir);
  if (known !== undefined) return known;
  let handle: Dir;
  try {
    handle = opendirSync(dir, { bufferSize: 1 });
  } catch {
    return true; // The real read reports why.
  }
  let typed: boolean | undefined;
  try {
    const entry = handle.readSync();
    if (entry !== null) typed = Object.getPrototypeOf(entry) === Dirent.prototype;
  } catch (err) {
    if (!isMissing(err)) throw err;
    typed = false;
  } finally {
    handle.closeSync();
  }
  if (typed === undefined) return true;
  listingHasTypes.set(dir, typed);
  return typed;
}

const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === 'ENOENT';
