/**
 * Listings on a filesystem whose directory listing gives no file types
 * (DT_UNKNOWN), where Node's opendir lstats every entry to find its type and an
 * entry renamed away in between made the whole listing throw ENOENT (issue 13,
 * point 2: NFS with plain READDIR, fuse-nfs).
 *
 * ext2 made without the `filetype` feature is such a filesystem, and mounting a
 * loop image of one needs only root: readdir(3) there gives DT_UNKNOWN for every
 * entry, as on NFS. A file vanishing between the listing and the lstat is made
 * to happen every time by wrapping fs.lstatSync, which Node's Dir calls for such
 * entries: the wrapper removes the file first.
 */
import { execFileSync } from 'node:child_process';
import { syncBuiltinESMExports } from 'node:module';
import fs, { mkdirSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpoolLayout } from '../spool/layout.js';
import { listSpool } from '../spool/listing.js';
import { readEntries, readNames } from '../spool/read-names.js';
import { encodeTask } from '../spool/task-file.js';
import { tempDir } from './helpers/cli.js';

let work: { dir: string; cleanup: () => void };
let mountPoint = '';
let mounted = false;
let skipReason = '';

beforeAll(() => {
  work = tempDir('spoolerd-dtunknown-');
  if (process.getuid?.() !== 0) {
    skipReason = 'needs root to mount a loop image';
    return;
  }
  const image = join(work.dir, 'ext2.img');
  mountPoint = join(work.dir, 'mnt');
  mkdirSync(mountPoint);
  try {
    execFileSync('truncate', ['-s', '64M', image]);
    execFileSync('mkfs.ext2', ['-q', '-F', '-O', '^filetype', image]);
    execFileSync('mount', ['-o', 'loop', image, mountPoint]);
    mounted = true;
  } catch (err) {
    skipReason = `cannot make a loop-mounted ext2 without file types: ${(err as Error).message}`;
  }
});

afterAll(() => {
  if (mounted) execFileSync('umount', [mountPoint]);
  work.cleanup();
});

/** Runs `body` with fs.lstatSync (the one Node's Dir calls) removing `victim` before it looks, and counting calls. */
function withVanishingLstat<T>(victim: string, body: () => T): { result: T; lstats: number } {
  const original = fs.lstatSync;
  const patchable = fs as { lstatSync: typeof fs.lstatSync };
  let lstats = 0;
  let removed = false;
  patchable.lstatSync = ((path: fs.PathLike, options?: fs.StatSyncOptions) => {
    lstats++;
    if (!removed && String(path) === victim) {
      removed = true;
      unlinkSync(victim);
    }
    return original(path, options as never);
  }) as typeof fs.lstatSync;
  // Named imports of node:fs (read-names.ts's own lstatSync) see the wrapper too.
  syncBuiltinESMExports();
  try {
    return { result: body(), lstats };
  } finally {
    patchable.lstatSync = original;
    syncBuiltinESMExports();
  }
}

describe('listings on a filesystem without file types in its listings', () => {
  const check = (): boolean => {
    if (!mounted) console.warn(`skipped: ${skipReason}`);
    return mounted;
  };

  it('the filesystem really lists without types: Node lstats each entry, and one that vanished fails a plain opendir listing', (ctx) => {
    if (!check()) return ctx.skip();
    const dir = join(mountPoint, 'plain');
    mkdirSync(dir);
    for (let i = 0; i < 50; i++) writeFileSync(join(dir, `f${i}`), '');
    const { result, lstats } = withVanishingLstat(join(dir, 'f7'), () => {
      try {
        const handle = fs.opendirSync(dir, { bufferSize: 1024 });
        try {
          while (handle.readSync() !== null);
        } finally {
          handle.closeSync();
        }
        return 'listed';
      } catch (err) {
        return (err as NodeJS.ErrnoException).code;
      }
    });
    // What readNames did before: the whole listing throws.
    expect(result).toBe('ENOENT');
    expect(lstats).toBeGreaterThanOrEqual(1);
    // And with nothing vanishing, Node lstats every entry of the listing.
    const full = withVanishingLstat(join(dir, 'no-such-file'), () => {
      const handle = fs.opendirSync(dir, { bufferSize: 1024 });
      let n = 0;
      while (handle.readSync() !== null) n++;
      handle.closeSync();
      return n;
    });
    expect(full.result).toBe(49);
    expect(full.lstats).toBe(49);
  });

  it('readNames lists every name without a single lstat, and a vanished entry cannot fail it', (ctx) => {
    if (!check()) return ctx.skip();
    const dir = join(mountPoint, 'names');
    mkdirSync(dir);
    const names = Array.from({ length: 3000 }, (_, i) => `task-${i}`);
    for (const n of names) writeFileSync(join(dir, n), '');
    const { result, lstats } = withVanishingLstat(join(dir, 'task-10'), () => readNames(dir));
    // The probe may lstat its one entry; nothing else is stat'ed.
    expect(lstats).toBeLessThanOrEqual(1);
    expect(result.length).toBeGreaterThanOrEqual(names.length - 1);
    expect(new Set(result).size).toBe(result.length);
    for (const n of names) if (n !== 'task-10') expect(result).toContain(n);
    // Again, now that the directory is known to list without types: no lstat at all.
    const again = withVanishingLstat(join(dir, 'task-11'), () => readNames(dir));
    expect(again.lstats).toBe(0);
    expect(again.result.sort()).toEqual(readdirSync(dir).sort());
  });

  it('readEntries gives types from its own lstat and leaves out entries that vanish while it reads', (ctx) => {
    if (!check()) return ctx.skip();
    const dir = join(mountPoint, 'entries');
    mkdirSync(dir);
    for (let i = 0; i < 200; i++) writeFileSync(join(dir, `f${i}`), '');
    mkdirSync(join(dir, 'sub'));
    fs.symlinkSync('/etc/passwd', join(dir, 'link'));
    const seen: Array<[string, string]> = [];
    let removed = 0;
    for (const e of readEntries(dir)) {
      // Remove files not yet given, as another daemon claiming them would.
      if (removed === 0) {
        for (let i = 0; i < 200; i += 2) rmSync(join(dir, `f${i}`), { force: true });
        removed = 1;
      }
      seen.push([e.name, e.isFile() ? 'file' : e.isDirectory() ? 'dir' : e.isSymbolicLink() ? 'link' : 'other']);
    }
    const byName = new Map(seen);
    expect(byName.size).toBe(seen.length);
    expect(byName.get('sub')).toBe('dir');
    expect(byName.get('link')).toBe('link');
    // Every odd file was there all along; of the even ones, at most the first entry given may have been one.
    for (let i = 1; i < 200; i += 2) expect(byName.get(`f${i}`), `f${i}`).toBe('file');
    expect([...byName.keys()].filter((n) => /^f\d*[02468]$/.test(n)).length).toBeLessThanOrEqual(1);
  });

  it('spool ls (listSpool) does not fail when a task file is claimed away while it lists', (ctx) => {
    if (!check()) return ctx.skip();
    const root = join(mountPoint, 'spool');
    const layout = new SpoolLayout(root).ensure();
    const files: string[] = [];
    for (let i = 0; i < 300; i++) {
      const task = encodeTask({ name: 'noop', priority: 50, body: { type: 'fcall', args: [] } as never });
      writeFileSync(join(layout.incoming, task.fileName), task.bytes);
      files.push(task.fileName);
    }
    const victim = join(layout.incoming, files[150]!);
    const { result } = withVanishingLstat(victim, () => listSpool(layout, { checkBodies: false }));
    const listed = result.map((e) => e.fileName);
    expect(listed).not.toContain(files[150]);
    expect(listed.length).toBe(299);
  });
});
