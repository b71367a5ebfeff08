/**
 * Enqueue once: writes a task into incoming/ at most once for a marker, however
 * many processes race to do it and wherever one of them is killed (kill -9).
 * Schedules use it for their slots (marker schedules/<S>/<slot>), chains for a
 * task's next step and its onError task (flows/<id>.next, flows/<id>.error),
 * children for a parent's continuation (flows/<P>.then).
 *
 * With hard links (spool/protocol.ts has the crash table, "enqueue once"):
 *
 *   1 open <stageDir>/.stage-<pid>-<hex>-<N> O_EXCL, write, [fsync], close
 *   2 link the stage -> the marker        only one link(2) can make it: EEXIST is
 *                                          "enqueued before", and the stage is unlinked
 *   3 rename the stage -> incoming/<N>
 *
 * The marker and the task are one inode, so the marker's link count says where
 * the task stands: 2 while it is staged or anywhere in the spool (incoming/,
 * pending/, active/, dead/, archive/: every move is a rename), 1 once it has
 * ended and its file is gone. A stage with a count of 2 is a marker's task
 * whose enqueuer died between 2 and 3: finishStagedEnqueues() renames it into
 * incoming/ (the stage scan of schedules/, the flows sweep of flows/).
 *
 * Without hard links (some FUSE mounts refuse link(2)) or where links are not
 * counted (sshfs shows a count of 1 for every file, so a stage that made its
 * marker cannot be told from debris), the marker is an empty file made with
 * O_EXCL first and the task enqueued after it: a crash between the two loses
 * that task (documented; the window is a few system calls). LinkSupport
 * remembers, per spool, that the filesystem needs this, and says so once.
 *
 * The stage lives in a daemon-only folder (schedules/, flows/), never in tmp/:
 * producers write in tmp/ and could swap the file between the link and the rename.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, linkSync, lstatSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, sep } from 'node:path';
import type { SpoolLayout } from './layout.js';
import { parseTaskName } from './name.js';
import { DEBRIS_AGE_MS, existsNoFollow, fsyncDirSync, writeTaskSync } from './protocol.js';

/** The name prefix of a staged task in a marker folder's stage folder. */
export const STAGE_PREFIX = '.stage-';
/** How old debris (a stage that made no marker) gets before the scan deletes it: a younger one may be a write under way. */
export const STAGE_DEBRIS_AGE_MS = DEBRIS_AGE_MS;
/** Stages of dead enqueuers are published once this old (the enqueuer itself takes microseconds). */
export const STAGE_GRACE_MS = 2000;

/** How an enqueue-once ended for this process. */
export type EnqueueOnceOutcome =
  /** This process made the marker and the task is in incoming/. */
  | 'enqueued'
  /** The marker exists (another process, or an earlier run of this one, enqueued it): nothing was written. */
  | 'exists';

/** The steps of an enqueue-once, for tests that kill the process between two of them. */
export type EnqueueOnceStep = 'staged' | 'linked' | 'published';

export interface EnqueueOnceRequest {
  /** The marker's folder (schedules/<S>/, flows/) and its name in it. */
  markerDir: string;
  marker: string;
  /** Where the task is staged (default markerDir): a daemon-only folder on the same filesystem as incoming/. */
  stageDir?: string;
  /** The task's file name (deterministic: the same in every process that may enqueue it) and bytes. */
  fileName: string;
  bytes: Uint8Array;
  /** Flush the file and the folders before returning. */
  fsync?: boolean;
  /** Per spool: whether the filesystem makes and counts hard links (default: the process-wide memo for this spool). */
  links?: LinkSupport;
  /** Called after each step (tests kill the process there). */
  afterStep?: (step: EnqueueOnceStep) => void;
}

/**
 * Whether a spool's filesystem makes and counts hard links, learnt from the
 * first enqueue-once that finds out otherwise; `onFallback` is told once.
 */
export class LinkSupport {
  hardLinks = true;
  constructor(private readonly onFallback?: (why: string) => void) {}

  /** From now on markers are made before their tasks (a crash between the two loses the task). */
  fallBack(why: string): void {
    if (!this.hardLinks) return;
    this.hardLinks = false;
    this.onFallback?.(why);
  }
}

const linkSupportBySpool = new Map<string, LinkSupport>();
/** The process-wide memo of one spool (by its root path). */
export function linkSupportOf(layout: SpoolLayout): LinkSupport {
  let s = linkSupportBySpool.get(layout.root);
  if (s === undefined) linkSupportBySpool.set(layout.root, (s = new LinkSupport()));
  return s;
}

const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;

/**
 * Enqueues `request.fileName` into incoming/ unless its marker exists (see the
 * top of this file). Throws on a write error (a full disk) with nothing left
 * behind but the marker where the task was already staged (then the stage scan
 * finishes it). Falls back to marker-first where links fail or are not counted.
 */
export function enqueueOnce(layout: SpoolLayout, request: EnqueueOnceRequest): EnqueueOnceOutcome {
  const links = request.links ?? linkSupportOf(layout);
  if (!links.hardLinks) return enqueueMarkerFirst(layout, request);
  try {
    return enqueueLinked(layout, request, links);
  } catch (err) {
    if (!isNoHardLinks(err) || existsNoFollow(markerPathOf(request))) throw err;
    links.fallBack(`this filesystem makes no hard links (${(err as NodeJS.ErrnoException).code}): a marker is now made before its task, so a crash between the two loses that task (SPOOL-FORMAT.md, "Enqueue once")`);
    return enqueueMarkerFirst(layout, request);
  }
}

const markerPathOf = (r: EnqueueOnceRequest): string => r.markerDir + sep + r.marker;

function enqueueLinked(layout: SpoolLayout, r: EnqueueOnceRequest, links: LinkSupport): EnqueueOnceOutcome {
  const markerPath = markerPathOf(r);
  const stage = (r.stageDir ?? r.markerDir) + sep + `${STAGE_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}-${r.fileName}`;
  const fd = openSync(stage, CREATE_NEW, 0o666);
  try {
    writeAllSync(fd, r.bytes);
    if (r.fsync) fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkQuietly(stage);
    throw err;
  }
  closeSync(fd);
  r.afterStep?.('staged');
  try {
    linkSync(stage, markerPath);
  } catch (err) {
    unlinkQuietly(stage);
    if (markerTakenAfter(err, markerPath)) return 'exists';
    throw err;
  }
  if (r.fsync) fsyncDirSync(dirname(markerPath));
  if (lstatSync(stage).nlink < 2) {
    links.fallBack('this filesystem makes hard links but does not count them (sshfs): a marker is now made before its task, so a crash between the two loses that task (SPOOL-FORMAT.md, "Enqueue once")');
  }
  r.afterStep?.('linked');
  try {
    renameSync(stage, layout.incoming + sep + r.fileName);
  } catch (err) {
    // Published by another daemon's stage scan meanwhile (this process stalled): the marker has its one task.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || existsNoFollow(stage)) throw err;
  }
  if (r.fsync) fsyncDirSync(layout.incoming);
  r.afterStep?.('published');
  return 'enqueued';
}

function enqueueMarkerFirst(layout: SpoolLayout, r: EnqueueOnceRequest): EnqueueOnceOutcome {
  if (!takeMarkerSync(markerPathOf(r))) return 'exists';
  r.afterStep?.('linked');
  writeTaskSync(layout, r.fileName, r.bytes, { fsync: r.fsync });
  r.afterStep?.('published');
  return 'enqueued';
}

/** Makes a marker with no task (a paused schedule's skipped slot; the fallback's first step): an empty file made with O_EXCL. False when it existed. */
export function takeMarkerSync(markerPath: string): boolean {
  let fd: number;
  try {
    fd = openSync(markerPath, CREATE_NEW | constants.O_NOFOLLOW, 0o640);
  } catch (err) {
    if (markerTakenAfter(err, markerPath)) return false;
    throw err;
  }
  closeSync(fd);
  return true;
}

/**
 * Whether a failed link or O_EXCL open of a marker means another process made
 * it: EEXIST, or any error with the marker there (sshfs answers EPERM for an
 * existing target).
 */
function markerTakenAfter(err: unknown, markerPath: string): boolean {
  return (err as NodeJS.ErrnoException).code === 'EEXIST' || existsNoFollow(markerPath);
}

/** Whether `err` says the filesystem makes no hard links (some FUSE mounts). */
export function isNoHardLinks(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS' || code === 'EXDEV';
}

/** The task file name a stage carries, or undefined for a name that is not a stage. */
export function stagedFileName(stageName: string): string | undefined {
  if (!stageName.startsWith(STAGE_PREFIX)) return undefined;
  const afterPid = stageName.indexOf('-', STAGE_PREFIX.length);
  if (afterPid < 0) return undefined;
  const afterHex = stageName.indexOf('-', afterPid + 1);
  return afterHex < 0 ? undefined : stageName.slice(afterHex + 1);
}

/**
 * The stage scan: finishes the enqueues whose process died (or stalled) between
 * the link and the rename, and deletes stage debris. `names` is the listing of
 * `stageDir`. A stage with a link count of 2 is a marker's task too (only its
 * marker can be the second link): it is renamed into incoming/ under the task
 * name it carries once older than `graceMs` (the enqueuer normally does it
 * itself within microseconds; a rename racing the enqueuer's is harmless, one
 * of the two wins). A stage with a count of 1 never made a marker: deleted
 * once over STAGE_DEBRIS_AGE_MS old. Returns the names published.
 */
export function finishStagedEnqueues(layout: SpoolLayout, stageDir: string, names: readonly string[], now: number, graceMs: number = STAGE_GRACE_MS): string[] {
  const published: string[] = [];
  for (const n of names) {
    const fileName = stagedFileName(n);
    if (fileName === undefined) continue;
    const path = stageDir + sep + n;
    try {
      const st = lstatSync(path);
      if (!st.isFile()) continue;
      const age = now - st.mtimeMs;
      if (st.nlink >= 2 && age > graceMs && parseTaskName(fileName) !== undefined) {
        renameSync(path, layout.incoming + sep + fileName);
        published.push(fileName);
      } else if (st.nlink === 1 && age > STAGE_DEBRIS_AGE_MS) {
        unlinkSync(path);
      }
    } catch {
      // Renamed by its enqueuer (or another scan) meanwhile.
    }
  }
  return published;
}

/**
 * Deletes markers among `markers` (names in `markerDir`) that nothing needs any
 * more: a count of 1 (its task has ended and its file is gone; an empty marker
 * of the fallback or a skipped slot) and `isOld(name, mtimeMs)`. Returns how
 * many it deleted.
 */
export function pruneEndedMarkers(markerDir: string, markers: readonly string[], isOld: (name: string, mtimeMs: number) => boolean): number {
  let pruned = 0;
  for (const m of markers) {
    const path = markerDir + sep + m;
    try {
      const st = lstatSync(path);
      if (!st.isFile() || st.nlink !== 1 || !isOld(m, st.mtimeMs)) continue;
      unlinkSync(path);
      pruned++;
    } catch {
      // Gone meanwhile (another daemon pruned it).
    }
  }
  return pruned;
}

function writeAllSync(fd: number, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
}



function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Nothing there.
  }
}
