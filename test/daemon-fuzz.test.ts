/**
 * A fuzz test of the daemon's input side: a seeded generator of file names and
 * bodies, good and bad (every rejected shape of SPOOL-FORMAT.md, "Body",
 * "Values", "File name", "Reading safely"), dropped into a running real
 * `spoolerd`. It must stay up, quarantine each bad file exactly once (one
 * reason file naming it), run each good file exactly once, leave dot-files
 * alone and leave nothing in tmp/.
 *
 * The seed is printed; FUZZ_SEED=<n> replays a run, FUZZ_FILES=<n> sizes it.
 */
import { RESERVED_FIELDS } from '../spool/body.js';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { describeSpool, ls, lsActive, readRecords, startServing, waitFor } from './helpers/daemon.js';
import { random } from './helpers/random.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261201);
const FILES = Number(process.env.FUZZ_FILES ?? 160);

let dir: string;
let root: string;
let records: string;
useDaemonSpool('spoolerd-fuzz-', { open: true, bind: (s) => ({ dir, root, records } = s) });

const packr = new Packr({ useRecords: false, moreTypes: false, variableMapSize: true });

type Rand = () => number;
const pick = <T>(rand: Rand, items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
const int = (rand: Rand, lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));

/** How a generated file ends up. */
type Expect = 'runs' | 'quarantined' | 'ignored';

interface Case {
  shape: string;
  expect: Expect;
  /** The name it is dropped under. */
  file: string;
  /** incoming/, or pending/ (daemon-owned, so only before the daemon starts: it reads pending/ at start-up). */
  into: 'incoming' | 'pending';
  /** For 'runs': the key (args[0]) its run records. */
  key?: string;
  /** Writes it into `path` (written in place, as a hostile producer does, unless the shape says otherwise). */
  make: (path: string) => void;
  /** Goes through tmp/ and rename(), as the protocol asks. */
  staged?: boolean;
}

let serial = 0;
/** Three characters no other generated name shares. */
const unique = (): string => (++serial).toString(36).padStart(3, '0');
function taskFileName(rand: Rand, ext: 'json' | 'msgpack', name = 'echo'): string {
  const now = Date.now() - int(rand, 0, 5000);
  const hex = Array.from({ length: 16 }, () => pick(rand, [...'0123456789abcdef'])).join('');
  serial++;
  // The serial keeps ids unique whatever the generator draws.
  const id = `${String(now).padStart(13, '0')}${hex.slice(0, 10)}${serial.toString(16).padStart(6, '0')}`;
  return `${String(int(rand, 0, 99)).padStart(2, '0')}-${String(now).padStart(13, '0')}-${id}-a0-${name}.${ext}`;
}

/** A plain value: what any producer may send. */
function plainValue(rand: Rand, depth = 0): unknown {
  const r = rand();
  if (depth > 3 || r < 0.5) {
    return pick(rand, [
      () => null,
      () => rand() < 0.5,
      () => int(rand, -(2 ** 31), 2 ** 31),
      () => (rand() - 0.5) * 2 ** int(rand, 0, 60),
      () => Number.MAX_SAFE_INTEGER,
      () => -Number.MAX_SAFE_INTEGER,
      () => 1e20,
      () => text(rand),
    ])();
  }
  if (r < 0.75) return Array.from({ length: int(rand, 0, 5) }, () => plainValue(rand, depth + 1));
  return Object.fromEntries(Array.from({ length: int(rand, 0, 5) }, () => [text(rand), plainValue(rand, depth + 1)]));
}

function text(rand: Rand): string {
  const alphabet = ['a', 'Z', '0', ' ', '"', '\\', '\n', '\u0000', 'é', 'ß', '日本', '🎉', '\u{10FFFF}', '\uFEFF', '\u2028'];
  return Array.from({ length: int(rand, 0, 12) }, () => pick(rand, alphabet)).join('');
}

const str = (s: Buffer): Buffer => Buffer.concat([Buffer.from([0xd9, s.length]), s]);
const key = (s: string): Buffer => str(Buffer.from(s));
/** {"version":1,"type":"fcall","args":[<key>, <raw>]} by hand, so the bytes are exactly these. */
function bodyWithRawArg(taskKey: string, raw: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x83]), key('version'), Buffer.from([0x01]), key('type'), key('fcall'), key('args'), Buffer.from([0x92]), key(taskKey), raw]);
}
function nestedArrays(levels: number, leaf: unknown): unknown {
  let v = leaf;
  for (let i = 0; i < levels; i++) v = [v];
  return v;
}

function generate(rand: Rand, count: number): Case[] {
  const cases: Case[] = [];
  const into = (): 'incoming' | 'pending' => (rand() < 0.5 ? 'incoming' : 'pending');
  const write = (bytes: Uint8Array | string) => (path: string) => writeFileSync(path, bytes);

  const good = (shape: string, ext: 'json' | 'msgpack', body: (k: string) => Uint8Array | string): void => {
    const k = `fuzz-${cases.length}`;
    cases.push({ shape, expect: 'runs', file: taskFileName(rand, ext), into: into(), key: k, make: write(body(k)), staged: rand() < 0.7 });
  };
  const bad = (shape: string, file: string, make: (path: string) => void): void => {
    cases.push({ shape, expect: 'quarantined', file, into: into(), make });
  };
  const badBody = (shape: string, ext: 'json' | 'msgpack', bytes: (k: string) => Uint8Array | string): void =>
    bad(shape, taskFileName(rand, ext), write(bytes(`bad-${cases.length}`)));

  const generators: Array<() => void> = [
    // Good files.
    () => good('msgpack, random plain values', 'msgpack', (k) => packr.pack({ version: 1, type: 'fcall', args: [k, plainValue(rand), plainValue(rand)] })),
    () => good('JSON, random plain values', 'json', (k) => JSON.stringify({ version: 1, type: 'fcall', args: [k, plainValue(rand)] })),
    () => good('JSON with a trailing newline', 'json', (k) => JSON.stringify({ version: 1, type: 'fcall', args: [k] }) + '\n'),
    () => good('JSON version 1.0', 'json', (k) => `{"version":1.0,"type":"fcall","args":[${JSON.stringify(k)}]}`),
    () => good('JSON with an escaped surrogate pair', 'json', (k) => `{"version":1,"type":"fcall","args":[${JSON.stringify(k)},"\\ud83c\\udf89"]}`),
    () => good('msgpack nested 64 levels', 'msgpack', (k) => packr.pack({ version: 1, type: 'fcall', args: [k, nestedArrays(62, 'leaf')] })),
    () => good('msgpack, unknown fields carried', 'msgpack', (k) => packr.pack({ version: 1, type: 'fcall', args: [k], fromTheFuture: { x: 1 }, meta: { m: text(rand) } })),
    () => good('msgpack map of 70,000 keys (map32)', 'msgpack', (k) => packr.pack({ version: 1, type: 'fcall', args: [k, Object.fromEntries(Array.from({ length: 70_000 }, (_, i) => [`k${i}`, i]))] })),
    () => good('msgpack float64 1e20 and 2^53', 'msgpack', (k) => packr.pack({ version: 1, type: 'fcall', args: [k, 1e20, 2 ** 53, Number.MAX_VALUE] })),

    // Bodies that must be quarantined.
    () => badBody('msgpack str with invalid UTF-8', 'msgpack', (k) => bodyWithRawArg(k, str(Buffer.from([0x61, pick(rand, [0xff, 0xc0, 0x80, 0xe2]), 0x62])))),
    () => badBody('msgpack str with a UTF-8-encoded surrogate (CESU-8)', 'msgpack', (k) => bodyWithRawArg(k, str(Buffer.from([0xed, 0xa0, 0x80])))),
    () => badBody('msgpack map key with invalid UTF-8', 'msgpack', (k) => bodyWithRawArg(k, Buffer.concat([Buffer.from([0x81]), str(Buffer.from([0xfe])), Buffer.from([0x01])]))),
    () => badBody('msgpack str16 with invalid UTF-8 after 100 ASCII bytes', 'msgpack', (k) => {
      const s = Buffer.concat([Buffer.alloc(100, 0x61), Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80])]);
      return bodyWithRawArg(k, Buffer.concat([Buffer.from([0xda, 0, s.length]), s]));
    }),
    () => badBody('JSON with invalid UTF-8', 'json', (k) => Buffer.concat([Buffer.from(`{"version":1,"type":"fcall","args":["${k}","`), Buffer.from([0xc3, 0x28]), Buffer.from('"]}')])),
    () => badBody('JSON with a lone surrogate escape', 'json', (k) => `{"version":1,"type":"fcall","args":["${k}","a${pick(rand, ['\\ud800', '\\uDFFF', '\\udc00x'])}"]}`),
    () => badBody('JSON with a lone surrogate in a key', 'json', (k) => `{"version":1,"type":"fcall","args":["${k}",{"\\ud834":1}]}`),
    () => badBody('JSON with a byte order mark', 'json', (k) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ version: 1, type: 'fcall', args: [k] }))])),
    () => badBody('msgpack nested 65 levels', 'msgpack', (k) => packr.pack({ version: 1, type: 'fcall', args: [k, nestedArrays(63, 'leaf')] })),
    () => badBody('JSON nested 65 levels', 'json', (k) => JSON.stringify({ version: 1, type: 'fcall', args: [k, nestedArrays(63, 'leaf')] })),
    () => badBody('msgpack nested 10,000 levels', 'msgpack', (k) => bodyWithRawArg(k, Buffer.alloc(10_000, 0x91))),
    () => badBody('JSON nested 10,000 levels', 'json', (k) => `{"version":1,"type":"fcall","args":["${k}",${'['.repeat(10_000)}${']'.repeat(10_000)}]}`),
    () => badBody('msgpack array32 claiming 2^32 − 1 items', 'msgpack', (k) => bodyWithRawArg(k, Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]))),
    () => badBody('msgpack map32 claiming 2^32 − 1 pairs', 'msgpack', (k) => bodyWithRawArg(k, Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff, 0xa0, 0xc0]))),
    () => badBody('msgpack str32 longer than the file', 'msgpack', (k) => bodyWithRawArg(k, Buffer.from([0xdb, 0x7f, 0xff, 0xff, 0xff, 0x61]))),
    () => badBody('msgpack uint64 2^53', 'msgpack', (k) => bodyWithRawArg(k, Buffer.from([0xcf, 0x00, 0x20, 0, 0, 0, 0, 0, 0]))),
    () => badBody('msgpack extension type', 'msgpack', (k) => bodyWithRawArg(k, Buffer.from([0xd6, 0xff, 0, 0, 0, 0]))),
    () => badBody('msgpack with trailing bytes', 'msgpack', (k) => Buffer.concat([packr.pack({ version: 1, type: 'fcall', args: [k] }), Buffer.from([0xc0])])),
    () => {
      const ext = pick(rand, ['json', 'msgpack'] as const);
      badBody('reserved field', ext, (k) => {
        const body = { version: 1, type: 'fcall', args: [k], [pick(rand, [...RESERVED_FIELDS])]: 1 };
        return ext === 'json' ? JSON.stringify(body) : packr.pack(body);
      });
    },
    () => badBody('unknown version', 'json', (k) => `{"version":${pick(rand, ['2', '0', '-1', '"1"', '1.5', 'null', '99999999999'])},"type":"fcall","args":["${k}"]}`),
    () => badBody('no version', 'msgpack', (k) => packr.pack({ type: 'fcall', args: [k] })),
    () => badBody('args: null', 'json', (k) => `{"version":1,"type":"fcall","args":null,"k":"${k}"}`),
    () => badBody('empty file', pick(rand, ['json', 'msgpack'] as const), () => ''),
    () => badBody('random bytes', pick(rand, ['json', 'msgpack'] as const), () => Buffer.from(Array.from({ length: int(rand, 1, 300) }, () => int(rand, 0, 255)))),
    () => badBody('top level not a map', 'msgpack', (k) => packr.pack([1, k])),

    // Bad names (valid bodies).
    () => bad('bad name: random characters', `x${unique()}${Array.from({ length: int(rand, 1, 40) }, () => pick(rand, [...'ab -_.:!#~é日'])).join('')}.json`, write('{"version":1,"type":"fcall","args":["must-not-run"]}')),
    () => bad('bad name: task name of 129 characters', taskFileName(rand, 'json', 'n'.repeat(129)), write('{"version":1,"type":"fcall","args":["must-not-run"]}')),
    () => bad('bad name: .txt', taskFileName(rand, 'json').replace(/json$/, 'txt'), write('{"version":1,"type":"fcall","args":["must-not-run"]}')),
    () => bad('bad name of 150–222 bytes', unique().padEnd(int(rand, 150, 222), 'z'), write('{}')),
    () => bad('bad name of 223–255 bytes (too long for a quarantine prefix)', unique().padEnd(int(rand, 223, 255), 'y'), write('{}')),
    () => bad('bad name of 255 bytes, multi-byte UTF-8', unique() + 'é'.repeat(126), write('{}')), // 3 + 252 bytes

    // Things that are not regular files.
    () => bad('a directory', taskFileName(rand, 'json'), (path) => mkdirSync(path)),
    () => bad('a symlink to a valid task outside the spool', taskFileName(rand, 'json'), (path) => symlinkSync(join(dir, 'secret-task.json'), path)),
    () => bad('a dangling symlink', taskFileName(rand, 'msgpack'), (path) => symlinkSync(join(dir, 'nothing-here'), path)),
    () => bad('a FIFO', taskFileName(rand, 'msgpack'), (path) => {
      const made = spawnSync('mkfifo', [path]);
      if (made.status !== 0) throw new Error(`mkfifo: ${String(made.stderr)}`);
    }),

    // Dot-files: never a task, never touched.
    () => cases.push({ shape: 'a dot-file', expect: 'ignored', file: `.${taskFileName(rand, 'json')}`, into: into(), make: write('{"version":1,"type":"fcall","args":["must-not-run"]}') }),
  ];
  while (cases.length < count) pick(rand, generators)();
  // Every shape at least once, whatever the seed drew.
  for (const g of generators) g();
  return cases;
}

/** The original names quarantine/ holds reasons for: name → how many. */
function quarantinedNames(): Map<string, number> {
  const q = join(root, 'quarantine');
  const counts = new Map<string, number>();
  for (const f of ls(q)) {
    if (!f.endsWith('.reason.json')) continue;
    const file = (JSON.parse(readFileSync(join(q, f), 'utf8')) as { file: string }).file;
    counts.set(file, (counts.get(file) ?? 0) + 1);
  }
  return counts;
}

describe('fuzz: the daemon takes whatever is dropped into its spool', () => {
  it(`stays up, quarantines each bad file once, runs each good file once, leaves nothing in tmp/ (seed ${SEED})`, async () => {
    console.log(`daemon-fuzz: FUZZ_SEED=${SEED} FUZZ_FILES=${FILES}`);
    writeFileSync(join(dir, 'secret-task.json'), '{"version":1,"type":"fcall","args":["secret-must-not-run"]}');
    const rand = random(SEED);
    const cases = generate(rand, FILES);
    const drop = (c: Case): void => {
      const target = join(root, c.into, c.file);
      if (c.staged) {
        const staged = join(root, 'tmp', c.file);
        c.make(staged);
        renameSync(staged, target);
      } else {
        c.make(target);
      }
    };
    // A fifth of them are there before the daemon starts (its start-up listing finds them), in
    // incoming/ or pending/; the rest are dropped into incoming/ while it runs, a few at a time.
    const before = cases.filter(() => rand() < 0.2);
    for (const c of before) drop(c);
    const daemon = await startServing({ dir: root, imports: ['basic'], records, args: ['--settle', '200ms', '--scan-interval', '500ms', '--concurrency', '4'] });
    const during = cases.filter((c) => !before.includes(c));
    for (let i = 0; i < during.length; i++) {
      const c = during[i]!;
      c.into = 'incoming';
      drop(c);
      if (i % 8 === 7) await new Promise((done) => setTimeout(done, int(rand, 0, 30)));
    }
    // Then one last good task: once it and everything before it is settled, the daemon got past them all.
    const good = cases.filter((c) => c.expect === 'runs');
    const bad = cases.filter((c) => c.expect === 'quarantined');
    const ignored = cases.filter((c) => c.expect === 'ignored');

    const ranKeys = (): Map<string, number> => {
      const m = new Map<string, number>();
      for (const r of readRecords(records)) if (r.task === 'echo') m.set(String(r.args?.[0]), (m.get(String(r.args?.[0])) ?? 0) + 1);
      return m;
    };
    const missing = (): string[] => {
      const ran = ranKeys();
      const q = quarantinedNames();
      return [...good.filter((c) => !ran.has(c.key!)).map((c) => `not run: ${c.shape} (${c.file})`), ...bad.filter((c) => !q.has(c.file)).map((c) => `not quarantined: ${c.shape} (${c.file.length} bytes: ${c.file.slice(0, 60)})`)];
    };
    await waitFor(() => missing().length === 0, {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: 'every good file run and every bad one quarantined',
      explain: () => daemon.describe(3).slice(0, 3000),
    }).catch((err: unknown) => {
      // Report by shape, so a failure says which shapes are not handled.
      const shapes = [...new Set(missing().map((m) => m.replace(/ \(.*$/, '')))];
      throw new Error(`shapes not handled: ${JSON.stringify(shapes)}\n${(err as Error).message}`);
    });

    // Each good file ran exactly once, each bad one has exactly one reason, nothing ran that must not.
    const ran = ranKeys();
    expect([...ran].filter(([, n]) => n !== 1)).toEqual([]);
    expect(good.filter((c) => ran.get(c.key!) !== 1).map((c) => c.shape)).toEqual([]);
    expect([...ran.keys()].filter((k) => !k.startsWith('fuzz-'))).toEqual([]);
    const q = quarantinedNames();
    expect(bad.filter((c) => q.get(c.file) !== 1).map((c) => `${c.shape}: ${q.get(c.file) ?? 0}`)).toEqual([]);
    expect([...q.keys()].filter((f) => !bad.some((c) => c.file === f))).toEqual([]);
    // Quarantined files are the files themselves (a symlink stays a symlink, a FIFO a FIFO), never followed.
    expect(readRecords(records).filter((r) => JSON.stringify(r.args ?? []).includes('must-not-run'))).toEqual([]);

    // Dot-files are where they were; nothing else is left anywhere but quarantine/.
    for (const c of ignored) expect(existsSync(join(root, c.into, c.file)), c.file).toBe(true);
    const dots = new Set(ignored.map((c) => c.file));
    await waitFor(() => lsActive(root).length === 0 && [...ls(join(root, 'incoming')), ...ls(join(root, 'pending'))].every((f) => dots.has(f)), {
      what: 'incoming/, pending/ and active/ empty but for the dot-files',
      explain: () => describeSpool(root),
    });
    expect(ls(join(root, 'dead'))).toEqual([]);

    // Still up, and still working: a task enqueued now runs, and a stop is clean.
    expect(daemon.exit).toBeUndefined();
    const last = await Spooler.open(root).enqueue({ name: 'echo', args: ['fuzz-last'] });
    await waitFor(() => ranKeys().get('fuzz-last') === 1, { what: 'a task after the fuzz run', explain: () => daemon.describe(20) });
    expect(last.id).toBeTruthy();

    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
    expect(daemon.logs.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual([]);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  }, 120_000);
});
