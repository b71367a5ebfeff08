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
 *   step                 system calls                        a crash after it leaves       picked up by
 *   1 make replacement   mkdir <staging>, chown, chmod       an empty <staging> folder     the next compaction of any daemon
 *                                                                                          (sweepCompactionDebris: rmdir)
 *   2 swap               rename(<staging>, <folder>)         the new empty folder in place; (nothing: the old folder was
 *                        (fails: a task arrived; rmdir it)    the old one freed by the kernel  empty, no task was in it)
 *
 * <staging> is `<stagingDir>/.compact-<folder>-<pid>` in a folder only daemons
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
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, renameSync, rmdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { FolderId } from './trust.js';

/** Below this directory size (bytes) a listing of the empty folder costs too little to bother (~2,500 entries' worth on ext4). */
export const COMPACT_MIN_BYTES = 256 * 1024;

const STAGING_PREFIX = '.compact-';

export type Compaction = { done: true; id: FolderId } | { done: false; reason: string };

/**
 * Replaces `folder` by an empty copy if it is empty, still the folder checked
 * (`expected`), and grown past COMPACT_MIN_BYTES. Returns the new identity, or
 * why it was not done. Throws only what an unexpected file-system error throws
 * after the staging folder is gone again.
 */
export function compactDrainedFolder(folder: string, stagingDir: string, expected: FolderId, minBytes = COMPACT_MIN_BYTES): Compaction {
  const st = lstatSync(folder);
  if (!st.isDirectory() || st.dev !== expected.dev || st.ino !== expected.ino) return { done: false, reason: 'it is not the folder that was checked' };
  if (st.size < minBytes) return { done: false, reason: 'it is small' };
  const staging = join(stagingDir, `${STAGING_PREFIX}${basename(folder)}-${process.pid}`);
  // Here, not on every look: listing stagingDir (state/, which holds every dead letter's record) is not free.
  sweepCompactionDebris(stagingDir);
  mkdirSync(staging, { mode: 0o700 });
  try {
    const made = lstatSync(staging);
    if (made.dev !== st.dev) {
      rmdirSync(staging);
      return { done: false, reason: 'the staging folder is on another filesystem' };
    }
    chownSync(staging, st.uid, st.gid);
    chmodSync(staging, st.mode & 0o7777);
    renameSync(staging, folder);
  } catch (err) {
    removeIfEmptyFolder(staging);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return { done: false, reason: 'a task arrived meanwhile' };
    if (code === 'ENOENT') return { done: false, reason: 'the staging folder was removed meanwhile' };
    if (code === 'EPERM') return { done: false, reason: `its owner or group cannot be given to a new folder (${code})` };
    throw err;
  }
  const now = lstatSync(folder);
  return { done: true, id: { dev: now.dev, ino: now.ino } };
}

/** Removes empty staging folders that a crash between steps 1 and 2 left in `stagingDir`. Returns how many. */
export function sweepCompactionDebris(stagingDir: string): number {
  let removed = 0;
  for (const name of readdirSync(stagingDir)) {
    if (name.startsWith(STAGING_PREFIX) && removeIfEmptyFolder(join(stagingDir, name))) removed++;
  }
  return removed;
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
