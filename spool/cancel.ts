/**
 * Cancelling a task (`spool cancel`, `spool rm` of a running task,
 * `spooler.cancel(id)`). A waiting task (incoming/, pending/) is revoked as
 * `spool rm` revokes it: it never runs. A running one cannot be touched by
 * anyone but the daemon that claimed it, so the canceller files a request,
 * cancel/<id>: an EMPTY file named by the task id (nothing to half-write),
 * made with O_CREAT|O_EXCL|O_NOFOLLOW in cancel/, a folder producers may write
 * (mode 3770 like incoming/: sticky, so nobody removes another's request but
 * the daemons). Each daemon checks cancel/ on a timer (CANCEL_CHECK_MS); the
 * one that holds the task fires its AbortSignal (a TaskCancelledError), kills
 * it --kill-grace later as a timeout does, settles it as cancelled (its file
 * removed, or archived; no retry) and then removes the request.
 *
 * cancel/ is hostile input: a name that is not a task id, anything that is
 * not an empty regular file (a link, a directory, a fifo, data) is removed
 * unread, links never followed; at most MAX_REQUESTS names are looked at per
 * check; a request no daemon acts on (its task unknown, or finished before the
 * request was seen) is removed once it is REQUEST_TTL_MS old.
 *
 * Crash table rows (spool/protocol.ts, SPOOL-FORMAT.md "State changes"):
 *   request   open cancel/<id> O_CREAT|O_EXCL|O_NOFOLLOW, close      the request           the daemon holding <id>, on its next check
 *   cancel    (daemon) abort, then settle as `finish`, then          a finished task and   the request: removed as stale after REQUEST_TTL_MS
 *             unlink cancel/<id>                                      its request
 */
import { closeSync, constants, lstatSync, openSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { TASK_ID_PATTERN, parseTaskName } from './name.js';
import type { SpoolLayout } from './layout.js';
import { readNames } from './read-names.js';
import { revoke } from './protocol.js';
import { releaseKeyOfRevoked } from './unique.js';
import { dropQueued, flowDir, markFlowCancelled, readFlow } from './children.js';

/** How often a daemon looks into cancel/ (a readdir of an empty folder: microseconds). */
export const CANCEL_CHECK_MS = 250;
/** A request no daemon acted on is removed once this old (by its mtime). */
export const REQUEST_TTL_MS = 10 * 60_000;
/** At most this many names of cancel/ are looked at per check (a producer may flood it). */
export const MAX_REQUESTS = 1000;

/** Files a request to cancel the running task `id`. False if one is filed already. */
export function requestCancel(layout: SpoolLayout, id: string): boolean {
  if (!TASK_ID_PATTERN.test(id)) throw new TypeError(`not a task id: ${JSON.stringify(id)}`);
  let fd: number;
  try {
    fd = openSync(join(layout.cancel, id), constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o660);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  closeSync(fd);
  return true;
}

/** Removes the request for `id`, if any. */
export function removeCancelRequest(layout: SpoolLayout, id: string): void {
  try {
    unlinkSync(join(layout.cancel, id));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Whether a request for `id` is (still) there. */
export function hasCancelRequest(layout: SpoolLayout, id: string): boolean {
  try {
    lstatSync(join(layout.cancel, id));
    return true;
  } catch {
    return false;
  }
}

export interface CancelRequest {
  id: string;
  /** Its mtime (ms since the epoch, this host's clock). */
  mtimeMs: number;
}

/**
 * The valid requests in cancel/ (at most MAX_REQUESTS). Anything else found
 * there is removed unread and told to `bad` (name, why). Never follows a link.
 */
export function readCancelRequests(layout: SpoolLayout, bad: (name: string, why: string) => void): CancelRequest[] {
  let names: string[];
  try {
    names = readNames(layout.cancel);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: CancelRequest[] = [];
  for (let i = 0; i < names.length && i < MAX_REQUESTS; i++) {
    const name = names[i]!;
    let why: string | undefined;
    let mtimeMs = 0;
    if (!TASK_ID_PATTERN.test(name)) why = 'its name is not a task id';
    else {
      try {
        const st = lstatSync(join(layout.cancel, name));
        if (!st.isFile()) why = st.isSymbolicLink() ? 'it is a symbolic link' : 'it is not a regular file';
        else if (st.size !== 0) why = `it is not empty (${st.size} bytes); a request is an empty file`;
        mtimeMs = st.mtimeMs;
      } catch {
        continue; // removed meanwhile
      }
    }
    if (why !== undefined) {
      removeQuietly(join(layout.cancel, name));
      bad(name, why);
      continue;
    }
    out.push({ id: name, mtimeMs });
  }
  return out;
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    // A directory dropped in: rmdir when empty; else it stays and is reported again (nothing reads it).
    if (((err as NodeJS.ErrnoException).code === 'EISDIR' || (err as NodeJS.ErrnoException).code === 'EPERM')) {
      try {
        rmdirSync(path);
      } catch {
        // left for an administrator
      }
    }
  }
}

export type CancelResult =
  /** It was waiting: revoked, it never runs. */
  | { kind: 'revoked'; name: string }
  /** It runs under `owner`: a request is filed (or was already). */
  | { kind: 'requested'; name: string; owner: string; already: boolean }
  /** No task with that id is waiting or running (finished, dead, or unknown). */
  | { kind: 'not-found' }
  /** It had ended, but it has children (children/<id>/): those that had not ended are cancelled (`children`), and its continuation will not be enqueued. */
  | { kind: 'children'; children: number };

/**
 * Cancels the task `id` (a full id): revokes it if it waits, files a request
 * if it runs. A task that moves between the looks (claimed just then) is looked
 * for again, a few times.
 */
export function cancelTask(layout: SpoolLayout, id: string): CancelResult {
  const r = cancelOneTask(layout, id);
  // Its children, recursively (a running parent's daemon does it again when it settles it as cancelled).
  const children = hasFlow(layout, id) ? cancelChildren(layout, id) : -1;
  if (r.kind === 'not-found' && children >= 0) return { kind: 'children', children };
  return r;
}

/**
 * Cancels the children of `parent` that have not ended, recursively, and
 * marks its flow cancelled (children/<parent>/.cancelled) first, so that no
 * continuation is enqueued and no waiting child of a limited batch is started.
 * Children still held back by a limit are dropped (they never run). Returns
 * how many were cancelled (revoked, requested or dropped).
 */
export function cancelChildren(layout: SpoolLayout, parent: string, seen: Set<string> = new Set()): number {
  if (seen.has(parent)) return 0;
  seen.add(parent);
  if (!markFlowCancelled(layout, parent)) return 0;
  const listing = readFlow(layout, parent);
  if (listing === undefined) return 0;
  let n = dropQueued(layout, parent, listing);
  for (const child of listing.children) {
    if (listing.done.has(child)) {
      n += cancelChildren(layout, child, seen);
      continue;
    }
    const r = cancelOneTask(layout, child);
    if (r.kind === 'revoked' || (r.kind === 'requested' && !r.already)) n++;
    n += cancelChildren(layout, child, seen);
  }
  return n;
}

function hasFlow(layout: SpoolLayout, id: string): boolean {
  try {
    return lstatSync(flowDir(layout, id)).isDirectory();
  } catch {
    return false;
  }
}

function cancelOneTask(layout: SpoolLayout, id: string): CancelResult {
  if (!TASK_ID_PATTERN.test(id)) throw new TypeError(`not a task id: ${JSON.stringify(id)}`);
  for (let attempt = 0; attempt < 5; attempt++) {
    const running = findRunning(layout, id);
    if (running !== undefined) {
      const filed = requestCancel(layout, id);
      return { kind: 'requested', name: running.name, owner: running.owner, already: !filed };
    }
    const waiting = findIn(layout, ['incoming', 'pending'], id);
    if (waiting === undefined) {
      // Claimed between the two looks? One more look at active/.
      if (findRunning(layout, id) !== undefined) continue;
      return { kind: 'not-found' };
    }
    const r = revoke(layout, { paths: [join(layout[waiting.folder], waiting.name)], quarantined: false, id, beforeDelete: (path, fileName) => releaseKeyOfRevoked(layout, path, fileName, id) });
    if (r.kind === 'revoked') return { kind: 'revoked', name: waiting.name };
    if (r.kind === 'stranded') throw r.error;
    // absent: claimed (or accepted into pending/) meanwhile: look again.
  }
  return { kind: 'not-found' };
}

/** The running (claimed) file of task `id`, if any. */
export function findRunning(layout: SpoolLayout, id: string): { owner: string; name: string } | undefined {
  let owners: string[];
  try {
    owners = readNames(layout.active);
  } catch {
    return undefined;
  }
  for (const owner of owners) {
    let names: string[];
    try {
      names = readNames(join(layout.active, owner));
    } catch {
      continue;
    }
    for (const name of names) if (parseTaskName(name)?.id === id) return { owner, name };
  }
  return undefined;
}

function findIn(layout: SpoolLayout, folders: readonly ('incoming' | 'pending')[], id: string): { folder: 'incoming' | 'pending'; name: string } | undefined {
  for (const folder of folders) {
    let names: string[];
    try {
      names = readNames(layout[folder]);
    } catch {
      continue;
    }
    for (const name of names) if (name.includes(id) && parseTaskName(name)?.id === id) return { folder, name };
  }
  return undefined;
}
