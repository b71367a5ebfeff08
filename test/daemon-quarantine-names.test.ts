/**
 * Quarantine of names of any length (issue 12, point 5; SPOOL-FORMAT.md,
 * "Quarantine"): every bad name up to the filesystem's 255 bytes reaches
 * quarantine/ in one step, under a name that leaves room for its reason file,
 * and the reason keeps the full original name. And `spool rm` of a quarantined
 * directory (point 6): removed with its reason, links inside it never followed.
 */
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lsJson, spool } from './helpers/cli.js';
import { startServing } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let dir: string;
let root: string;
useDaemonSpool('spoolerd-qnames-', { open: true, bind: (s) => ({ dir, root } = s) });

const ARGS = ['--settle', '200ms', '--scan-interval', '500ms'];
const ls = (path: string): string[] => readdirSync(path).sort();
const past = () => new Date(Date.now() - 60_000);
const validName = (task = 'echo') => {
  const now = String(Date.now());
  return `50-${now}-${now}0123456789abcdef-a0-${task}.json`;
};

describe('bad names of any length reach quarantine in one step', () => {
  it('names up to 255 bytes, multibyte ones, a task part over 128 characters, a name ending in .reason.json', async () => {
    const now = String(Date.now());
    const names = [
      'x'.repeat(255),
      'x'.repeat(222),
      'x'.repeat(221),
      'é'.repeat(127), // 254 bytes
      `50-${now}-${now}0123456789abcdef-a0-${'a'.repeat(200)}.json`,
      `${'r'.repeat(243)}.reason.json`,
      'short.txt',
    ];
    for (const n of names) expect(Buffer.byteLength(n)).toBeLessThanOrEqual(255);
    for (const [i, n] of names.entries()) {
      const path = join(root, 'incoming', n);
      writeFileSync(path, i % 2 === 0 ? '' : 'some bytes');
      utimesSync(path, past(), past());
    }
    const d = await startServing({ dir: root, imports: ['basic'], args: ARGS });
    await d.waitForLog(() => d.logsWith('quarantined a file that is not a valid task').length === names.length, {
      what: `${names.length} quarantined files`,
    });
    // One step each: no failed attempt, nothing left behind.
    expect(d.logs.filter((l) => l.level === 'error')).toEqual([]);
    expect(ls(join(root, 'incoming'))).toEqual([]);
    expect(ls(join(root, 'tmp'))).toEqual([]);
    expect(ls(join(root, 'quarantine')).filter((n) => n.startsWith('.'))).toEqual([]);

    const quarantined = ls(join(root, 'quarantine')).filter((n) => !n.endsWith('.reason.json'));
    expect(quarantined).toHaveLength(names.length);
    const originals: string[] = [];
    for (const q of quarantined) {
      expect(Buffer.byteLength(`${q}.reason.json`)).toBeLessThanOrEqual(255);
      const reason = JSON.parse(readFileSync(join(root, 'quarantine', `${q}.reason.json`), 'utf8')) as { file: string; reason: string; from: string };
      expect(reason.from).toBe('incoming');
      expect(reason.reason).toMatch(/^bad file name/);
      originals.push(reason.file);
      // The quarantined name starts with the original (cut at a character boundary when it does not fit).
      expect(reason.file.startsWith(q.replace(/^\d{13}-[0-9a-f]{6}-/, '').replace(/_$/, ''))).toBe(true);
    }
    expect(originals.sort()).toEqual([...names].sort());

    // The CLI finds them: listed, shown, removed by their quarantined names.
    const listed = lsJson(root, ['--state', 'quarantined']);
    expect(listed.map((e) => e.file).sort()).toEqual(quarantined);
    for (const q of quarantined) {
      const shown = spool(['show', '--dir', root, q]);
      expect(shown.stderr).not.toMatch(/unexpected error/);
      expect([0, 4]).toContain(shown.code);
    }
    for (const q of quarantined) {
      const r = spool(['rm', '--dir', root, q]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    expect(ls(join(root, 'quarantine'))).toEqual([]);
    expect(ls(join(root, 'tmp'))).toEqual([]);
  });
});

describe('spool rm of a quarantined directory', () => {
  it('removes the directory and its reason file, and never follows a link inside it', async () => {
    const outside = join(dir, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'precious'), 'keep me');
    const name = validName();
    const drop = join(root, 'incoming', name);
    mkdirSync(join(drop, 'nested', 'deeper'), { recursive: true });
    writeFileSync(join(drop, 'a-file'), 'x');
    writeFileSync(join(drop, 'nested', 'deeper', 'b-file'), 'y');
    symlinkSync(outside, join(drop, 'link-to-outside'));
    symlinkSync(outside, join(drop, 'nested', 'link-to-outside'));
    closeSync(openSync(join(drop, 'nested', 'empty'), 'w'));
    utimesSync(drop, past(), past());

    const d = await startServing({ dir: root, imports: ['basic'], args: ARGS });
    await d.waitForLog((l) => l.msg === 'quarantined a file that is not a valid task' && l.file === name, { what: 'the directory quarantined' });
    expect(lstatSync(join(root, 'quarantine', name)).isDirectory()).toBe(true);
    expect(existsSync(join(root, 'quarantine', `${name}.reason.json`))).toBe(true);

    const r = spool(['rm', '--dir', root, name]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^removed /);
    expect(ls(join(root, 'quarantine'))).toEqual([]);
    expect(ls(join(root, 'tmp'))).toEqual([]);
    expect(ls(outside)).toEqual(['precious']);
    expect(readFileSync(join(outside, 'precious'), 'utf8')).toBe('keep me');
  });
});
