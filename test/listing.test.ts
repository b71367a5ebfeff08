/**
 * The shortcuts the listing takes for large spools, each held against the code
 * it stands in for: the name parser against parseTaskName (spool/name.ts), and
 * the listing that checks bodies while it sorts against the one that reads
 * every body in turn (keepBodies).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpoolLayout } from '../spool/layout.js';
import { listSpool, parseName, type SpoolEntry } from '../spool/listing.js';
import { formatTaskName, parseTaskName } from '../spool/name.js';
import { tempDir } from './helpers/cli.js';

/** Deterministic pseudo-random numbers (xorshift32), so a failure can be reproduced. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

describe('parseName (the listing) gives what parseTaskName (name.ts) gives', () => {
  const valid = [
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-send_email.msgpack',
    '00-0000000000000-00000000000000000000000000000-a0-x.json',
    '99-9999999999999-99999999999990123456789abcdef-a999999-Z.msgpack',
    '07-1763797200000-1763797190000a3f09c2d4e5b6f71-a12-mail.send:v2-x.json',
    '07-1763797200000-1763797190000a3f09c2d4e5b6f71-a1-_.json.msgpack',
    '07-1763797200000-1763797190000a3f09c2d4e5b6f71-a1-a.msgpack.json',
    `07-1763797200000-1763797190000a3f09c2d4e5b6f71-a1-${'n'.repeat(128)}.json`,
    '07-1763797200000-1763797190000a3f09c2d4e5b6f71-a100000-x-.json',
    '07-1763797200000-1763797190000a3f09c2d4e5b6f71-a5-x..json',
  ];
  const invalid = [
    '',
    'not-a-task.json',
    '.50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-send_email.msgpack',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-send_email.msgpack\n',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-send_email.txt',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-1abc.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a00-x.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a01-x.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a1000000-x.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a-x.json',
    '50-1763797200000-1763797190000A3F09C2D4E5B6F71-a0-x.json',
    '5-01763797200000-1763797190000a3f09c2d4e5b6f71-a0-x.json',
    '50-176379720000-01763797190000a3f09c2d4e5b6f71-a0-x.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f7-a0-x.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-b0-x.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-x y.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-x.JSON',
    `50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-${'n'.repeat(129)}.json`,
    '５0-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-x.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-é.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-x.json\u0000',
  ];

  it('on hand-picked valid and invalid names', () => {
    for (const name of valid) {
      expect(parseTaskName(name), name).toBeDefined();
      expect(parseName(name), name).toEqual(parseTaskName(name));
    }
    for (const name of invalid) {
      expect(parseTaskName(name), name).toBeUndefined();
      expect(parseName(name), name).toBeUndefined();
    }
  });

  it('on every one-character change of valid names, and on made-up ones', () => {
    const rand = random(0x5eed);
    // Characters that matter to the pattern, and some that do not belong anywhere in it.
    const alphabet = '0123456789abcdefgxyzAFGZ_.:-/ \t\n\u00e9\u0660\uff10\ud800.jsonmsgpack';
    const names = [...valid];
    for (let i = 0; i < 150; i++) {
      const attempts = [0, 1, 9, 10, 99999, 999999][Math.floor(rand() * 6)]!;
      const name = 'abcdefghijklmnopqrstuvwxyzAZ_09.:-'.slice(0, 1 + Math.floor(rand() * 20)).replace(/^[0-9.:-]/, 'q');
      names.push(
        formatTaskName({
          priority: Math.floor(rand() * 100),
          due: Math.floor(rand() * 9_999_999_999_999),
          id: String(Math.floor(rand() * 9_999_999_999_999)).padStart(13, '0') + Math.floor(rand() * 2 ** 32).toString(16).padStart(8, '0') + Math.floor(rand() * 2 ** 32).toString(16).padStart(8, '0'),
          attempts,
          name,
          encoding: rand() < 0.5 ? 'json' : 'msgpack',
        }),
      );
    }
    let checked = 0;
    let parsed = 0;
    const compare = (name: string) => {
      const expected = parseTaskName(name);
      const got = parseName(name);
      if (expected === undefined) expect(got, name).toBeUndefined();
      else {
        expect(got, name).toEqual(expected);
        parsed++;
      }
      checked++;
    };
    for (const name of names) {
      compare(name);
      for (let i = 0; i <= name.length; i++) {
        compare(name.slice(0, i) + name.slice(i + 1)); // deleted
        compare(name.slice(0, i)); // cut short
        for (let k = 0; k < 3; k++) {
          const c = alphabet[Math.floor(rand() * alphabet.length)]!;
          compare(name.slice(0, i) + c + name.slice(i + 1)); // replaced
          compare(name.slice(0, i) + c + name.slice(i)); // inserted
        }
      }
    }
    for (let i = 0; i < 10_000; i++) {
      let s = '';
      const length = Math.floor(rand() * 80);
      for (let k = 0; k < length; k++) s += alphabet[Math.floor(rand() * alphabet.length)];
      compare(s);
    }
    // Enough of both kinds to mean something.
    expect(checked).toBeGreaterThan(90_000);
    expect(parsed).toBeGreaterThan(10_000);
  });
});

describe('listSpool with body checks', () => {
  let dir: string;
  let cleanup: () => void;
  beforeEach(() => ({ dir, cleanup } = tempDir('listing-')));
  afterEach(() => cleanup());

  const BODY = '{"version":1,"type":"fcall","args":[]}';
  const withoutBodies = (entries: SpoolEntry[]) => entries.map(({ body: _body, ...rest }) => rest);


  it('gives the listing that reads each body in turn, with invalid bodies among many valid ones', () => {
    const root = join(dir, 'spool');
    const layout = new SpoolLayout(root);
    for (const d of ['incoming', 'pending', 'active/w1', 'dead', 'archive']) mkdirSync(join(root, d), { recursive: true });
    const now = Date.now();
    const rand = random(7);
    let seq = 0;
    const name = (due: number, task: string, ext: 'json' | 'msgpack' = 'json', priority = Math.floor(rand() * 100)) =>
      formatTaskName({ priority, due, id: String(now - 1000).padStart(13, '0') + (++seq).toString(16).padStart(16, '0'), attempts: 0, name: task, encoding: ext });
    const packr = new Packr({ useRecords: false });
    for (let i = 0; i < 5000; i++) {
      const due = rand() < 0.6 ? now - Math.floor(rand() * 3_600_000) : now + 60_000 + Math.floor(rand() * 86_400_000);
      const where = rand() < 0.5 ? 'incoming' : 'pending';
      const kind = rand();
      if (kind < 0.01) writeFileSync(join(root, where, name(due, 'bad_json')), '{"version":1,');
      else if (kind < 0.02) writeFileSync(join(root, where, name(due, 'bad_pack', 'msgpack')), Buffer.of(0x83, 0xa7));
      else if (kind < 0.5) writeFileSync(join(root, where, name(due, 'pack', 'msgpack')), packr.pack({ version: 1, type: 'fcall', args: [i] }));
      else writeFileSync(join(root, where, name(due, 'json')), BODY);
    }
    // The same name in two directories, a bad name, and bad bodies where invalid files keep another state.
    const twice = name(now - 5000, 'twice', 'json', 50);
    writeFileSync(join(root, 'incoming', twice), BODY);
    writeFileSync(join(root, 'pending', twice), 'nope');
    writeFileSync(join(root, 'incoming', 'zz-not-a-task'), BODY);
    writeFileSync(join(root, 'active/w1', name(now, 'running')), BODY);
    writeFileSync(join(root, 'active/w1', name(now, 'running_bad')), '[');
    writeFileSync(join(root, 'dead', name(now, 'dead_bad')), '[');
    writeFileSync(join(root, 'dead', name(now, 'dead_ok')), BODY);
    writeFileSync(join(root, 'archive', name(now, 'archived_bad')), '[');

    const locations = ['incoming', 'pending', 'active', 'dead', 'archive'] as const;
    const checked = listSpool(layout, { locations, now });
    const reference = listSpool(layout, { locations, now, keepBodies: true });
    expect(checked).toHaveLength(5008);
    expect(checked.filter((e) => e.state === 'invalid').length).toBeGreaterThan(50);
    expect(checked.map((e) => e.reason !== undefined && e.state !== 'invalid')).toContain(true);
    expect(checked.every((e) => e.mtimeMs !== undefined || e.reason !== undefined)).toBe(true);
    // Not compared: the owner of an invalid file in active/, which a checked listing has never
    // carried over (keepBodies sets it before the body is read).
    for (const e of reference) if (e.location === 'active' && e.state === 'invalid') delete e.owner;
    expect(withoutBodies(checked)).toEqual(withoutBodies(reference));
  });
});
