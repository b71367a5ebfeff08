/**
 * Recreating a drained folder (spool/compact-folder.ts) on real directories:
 * an empty grown folder is swapped for a new empty one with the same owner,
 * group and mode; a folder holding anything is left as it is with nothing
 * lost; a folder that is not the one checked is left alone; debris of a crash
 * between the two steps is swept.
 */
import { lstatSync, mkdirSync, readdirSync, rmSync, writeFileSync, chmodSync, renameSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { compactDrainedFolder, recreatedByDaemon, sweepCompactionDebris } from '../spool/compact-folder.js';
import { tempDir } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
let folder: string;
let state: string;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('spoolerd-compact-'));
  folder = join(dir, 'incoming');
  state = join(dir, 'state');
  mkdirSync(folder, { mode: 0o770 });
  chmodSync(folder, 0o2770);
  mkdirSync(state, { mode: 0o700 });
});
afterEach(() => cleanup());

const idOf = (path: string) => {
  const st = lstatSync(path);
  return { dev: st.dev, ino: st.ino };
};

/** Grows the folder with many long names, then empties it (ext4 keeps the size; minBytes 0 covers tmpfs). */
function growAndDrain(n = 3000): void {
  for (let i = 0; i < n; i++) writeFileSync(join(folder, `${'x'.repeat(80)}-${i}`), '');
  for (const name of readdirSync(folder)) rmSync(join(folder, name));
}

describe('recreating a drained folder', () => {
  it('swaps an empty folder for a new empty one with the same mode, owner and group', () => {
    growAndDrain();
    const before = lstatSync(folder);
    const result = compactDrainedFolder(folder, state, idOf(folder), 0);
    expect(result.done).toBe(true);
    const after = lstatSync(folder);
    expect(after.ino).not.toBe(before.ino);
    expect(result.done && result.id).toEqual({ dev: after.dev, ino: after.ino });
    expect(after.mode).toBe(before.mode);
    expect([after.uid, after.gid]).toEqual([before.uid, before.gid]);
    expect(after.size).toBeLessThanOrEqual(before.size);
    expect(readdirSync(folder)).toEqual([]);
    // One marker, naming the new folder, for daemons that checked the old one.
    expect(readdirSync(state)).toEqual([`.recreated-incoming-${after.dev}-${after.ino}`]);
    expect(recreatedByDaemon(state, folder, after)).toBe(true);
  });

  it('marks the replacement before the swap, so that it is known the moment it is in place', () => {
    growAndDrain();
    let seen: string[] = [];
    const result = compactDrainedFolder(folder, state, idOf(folder), 0, () => (seen = readdirSync(state).sort()));
    expect(result.done).toBe(true);
    const after = lstatSync(folder);
    expect(seen).toEqual([`.compact-incoming-${process.pid}`, `.recreated-incoming-${after.dev}-${after.ino}`]);
  });

  it('does not take a folder nobody marked for a recreated one', () => {
    const checked = idOf(folder);
    renameSync(folder, join(dir, 'elsewhere'));
    mkdirSync(folder);
    expect(recreatedByDaemon(state, folder, lstatSync(folder))).toBe(false);
    expect(checked.ino).not.toBe(lstatSync(folder).ino);
  });

  it('leaves a folder that holds a task as it is, the task in it, and no staging folder behind', () => {
    growAndDrain();
    writeFileSync(join(folder, 'a-task'), 'body');
    const before = idOf(folder);
    const result = compactDrainedFolder(folder, state, before, 0);
    expect(result).toEqual({ done: false, reason: 'a task arrived meanwhile' });
    expect(idOf(folder)).toEqual(before);
    expect(readdirSync(folder)).toEqual(['a-task']);
    // No staging folder, and no marker naming a folder that never took the place.
    expect(readdirSync(state)).toEqual([]);
  });

  it('leaves alone a folder that is not the one checked, and a small one', () => {
    const checked = idOf(folder);
    renameSync(folder, join(dir, 'elsewhere'));
    mkdirSync(folder);
    expect(compactDrainedFolder(folder, state, checked, 0)).toEqual({ done: false, reason: 'it is not the folder that was checked' });
    expect(compactDrainedFolder(folder, state, idOf(folder))).toEqual({ done: false, reason: 'it is small' });
  });

  it('sweeps empty staging folders a crash left, and nothing else', () => {
    mkdirSync(join(state, '.compact-incoming-123'));
    mkdirSync(join(state, '.compact-incoming-456'));
    writeFileSync(join(state, '.compact-incoming-456', 'keep'), '');
    writeFileSync(join(state, 'status-file'), '');
    expect(sweepCompactionDebris(state)).toBe(1);
    expect(readdirSync(state).sort()).toEqual(['.compact-incoming-456', 'status-file']);
  });

  it("sweeps the folder's markers that name no folder in place once a minute old, and keeps the one in place", () => {
    const now = Date.now();
    const current = idOf(folder);
    const inPlace = `.recreated-incoming-${current.dev}-${current.ino}`;
    for (const n of [inPlace, '.recreated-incoming-1-2', '.recreated-incoming-1-3', '.recreated-pending-1-4']) writeFileSync(join(state, n), '');
    const old = new Date(now - 120_000);
    for (const n of [inPlace, '.recreated-incoming-1-2', '.recreated-pending-1-4']) utimesSync(join(state, n), old, old);
    // -1-3 is young: another daemon may be about to swap it in. pending/'s markers are not incoming/'s to sweep.
    expect(sweepCompactionDebris(state, folder, now)).toBe(1);
    expect(readdirSync(state).sort()).toEqual([inPlace, '.recreated-incoming-1-3', '.recreated-pending-1-4'].sort());
  });
});
