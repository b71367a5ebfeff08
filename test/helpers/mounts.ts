/**
 * Small filesystems for tests that need a full disk: a size-limited tmpfs and a
 * loop-mounted ext4 image. Both need root (CI runs as root); `mountSkipReason`
 * says why a machine cannot, so the tests skip with that reason and only then.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, statfsSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Mounted {
  /** The mount point. */
  path: string;
  unmount(): void;
}

function run(cmd: string, args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim() };
}

/** Why tmpfs and loop ext4 mounts cannot be made here, or undefined when they can. */
export const mountSkipReason: string | undefined = (() => {
  if (process.getuid?.() !== 0) return 'not root: mounting a small tmpfs and a loop ext4 image needs root';
  let t: Mounted | undefined;
  let e: Mounted | undefined;
  try {
    t = mountTmpfs(1);
    e = mountExt4(4, 'inline_data');
    return undefined;
  } catch (err) {
    return `cannot mount here: ${(err as Error).message}`;
  } finally {
    t?.unmount();
    e?.unmount();
  }
})();
if (mountSkipReason) console.warn(`full-disk tests skipped: ${mountSkipReason}`);

export function mountTmpfs(mib: number): Mounted {
  const path = mkdtempSync(join(tmpdir(), 'spoolerd-tmpfs-'));
  const r = run('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'tmpfs', path]);
  if (!r.ok) {
    rmSync(path, { recursive: true, force: true });
    throw new Error(`mount -t tmpfs failed: ${r.out}`);
  }
  return { path, unmount: () => unmountAndRemove(path, [path]) };
}

/**
 * A fresh ext4 image of `mib` MiB (4 KiB blocks, no blocks reserved for root),
 * loop-mounted. `features` go to mkfs.ext4 -O (e.g. inline_data: small files
 * and directories live in their inode and need no block).
 */
export function mountExt4(mib: number, features?: string): Mounted {
  const base = mkdtempSync(join(tmpdir(), 'spoolerd-ext4-'));
  const image = join(base, 'fs.img');
  const path = join(base, 'mnt');
  const steps: Array<[string, string[]]> = [
    ['truncate', ['-s', `${mib}M`, image]],
    ['mkfs.ext4', ['-q', '-F', '-m', '0', '-b', '4096', ...(features ? ['-O', features] : []), image]],
    ['mkdir', [path]],
    ['mount', ['-o', 'loop', image, path]],
  ];
  for (const [cmd, args] of steps) {
    const r = run(cmd, args);
    if (!r.ok) {
      rmSync(base, { recursive: true, force: true });
      throw new Error(`${cmd} failed: ${r.out}`);
    }
  }
  return { path, unmount: () => unmountAndRemove(path, [base]) };
}

function unmountAndRemove(path: string, remove: string[]): void {
  const r = run('umount', [path]);
  if (!r.ok) run('umount', ['-l', path]);
  for (const p of remove) rmSync(p, { recursive: true, force: true });
}

/**
 * Fills the filesystem holding `dir` with one file, until writes fail with
 * ENOSPC. Returns a function that deletes it (frees the space).
 */
export function fillDisk(dir: string): { free: () => void; path: string } {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'wx');
  for (const size of [1 << 20, 64 << 10, 4096, 512, 1]) {
    const chunk = Buffer.alloc(size);
    try {
      for (;;) writeSync(fd, chunk);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
    }
  }
  fsyncSync(fd);
  closeSync(fd);
  return { path, free: () => unlinkSync(path) };
}

/** Free blocks the caller could use (statfs bavail). */
export function freeBlocks(dir: string): number {
  return statfsSync(dir).bavail;
}
