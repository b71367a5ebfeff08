/**
 * Which folders of a spool may be trusted, and the modes they are made with.
 *
 * spoolerd may run as root over a spool that other users write into, and
 * renames and unlinks go through paths: a folder that is (or becomes) a
 * symbolic link, or that someone else can rename or replace, would take those
 * operations outside the spool. Node has no openat()/renameat(), so the rule
 * is: the daemon checks every folder of the spool once at start-up (real
 * directory, trusted owner, not writable by others where only daemons may
 * write), remembers each one's (dev, ino), and re-checks before the operations
 * that are not on the per-task path (spooler/folders.ts). SPOOL-FORMAT.md,
 * "Folder ownership and modes", has the table and the reasoning.
 *
 * Producers may write tmp/, incoming/, cancel/ and unique/ only. Every other folder, and the
 * spool folder itself, is written by daemons (and the `spool` command run by
 * an administrator) only.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { SpoolDirectoryError, SpoolError } from './errors.js';
import type { Subdir } from './layout.js';

/** The folders producers write into (cancel/: requests to cancel a running task); every other one is written by daemons only. */
export const isProducerFolder = (sub: Subdir): boolean => sub === 'tmp' || sub === 'incoming' || sub === 'cancel' || sub === 'unique';

/**
 * How new folders are made. Without a group the spool is private to the user
 * that creates it (0700 throughout). With the producers' group, all owned by
 * that group: the spool folder 0750 and the daemon-only folders 2750 (the group
 * may read, for `spool ls`; setgid so that claim directories made in active/
 * get the group too), tmp/ and incoming/ 3770 (the group may write; setgid so
 * that files made there get the group, sticky so that a producer cannot rename
 * or delete another user's file, nor the daemon's).
 */
export interface FolderPolicy {
  /** The producers' group id, or undefined for a spool private to its owner. */
  gid?: number;
}

export type SpoolFolder = Subdir | 'root';

export function folderMode(folder: SpoolFolder, policy: FolderPolicy): number {
  if (policy.gid === undefined) return 0o700;
  if (folder === 'root') return 0o750;
  return isProducerFolder(folder) ? 0o3770 : 0o2750;
}

/** The group from the environment for commands that create spools (SPOOL_GROUP: a group name or id). */
export function policyFromEnv(env: NodeJS.ProcessEnv = process.env): FolderPolicy {
  const group = env.SPOOL_GROUP;
  return group ? { gid: resolveGroup(group) } : {};
}

/** A group name or numeric id as a gid. Throws SpoolError when there is no such group. */
export function resolveGroup(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  const gid = lookupGroup(group);
  if (gid === undefined) {
    throw new SpoolError('SPOOL_BAD_GROUP', `no group named ${JSON.stringify(group)}; create it (groupadd ${group}) or give its numeric id`);
  }
  return gid;
}

function lookupGroup(name: string): number | undefined {
  // getent asks NSS (LDAP and the like too); /etc/group is the fallback where getent is missing.
  try {
    const out = execFileSync('getent', ['group', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const gid = Number(out.split(':')[2]);
    if (Number.isSafeInteger(gid)) return gid;
  } catch {
    // Not found, or no getent.
  }
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const [n, , gid] = line.split(':');
      if (n === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
    }
  } catch {
    // No /etc/group.
  }
  return undefined;
}

/**
 * Makes the spool folder `folder` at `path` unless something is there already,
 * with the mode and group of the policy (asked for only when a folder is made:
 * resolving a group name may run getent). Made 0700 first, then given its
 * group and mode, so it is never briefly open to others. Returns whether it was made.
 */
export function makeFolder(path: string, folder: SpoolFolder, policy: () => FolderPolicy): boolean {
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  const { gid } = policy();
  if (gid !== undefined) chownSync(path, -1, gid);
  chmodSync(path, folderMode(folder, { gid }));
  return true;
}

/**
 * Throws SpoolDirectoryError if `path` is a symbolic link or not a directory:
 * spool folders are never followed. Returns its lstat, or undefined if it does
 * not exist.
 */
export function assertRealFolder(path: string): Stats | undefined {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (st.isSymbolicLink()) {
    throw new SpoolDirectoryError(dirname(path), `${path} is a symbolic link; spool folders are never followed through links. Remove the link (rm ${path}); the folder is made again when needed`);
  }
  if (!st.isDirectory()) {
    throw new SpoolDirectoryError(dirname(path), `${path} is not a directory; move it away (mv ${path} ${path}.bad); the folder is made again when needed`);
  }
  return st;
}

/** assertRealFolder for each of `subs` under the spool `root` that exists. */
export function assertRealFolders(root: string, subs: readonly string[]): void {
  for (const sub of subs) assertRealFolder(join(root, sub));
}

/** A folder the daemon checked, by identity: a folder renamed away and replaced has another (dev, ino). */
export interface FolderId {
  dev: number;
  ino: number;
}

/** A spool folder the daemon will not use: what is wrong and the command that fixes it. */
export class UntrustedFolderError extends SpoolError {
  readonly path: string;
  readonly problem: string;
  constructor(path: string, problem: string, fix: string) {
    super('SPOOL_UNTRUSTED_DIR', `spool folder ${path} ${problem}; spoolerd will not move or delete files through it. Fix: ${fix}`);
    this.path = path;
    this.problem = problem;
  }
}

/** Who the daemon trusts to own spool folders: root and its own user. */
export interface Trust {
  uids: readonly number[];
  /** The daemon's own group: a folder writable by it is writable by the daemon's peers only. */
  gid: number;
}

export function processTrust(): Trust {
  const uid = process.geteuid?.() ?? 0;
  return { uids: uid === 0 ? [0] : [0, uid], gid: process.getegid?.() ?? 0 };
}

/** Whether users other than the owner (and the owner's own group) can create, rename or delete entries in it. */
export function writableByOthers(st: Stats, trust: Trust): boolean {
  return (st.mode & 0o002) !== 0 || ((st.mode & 0o020) !== 0 && st.gid !== trust.gid);
}

export const octal = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, '0');

/**
 * The checks every folder gets: a real directory (lstat: a link is refused,
 * never followed) owned by a trusted user. Returns the lstat.
 */
export function checkOwnedFolder(path: string, trust: Trust): Stats {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    throw new UntrustedFolderError(path, `cannot be checked (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, `create it (mkdir ${path}) or fix its permissions`);
  }
  if (st.isSymbolicLink()) {
    throw new UntrustedFolderError(path, 'is a symbolic link', `remove the link (rm ${path}) and restart spoolerd, which makes the folder again`);
  }
  if (!st.isDirectory()) throw new UntrustedFolderError(path, 'is not a directory', `move it away (mv ${path} ${path}.bad) and restart spoolerd`);
  if (!trust.uids.includes(st.uid)) {
    const who = trust.uids.length === 1 ? 'root' : `root or uid ${trust.uids[1]} (spoolerd's user)`;
    throw new UntrustedFolderError(path, `is owned by uid ${st.uid}, not by ${who}: its owner could replace what is in it`, `chown ${trust.uids[trust.uids.length - 1]} ${path}`);
  }
  return st;
}

/**
 * Checks the folders above the spool: each must be owned by a trusted user and
 * not writable by others, unless sticky (as /tmp is: others cannot rename
 * what they do not own there). Otherwise someone could rename the spool away
 * and put a link in its place. `realRoot` has no symbolic links (realpath).
 */
export function checkAncestors(realRoot: string, trust: Trust): void {
  for (let dir = dirname(realRoot); ; dir = dirname(dir)) {
    let st: Stats;
    try {
      st = checkOwnedFolder(dir, trust);
    } catch (err) {
      if (!(err instanceof UntrustedFolderError)) throw err;
      // The same check, but the fix is not to take over someone else's folder (a home directory, say).
      throw new UntrustedFolderError(dir, `(above the spool) ${err.problem}`, 'put the spool in a folder owned by root or spoolerd\'s user, such as /var/spool/<name>');
    }
    if (writableByOthers(st, trust) && (st.mode & 0o1000) === 0) {
      throw new UntrustedFolderError(dir, `(above the spool) is writable by other users (mode ${octal(st.mode)}): they could replace the spool`, `chmod go-w ${dir}, or put the spool elsewhere`);
    }
    if (dir === dirname(dir)) return;
  }
}
