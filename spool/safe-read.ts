/**
 * Reading files that anyone could have dropped into a spool. Nothing here
 * follows a symbolic link, opens a FIFO in a way that can block, or reads past a
 * size cap: the file is opened with O_NOFOLLOW | O_NONBLOCK and checked with
 * fstat on the open descriptor, so a swap between listing and opening is caught.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, type Stats } from 'node:fs';

/** What a directory entry (Dirent) or an lstat result (Stats) says about a file's type. */
export type FileTypeInfo = Pick<import('node:fs').Dirent, 'isFile' | 'isSymbolicLink' | 'isFIFO' | 'isDirectory' | 'isSocket' | 'isCharacterDevice' | 'isBlockDevice'>;

/** Default cap on a task file's size: larger files are reported (or quarantined) unread. */
export const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

export type ReadOutcome =
  | { ok: true; bytes: Buffer; mtimeMs: number }
  | { ok: false; reason: string; mtimeMs?: number };

/** Why a directory entry is not a regular file, or undefined if it is one. Opens nothing. */
export function describeIrregular(entry: FileTypeInfo): string | undefined {
  if (entry.isFile()) return undefined;
  if (entry.isSymbolicLink()) return 'a symbolic link; spool files are never followed through links';
  if (entry.isFIFO()) return 'a FIFO (named pipe), not a regular file; it was not opened';
  if (entry.isDirectory()) return 'a directory, not a task file';
  if (entry.isSocket()) return 'a socket, not a regular file; it was not opened';
  if (entry.isCharacterDevice() || entry.isBlockDevice()) return 'a device file, not a regular file; it was not opened';
  return 'not a regular file';
}

/**
 * Reads a regular file of at most maxBytes. Never throws for the file's own faults.
 *
 * With `scratch`, a file that fits is read into that buffer instead of a new one:
 * the bytes returned then share its memory and hold only until the next read into
 * it. For callers that look at each of many files once (a listing that checks
 * bodies); the checks and outcomes are the same.
 */
export function readRegularFile(path: string, maxBytes: number = DEFAULT_MAX_BYTES, scratch?: Buffer): ReadOutcome {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (err) {
    return { ok: false, reason: describeOpenError(err as NodeJS.ErrnoException) };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { ok: false, reason: 'not a regular file; it was not read', mtimeMs: st.mtimeMs };
    if (st.size > maxBytes) {
      return { ok: false, reason: `the file is ${formatBytes(st.size)}, over the ${formatBytes(maxBytes)} cap; it was not read`, mtimeMs: st.mtimeMs };
    }
    // Exactly the size fstat gave: one read for a file that is not being written. A file
    // that grows meanwhile is read short, fails to decode and is treated as in progress.
    const size = st.size;
    const bytes = scratch !== undefined && size <= scratch.length ? scratch : Buffer.allocUnsafe(size);
    let length = 0;
    while (length < size) {
      const n = readSync(fd, bytes, length, size - length, length);
      if (n === 0) break;
      length += n;
    }
    return { ok: true, bytes: length === bytes.length ? bytes : bytes.subarray(0, length), mtimeMs: st.mtimeMs };
  } catch (err) {
    return { ok: false, reason: `cannot be read: ${(err as Error).message}` };
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads a file the caller holds by name (a daemon's claimed task): lstat first,
 * so a link, FIFO, socket, device or directory is described and never opened,
 * then open with O_NOFOLLOW | O_NONBLOCK and read the size lstat gave. Costs
 * the same four system calls as open + fstat + read + close.
 */
export function readClaimedFile(path: string, maxBytes: number = DEFAULT_MAX_BYTES): ReadOutcome {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    return { ok: false, reason: describeOpenError(err as NodeJS.ErrnoException) };
  }
  const irregular = describeIrregular(st);
  if (irregular !== undefined) return { ok: false, reason: irregular, mtimeMs: st.mtimeMs };
  if (st.size > maxBytes) {
    return { ok: false, reason: `the file is ${formatBytes(st.size)}, over the ${formatBytes(maxBytes)} cap; it was not read`, mtimeMs: st.mtimeMs };
  }
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (err) {
    return { ok: false, reason: describeOpenError(err as NodeJS.ErrnoException) };
  }
  try {
    const bytes = Buffer.allocUnsafe(st.size);
    let length = 0;
    while (length < bytes.length) {
      const n = readSync(fd, bytes, length, bytes.length - length, length);
      if (n === 0) break;
      length += n;
    }
    return { ok: true, bytes: bytes.subarray(0, length), mtimeMs: st.mtimeMs };
  } catch (err) {
    return { ok: false, reason: `cannot be read: ${(err as NodeJS.ErrnoException).code ?? 'I/O error'}` };
  } finally {
    closeSync(fd);
  }
}

function describeOpenError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ELOOP':
      return 'a symbolic link; spool files are never followed through links';
    case 'ENOENT':
      return 'it disappeared before it could be read (claimed or removed by another process)';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied; make task files readable by the user spoolerd runs as';
    case 'ENXIO':
      return 'a socket or device, not a regular file; it was not opened';
    default:
      return `cannot be opened: ${err.message}`;
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
