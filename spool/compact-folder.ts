/**
 * Recreating a drained folder, so that listing it is cheap again.
 *
 * ext4 never shrinks a directory: once incoming/ has held a million names,
 * listing it empty still reads every block it grew to (~37 ms here, each
 * scan, for ever). An empty replacement is made beside it and renamed over it.
 * rename(2) replaces a directory only if the target is empty, so a producer's
 * task renamed into the folder at any moment before makes the swap fail
 * (ENOTEMPTY or EEXIST) and nothing is lost; producers never see the folder
 * missing, as rename swaps the name atomically.
 *
 * Other daemons on the spool checked the old folder (spooler/folders.ts) and
 * take a folder that is not the one they checked for a swap by a stranger. A
 * marker in state/ (only daemons write there) names the replacement by its
 * device and inode before the swap: a daemon that finds `<folder>` replaced
 * by a directory a marker names takes it as a daemon's recreation and follows
 * it (recreatedByDaemon()), so a daemon that started while another was
 * swapping goes on serving.
 *
 *   step                 system calls                          a crash after it leaves          picked up by
 *   1 make replacement   mkdir <staging>, chown, chmod         an empty <staging> folder        the next compaction of any daemon
 *                                                                                                 (sweepCompactionDebris: rmdir)
 *   2 mark it            open(<marker>, O_CREAT|O_EXCL), close  <staging> and a marker naming    the same sweep (a marker naming no
 *                                                                 it, not in place                 folder in place, a minute old: unlink)
 *   3 swap               rename(<staging>, <folder>)           the new empty folder in place,   other daemons follow it at their next
 *                        (fails: a task arrived; rmdir          with its marker (the old one     folder check (the marker names it);
 *                        <staging>, unlink <marker>)            freed: it was empty)             no task was in the old folder
 *   4 forget old markers unlink of this folder's other         markers of folders gone          the next compaction's sweep
 *                        markers, a minute old
 *
 * <staging> is `<stagingDir>/.compact-<folder>-<pid>` and <marker>
 * `<stagingDir>/.recreated-<folder>-<dev>-<ino>`, in a folder only daemons
 * write (state/), on the same filesystem (checked: rename cannot cross one).
 * The caller must then treat the new folder as its own (its identity changed:
 * spooler/folders.ts adoptReplaced) and re-arm a watch on it (an inotify watch
 * follows the old inode, which is gone).
 *
 * Not done where rename onto a directory may not mean the same (network and
 * FUSE filesystems: the caller skips them), nor where it gains nothing (a
 * small directory; tmpfs shrinks its own). The new folder gets the old one's
 * owner, group and mode; ACLs, if someone set any, are not copied.
 */
import { chmodSync, chownSync, closeSync, constants, lstatSync, mkdirSync, openSync, readdirSync, renameSync, rmdirSync, unlinkSync, type Stats } from 'node:fs';
import { basename, join } from 'node:path';
import type { FolderId } from './trust.js';

/** Below this directory size (bytes) a listing of the empty folder costs too little to bother (~2,500 entries' worth on ext4). */
export const COMPACT_MIN_BYTES = 256 * 1024;

const STAGING_PREFIX = '.compact-';
const MARKER_PREFIX = '.recreated-';
/** A marker naming no folder in place is removed only this old: a compaction under way elsewhere made it a moment ago. */
const MARKER_DEBRIS_AGE_MS = 60_000;

/** The marker that says a daemon made the directory `id` to replace `folder` (step 2). */
function markerPath(stagingDir: string, folder: string, id: FolderId): string {
  return join(stagingDir, `${MARKER_PREFIX}${basename(folder)}-${id.dev}-${id.ino}`);
}

/**
 * Whether the directory now at `folder` (its lstat: `now`) was made by a
 * daemon that recreated the drained folder (a marker in `stagingDir` names
 * it). Then a daemon that checked the old folder may take this one as its
 * own, after the checks it gives every folder. One lstat.
 */
export function recreatedByDaemon(stagingDir: string, folder: string, now: Stats): boolean {
  if (!now.isDirectory()) return false;
  try {
    return lstatSync(markerPath(stagingDir, folder, now)).isFile();
  } catch {
    return false;
  }
}

export type Compaction = { done: true; id: FolderId } | { done: false; reason: string };

/**
 * Replaces `folder` by an empty copy if it is empty, still the folder checked
 * (`expected`), and grown past COMPACT_MIN_BYTES. Returns the new identity, or
 * why it was not done. Throws only what an unexpected file-system error throws
 * after the staging folder is gone again.
 */
export function compactDrainedFolder(folder: string, stagingDir: string, expected: FolderId, minBytes = COMPACT_MIN_BYTES, beforeSwap?: () => void): Compaction {
  const st = lstatSync(folder);
  if (!st.isDirectory() || st.dev !== expected.dev || st.ino !== expected.ino) return { done: false, reason: 'it is not the folder that was checked' };
  if (st.size < minBytes) return { done: false, reason: 'it is small' };
  const staging = join(stagingDir, `${STAGING_PREFIX}${basename(folder)}-${process.pid}`);
  // Here, not on every look: listing stagingDir (state/, which holds every dead letter's record) is not free.
  sweepCompactionDebris(stagingDir, folder);
  mkdirSync(staging, { mode: 0o700 });
  let marker: string | undefined;
  try {
    const made = lstatSync(staging);
    if (made.dev !== st.dev) {
      rmdirSync(staging);
      return { done: false, reason: 'the staging folder is on another filesystem' };
    }
    chownSync(staging, st.uid, st.gid);
    chmodSync(staging, st.mode & 0o7777);
    marker = markerPath(stagingDir, folder, made);
    closeSync(openSync(marker, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600));
    beforeSwap?.();
    renameSync(staging, folder);
  } catch (err) {
    removeIfEmptyFolder(staging);
    if (marker !== undefined) unlinkQuietly(marker);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return { done: false, reason: 'a task arrived meanwhile' };
    if (code === 'ENOENT') return { done: false, reason: 'the staging folder was removed meanwhile' };
    if (code === 'EPERM') return { done: false, reason: `its owner or group cannot be given to a new folder (${code})` };
    throw err;
  }
  const now = lstatSync(folder);
  sweepCompactionDebris(stagingDir, folder);
  return { done: true, id: { dev: now.dev, ino: now.ino } };
}

/**
 * Removes what a crash between the steps left in `stagingDir`: empty staging
 * folders, and `folder`'s markers that name no folder in place (a minute old:
 * another daemon's compaction may be under way; the marker of the folder in
 * place stays, for daemons that have not checked it yet). Returns how many.
 */
export function sweepCompactionDebris(stagingDir: string, folder?: string, now = Date.now()): number {
  let removed = 0;
  let current: FolderId | undefined;
  const markers = folder === undefined ? undefined : `${MARKER_PREFIX}${basename(folder)}-`;
  for (const name of readdirSync(stagingDir)) {
    if (name.startsWith(STAGING_PREFIX)) {
      if (removeIfEmptyFolder(join(stagingDir, name))) removed++;
    } else if (markers !== undefined && name.startsWith(markers)) {
      current ??= idOrNone(folder!);
      if (name === `${markers}${current.dev}-${current.ino}`) continue;
      const path = join(stagingDir, name);
      try {
        const st = lstatSync(path);
        if (st.isFile() && now - st.mtimeMs >= MARKER_DEBRIS_AGE_MS) {
          unlinkSync(path);
          removed++;
        }
      } catch {
        // Removed meanwhile.
      }
    }
  }
  return removed;
}

function idOrNone(path: string): FolderId {
  try {
    const st = lstatSync(path);
    return { dev: st.dev, ino: st.ino };
  } catch {
    return { dev: -1, ino: -1 };
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Never made, or gone.
  }
}

/** rmdir, which removes only an empty directory and never follows a link; false if there was none to remove. */
function removeIfEmptyFolder(path: string): boolean {
  try {
    rmdirSync(path);
    return true;
  } catch {
    return false;
  }
}
