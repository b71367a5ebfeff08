/**
 * The spool protocol: every transition of a task file, for producers, the
 * daemon and the `spool` commands alike. Each step that moves a task is one
 * rename(2), atomic on one filesystem (local, or NFS between hosts): of several
 * processes renaming the same source, exactly one succeeds and the others get
 * ENOENT. A crash after any system call below leaves the task in exactly one
 * place, under exactly one name; the table says where, and who picks it up.
 * SPOOL-FORMAT.md, "State changes", carries the same table; keep the two in step.
 *
 * O = a live owner (daemon process), D = a dead one; N = a task file name,
 * N' = the same task renamed (spool/name.ts renameTask). "scan" is a running
 * daemon's listing of incoming/ (watch, then every --scan-interval);
 * "start-up scan" also lists pending/. Debris = a file that is no task.
 *
 *   step         system calls, in order                      a crash after the call leaves           who picks it up
 *   enqueue      1 open tmp/N O_CREAT|O_EXCL, write,         tmp/N: not enqueued (debris)             tmp/ sweep, once over an hour old
 *                  [fsync], close
 *                2 rename tmp/N -> incoming/N                incoming/N: enqueued                     any daemon's watch or scan
 *                3 [fsync incoming/]                         the same, durable                        -
 *   accept       rename incoming/N -> pending/N              pending/N                                the start-up scan; running daemons on seeing pending/ change
 *   claim        rename incoming/N|pending/N -> active/O/N   active/D/N                               reclaim, once D's lock is stale
 *   release      rename active/O/N -> incoming/N             incoming/N, attempt not counted          any daemon's watch or scan
 *   finish       unlink active/O/N                           nothing: done                            -
 *                then, for a task that failed before and keeps no result: unlink state/<id>.json (best effort;
 *                a crash first leaves an orphan record that nothing reads)
 *     --archive  rename active/O/N -> archive/N              archive/N: done                          - (spool rm)
 *   retry later  rename active/O/N -> pending/N'(due, aN+1)  pending/N'                               the daemon's queue; else the start-up scan
 *   bury         1 open state/.record-P-X O_EXCL, write      active/D/N, and debris                   reclaim (runs again, counted); record sweep
 *                2 rename .record-P-X -> state/<id>.json     active/D/N, its failure record           reclaim; the record is rewritten by the next failure
 *                3 rename active/O/N -> dead/N'(aN+1)        dead/N': a dead letter, with its record  - (spool retry, spool rm)
 *   quarantine   1 open quarantine/.record-P-X O_EXCL, write the file where it was, and debris        the next scan quarantines it again; record sweep
 *                2 rename .record-P-X -> quarantine/Q.reason.json
 *                                                            the file where it was, an orphan reason  the next scan quarantines it again (a valid
 *                                                                                                     task name overwrites the reason; a bad one leaves it)
 *                3 rename F/N -> quarantine/Q                quarantine/Q with its reason             - (spool rm)
 *   revoke       1 rename F/N -> tmp/.revoked-P-X            tmp/.revoked-P-X: revoked, never runs    tmp/ sweep, once over an hour old
 *                  (F: incoming, pending, dead, quarantine, archive; never active)
 *                2 [unlink quarantine/Q.reason.json]         tmp/.revoked-P-X                         tmp/ sweep
 *                3 unlink tmp/.revoked-P-X (a directory:     gone, its failure record orphaned        nothing reads an orphan record
 *                  emptied by /proc/self/fd/, then rmdir)
 *                4 unlink state/<id>.json (best effort)      gone                                     -
 *   revive       1 rename dead/N -> incoming/N'(now, a0)     incoming/N', its old failure record     any daemon's watch or scan; the record is
 *                                                                                                     rewritten by its next bury (else an orphan: harmless)
 *                2 unlink state/<id>.json (best effort)      incoming/N'                              any daemon's watch or scan
 *   bury an      1 claim (as above)                          active/D/N                               reclaim (attempt counted: harmless, it is
 *   unknown task 2, 3 as bury, attempts unchanged            as bury                                  dead-lettered again by the next sweep)
 *   expire       1 unlink dead/N or archive/N                gone, its failure record orphaned        nothing reads an orphan record
 *   (retention,  2 unlink state/<id>.json (best effort)      gone                                     -
 *   purge)
 *   reclaim      1 rename active/D/N -> incoming/N'(now,     each file in incoming/ or still in       the next reclaim (any daemon's scan), per file
 *                  aN+1), per file                           active/D/
 *                2 rmdir active/D                            an orphan lock (debris)                  nobody: harmless (owner ids are never reused)
 *                3 rmdir locks/owner-D.lock                  nothing                                  -
 *   keep result  1 open results/.record-P-X O_EXCL, write,   active/D/N, and debris                   reclaim (runs again, counted); record sweep
 *   (before        futimes(mtime = keep-until)
 *   finish or    2 rename .record-P-X -> results/<id>.E      active/D/N and its result: a waiter      reclaim: the task runs again (at least
 *   bury; only                                               may have seen it, yet the task runs      once, as always), and its new ending
 *   tasks that                                               again                                    replaces the record
 *   keep one)    3 finish or bury, as above                  as above, with the result kept           -
 *   expire       unlink results/<id>.E (mtime passed)        nothing                                  -
 *   result
 *   note failure 1 open state/.record-P-X O_EXCL, write      active/D/N, and debris                   reclaim (runs again, counted); record sweep
 *   (each failed 2 rename .record-P-X -> state/<id>.json     active/D/N, its attempt noted            reclaim (the attempt is counted once more)
 *   attempt, then 3 retry later or bury, as above
 *   retry later)
 *   compact      1 mkdir state/.compact-incoming-P, chown,   an empty staging folder (debris)         the next compaction by any daemon (rmdir)
 *   (a drained     chmod (the old folder's owner and mode)
 *   incoming/,   2 open state/.recreated-incoming-DEV-INO    the staging folder and a marker naming   the same sweep (a marker naming no folder in
 *   alone, local   O_EXCL, close (names the staging folder)  it, not in place                          place, a minute old: unlink)
 *                3 rename .compact-incoming-P -> incoming    a new empty incoming/ with its marker     other daemons follow it at their next folder
 *                  (spool/compact-folder.ts)                 (rename onto a directory succeeds only   check (the marker names it); no task was in the
 *                                                            if it is empty)                          old one (a task that arrived first fails the
 *                                                                                                     swap: rmdir 1, unlink 2)
 *                4 unlink this folder's other markers        stale markers                            the next compaction's sweep
 *   incoming/,   2 rename .compact-incoming-P -> incoming    a new empty incoming/ (rename onto a     nobody needs to: no task was in it (a task
 *   alone, local   (spool/compact-folder.ts)                 directory succeeds only if it is empty)  that arrived first fails the swap: rmdir 1)
 *   take limits  1 once per runner process: open             active/D/N, an empty hold file           reclaim of D (its hold files last)
 *                  limits/hold~O~<pid> O_CREAT|O_EXCL
 *   (a limited   2 link hold -> limits/<scope>~<k>, per limit active/D/N and its slots                  reclaim of D: slots with the inode of a
 *   task, after    (k = 0.. until no EEXIST; a rate token:                                            hold~D~* file, then those hold files
 *   its claim;     limits/r~..~<window end>~<k>)
 *   spool/       3 a limit is full: unlink the slots taken,   incoming/N (released), or as 1-2         any daemon's scan; as above
 *   limits.ts)     then release (above)
 *   release      per slot: lstat, unlink if still the hold    the slots left                           reclaim of D; a live owner: its graceful
 *   limits         file's inode (after the task's last move)                                          stop, or its main thread when the worker died
 *   sweep tokens unlink limits/r~..~<end>~<k>, <end> + 1 min  nothing                                  -
 *   reclaim      0 free D's slots (take limits, above)        the same                                 the next reclaim, while D's lock remains
 *   cancel       (a running task: spool/cancel.ts)
 *   request      open cancel/<id> O_CREAT|O_EXCL|O_NOFOLLOW,  the request (an empty file)              the daemon holding <id>, at its next check
 *                  close (by the canceller)                                                           (every 250 ms); stale after 10 min
 *   cancelled    1 (daemon) abort, kill after --kill-grace,   active/O/N (claimed)                     reclaim (the task runs again, attempt
 *                  then finish (unlink or --archive rename)                                           counted, and is cancelled by its next daemon)
 *                2 unlink cancel/<id>                         done; the request if the daemon died     removed as stale after 10 min
 *   (a waiting task is cancelled by revoke, above)
 *   enqueue a    1 open schedules/.stage-P-X-N O_EXCL,       debris; the slot not taken               the stage sweep, once over an hour old; the slot:
 *   slot (a        write, [fsync], close                                                              whichever daemon serves the schedule, now or by catch-up
 *   schedule's   2 link .stage-P-X-N -> schedules/S/<slot>   one file under two names, the stage      any daemon serving the spool: its stage scan renames
 *   task:          (EEXIST: the slot is taken; unlink the      and the marker (link count 2)            a stage with a link count of 2 into incoming/ (of
 *   spooler/       stage instead)                                                                     racing renames one wins; the loser sees ENOENT)
 *   schedule/)   3 rename .stage-P-X-N -> incoming/N         incoming/N, and its marker (count 2;     any daemon's watch or scan
 *                                                            1 once the task has finished)
 *     without    1 open schedules/S/<slot> O_EXCL, close     the slot taken, no task: LOST            nobody (the window of a few calls, documented)
 *     link() (or 2 enqueue (above: tmp/N, incoming/N)        as enqueue                               as enqueue
 *     uncounted links: sshfs)
 *   skip a slot  open schedules/S/<slot> O_EXCL, close       the slot taken, no task (as meant)       -
 *   (paused)
 *   prune        unlink schedules/S/<slot>: link count 1,    fewer markers                            -
 *   markers        over an hour old, not the newest few
 *   expired      1 claim (as above); body read, not run          active/D/N                               reclaim (found expired again by its next claimer)
 *   (claimed     2 [keep result, ending expired], then finish    done, never run                          -
 *   past its       (unlink, or the --archive rename)
 *   expires time)
 *   unique keys  enqueue with a key, replace a holder, release a key: spool/unique.ts has their table (the task
 *                file's own moves there are this table's enqueue and revoke)
 *
 * Released and reclaimed tasks go to incoming/ rather than pending/ because
 * every daemon watches incoming/: whichever is free picks them up at once.
 * Records are staged beside their target, out of tmp/ (producers can write
 * there and could replace a staged file before its rename).
 *
 * An owner is alive while it holds its proper-lockfile lock locks/owner-<id>.lock,
 * refreshed every stale/3 with the spool clock's time (spooler/owner.ts,
 * spooler/lock-fs.ts). Its claims are reclaimed only once the lock is stale
 * (by the spool clock) or gone. proper-lockfile's takeover race (#121) cannot
 * double-run a task here: the lock is only consulted to decide *whether* to
 * reclaim; the reclaim itself is a rename per file, which only one process can win.
 *
 * Every function here but writeTask is synchronous, and touches only the paths it is given
 * (the callers check the folders, spool/trust.ts, spooler/folders.ts).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, futimesSync, lstatSync, openSync, renameSync, rmdirSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, sep } from 'node:path';
import { removeFailureRecord } from './failure-record.js';
import { parseResultFileName, readResultFile } from './results.js';
import { QUARANTINE_REASON_SUFFIX, type SpoolLayout, type TaskLocation } from './layout.js';
import { ATTEMPTS_MAX, fileNameOf, parseTaskName, renameTask, type TaskName } from './name.js';
import { removeTree } from './remove-tree.js';

/** The two folders a task waits in before it is claimed. */
export type PendingDir = Extract<TaskLocation, 'incoming' | 'pending'>;

/** How old debris in tmp/ (staging files, revoked files) and staged records get before a sweep deletes them: a younger one may be a write under way. */
export const DEBRIS_AGE_MS = 3_600_000;
/** The name a record has while it is written, beside its target (see the table: bury, quarantine). */
export const RECORD_STAGING_PREFIX = '.record-';
/** The name a revoked file has in tmp/ between being taken out and deleted. */
export const REVOKED_PREFIX = '.revoked-';

/* ------------------------------------------------------------------ enqueue */

export interface WriteOptions {
  /** Flush data and directory to disk before returning (default false). */
  fsync?: boolean;
}

/** open(2) flags of 'wx', as a number: Node parses a flag string on every call. */
const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;

/**
 * Paths inside a spool directory. A task file name never holds a separator (its
 * pattern forbids one), so plain concatenation gives what path.join would, at a
 * tenth of the cost: join normalises, and took ~2 µs of a bulk enqueue's ~20.
 */
function inside(dir: string, fileName: string): string {
  return dir + sep + fileName;
}

/**
 * Enqueues: writes `bytes` as incoming/<fileName> by way of tmp/ (a reader sees
 * no file or the whole file). With `fsync`, the file's data is flushed before
 * the rename and incoming/ after it, so the task also survives a power failure
 * (about 1 ms per task on ext4 here, against ~40 µs without). Returns the final path.
 */
export function writeTaskSync(layout: SpoolLayout, fileName: string, bytes: Uint8Array, options: WriteOptions = {}): string {
  stageTaskSync(layout, fileName, bytes, options);
  let target: string;
  try {
    target = publishStagedSync(layout, fileName);
  } catch (err) {
    discardStagedSync(layout, fileName);
    throw err;
  }
  if (options.fsync) fsyncDirSync(layout.incoming);
  return target;
}

/**
 * Enqueue, call 1: writes tmp/<fileName>, invisible to daemons. Created with
 * O_EXCL, so two writers can never share one. On failure nothing is left behind.
 */
export function stageTaskSync(layout: SpoolLayout, fileName: string, bytes: Uint8Array, options: WriteOptions = {}): void {
  const staged = inside(layout.tmp, fileName);
  const fd = openSync(staged, CREATE_NEW, 0o666);
  try {
    writeAllSync(fd, bytes);
    if (options.fsync) fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkQuietly(staged);
    throw err;
  }
  closeSync(fd);
}

/** Enqueue, call 2: renames tmp/<fileName> into incoming/. On failure the staged file is left for the caller. */
export function publishStagedSync(layout: SpoolLayout, fileName: string): string {
  const target = inside(layout.incoming, fileName);
  renameSync(inside(layout.tmp, fileName), target);
  return target;
}

/** Deletes a staged file that will not be published. */
export function discardStagedSync(layout: SpoolLayout, fileName: string): void {
  unlinkQuietly(inside(layout.tmp, fileName));
}

/**
 * Takes a published task back before any daemon claimed it: the same rename a
 * claim is, into tmp/, then unlink. False when a daemon (or `spool rm`) got it first.
 */
export function withdrawPublishedSync(layout: SpoolLayout, fileName: string): boolean {
  const staged = inside(layout.tmp, fileName);
  try {
    renameSync(inside(layout.incoming, fileName), staged);
  } catch {
    return false;
  }
  unlinkQuietly(staged);
  return true;
}

/** Enqueue with non-blocking calls: the same steps as writeTaskSync. */
export async function writeTask(layout: SpoolLayout, fileName: string, bytes: Uint8Array, options: WriteOptions = {}): Promise<string> {
  const staged = inside(layout.tmp, fileName);
  const target = inside(layout.incoming, fileName);
  const handle = await open(staged, CREATE_NEW, 0o666);
  try {
    await handle.writeFile(bytes);
    if (options.fsync) await handle.sync();
  } catch (err) {
    await handle.close();
    await unlink(staged).catch(() => undefined);
    throw err;
  }
  await handle.close();
  try {
    await rename(staged, target);
  } catch (err) {
    await unlink(staged).catch(() => undefined);
    throw err;
  }
  if (options.fsync) fsyncDirSync(layout.incoming);
  return target;
}

function writeAllSync(fd: number, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
}

export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/* ---------------------------------------------------------- accept, claim */

/** Moves a task that is not yet due out of the watched incoming/ directory. False if it was gone. */
export function accept(layout: SpoolLayout, fileName: string): boolean {
  return renameIfPresent(layout.incoming + sep + fileName, layout.pending + sep + fileName);
}

const INCOMING_THEN_PENDING = ['incoming', 'pending'] as const;
const PENDING_ONLY = ['pending'] as const;

/** Not claimed: another process got it, or (ownerGone) our own claim directory is gone, so no claim can succeed. */
export type ClaimResult = { claimed: true; path: string; from: PendingDir } | { claimed: false; ownerGone?: true };

/** The directories a claim takes tasks from (a SpoolLayout, or the same paths sent to a file-ops thread). */
export type ClaimSources = Readonly<Record<PendingDir, string>>;

/**
 * Claims a pending task for `owner`. Not claimed means another process got it (or it was revoked), or with ownerGone that our claim directory is gone.
 * `ownerPath` is the claim directory's real path when `ownerDir` is a directory handle's (spooler/dir-handles.ts).
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

/* ------------------------------------------- what becomes of a claimed task */

/** Puts a claimed task back into incoming/, unchanged: shutdown, or a file still being written in place. */
export function release(claimedPath: string, layout: SpoolLayout): boolean {
  return renameIfPresent(claimedPath, inside(layout.incoming, fileNameOf(claimedPath)));
}

/** Reschedules a claimed task: new due time, one more attempt. Returns the new file name, or undefined if the claim was gone. */
export function retryLater(claimedPath: string, layout: SpoolLayout, due: number): string | undefined {
  const name = parseTaskName(fileNameOf(claimedPath))!;
  const next = renameTask(name, { due, attempts: name.attempts + 1 });
  return renameIfPresent(claimedPath, join(layout.pending, next)) ? next : undefined;
}

/** Ends a processed or skipped task: removed, or (`archive`, the daemon's --archive) kept in archive/. False if the claim was gone. */
export function finish(claimedPath: string, layout: SpoolLayout, archive: boolean): boolean {
  if (archive) return renameIfPresent(claimedPath, join(layout.archive, fileNameOf(claimedPath)));
  return removeClaimed(claimedPath);
}

/** finish without --archive: deletes a processed or skipped task. False if it was gone already (reclaimed by another daemon). */
export function removeClaimed(claimedPath: string): boolean {
  try {
    unlinkSync(claimedPath);
    return true;
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
}

export interface FailureRecord {
  id: string;
  name: string;
  attempts: number;
  at: number;
  error: { name?: string; message: string; stack?: string };
  /** Each failed attempt, oldest first, the last FAILURE_HISTORY_MAX kept (spool/failure-record.ts). */
  history?: AttemptFailure[];
  /** A task that failed for good (failed(reason), PermanentError, noRetryOn): why. */
  reason?: string;
}

/** One failed attempt in state/<id>.json's history: its error without the stack (the record's `error` has the last one's). */
export interface AttemptFailure {
  attempt: number;
  at: number;
  /** The daemon (owner id) that ran it. */
  owner?: string;
  error: { name?: string; message: string };
  /** When it is due again; absent when it became a dead letter. */
  retryAt?: number;
}

/** Moves a task that used up its retries to dead/, after writing why to state/<id>.json. Returns the new name, or undefined if the claim was gone. */
export function bury(claimedPath: string, layout: SpoolLayout, record: FailureRecord): string | undefined {
  writeFailureRecord(layout, record);
  const next = renameTask(parseTaskName(fileNameOf(claimedPath))!, { attempts: record.attempts });
  return renameIfPresent(claimedPath, join(layout.dead, next)) ? next : undefined;
}

/**
 * Dead-letters a task no daemon runs (spooler/unknown-tasks.ts) from where it
 * waits (incoming/ or pending/): claimed first, as any claim, so that it is
 * ours alone, then buried as a task out of retries is (its record first; its
 * attempts unchanged: it never ran). A bury that throws (a full disk) puts the
 * claim back where it waited. Returns the dead letter's name, or undefined when
 * another process took the task first.
 */
export function buryUnclaimed(layout: SpoolLayout, ownerDir: string, fileName: string, dir: PendingDir, record: FailureRecord): string | undefined {
  const claimed = claim(layout, ownerDir, fileName, dir);
  if (!claimed.claimed) return undefined;
  try {
    return bury(claimed.path, layout, record);
  } catch (err) {
    renameIfPresent(claimed.path, join(layout.incoming, fileName));
    throw err;
  }
}

/**
 * Deletes a dead letter or an archived task past its retention (spooler/retention.ts),
 * then its failure record. `path` is a regular file the caller lstat()ed in
 * dead/ or archive/. Returns false when it was gone (retried or removed meanwhile;
 * its record is then left alone).
 */
export function expire(layout: SpoolLayout, path: string, id: string | undefined): boolean {
  try {
    unlinkSync(path);
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
  if (id !== undefined) removeFailureRecord(layout, id);
  return true;
}

/** state/<id>.json: the last failure of a task, kept while it is retried and after it is dead (read by spool/failure-record.ts). */
export function writeFailureRecord(layout: SpoolLayout, record: FailureRecord): void {
  writeJsonAtomic(join(layout.state, `${record.id}.json`), record);
}

/**
 * Writes JSON to `target` atomically: a dot-file beside it first, then rename
 * (in the target's own daemon-only folder, not in tmp/, which producers can
 * write: there they could replace the staged file before the rename).
 * On any failure the staged file is deleted.
 */
export function writeJsonAtomic(target: string, value: unknown): void {
  const staged = join(dirname(target), `${RECORD_STAGING_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    writeFileSync(staged, JSON.stringify(value) + '\n', { flag: 'wx' });
    renameSync(staged, target);
  } catch (err) {
    // A full disk fails the write after the file was created, and a rename can fail on its own.
    unlinkQuietly(staged);
    throw err;
  }
}

/* ----------------------------------------------------------------- results */

/**
 * Keeps how a task ended as results/<fileName> (spool/results.ts builds the
 * bytes): staged beside it, its mtime set to `keepUntil` (the sweep reads
 * expiry from the mtime alone), then renamed into place, so a reader sees no
 * record or the whole one. Called before the task's file is finished or
 * buried (see the table). On any failure the staged file is deleted and the
 * error thrown: the caller logs it and settles the task anyway.
 */
export function keepResult(layout: SpoolLayout, fileName: string, bytes: Uint8Array, keepUntil: number): void {
  const staged = inside(layout.results, `${RECORD_STAGING_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  const fd = openSync(staged, CREATE_NEW, 0o640);
  try {
    writeAllSync(fd, bytes);
    const seconds = keepUntil / 1000;
    futimesSync(fd, seconds, seconds);
    closeSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkQuietly(staged);
    throw err;
  }
  try {
    renameSync(staged, inside(layout.results, fileName));
  } catch (err) {
    unlinkQuietly(staged);
    throw err;
  }
}

/**
 * The result sweep: deletes the records among `names` (the listing of
 * results/) whose mtime, their keep-until time, is before `now`. One lstat
 * per record, no read. Returns how many it deleted.
 */
export function sweepExpiredResults(layout: SpoolLayout, names: readonly string[], now: number): number {
  let deleted = 0;
  for (const n of names) {
    if (n.startsWith(RECORD_STAGING_PREFIX)) continue;
    const path = inside(layout.results, n);
    try {
      const st = lstatSync(path);
      if (!st.isFile() || st.mtimeMs >= now) continue;
      // A task that failed before it ended keeps its attempts' record while its result is kept; a dead
      // letter's record stays with it in dead/ (the retention of dead/ removes it).
      const parsed = parseResultFileName(n);
      const read = parsed === undefined ? undefined : readResultFile(path, parsed.encoding);
      unlinkSync(path);
      deleted++;
      if (read?.ok === true && read.record.ending !== 'dead') removeFailureRecord(layout, read.record.id);
    } catch {
      // Replaced by a newer record or removed meanwhile.
    }
  }
  return deleted;
}

/* ------------------------------------------------------------- quarantine */

/**
 * The longest file name a quarantined file may have: its reason file adds
 * QUARANTINE_REASON_SUFFIX, and both must fit the 255 bytes Linux filesystems allow.
 */
const QUARANTINE_NAME_MAX_BYTES = 255 - Buffer.byteLength(QUARANTINE_REASON_SUFFIX);

/**
 * The name a file gets in quarantine/. A valid task name is kept (its id makes it
 * unique, and it fits). Anything else gets a `<ms>-<6 hex>-` prefix so two bad
 * files never collide, and is cut to QUARANTINE_NAME_MAX_BYTES (at a character
 * boundary): the full original name is kept in the reason file.
 */
function quarantineName(fileName: string, now: number): string {
  if (parseTaskName(fileName)) return fileName;
  const prefix = `${now}-${randomBytes(3).toString('hex')}-`;
  // One byte spare for the "_" that keeps a name from ending like a reason file.
  let tail = fileName;
  const room = QUARANTINE_NAME_MAX_BYTES - 1 - prefix.length;
  if (Buffer.byteLength(tail) > room) tail = cutToBytes(tail, room);
  let name = prefix + tail;
  if (name.endsWith(QUARANTINE_REASON_SUFFIX)) name += '_';
  return name;
}

/** The longest start of `s` that takes at most `max` bytes in UTF-8, never splitting a character. */
function cutToBytes(s: string, max: number): string {
  let bytes = 0;
  let end = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > max) break;
    bytes += n;
    end += ch.length;
  }
  return s.slice(0, end);
}

/**
 * Moves a file that is not a valid task into quarantine/, after writing the
 * reason beside it. The file is renamed, never read or copied, so nothing of its
 * content (or of a symlink's target) leaves it. Returns the quarantined path, or
 * undefined when the file was gone (its reason is deleted again).
 */
export function quarantine(layout: SpoolLayout, path: string, fileName: string, reason: string, from: string, now: number): string | undefined {
  const targetPath = join(layout.quarantine, quarantineName(fileName, now));
  const sidecar = targetPath + QUARANTINE_REASON_SUFFIX;
  writeJsonAtomic(sidecar, { reason, from, file: fileName, at: now });
  try {
    renameSync(path, targetPath);
    return targetPath;
  } catch (err) {
    unlinkQuietly(sidecar);
    if (isMissing(err)) return undefined;
    throw err;
  }
}

/* --------------------------------------------------------- revoke, revive */

/** What revoke takes out: the first of `paths` still there (a task accepted meanwhile is under the same name in pending/). */
export interface RevokeTarget {
  paths: readonly string[];
  /** A quarantined entry: its reason file goes too. */
  quarantined: boolean;
  /** The task's id, when it has one: its failure record goes too. */
  id?: string;
  /** Called with the file taken out (in tmp/) and its name in the spool, before it is deleted: what else it held goes too. */
  beforeDelete?: (revoked: string, fileName: string) => void;
}

export type RevokeResult =
  | { kind: 'revoked' }
  /** None of the paths was there: claimed by a daemon, or moved or removed by someone else. */
  | { kind: 'absent' }
  /** Taken out of the spool (it will never run) but not deleted: `path` is where it is. */
  | { kind: 'stranded'; path: string; error: Error };

/**
 * `spool rm`: takes an entry out of the spool with the rename a claim is (so
 * either a daemon or this gets it, never both), into tmp/ where no daemon
 * looks, then deletes it. Never give it a path under active/.
 */
export function revoke(layout: SpoolLayout, target: RevokeTarget): RevokeResult {
  // Not named after the entry: a quarantined name may take all 255 bytes a name can have.
  const revoked = join(layout.tmp, `${REVOKED_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
  const taken = target.paths.find((path) => renameIfPresent(path, revoked));
  if (taken === undefined) return { kind: 'absent' };
  if (target.quarantined) unlinkQuietly(taken + QUARANTINE_REASON_SUFFIX);
  target.beforeDelete?.(revoked, basename(taken));
  try {
    // A quarantined entry may be a directory (dropped into incoming/ whole), possibly still written into.
    removeTree(revoked);
  } catch (err) {
    return { kind: 'stranded', path: revoked, error: err as Error };
  }
  // The task is gone for good: its last error is of no more use. Best effort (state/ may not be the remover's to write).
  if (target.id !== undefined) removeFailureRecord(layout, target.id);
  return { kind: 'revoked' };
}

/**
 * `spool retry`: puts a dead letter back into incoming/, due `now`, with its
 * attempts at 0 (a fresh retry budget), then deletes its failure record: the
 * task starts afresh, and a record kept would outlive it once it succeeds
 * (no command leaves an orphan record). False if it was gone from dead/.
 * Throws when incoming/ is missing (rename says ENOENT for that too).
 */
export function revive(layout: SpoolLayout, deadPath: string, task: TaskName, now: number): boolean {
  try {
    renameSync(deadPath, join(layout.incoming, renameTask(task, { due: now, attempts: 0 })));
    // A fresh start: the record would outlive a revived task that then succeeds (best effort, as for revoke).
    removeFailureRecord(layout, task.id);
    return true;
  } catch (err) {
    if (!isMissing(err) || existsNoFollow(deadPath)) throw err;
    return false;
  }
}

/* ----------------------------------------------------------------- recovery */

/** What proper-lockfile locks for owner `id`: its lock is this path + '.lock' (spooler/owner.ts). */
export const ownerLockTarget = (layout: SpoolLayout, id: string): string => join(layout.locks, `owner-${id}`);
/** The liveness lock directory of owner `id`. */
export const ownerLockPath = (layout: SpoolLayout, id: string): string => `${ownerLockTarget(layout, id)}.lock`;

/**
 * Returns every task of a dead owner to incoming/, counting the attempt it was
 * lost in, then removes the owner's claim directory and its lock. `names` is
 * the listing of `ownerDir` (active/<id>/). Returns the new file names (for the
 * reclaiming daemon's queue).
 */
export function reclaimOwner(layout: SpoolLayout, ownerDir: string, names: readonly string[], now: number): string[] {
  const reclaimed: string[] = [];
  for (const fileName of names) {
    const name = parseTaskName(fileName);
    // Anything else in a claim directory came from a bad file being claimed: quarantine handles it at next claim.
    const next = name ? renameTask(name, { due: now, attempts: Math.min(name.attempts + 1, ATTEMPTS_MAX) }) : fileName;
    if (renameIfPresent(join(ownerDir, fileName), join(layout.incoming, next))) reclaimed.push(next);
  }
  try {
    rmdirSync(ownerDir);
  } catch {
    // Not empty (its owner came back, or a file arrived meanwhile) or already gone: the next scan sees it.
  }
  removeOwnerLock(layout, fileNameOf(ownerDir));
  return reclaimed;
}

/** Removes a dead owner's lock directory once its claims are reclaimed. */
function removeOwnerLock(layout: SpoolLayout, id: string): void {
  try {
    rmdirSync(ownerLockPath(layout, id));
  } catch {
    // Already gone, or taken over meanwhile.
  }
}

/**
 * The tmp/ sweep: deletes what is older than DEBRIS_AGE_MS in tmp/ (`names`,
 * its listing): a producer's staging file it never renamed, a revoked file
 * whose delete was cut short. A younger one may be a write under way.
 */
export function sweepTmp(layout: SpoolLayout, names: readonly string[], now: number): void {
  for (const n of names) {
    const path = join(layout.tmp, n);
    try {
      const st = lstatSync(path);
      if (now - st.mtimeMs <= DEBRIS_AGE_MS) continue;
      // A revoked quarantined directory is removed whole (never following a link); anything else is unlinked.
      if (st.isDirectory() && n.startsWith(REVOKED_PREFIX)) removeTree(path);
      else unlinkSync(path);
    } catch {
      // Renamed by its producer meanwhile, or not ours to delete.
    }
  }
}

/** The record sweep: deletes staged records (`.record-*` files among `names`, the listing of `dir`: state/ or quarantine/) older than DEBRIS_AGE_MS. */
export function sweepRecordDebris(dir: string, names: readonly string[], now: number): void {
  for (const n of names) {
    if (!n.startsWith(RECORD_STAGING_PREFIX)) continue;
    const path = join(dir, n);
    try {
      const st = lstatSync(path);
      if (st.isFile() && now - st.mtimeMs > DEBRIS_AGE_MS) unlinkSync(path);
    } catch {
      // Renamed into place meanwhile.
    }
  }
}

/* ------------------------------------------------------- slots of schedules */

/* A slot's task is enqueued by spool/enqueue-once.ts (the table's "enqueue once" rows). */

/**
 * Deletes the markers of schedules/S/ that no one needs any more: those of
 * slots over `keepMs` before `now` whose task has ended (link count 1; a skipped
 * slot's marker too), except the newest `keepNewest` (the newest marker says
 * which slot ran last, for catch-up). `markers` is the listing of the folder,
 * marker names only, oldest first. Returns how many it deleted.
 */
export function pruneMarkers(scheduleDir: string, markers: readonly string[], slotOf: (name: string) => number, now: number, keepMs: number, keepNewest: number): number {
  let pruned = 0;
  for (let i = 0; i < markers.length - keepNewest; i++) {
    const m = markers[i]!;
    if (slotOf(m) >= now - keepMs) break;
    const path = inside(scheduleDir, m);
    try {
      const st = lstatSync(path);
      if (!st.isFile() || st.nlink !== 1) continue;
      unlinkSync(path);
      pruned++;
    } catch {
      // Gone meanwhile (another daemon pruned it).
    }
  }
  return pruned;
}

/* ------------------------------------------------------------------ helpers */

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

/** Whether anything (a link included, never followed) has this path. */
export function existsNoFollow(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Nothing there: nothing to clean (a staging file is debris either way, and swept).
  }
}

const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === 'ENOENT';

