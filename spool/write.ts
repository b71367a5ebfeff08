/**
 * The atomic enqueue protocol: write the whole file under tmp/, then rename it
 * into incoming/. A rename within one filesystem is atomic, so a reader sees
 * either no file or the complete file, never a partial one.
 *
 * The staging file is created with O_EXCL so two writers can never share one.
 * With `fsync`, the file's data is flushed before the rename and incoming/ is
 * flushed after it, so the task also survives a power failure (about 1 ms per
 * task on ext4 here, against ~40 µs without).
 */
import { closeSync, constants, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { sep } from 'node:path';
import type { SpoolLayout } from './layout.js';

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

/** Writes `bytes` as incoming/<fileName> by way of tmp/. Returns the final path. */
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
 * The first half of writeTaskSync: writes tmp/<fileName>, invisible to daemons.
 * On failure nothing is left behind.
 */
export function stageTaskSync(layout: SpoolLayout, fileName: string, bytes: Uint8Array, options: WriteOptions = {}): void {
  const staged = inside(layout.tmp, fileName);
  const fd = openSync(staged, CREATE_NEW, 0o666);
  try {
    writeAllSync(fd, bytes);
    if (options.fsync) fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkQuietlySync(staged);
    throw err;
  }
  closeSync(fd);
}

/** The second half: renames tmp/<fileName> into incoming/. On failure the staged file is left for the caller. */
export function publishStagedSync(layout: SpoolLayout, fileName: string): string {
  const target = inside(layout.incoming, fileName);
  renameSync(inside(layout.tmp, fileName), target);
  return target;
}

/** Deletes a staged file that will not be published. */
export function discardStagedSync(layout: SpoolLayout, fileName: string): void {
  unlinkQuietlySync(inside(layout.tmp, fileName));
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
  unlinkQuietlySync(staged);
  return true;
}

/** The same protocol with non-blocking calls. */
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

function unlinkQuietlySync(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // The staging file is garbage either way; tmp/ is swept of old files.
  }
}
