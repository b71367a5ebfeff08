/** The result record codec and its two transitions (spool/results.ts; spool/protocol.ts keepResult, sweepExpiredResults). */
import { mkdirSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpoolLayout } from '../spool/layout.js';
import { keepResult, sweepExpiredResults } from '../spool/protocol.js';
import { encodeResult, parseResultFileName, readResult, readResultFile, resultFileName, type NewResult } from '../spool/results.js';
import { encodeWire } from '../spool/wire.js';
import { tempDir } from './helpers/cli.js';

const ID = '1796190546088abcdef0123456789';
const base: NewResult = { id: ID, name: 'add', ending: 'processed', attempts: 1, owner: 'host-1-abc', finishedAt: 1_796_190_546_100, keepUntil: 1_796_194_146_100 };

let dir: string;
let cleanup: () => void;
let layout: SpoolLayout;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('results-record-'));
  layout = new SpoolLayout(join(dir, 'spool'));
  mkdirSync(layout.results, { recursive: true });
});
afterEach(() => cleanup());

describe('result records', () => {
  for (const encoding of ['msgpack', 'json'] as const) {
    it(`round-trips a value in ${encoding}, large integers as integers`, () => {
      const { bytes, problem } = encodeResult({ ...base, value: { n: 2 ** 40, s: 'é', list: [1, null, true] } }, encoding, 1 << 20);
      expect(problem).toBeUndefined();
      keepResult(layout, resultFileName(ID, encoding), bytes, base.keepUntil);
      const read = readResult(layout, ID);
      expect(read).toEqual({ ok: true, record: { version: 1, ...base, value: { n: 2 ** 40, s: 'é', list: [1, null, true] } } });
    });
  }

  it('a value no encoding can carry is left out, and the record says why', () => {
    const { bytes, problem } = encodeResult({ ...base, value: { when: new Date(0) } }, 'msgpack', 1 << 20);
    expect(problem).toMatch(/result\.value\.when: a Date/);
    keepResult(layout, resultFileName(ID, 'msgpack'), bytes, base.keepUntil);
    const read = readResult(layout, ID);
    expect(read.ok && read.record.value).toBeUndefined();
    expect(read.ok && read.record.valueError).toBe(problem);
  });

  it('bytes are refused in a JSON record, and a value over the cap is left out', () => {
    expect(encodeResult({ ...base, value: Buffer.from('x') }, 'json', 1 << 20).problem).toMatch(/cannot be kept/);
    const big = encodeResult({ ...base, value: 'x'.repeat(5000) }, 'msgpack', 1000);
    expect(big.problem).toMatch(/over the spool's --max-bytes of 1000/);
    expect(big.bytes.length).toBeLessThan(1000);
  });

  it('a dead ending keeps the error with its stack', () => {
    const { bytes } = encodeResult({ ...base, ending: 'dead', attempts: 4, error: { name: 'TypeError', message: 'boom', stack: 'TypeError: boom\n    at x' } }, 'json', 1 << 20);
    const record = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    expect(record).toEqual({ version: 1, ...base, ending: 'dead', attempts: 4, error: { name: 'TypeError', message: 'boom', stack: 'TypeError: boom\n    at x' } });
  });

  it('reads only records: names are <id>.<encoding>; a bad record is refused with a reason; a missing one says so', () => {
    expect(parseResultFileName(`${ID}.msgpack`)).toEqual({ id: ID, encoding: 'msgpack' });
    expect(parseResultFileName(`${ID}.json`)).toEqual({ id: ID, encoding: 'json' });
    for (const bad of ['.record-1-ab', `${ID}.txt`, 'x.json', `${ID}`, `${ID}0.json`]) expect(parseResultFileName(bad)).toBeUndefined();
    expect(readResult(layout, ID)).toEqual(expect.objectContaining({ ok: false, missing: true }));
    writeFileSync(join(layout.results, `${ID}.json`), JSON.stringify({ version: 1, id: ID, name: 'add', ending: 'finished', attempts: 1, finishedAt: 1, keepUntil: 2 }));
    expect(readResultFile(join(layout.results, `${ID}.json`), 'json')).toEqual({ ok: false, reason: expect.stringContaining('"ending" must be one of processed, skipped, dead, cancelled, expired') });
    writeFileSync(join(layout.results, `${ID}.msgpack`), encodeWire({ version: 2 }, 'msgpack'));
    expect(readResultFile(join(layout.results, `${ID}.msgpack`), 'msgpack')).toEqual({ ok: false, reason: expect.stringContaining('version 2 is not supported') });
  });
});

describe('keepResult and the result sweep', () => {
  it('renames the record into place with its keep-until time as mtime, leaving no staged file', () => {
    const { bytes } = encodeResult(base, 'msgpack', 1 << 20);
    keepResult(layout, resultFileName(ID, 'msgpack'), bytes, base.keepUntil);
    expect(readdirSync(layout.results)).toEqual([`${ID}.msgpack`]);
    expect(Math.round(statSync(join(layout.results, `${ID}.msgpack`)).mtimeMs)).toBe(base.keepUntil);
  });

  it('a failed write leaves nothing (not even the staged file) and throws', () => {
    const { bytes } = encodeResult(base, 'msgpack', 1 << 20);
    // The target is a directory: the rename fails after the staged file was written.
    mkdirSync(join(layout.results, `${ID}.msgpack`, 'x'), { recursive: true });
    expect(() => keepResult(layout, resultFileName(ID, 'msgpack'), bytes, base.keepUntil)).toThrow();
    expect(readdirSync(layout.results)).toEqual([`${ID}.msgpack`]);
  });

  it('deletes the records whose mtime has passed, by lstat alone; staged records and newer ones stay', () => {
    const now = Date.now();
    const names = ['1796190546088aaaaaaaaaaaaaaaa.msgpack', '1796190546088bbbbbbbbbbbbbbbb.json', '.record-1-ab'];
    for (const n of names) writeFileSync(join(layout.results, n), 'not even read');
    const past = new Date(now - 1000);
    utimesSync(join(layout.results, names[0]!), past, past);
    utimesSync(join(layout.results, names[2]!), past, past);
    const future = new Date(now + 60_000);
    utimesSync(join(layout.results, names[1]!), future, future);
    expect(sweepExpiredResults(layout, readdirSync(layout.results), now)).toBe(1);
    expect(readdirSync(layout.results).sort()).toEqual([names[2]!, names[1]!].sort());
  });
});
