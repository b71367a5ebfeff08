/**
 * The claim protocol: how tasks move between directories. Every step is one
 * rename(2), which is atomic on one filesystem (local, or NFS between hosts):
 * of several processes renaming the same source, exactly one succeeds and the
 * others get ENOENT. A crash between two steps leaves the file in exactly one
 * place, under exactly one name; the table says who picks it up.
 *
 *   step                     rename                                         a crash after it leaves the task...
 *   accept (future task)     incoming/N        -> pending/N                 pending; found by the next daemon's start-up scan
 *   claim                    incoming|pending/N -> active/<owner>/N         claimed by a dead owner; reclaimed after the stale time
 *   finish (processed)       unlink active/<owner>/N (or -> archive/N)      done
 *   retry                    active/<owner>/N  -> pending/N' (due, aN+1)    pending
 *   dead letter              write state/<id>.json, then
 *                            active/<owner>/N  -> dead/N' (aN+1)            claimed (error record orphaned, rewritten on the next failure)
 *   release (shutdown)       active/<owner>/N  -> incoming/N                pending, attempt not counted
 *   reclaim (owner is dead)  active/<dead>/N   -> incoming/N' (now, aN+1)   pending, attempt counted
 *
 * Released and reclaimed tasks go to incoming/ rather than pending/ because
 * every daemon watches incoming/: whichever is free picks them up at once.
 *
 * An owner is alive while it holds its proper-lockfile lock locks/owner-<id>.lock,
 * refreshed every stale/3 with the spool clock's time (owner.ts, lock-fs.ts).
 * Its claims are reclaimed only once the lock is stale (by the spool clock)
 * or gone. proper-lockfile's takeover race (#121) cannot double-run a task here:
 * the lock is only consulted to decide *whether* to reclaim; the reclaim itself
 * is a rename per file, which only one process can win.
 */
import { renameSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { join, sep } from 'node:path';
import type { SpoolLayout } from '../spool/layout.js';
import { parseTaskName, renameTask } from '../spool/name.js';
import { writeFailureRecord, type FailureRecord } from './records.js';
import type { PendingDir } from './order/task-queue.js';

const INCOMING_THEN_PENDING = ['incoming', 'pending'] as const;
const PENDING_ONLY = ['pending'] as const;

/** Not claimed: another process got it, or (ownerGone) our own claim directory is gone, so no claim can succeed. */
export type ClaimResult = { claimed: true; path: string; from: PendingDir } | { claimed: false; ownerGone?: true };

/** The directories a claim takes tasks from (a SpoolLayout, or the same paths sent to a file-ops thread). */
export type ClaimSources = Readonly<Record<PendingDir, string>>;

/**
 * Claims a pending task for `owner`. Not claimed means another process got it (or it was revoked), or with ownerGone that our claim directory is gone.
 * `ownerPath` is the claim directory's real path when `ownerDir` is a directory handle's (dir-handles.ts).
 */
export function claim(layout: ClaimSources, ownerDir: string, fileName: string, dir: PendingDir, ownerPath: string = ownerDir): ClaimResult {
  // Concatenated, not join()ed: a file name from a directory listing holds no separator, and
  // join's normalising cost ~1 µs per path on a path taken for every task.
  const target = ownerDir + sep + fileName;
  for (const from of dir === 'incoming' ? INCOMING_THEN_PENDING : PENDING_ONLY) {
    try {
      renameSync(layout[from] + sep + fileName, target);
      return { claimed: true, path: target, from };
    } catch (err) {
      if (!isMissing(err)) throw err;
      // Another daemon may have accepted it from incoming/ into pending/: try there once.
    }
  }
  // Over NFS a retransmitted rename can report ENOENT although the first transmission succeeded.
  if (exists(target)) return { claimed: true, path: target, from: dir };
  // rename(2) says ENOENT for a missing target directory too: another daemon reclaimed our claims and
  // removed it (we were stalled past the stale time). Taken for lost races, every claim would fail
  // silently forever. Checked here only, on the failure path: a won claim costs nothing more.
  return exists(ownerPath) ? { claimed: false } : { claimed: false, ownerGone: true };
}

/** Moves a task that is not yet due out of the watched incoming/ directory. */
export function accept(layout: SpoolLayout, fileName: string): boolean {
  return renameIfPresent(layout.incoming + sep + fileName, layout.pending + sep + fileName);
}

/** Puts a claimed task back, unchanged: shutdown, or a file still being written in place. */
export function release(claimedPath: string, layout: SpoolLayout, to: PendingDir = 'incoming'): boolean {
  const fileName = claimedPath.slice(claimedPath.lastIndexOf('/') + 1);
  return renameIfPresent(claimedPath, join(layout[to], fileName));
}

/** Reschedules a claimed task: new due time, one more attempt. Returns the new file name. */
export function retryLater(claimedPath: string, layout: SpoolLayout, due: number): string | undefined {
  const fileName = claimedPath.slice(claimedPath.lastIndexOf('/') + 1);
  const name = parseTaskName(fileName)!;
  const next = renameTask(name, { due, attempts: name.attempts + 1 });
  return renameIfPresent(claimedPath, join(layout.pending, next)) ? next : undefined;
}

/** Ends a processed or skipped task: removed, or kept in archive/. */
export function finish(claimedPath: string, layout: SpoolLayout, archive: boolean): boolean {
  if (archive) return renameIfPresent(claimedPath, join(layout.archive, claimedPath.slice(claimedPath.lastIndexOf('/') + 1)));
  return removeClaimed(claimedPath);
}

/** Deletes a processed or skipped task. False if it was gone already (reclaimed by another daemon). */
export function removeClaimed(claimedPath: string): boolean {
  try {
    unlinkSync(claimedPath);
    return true;
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
}

/** Moves a task that used up its retries to dead/, after writing why to state/<id>.json. */
export function bury(claimedPath: string, layout: SpoolLayout, record: FailureRecord): string | undefined {
  writeFailureRecord(layout, record);
  const fileName = claimedPath.slice(claimedPath.lastIndexOf('/') + 1);
  const next = renameTask(parseTaskName(fileName)!, { attempts: record.attempts });
  return renameIfPresent(claimedPath, join(layout.dead, next)) ? next : undefined;
}

/**
 * Returns every task of a dead owner to incoming/, counting the attempt it was
 * lost in. Returns the new file names (for the reclaiming daemon's queue).
 */
export function reclaimOwner(layout: SpoolLayout, ownerDir: string, names: readonly string[], now: number): string[] {
  const reclaimed: string[] = [];
  for (const fileName of names) {
    const name = parseTaskName(fileName);
    // Anything else in a claim directory came from a bad file being claimed: quarantine handles it at next claim.
    const next = name ? renameTask(name, { due: now, attempts: Math.min(name.attempts + 1, 999_999) }) : fileName;
    if (renameIfPresent(join(ownerDir, fileName), join(layout.incoming, next))) reclaimed.push(next);
  }
  try {
    rmdirSync(ownerDir);
  } catch {
    // Not empty (its owner came back, or a file arrived meanwhile) or already gone: the next scan sees it.
  }
  return reclaimed;
}

function renameIfPresent(from: string, to: string): boolean {
  try {
    renameSync(from, to);
    return true;
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

export const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === 'ENOENT';
