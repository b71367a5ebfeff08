/**
 * The text `spool ls` prints, made the fast way, against the plain way it
 * stands in for: entryJsonText against JSON.stringify(entryJson(e)), TimeTexts
 * against formatSpan and formatRelative, formatTime against toISOString, and
 * alignedLine against padding, joining and trimming the cells.
 */
import { describe, expect, it } from 'vitest';
import { alignedLine } from '../cli/commands/ls.js';
import { entryJson, entryJsonText } from '../cli/entry-json.js';
import { formatRelative, formatSpan, formatTime, TimeTexts, toJson } from '../cli/output.js';
import type { SpoolEntry } from '../spool/entries.js';
import { random } from './helpers/random.js';


const ODD_STRINGS = ['', ' ', 'plain', 'quote " and \\ backslash', 'tab\tnew\nline\r', '\u0000\u001f\u007f', 'é日本', '\ud800 lone', 'pair \ud83d\ude00', '\u2028\u2029', '</script>', 'ends in space '];

describe('entryJsonText', () => {
  it('is toJson(entryJson(e)) for entries of every kind', () => {
    const task = { priority: 7, due: 1763797200000, id: '1763797190000a3f09c2d4e5b6f71', created: 1763797190000, attempts: 3, name: 'mail.send:v2-x', encoding: 'json' as const };
    const entries: SpoolEntry[] = [
      { location: 'pending', fileName: 'f', path: '/s/pending/f', state: 'due', task },
      { location: 'active', fileName: 'f', path: '/s/active/w/f', state: 'active', task: { ...task, priority: 0, attempts: 0, encoding: 'msgpack' }, owner: 'w', mtimeMs: 1.5 },
      { location: 'incoming', fileName: 'x', path: '/s/incoming/x', state: 'invalid', reason: 'bad file name: it is bad' },
      { location: 'quarantine', fileName: 'q', path: '/q', state: 'quarantined', task, reason: 'why' },
    ];
    for (const s of ODD_STRINGS) {
      entries.push({ location: 'incoming', fileName: s, path: `/sp ${s}/incoming/${s}`, state: 'invalid', reason: s });
      entries.push({ location: 'active', fileName: s, path: s, state: 'active', task: { ...task, name: s, id: s }, owner: s });
      entries.push({ location: 'dead', fileName: s, path: s, state: 'dead', task: { ...task, due: -0, created: NaN, attempts: Infinity }, owner: '' });
    }
    for (const e of entries) {
      expect(entryJsonText(e)).toBe(toJson(entryJson(e)));
      // toJson only writes more characters as \u escapes: the value is JSON.stringify's.
      expect(JSON.parse(entryJsonText(e))).toEqual(JSON.parse(JSON.stringify(entryJson(e))));
    }
  });
});

describe('TimeTexts', () => {
  it('gives formatSpan and formatRelative', () => {
    const rand = random(42);
    const now = 1763797200000;
    const texts = new TimeTexts(now);
    const spans = [0, 1, 999, 999.5, 1000, 1500.7, 59_999, 60_000, 3_599_999, 3_600_000, 86_399_999, 86_400_000, 864_000_000_000, 1e15, NaN, -5];
    for (let i = 0; i < 4000; i++) spans.push(Math.floor(rand() * 10 ** (1 + Math.floor(rand() * 12))), rand() * 1e8);
    // Twice: the second time from what was remembered.
    for (let round = 0; round < 2; round++) {
      for (const ms of spans) {
        expect(texts.span(ms), String(ms)).toBe(formatSpan(ms));
        for (const due of [now + ms, now - ms]) expect(texts.relative(due), String(due)).toBe(formatRelative(due, now));
      }
    }
  });
});

describe('formatTime', () => {
  /** What it gives: toISOString() to the second, with a space for the "T". */
  const reference = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');

  it('is the ISO time to the second, from the same minute and across days, years and the epoch', () => {
    const rand = random(99);
    const times = [0, -1, -1000, -60_000, -86_400_000, 59_999, 60_000, 86_399_999, 1763797200000, 1763797259999, 951782400000, -62167219200000, 253402300799999];
    for (let i = 0; i < 20_000; i++) times.push(Math.floor((rand() - 0.3) * 2 ** 45));
    let t = 1763797000000;
    for (let i = 0; i < 5000; i++) times.push((t += Math.floor(rand() * 30_000)));
    for (const ms of times) expect(formatTime(ms), String(ms)).toBe(reference(ms));
    // Outside 0000–9999, and times that are not whole ms: as toISOString has them.
    for (const ms of [-62167219200001, 253402300800000, 1763797200000.5]) expect(formatTime(ms)).toBe(reference(ms));
  });
});

describe('alignedLine', () => {
  /** Every cell padded, joined two spaces apart, the end trimmed: PRI and ATT (2 and 5) right-aligned, the last cell unpadded. */
  function reference(cells: string[], width: number[]): string {
    const last = cells.length - 1;
    let text = '';
    for (let c = 0; c <= last; c++) {
      if (c > 0) text += '  ';
      text += c === 2 || c === 5 ? cells[c]!.padStart(width[c]!) : c === last ? cells[c]! : cells[c]!.padEnd(width[c]!);
    }
    return text.trimEnd() + '\n';
  }

  it('is the padded, joined and trimmed line, for any cells', () => {
    const rand = random(5);
    const pool = ['', '', '-', 'x', 'abc', 'due', '12', ...ODD_STRINGS, '\u00a0', '\ufeff', '\u3000'];
    for (let i = 0; i < 20_000; i++) {
      const n = rand() < 0.5 ? 8 : 9;
      const cells = Array.from({ length: n }, () => pool[Math.floor(rand() * pool.length)]!);
      const width = cells.map((c) => c.length + Math.floor(rand() * 4));
      expect(alignedLine(cells, width), JSON.stringify(cells)).toBe(reference(cells, width));
    }
  });
});
