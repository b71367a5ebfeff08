/**
 * Terminal escapes (README, "The `spool` command", "Output for people"):
 * anyone who can drop a file into a spool chooses its name, and the names,
 * owners, reasons and bodies the `spool` command and the daemon's pretty logs
 * print come from such files. Printed raw, `\x1b[2J` clears the operator's
 * screen, `\x1b]0;…\x07` retitles the terminal, a newline forges a row. Every
 * output for people shows control characters as escapes (`\x1b`, `\n`);
 * `--json` (and `spool show`) keep the exact text, as JSON.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { printable } from '../spool/printable.js';
import { lsJson, spool } from './helpers/cli.js';
import { startDaemon, waitFor } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

/** A terminal acts on these; none may reach it raw (newlines only end lines). */
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

const BODY = '{"version":1,"type":"fcall","args":[]}';
const MIN = 60_000;
let seq = 0;

/** A task file name per SPOOL-FORMAT.md, "File name", whose NAME part is `name` (a bad one here). */
function fileNamed(name: string, due = Date.now() - MIN): { id: string; file: string } {
  const created = Date.now() - MIN;
  const id = String(created).padStart(13, '0') + (++seq).toString(16).padStart(16, '0');
  return { id, file: `50-${String(due).padStart(13, '0')}-${id}-a0-${name}.json` };
}

function put(where: string, file: string, body = BODY): string {
  mkdirSync(join(root, where), { recursive: true });
  const path = join(root, where, file);
  writeFileSync(path, body);
  return path;
}

/** The file name of issue 12: clears the screen and retitles the terminal. */
const CLEAR_AND_RETITLE = '\x1b[2J\x1b]0;pwned\x07';

let root: string;
useDaemonSpool('spool-terminal-', {
  bind: (s) => {
    ({ root } = s);
    for (const d of ['tmp', 'incoming', 'pending', 'active', 'dead', 'quarantine', 'archive', 'state', 'locks']) mkdirSync(join(root, d), { recursive: true });
  },
});

describe('printable', () => {
  it('writes C0, DEL, C1 and bidi controls as visible escapes and leaves everything else alone', () => {
    expect(printable('plain name, ünïcödé, 日本, emoji 🙂, back\\slash')).toBe('plain name, ünïcödé, 日本, emoji 🙂, back\\slash');
    expect(printable(CLEAR_AND_RETITLE)).toBe('\\x1b[2J\\x1b]0;pwned\\x07');
    expect(printable('a\nb\rc\td\x00e\x7ff\x9b31mg')).toBe('a\\nb\\rc\\td\\x00e\\x7ff\\x9b31mg');
    expect(printable('\u202egnp.exe \u2066x\u2069 \u2028')).toBe('\\u202egnp.exe \\u2066x\\u2069 \\u2028');
    for (let c = 0; c < 0x3000; c++) expect(RAW_CONTROL.test(printable(String.fromCharCode(c))), `U+${c.toString(16)}`).toBe(false);
  });
});

describe('spool ls', () => {
  it('shows hostile file names, owners and reasons escaped, one row each; --json keeps them exact', () => {
    const hostile = [CLEAR_AND_RETITLE, 'two\nrows', 'c1\x9b31m', 'bidi\u202etxt.exe', 'tab\there'].map((n) => fileNamed(n).file);
    for (const f of hostile) put('incoming', f);
    const valid = fileNamed('work');
    put(`active/ev\x1b[31mil`, valid.file);
    const quarantined = 'junk\x1b[5m.bin';
    put('quarantine', quarantined, 'junk');
    writeFileSync(join(root, 'quarantine', quarantined + '.reason.json'), JSON.stringify({ reason: 'bad \x1b]0;title\x07 body', from: 'incoming', at: Date.now() }));

    const r = spool(['ls', '--dir', root]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1 + hostile.length + 2); // header, the hostile ones, the active task, the quarantined file
    for (const f of hostile) expect(r.stdout).toContain(printable(f));
    expect(r.stdout).toContain('\\x1b[2J\\x1b]0;pwned\\x07');
    expect(r.stdout).toContain('two\\nrows');
    expect(r.stdout).toContain(`active@ev\\x1b[31mil`);
    expect(r.stdout).toContain('junk\\x1b[5m.bin');
    expect(r.stdout).toContain('bad \\x1b]0;title\\x07 body');

    // JSON: the exact names once parsed; the raw text holds no C1 or bidi character either (JSON escapes C0 itself).
    const json = spool(['ls', '--dir', root, '--json']);
    expect(json.code, json.stderr).toBe(0);
    expect(json.stdout).not.toMatch(RAW_CONTROL);
    const entries = lsJson(root);
    expect(entries.map((e) => e.file).sort()).toEqual([...hostile, valid.file, quarantined].sort());
    expect(entries.find((e) => e.file === valid.file)?.owner).toBe('ev\x1b[31mil');
    expect(entries.find((e) => e.file === quarantined)?.reason).toBe('bad \x1b]0;title\x07 body');
  });

  it('keeps the owner of an invalid file in active/<owner>/, as spool show does', () => {
    const invalid = fileNamed('broken');
    put('active/w1', invalid.file, 'not json');
    put('active/w2', fileNamed('ok').file);
    const entries = lsJson(root);
    const entry = entries.find((e) => e.file === invalid.file);
    expect(entry?.state).toBe('invalid');
    expect(entry?.owner).toBe('w1');
    const show = spool(['show', '--dir', root, invalid.file]);
    expect(show.code).toBe(4);
    expect(JSON.parse(show.stdout).owner).toBe('w1');
    expect(spool(['ls', '--dir', root]).stdout).toMatch(/invalid@w1/);
  });
});

describe('spool show and rm', () => {
  it('show: the JSON holds the exact name and body values with nothing a terminal acts on; the error on stderr is escaped', () => {
    const bad = fileNamed(CLEAR_AND_RETITLE).file;
    put('incoming', bad);
    const r = spool(['show', '--dir', root, bad]);
    expect(r.code).toBe(4);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    expect(r.stderr).not.toMatch(RAW_CONTROL);
    expect(JSON.parse(r.stdout).file).toBe(bad);
    expect(r.stderr).toContain(printable(bad));

    const args = ['\x1b[2J', 'c1 \x9b31m', 'del \x7f', 'bidi \u202e', 'line\u2028sep', { 'k\x1b': 'v\x07' }];
    const good = fileNamed('work');
    put('pending', good.file, JSON.stringify({ version: 1, type: 'fcall', args }));
    const shown = spool(['show', '--dir', root, good.id]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).not.toMatch(RAW_CONTROL);
    expect(JSON.parse(shown.stdout).body.args).toEqual(args);
  });

  it('rm prints hostile names and owners escaped', () => {
    const bad = fileNamed(`x${CLEAR_AND_RETITLE}\ny`).file;
    put('dead', bad);
    const rm = spool(['rm', '--dir', root, bad]);
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout).not.toMatch(RAW_CONTROL);
    expect(rm.stdout).toBe(`removed ${printable(bad)}\n`);
    expect(readdirSync(join(root, 'dead'))).toEqual([]);

    // An owner name in an error ("… is running on <owner>").
    const running = fileNamed('work');
    put('active/\x1b]0;owner\x07', running.file);
    const r = spool(['rm', '--dir', root, running.id]);
    expect(r.code).toBe(5);
    expect(r.stderr).not.toMatch(RAW_CONTROL);
    expect(r.stderr).toContain('\\x1b]0;owner\\x07');
  });
});

describe('spoolerd --log-format pretty', () => {
  it('logs the names of quarantined hostile files escaped, each on one line', async () => {
    // One name with no white space (the formatter printed such values bare) and one with a newline and C1/bidi characters.
    const bad = [fileNamed(CLEAR_AND_RETITLE).file, fileNamed('\x9b2J\u202e\nFAKE ERROR line').file];
    // Pretty lines are not JSON: the helper keeps them in rawStderr.
    const d = startDaemon({ dir: root, imports: ['basic'], logFormat: 'pretty', args: ['--settle', '100ms', '--scan-interval', '200ms'] });
    await waitFor(() => d.rawStderr.some((l) => l.includes('serving spool')), { what: '"serving spool"', explain: () => d.describe() });
    for (const f of bad) put('incoming', f);
    // The daemon's own lines about them prove it got there; then the whole of stderr is checked.
    const lines = await waitFor(() => {
      const found = d.rawStderr.filter((l) => l.includes('quarantined a file'));
      return found.length === bad.length && found;
    }, { what: 'the quarantine log lines', explain: () => d.rawStderr.join('\n') });
    expect(lines.join('\n')).toContain('-a0-\\x1b[2J\\x1b]0;pwned\\x07.json');
    expect(lines.join('\n')).toContain('\\x9b2J\\u202e\\nFAKE ERROR line');
    expect(d.rawStderr.join('\n')).not.toMatch(RAW_CONTROL);
    expect(d.rawStderr.filter((l) => l.startsWith('FAKE'))).toEqual([]);
  });
});
