/**
 * Unique keys (SPOOL-FORMAT.md, "Unique keys"): while a task holds its key, an
 * enqueue of the same task name with the same key adds nothing. A key is held
 * by a file `unique/<hash>` (hash: keyFileName) that names the holding task's
 * id and file name. It is made exclusive by link(2) of a complete file staged
 * in tmp/, never by a check then a write, so producers on different hosts
 * cannot both hold one key.
 *
 * Who removes a key file, and why that is safe: only three parties, each
 * naming the task id it removes the key of (removeKey reads the key, moves it
 * aside, reads it again, and puts back one that turned out to be another
 * task's):
 *   - the runner that claimed the holding task: at the claim (`pending`), or
 *     after its last move (`running`; a retry keeps the key);
 *   - a producer replacing the holder (modes replace, preserve-due), after it
 *     revoked the holding task (rename over the key: no moment without one);
 *   - the minute sweep (spooler/discover/sweep.ts), for a key older than
 *     KEY_GRACE_MS whose task (by id) is in none of incoming/, pending/,
 *     active/<owner>/: its producer died before it renamed the task in, or
 *     its daemon died after the task's last move.
 *
 *   step            system calls, in order                         a crash after the call leaves               who picks it up
 *   enqueue with    1 open tmp/N O_EXCL, write, close              tmp/N (debris)                              tmp/ sweep
 *   a key           2 open tmp/.unique-P-X O_EXCL, write, close    tmp/N and tmp/.unique-P-X (debris)          tmp/ sweep
 *                   3 link tmp/.unique-P-X -> unique/H             the key, held by a task still in tmp/       the unique sweep, once the key is
 *                     (EEXIST: the key is held, see the modes)                                                  KEY_GRACE_MS old; tmp/ sweep
 *                   4 unlink tmp/.unique-P-X                       the same                                    the same
 *                   5 rename tmp/N -> incoming/N                   incoming/N holding its key: enqueued        any daemon's scan
 *                   6 read unique/H: still ours? (else withdraw    the same                                    -
 *                     incoming/N and start over: a producer
 *                     stalled past KEY_GRACE_MS lost its key)
 *   replace         1 rename incoming|pending/N0 -> tmp/.revoked-  the old task revoked, its key still there   the unique sweep (the key names no task)
 *   (replace,         (the revoke step of protocol.ts), unlink
 *   preserve-due)   2 rename tmp/.unique-P-X -> unique/H           the key held by the new task, in tmp/       as enqueue 3
 *                   3 rename tmp/N -> incoming/N, as enqueue 5, 6  enqueued                                    any daemon's scan
 *   release         1 read unique/H (names this task's id?)        the key                                     the runner's claim, or the sweep
 *   (removeKey)     2 rename unique/H -> tmp/.unique-gone-P-X      the key released; debris                    tmp/ sweep
 *                   3 read it: another task's (replaced meanwhile)?
 *                     then link it back to unique/H
 *                   4 unlink tmp/.unique-gone-P-X                  released                                    -
 *
 * unique/ is written by producers: every entry is hostile input. Key files are
 * opened with O_NOFOLLOW and O_NONBLOCK, must be regular files of at most
 * KEY_FILE_MAX_BYTES holding a valid key record; anything else there (a link,
 * a directory, a bad name or record) is never followed and is removed by the
 * sweep once older than KEY_GRACE_MS.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, linkSync, lstatSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { sep } from 'node:path';
import { UNIQUE_KEY_MAX, UNIQUE_WHILE, type UniqueWhile } from './body.js';
import { SpoolError } from './errors.js';
import { DEFAULT_MAX_BYTES, readRegularFile } from './safe-read.js';
import { decodeTask } from './task-file.js';
import type { SpoolLayout } from './layout.js';
import { parseTaskName, TASK_ID_PATTERN } from './name.js';

/** A key file is at most this big: a key of UNIQUE_KEY_MAX characters fits several times over. */
export const KEY_FILE_MAX_BYTES = 8192;
/**
 * How old a key must be before the sweep may take it for stale: a producer has
 * this long between linking a key and renaming its task in. Set
 * SPOOL_UNIQUE_GRACE_MS to change it (tests).
 */
export const KEY_GRACE_MS = graceFromEnv();
/** Key files and staged key files: `tmp/.unique-…` while staged or being removed. */
export const KEY_STAGING_PREFIX = '.unique-';

function graceFromEnv(): number {
  const v = Number(process.env.SPOOL_UNIQUE_GRACE_MS);
  return Number.isSafeInteger(v) && v >= 0 ? v : 60_000;
}

/** The record a key file holds (JSON). */
export interface KeyHolder {
  version: 1;
  /** The holding task's id (stays the same across its retries: every reader matches by id). */
  id: string;
  /** Its file name when the key was taken (a retry or reclaim renames the task; the key keeps naming the id). */
  file: string;
  key: string;
  while: UniqueWhile;
}

/**
 * The file name of a key: the SHA-256 of the task name, a newline and the key,
 * in lowercase hex. A key is per task name. In a shell:
 * `printf '%s\n%s' "$NAME" "$KEY" | sha256sum | cut -c1-64`.
 */
export function keyFileName(taskName: string, key: string): string {
  return createHash('sha256').update(`${taskName}\n${key}`).digest('hex');
}

const KEY_FILE_NAME = /^[0-9a-f]{64}$/;
export const isKeyFileName = (name: string): boolean => name.length === 64 && KEY_FILE_NAME.test(name);

export function encodeKeyHolder(holder: KeyHolder): Buffer {
  return Buffer.from(JSON.stringify(holder) + '\n');
}

/** The record of a key file, or the problem with it. */
export function parseKeyHolder(bytes: Uint8Array): KeyHolder | string {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return 'not JSON';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not a JSON object';
  const r = v as Record<string, unknown>;
  if (r.version !== 1) return '"version" is not 1';
  if (typeof r.id !== 'string' || !TASK_ID_PATTERN.test(r.id)) return '"id" is not a task id';
  if (typeof r.file !== 'string' || parseTaskName(r.file)?.id !== r.id) return '"file" is not the file name of task "id"';
  // Characters as the body's check counts them (code points), not UTF-16 units: a key of 1024 emoji is a key.
  if (typeof r.key !== 'string' || r.key.length === 0 || (r.key.length > UNIQUE_KEY_MAX && [...r.key].length > UNIQUE_KEY_MAX)) return '"key" is not a key';
  if (!UNIQUE_WHILE.includes(r.while as UniqueWhile)) return `"while" is not one of ${UNIQUE_WHILE.join(', ')}`;
  return { version: 1, id: r.id, file: r.file, key: r.key, while: r.while as UniqueWhile };
}

/** `denied`: the file could not be opened for lack of permission (it may be a valid key of another user's). */
export type KeyRead = { ok: true; holder: KeyHolder; mtimeMs: number } | { ok: false; missing: boolean; reason: string; denied?: true };

const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** Reads a key file without following a link or blocking on a FIFO; anything but a small regular file with a valid record is refused. */
export function readKeyFile(path: string): KeyRead {
  let fd: number;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') return { ok: false, missing: false, reason: 'permission denied: producers sharing keys must be able to read each other\'s key files (a umask of 022, or a shared group)', denied: true };
    return { ok: false, missing: code === 'ENOENT', reason: code === 'ELOOP' ? 'a symbolic link' : (err as Error).message };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { ok: false, missing: false, reason: 'not a regular file' };
    if (st.size > KEY_FILE_MAX_BYTES) return { ok: false, missing: false, reason: `over ${KEY_FILE_MAX_BYTES} bytes` };
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < buf.length) {
      const got = readSync(fd, buf, n, buf.length - n, n);
      if (got === 0) break;
      n += got;
    }
    const holder = parseKeyHolder(buf.subarray(0, n));
    if (typeof holder === 'string') return { ok: false, missing: false, reason: holder };
    return { ok: true, holder, mtimeMs: st.mtimeMs };
  } catch (err) {
    return { ok: false, missing: false, reason: (err as Error).message };
  } finally {
    closeSync(fd);
  }
}

export const keyPath = (layout: SpoolLayout, hash: string): string => layout.unique + sep + hash;

/** Enqueue with a key, call 2: writes the key record to a new file in tmp/, O_EXCL. Returns its path. */
export function stageKeyFile(layout: SpoolLayout, holder: KeyHolder): string {
  const staged = layout.tmp + sep + KEY_STAGING_PREFIX + `${process.pid}-${randomBytes(6).toString('hex')}`;
  const fd = openSync(staged, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  try {
    const bytes = encodeKeyHolder(holder);
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
  } catch (err) {
    closeSync(fd);
    unlinkQuietly(staged);
    throw err;
  }
  closeSync(fd);
  return staged;
}

/** Enqueue with a key, call 3: takes the key. False when it is held already (EEXIST). */
export function linkKey(layout: SpoolLayout, staged: string, hash: string): boolean {
  try {
    linkSync(staged, keyPath(layout, hash));
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    // Over sshfs, OpenSSH's SFTP server answers a link() onto an existing name with a bare failure, which arrives as EPERM.
    if (code === 'EPERM' && existsNoFollow(keyPath(layout, hash))) return false;
    if (code === 'EPERM' || code === 'ENOSYS' || code === 'EOPNOTSUPP' || code === 'ENOTSUP') {
      throw new SpoolError('SPOOL_NO_LINK', `cannot take a unique key: the filesystem of ${layout.root} does not support hard links (link() said ${code}); unique keys need link() (local filesystems and NFS have it; with sshfs, mount a server that supports the hardlink extension)`, { cause: err });
    }
    throw err;
  }
}

/** Replace, call 2: the staged key takes the place of the (revoked) holder's in one rename; there is no moment without a key. */
export function replaceKey(layout: SpoolLayout, staged: string, hash: string): void {
  renameSync(staged, keyPath(layout, hash));
}

function existsNoFollow(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

export function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Gone already: debris either way, and swept.
  }
}

export type RemoveKeyResult = 'removed' | 'absent' | 'not-ours';

/**
 * Releases the key `hash` if it is held by task `id`: read, moved aside into
 * tmp/, read again; a key that another task took meanwhile (it was released
 * and taken again between the two reads) is linked back. Returns what it
 * found. `onConflict` hears of the one case it cannot mend: a key that was
 * linked back too late because a third producer took it meanwhile.
 */
/**
 * The key a waiting task held, once `spool rm` or a cancel has taken the task
 * out (revoke: `revoked` is its file in tmp/): released at once, so that the
 * next enqueue with that key adds a task rather than returning the removed
 * one. Best effort: a key left behind (a file that cannot be read, a crash
 * first) goes with the unique-key sweep.
 */
export function releaseKeyOfRevoked(layout: SpoolLayout, revoked: string, fileName: string, id: string): void {
  try {
    const read = readRegularFile(revoked, DEFAULT_MAX_BYTES);
    if (!read.ok) return;
    const decoded = decodeTask(fileName, read.bytes);
    if (!decoded.ok || decoded.task.body.unique === undefined) return;
    removeKey(layout, keyFileName(decoded.task.name, decoded.task.body.unique), id);
  } catch {
    // Left for the sweep.
  }
}

export function removeKey(layout: SpoolLayout, hash: string, id: string, onConflict?: (holder: KeyHolder) => void): RemoveKeyResult {
  const path = keyPath(layout, hash);
  const first = readKeyFile(path);
  if (!first.ok) return first.missing ? 'absent' : 'not-ours';
  if (first.holder.id !== id) return 'not-ours';
  const aside = layout.tmp + sep + KEY_STAGING_PREFIX + `gone-${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    renameSync(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw err;
  }
  const moved = readKeyFile(aside);
  if (moved.ok && moved.holder.id !== id) {
    try {
      linkSync(aside, path);
    } catch {
      onConflict?.(moved.holder);
    }
    unlinkQuietly(aside);
    return 'not-ours';
  }
  unlinkQuietly(aside);
  return 'removed';
}

/**
 * Removes an entry of unique/ that is not a key file (a bad name or record, a
 * link, a directory: hostile input), never following it. Only once it is
 * older than the grace, by lstat's mtime. Returns whether it removed it.
 */
export function removeBadEntry(path: string, now: number, remove: (path: string) => void): boolean {
  try {
    const st = lstatSync(path);
    if (now - st.mtimeMs <= KEY_GRACE_MS) return false;
    remove(path);
    return true;
  } catch {
    return false;
  }
}
