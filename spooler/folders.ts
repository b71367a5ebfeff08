/**
 * The spool folders a daemon checked at start-up, and the re-checks before the
 * operations that move files into, or delete inside, a folder other than its
 * own claim directory (spool/trust.ts says why and what is trusted).
 *
 * Start-up (open): the spool folder is made and resolved to its real path (its
 * parents must not be writable by others), every subfolder is made with the
 * policy's mode if missing, then each must be a real directory owned by root
 * or the daemon's user; the spool folder and the daemon-only folders must not
 * be writable by others. Anything else refuses the start with a typed error
 * that names the fix. Weaker settings that are not unsafe for the daemon
 * itself (a world-writable incoming/, task files readable by everyone) are
 * warned about.
 *
 * Run time: each checked folder's (dev, ino) is kept. check() re-lstats a
 * folder and compares: a folder renamed away and replaced (by a link or by
 * another directory) is detected and refused, never followed. It costs one
 * lstat, so it is used before rare operations (tmp/ sweep, quarantine, dead
 * letters, reclaims) and once per scan for every folder (checkAll), never per
 * task: the claim directory lives in active/, which producers cannot write, so
 * producers cannot swap it between two scans.
 */
import { lstatSync, realpathSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { recreatedByDaemon } from '../spool/compact-folder.js';
import { SpoolLayout, SUBDIRS, type Subdir } from '../spool/layout.js';
import {
  checkAncestors,
  checkOwnedFolder,
  folderMode,
  isProducerFolder,
  octal,
  processTrust,
  UntrustedFolderError,
  writableByOthers,
  type FolderId,
  type FolderPolicy,
  type Trust,
} from '../spool/trust.js';
import type { Logger } from './logger.js';

/** A checked folder that is no longer the folder that was checked. */
export class FolderSwappedError extends UntrustedFolderError {
  constructor(path: string, now: string) {
    super(path, `was replaced since spoolerd checked it (it is now ${now})`, 'find out who replaced it, restore the folder, and restart spoolerd');
  }
}

/** Folders a daemon may recreate empty once drained (spool/compact-folder.ts): a replacement its marker names is followed, not refused. */
const RECREATED_FOLDERS: readonly Subdir[] = ['incoming'];

/** Task folders: their files hold the tasks' arguments (progress/: what tasks say about them; flows/: the staged next steps of chains). */
const TASK_FOLDERS: readonly Subdir[] = ['incoming', 'pending', 'active', 'dead', 'quarantine', 'archive', 'state', 'results', 'progress', 'flows'];

export class SpoolFolders {
  /** Claim directories of other owners already reported as not trusted, so each is logged once. */
  private readonly reported = new Set<string>();

  private constructor(
    readonly layout: SpoolLayout,
    private readonly trust: Trust,
    private readonly ids: Map<string, FolderId>,
  ) {}

  /**
   * Makes the spool's missing folders with the policy's modes, checks them
   * all, and logs warnings for settings that are weak but not unsafe for the
   * daemon. Throws UntrustedFolderError (or SpoolDirectoryError) to refuse the start.
   */
  static open(dir: string, policy: FolderPolicy, log: Logger): SpoolFolders {
    const trust = processTrust();
    const given = new SpoolLayout(dir);
    const st = lstatOrUndefined(given.root);
    if (st?.isSymbolicLink()) {
      const target = realpathOr(given.root);
      throw new UntrustedFolderError(given.root, `is a symbolic link${target ? ` to ${target}` : ''}`, `pass the real path${target ? ` (--dir ${target})` : ''}`);
    }
    given.ensure(policy);
    // Everything from here on goes through the real path, checked from / down.
    const layout = new SpoolLayout(join(realpathSync(dirname(given.root)), basename(given.root)));
    checkAncestors(layout.root, trust);
    const ids = new Map<string, FolderId>();
    const root = checkOwnedFolder(layout.root, trust);
    if (writableByOthers(root, trust)) {
      throw new UntrustedFolderError(layout.root, `is writable by other users (mode ${octal(root.mode)}, group ${root.gid}): they could replace its folders with links`, `chmod go-w ${layout.root} (producers need write access to tmp/ and incoming/ only; see spoolerd --group)`);
    }
    ids.set(layout.root, idOf(root));
    const warnings: string[] = [];
    const readable: string[] = [];
    for (const sub of SUBDIRS) {
      const path = layout[sub];
      const sst = checkOwnedFolder(path, trust);
      if (isProducerFolder(sub)) {
        if ((sst.mode & 0o002) !== 0) {
          warnings.push(`${path} is world-writable (mode ${octal(sst.mode)}): ANY local user can enqueue tasks, which run as this daemon's user. Fix: chmod o-rwx ${path}, and give producers a group (spoolerd --group)`);
        } else if (policy.gid !== undefined && (sst.gid !== policy.gid || (sst.mode & 0o070) !== 0o070)) {
          warnings.push(`producers of group ${policy.gid} cannot write ${path} (group ${sst.gid}, mode ${octal(sst.mode)}). Fix: chgrp ${policy.gid} ${path} && chmod ${octal(folderMode(sub, policy))} ${path}`);
        }
      } else if (writableByOthers(sst, trust)) {
        throw new UntrustedFolderError(path, `is writable by other users (mode ${octal(sst.mode)}, group ${sst.gid}), but only daemons may write it`, `chmod ${octal(folderMode(sub, policy))} ${path}`);
      }
      if (TASK_FOLDERS.includes(sub) && (sst.mode & 0o001) !== 0) readable.push(path);
      ids.set(path, idOf(sst));
    }
    if (readable.length > 0 && (root.mode & 0o001) !== 0) {
      warnings.push(`any local user can read task files, and the arguments in them, in ${readable.join(', ')}. Fix: chmod o-rwx ${layout.root}, or give producers a group (spoolerd --group)`);
    }
    for (const w of warnings) log.warn(w, { spool: layout.root });
    return new SpoolFolders(layout, trust, ids);
  }

  /** This daemon's claim directory, checked like the spool's folders; replaced when it rejoins as a new owner. */
  private ownClaimDir: string | undefined;

  /** The claim directory this daemon made (Owner.acquire): checked like the spool's folders from now on. */
  adoptClaimDir(path: string): void {
    if (this.ownClaimDir !== undefined) this.ids.delete(this.ownClaimDir);
    this.ids.set(path, idOf(checkOwnedFolder(path, this.trust)));
    this.ownClaimDir = path;
  }

  /**
   * This daemon replaced a spool folder itself (a drained folder recreated
   * empty: spool/compact-folder.ts) and `id` is the new one's identity: checked
   * as the old one was from now on. The swap was its own act, not a stranger's.
   */
  adoptReplaced(sub: Subdir, id: FolderId): void {
    this.ids.set(this.layout[sub], id);
  }

  /** Told when a folder was found recreated by another daemon and followed (the caller re-arms what pinned the old one: a watch). */
  private recreatedListeners: Array<(sub: Subdir) => void> = [];

  /** Calls `listener` each time check() or checkAll() follows a folder another daemon recreated (spool/compact-folder.ts). */
  onRecreated(listener: (sub: Subdir) => void): void {
    this.recreatedListeners.push(listener);
  }

  /** The identity a checked folder (a spool subfolder, or our claim directory) had when it was checked. */
  checkedId(path: string): FolderId | undefined {
    return this.ids.get(path);
  }

  /** Throws FolderSwappedError unless every folder named is still the one checked at start-up. */
  check(...subs: Subdir[]): void {
    for (const sub of subs) this.checkPath(this.layout[sub]);
  }

  /** check() for every checked folder, the spool folder and the claim directory included. Returns the errors. */
  checkAll(): UntrustedFolderError[] {
    const problems: UntrustedFolderError[] = [];
    for (const path of this.ids.keys()) {
      // A claim directory that is gone was removed by a daemon that took this one for dead:
      // the owner-lost path handles it (SPOOL-FORMAT.md, "Stalled daemons"); it is not a swap.
      if (path === this.ownClaimDir && lstatOrUndefined(path) === undefined) continue;
      try {
        this.checkPath(path);
      } catch (err) {
        problems.push(err as UntrustedFolderError);
      }
    }
    return problems;
  }

  /**
   * Another owner's claim directory, before its files are reclaimed: a real
   * directory owned by a trusted user (inside active/, which only daemons
   * write). Returns its identity, to compare again once it has been listed;
   * undefined (logged once) for anything else, which is left alone.
   */
  claimDir(path: string, log: Logger): FolderId | undefined {
    try {
      return idOf(checkOwnedFolder(path, this.trust));
    } catch (err) {
      if (!this.reported.has(path)) {
        this.reported.add(path);
        log.error('not a claim directory spoolerd can trust; its files are not reclaimed', { err: (err as Error).message });
      }
      return undefined;
    }
  }

  /** Whether `path` still has the identity `id` (a real directory). */
  sameFolder(path: string, id: FolderId): boolean {
    const st = lstatOrUndefined(path);
    return st !== undefined && st.isDirectory() && st.dev === id.dev && st.ino === id.ino;
  }

  private checkPath(path: string): void {
    const id = this.ids.get(path)!;
    const st = lstatOrUndefined(path);
    if (st !== undefined && st.isDirectory() && st.dev === id.dev && st.ino === id.ino) return;
    if (st !== undefined && this.followRecreated(path, st)) return;
    throw new FolderSwappedError(path, st === undefined ? 'gone' : st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'another directory' : 'not a directory');
  }

  /**
   * A drained folder recreated empty by another daemon (spool/compact-folder.ts:
   * a marker in state/, which only daemons write, names the new directory) is
   * that daemon's act, not a stranger's swap: checked as at start-up, it is
   * this daemon's folder from now on. Only the folders a daemon recreates.
   */
  private followRecreated(path: string, st: Stats): boolean {
    const sub = RECREATED_FOLDERS.find((s) => this.layout[s] === path);
    if (sub === undefined || !recreatedByDaemon(this.layout.state, path, st)) return false;
    let checked: Stats;
    try {
      this.checkPath(this.layout.state);
      checked = checkOwnedFolder(path, this.trust);
    } catch {
      return false;
    }
    if (checked.dev !== st.dev || checked.ino !== st.ino) return false;
    if (!isProducerFolder(sub) && writableByOthers(checked, this.trust)) return false;
    this.ids.set(path, idOf(checked));
    for (const l of this.recreatedListeners) l(sub);
    return true;
  }
}

function idOf(st: Stats): FolderId {
  return { dev: st.dev, ino: st.ino };
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

function realpathOr(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}
