/**
 * Every body field (SPOOL-FORMAT.md, "Body") and every name field ("File name")
 * survives both encodings: encodeTask -> bytes -> decodeTask, and the real write
 * path (Spooler.open on a temporary directory, then Spooler.readTaskFile).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { decodeTask, encodeTask, type NewTask } from '../spool/task-file.js';
import type { Encoding } from '../spool/name.js';
import type { PlainValue } from '../spool/wire.js';
import { tempDir } from './helpers/cli.js';

/** Bytes compare by content and type, whatever view (Buffer or Uint8Array) holds them. */
function normalize(value: unknown): unknown {
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex') };
  if (Array.isArray(value)) return value.map(normalize);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalize(v)]));
  }
  return value;
}

/** Integers of every MessagePack width, up to ±(2^53 − 1). */
const INTEGERS = [
  0, 1, -1, 127, 128, 255, 256, -32, -33, -128, -129, 32767, 32768, 65535, 65536, -32768, -32769,
  2 ** 31 - 1, 2 ** 31, -(2 ** 31), 2 ** 32 - 1,
  // beyond 32 bits: must be written as 64-bit integers
  2 ** 32, 2 ** 32 + 1, -(2 ** 31) - 1, -(2 ** 32), 2 ** 40 + 7, -(2 ** 40 + 7), 1763797190000, 2 ** 53 - 1, -(2 ** 53 - 1),
];
const BEYOND_32_BITS = INTEGERS.filter((n) => n > 2 ** 32 - 1 || n < -(2 ** 31));
// Doubles, including those beyond 2^53 (written as float64; SPOOL-FORMAT.md, "Values").
const FLOATS = [0.1, -2.5, 1.5, Math.PI, -0.000123, 123456.789, 5e-324, 1e-7, 4503599627370495.5, -4503599627370495.5, 2 ** 53, -(2 ** 53), 1e20, Number.MAX_VALUE, -Number.MAX_VALUE];
const STRINGS = ['', 'a', 'héllo wörld', '日本語のテキスト', '👩‍👩‍👧 🎉 🇫🇷', 'tab\tnew\nline "quoted" \\ back', '\u0000nul', 'x'.repeat(300), 'y'.repeat(70_000)];

const PLAIN_ARGS: unknown[] = [
  null,
  true,
  false,
  ...INTEGERS,
  ...FLOATS,
  ...STRINGS,
  [],
  {},
  [1, [2, [3, [4, []]]], 'five', { six: [6] }],
  { nested: { deep: { list: [1, { y: 'z' }], empty: {}, none: null } }, 'key with spaces': 1, '': 'empty key', 日本: '🎉', big: 2 ** 53 - 1, neg: -(2 ** 40) },
  Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i * (2 ** 33)])),
  Array.from({ length: 70_000 }, (_, i) => i % 3),
];
const BYTE_ARGS: unknown[] = [
  new Uint8Array(0),
  new Uint8Array([0, 1, 127, 128, 255]),
  Buffer.from('bytes from a Buffer'),
  Buffer.alloc(70_000, 0xab),
  { inner: new Uint8Array([9, 8, 7]), list: [Buffer.from([1]), new Uint8Array([2])] },
];

const argsFor = (encoding: Encoding): unknown[] => (encoding === 'msgpack' ? [...PLAIN_ARGS, ...BYTE_ARGS] : PLAIN_ARGS);

const RETRY = {
  limit: 7,
  backoff: { kind: 'exponential', delay: 2000, factor: 3, floor: 500, ceiling: 600_000, jitter: 0.25 },
} as const;
const META = { source: 'round-trip', tags: ['a', 'b'], count: 2 ** 40, nested: { ok: true, none: null } };

const ENCODINGS: Encoding[] = ['msgpack', 'json'];

/** The 9-byte MessagePack int64/uint64 encoding of n. */
function int64Bytes(n: number): Buffer[] {
  const signed = Buffer.alloc(9);
  signed[0] = 0xd3;
  signed.writeBigInt64BE(BigInt(n), 1);
  const candidates = [signed];
  if (n >= 0) {
    const unsigned = Buffer.alloc(9);
    unsigned[0] = 0xcf;
    unsigned.writeBigUInt64BE(BigInt(n), 1);
    candidates.push(unsigned);
  }
  return candidates;
}

/** The canonical (smallest) MessagePack encoding of an integer within 32 bits. */
function smallestIntBytes(n: number): Buffer {
  if (n >= 0 && n <= 0x7f) return Buffer.from([n]);
  if (n < 0 && n >= -32) return Buffer.from([n & 0xff]);
  const b = Buffer.alloc(5);
  if (n >= 0 && n <= 0xff) return (b.writeUInt8(0xcc, 0), b.writeUInt8(n, 1), b.subarray(0, 2));
  if (n >= 0 && n <= 0xffff) return (b.writeUInt8(0xcd, 0), b.writeUInt16BE(n, 1), b.subarray(0, 3));
  if (n >= 0) return (b.writeUInt8(0xce, 0), b.writeUInt32BE(n, 1), b);
  if (n >= -128) return (b.writeUInt8(0xd0, 0), b.writeInt8(n, 1), b.subarray(0, 2));
  if (n >= -32768) return (b.writeUInt8(0xd1, 0), b.writeInt16BE(n, 1), b.subarray(0, 3));
  return (b.writeUInt8(0xd2, 0), b.writeInt32BE(n, 1), b);
}

function float64Bytes(n: number): Buffer {
  const b = Buffer.alloc(9);
  b[0] = 0xcb;
  b.writeDoubleBE(n, 1);
  return b;
}

describe('encodeTask -> bytes -> decodeTask', () => {
  for (const encoding of ENCODINGS) {
    describe(encoding, () => {
      it('carries every fcall body field and every name field unchanged', () => {
        const args = argsFor(encoding);
        const task: NewTask = {
          name: 'Mail.send:v2-x_Y9',
          priority: 7,
          due: 1_900_000_000_123,
          now: 1_763_797_190_000,
          encoding,
          body: {
            type: 'fcall',
            args: args as never,
            payload: { options: [1, 'two', null], flag: false, when: 1_763_797_190_000 },
            retry: { limit: RETRY.limit, backoff: { ...RETRY.backoff } },
            timeout: 30_000,
            parent: '1763797180000a3f09c2d4e5b6f71',
            meta: META,
          },
        };
        const encoded = encodeTask(task);
        expect(encoded.fileName).toBe(`07-1900000000123-${encoded.id}-a0-Mail.send:v2-x_Y9.${encoding}`);
        expect(encoded.id).toMatch(/^\d{13}[0-9a-f]{16}$/);
        expect(encoded.created).toBe(Number(encoded.id.slice(0, 13)));
        expect(encoded.due).toBe(1_900_000_000_123);

        const decoded = decodeTask(encoded.fileName, encoded.bytes);
        if (!decoded.ok) throw new Error(`did not decode: ${decoded.reason}`);
        const t = decoded.task;
        expect({ priority: t.priority, due: t.due, id: t.id, created: t.created, attempts: t.attempts, name: t.name, encoding: t.encoding, fileName: t.fileName }).toEqual({
          priority: 7,
          due: 1_900_000_000_123,
          id: encoded.id,
          created: encoded.created,
          attempts: 0,
          name: 'Mail.send:v2-x_Y9',
          encoding,
          fileName: encoded.fileName,
        });
        expect(Object.keys(t.body)).toEqual(['version', 'type', 'args', 'payload', 'retry', 'timeout', 'parent', 'meta']);
        expect(normalize(t.body)).toEqual(
          normalize({
            version: 1,
            type: 'fcall',
            args,
            payload: { options: [1, 'two', null], flag: false, when: 1_763_797_190_000 },
            retry: RETRY,
            timeout: 30_000,
            parent: '1763797180000a3f09c2d4e5b6f71',
            meta: META,
          }),
        );
      });

      it('carries a message task: type, message, payload, retry with only some backoff fields', () => {
        const encoded = encodeTask({
          name: 'reindex_users',
          priority: 0,
          now: 1_763_797_190_000,
          encoding,
          body: {
            type: 'reindex-v2_x',
            message: 'reindex ✓ the "users" table',
            payload: { table: 'users', ids: [1, 2 ** 33, -(2 ** 33)], ratio: 0.75 },
            retry: { limit: 0, backoff: { kind: 'linear', delay: 0 } },
          },
        });
        // Without a due time the task is due when it was created.
        expect(encoded.due).toBe(encoded.created);
        const decoded = decodeTask(encoded.fileName, encoded.bytes);
        if (!decoded.ok) throw new Error(`did not decode: ${decoded.reason}`);
        expect(decoded.task.priority).toBe(0);
        expect(decoded.task.due).toBe(encoded.created);
        expect(decoded.task.name).toBe('reindex_users');
        expect(decoded.task.body).toEqual({
          version: 1,
          type: 'reindex-v2_x',
          message: 'reindex ✓ the "users" table',
          payload: { table: 'users', ids: [1, 2 ** 33, -(2 ** 33)], ratio: 0.75 },
          retry: { limit: 0, backoff: { kind: 'linear', delay: 0 } },
        });
      });

      it('carries each backoff kind, a payload of every plain kind, and unknown extra fields', () => {
        for (const kind of ['constant', 'linear', 'exponential'] as const) {
          for (const payload of [null, true, 0, -1.5, 'text', [], {}, [null, [{}]]]) {
            const body = { type: 'fcall', args: [], payload, retry: { limit: 2, backoff: { kind, delay: 10 } }, future_field: { x: 1 } };
            const encoded = encodeTask({ name: 'k', priority: 50, encoding, body: body as never });
            const decoded = decodeTask(encoded.fileName, encoded.bytes);
            if (!decoded.ok) throw new Error(`did not decode: ${decoded.reason}`);
            expect(decoded.task.body).toEqual({ version: 1, ...body });
          }
        }
      });

      it('keeps each argument type on its own, in its own position', () => {
        for (const arg of argsFor(encoding)) {
          const encoded = encodeTask({ name: 'one', priority: 50, encoding, body: { type: 'fcall', args: ['before', arg as never, 'after'] } });
          const decoded = decodeTask(encoded.fileName, encoded.bytes);
          if (!decoded.ok) throw new Error(`did not decode: ${decoded.reason}`);
          expect(normalize(decoded.task.body.args)).toEqual(normalize(['before', arg, 'after']));
        }
      });

      it('round-trips the name fields at the edges of their ranges', () => {
        const longName = 'N' + 'a'.repeat(126) + 'Z';
        expect(longName).toHaveLength(128);
        for (const [priority, due, name] of [
          [0, 0, '_'],
          [99, 9_999_999_999_999, longName],
          [9, 1, 'a.b:c-d_e'],
          [10, 1_763_797_200_000, 'message'],
        ] as const) {
          const encoded = encodeTask({ name, priority, due, encoding, body: { type: 'fcall', args: [] } });
          const decoded = decodeTask(encoded.fileName, encoded.bytes);
          if (!decoded.ok) throw new Error(`did not decode: ${decoded.reason}`);
          expect(decoded.task.priority).toBe(priority);
          expect(decoded.task.due).toBe(due);
          expect(decoded.task.name).toBe(name);
          expect(decoded.task.id).toBe(encoded.id);
          expect(decoded.task.created).toBe(encoded.created);
          expect(decoded.task.attempts).toBe(0);
          expect(decoded.task.encoding).toBe(encoding);
          expect(decoded.task.fileName).toBe(encoded.fileName);
          expect(encoded.fileName.slice(0, 17)).toBe(`${String(priority).padStart(2, '0')}-${String(due).padStart(13, '0')}-`);
        }
      });
    });
  }

  it('msgpack: integers beyond 32 bits are written as 64-bit integers (0xcf/0xd3), never as float64 (0xcb)', () => {
    for (const n of BEYOND_32_BITS) {
      const encoded = encodeTask({ name: 'ints', priority: 50, body: { type: 'fcall', args: [n] } });
      // args is the last field, so the integer is the last 9 bytes.
      const tail = encoded.bytes.subarray(encoded.bytes.length - 9);
      expect([0xcf, 0xd3]).toContain(tail[0]);
      expect(tail[0] === 0xcf ? tail.readBigUInt64BE(1) : tail.readBigInt64BE(1)).toBe(BigInt(n));
      expect(encoded.bytes.includes(float64Bytes(n))).toBe(false);
      const decoded = decodeTask(encoded.fileName, encoded.bytes);
      if (!decoded.ok) throw new Error(`did not decode: ${decoded.reason}`);
      expect(decoded.task.body.args).toEqual([n]);
      expect(typeof decoded.task.body.args![0]).toBe('number');
    }
  });

  it('msgpack: integers within 32 bits use the smallest integer format', () => {
    for (const n of INTEGERS.filter((x) => !BEYOND_32_BITS.includes(x))) {
      const encoded = encodeTask({ name: 'ints', priority: 50, body: { type: 'fcall', args: [n] } });
      const expected = smallestIntBytes(n);
      expect(encoded.bytes.subarray(encoded.bytes.length - expected.length)).toEqual(expected);
      const decoded = decodeTask(encoded.fileName, encoded.bytes);
      if (!decoded.ok) throw new Error(`did not decode: ${decoded.reason}`);
      expect(decoded.task.body.args).toEqual([n]);
    }
  });

  it('msgpack: 64-bit integers nested in maps and arrays, and in meta and payload, are written as integers', () => {
    const nested = [2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 32, -(2 ** 31) - 1];
    const encoded = encodeTask({
      name: 'nested_ints',
      priority: 50,
      body: { type: 'fcall', args: [{ a: [nested[0]!] }], payload: { b: nested[1]! }, meta: { c: [[nested[2]!]], d: nested[3]! } },
    });
    for (const n of nested) {
      expect(int64Bytes(n).some((seq) => encoded.bytes.includes(seq))).toBe(true);
      expect(encoded.bytes.includes(float64Bytes(n))).toBe(false);
    }
    const decoded = decodeTask(encoded.fileName, encoded.bytes);
    if (!decoded.ok) throw new Error(`did not decode: ${decoded.reason}`);
    expect(decoded.task.body).toEqual({
      version: 1,
      type: 'fcall',
      args: [{ a: [2 ** 53 - 1] }],
      payload: { b: -(2 ** 53 - 1) },
      meta: { c: [[2 ** 32]], d: -(2 ** 31) - 1 },
    });
  });

  it('json: the bytes are the JSON text of the body, integers written in full', () => {
    const encoded = encodeTask({ name: 'j', priority: 50, encoding: 'json', body: { type: 'fcall', args: [2 ** 53 - 1, -(2 ** 53 - 1), 'é'] } });
    expect(encoded.bytes.toString('utf8')).toBe('{"version":1,"type":"fcall","args":[9007199254740991,-9007199254740991,"é"]}');
  });

  it('msgpack bytes decode as bin, into a Uint8Array', () => {
    const encoded = encodeTask({ name: 'b', priority: 50, body: { type: 'fcall', args: [new Uint8Array([1, 2, 3])] } });
    expect(encoded.bytes.subarray(encoded.bytes.length - 5)).toEqual(Buffer.from([0xc4, 3, 1, 2, 3]));
    const decoded = decodeTask(encoded.fileName, encoded.bytes);
    if (!decoded.ok) throw new Error(`did not decode: ${decoded.reason}`);
    const arg = decoded.task.body.args![0];
    expect(arg).toBeInstanceOf(Uint8Array);
    expect([...(arg as Uint8Array)]).toEqual([1, 2, 3]);
  });

  it('msgpack maps with integer keys (from other producers) are read with string keys', () => {
    // {"version":1,"type":"fcall","args":[{1:"x",2:"y"}]}
    const bytes = Buffer.concat([
      Buffer.from([0x83, 0xa7]), Buffer.from('version'), Buffer.from([0x01, 0xa4]), Buffer.from('type'), Buffer.from([0xa5]), Buffer.from('fcall'),
      Buffer.from([0xa4]), Buffer.from('args'), Buffer.from([0x91, 0x82, 0x01, 0xa1, 0x78, 0x02, 0xa1, 0x79]),
    ]);
    const decoded = decodeTask('50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-foreign.msgpack', bytes);
    if (!decoded.ok) throw new Error(`did not decode: ${decoded.reason}`);
    expect(decoded.task.body).toEqual({ version: 1, type: 'fcall', args: [{ '1': 'x', '2': 'y' }] });
  });
});

describe('the real write path: Spooler.open, enqueue, Spooler.readTaskFile', () => {
  let dir: string;
  let cleanup: () => void;
  beforeEach(() => ({ dir, cleanup } = tempDir('spool-rt-')));
  afterEach(() => cleanup());

  for (const encoding of ENCODINGS) {
    it(`${encoding}: a task() call stores every option and argument`, async () => {
      const spooler = Spooler.open(join(dir, `spool-${encoding}`), { encoding });
      const args = argsFor(encoding);
      const roundTrip = spooler.task(function round_trip(..._a: unknown[]) {}, {
        priority: 3,
        retries: 7,
        backoff: { kind: 'exponential', delay: '2s', factor: 3, floor: '500ms', ceiling: '10m', jitter: 0.25 },
        timeout: '30s',
        parent: '1763797180000a3f09c2d4e5b6f71',
        meta: META,
      });
      const before = Date.now();
      const handle = await roundTrip.with({ postpone: '1h30m' })(...args);
      const after = Date.now();

      expect(existsSync(handle.path)).toBe(true);
      expect(handle.path).toBe(join(spooler.layout.incoming, handle.fileName));
      expect(readdirSync(spooler.layout.tmp)).toEqual([]);
      const t = Spooler.readTaskFile(handle.path);
      expect(t.fileName).toBe(handle.fileName);
      expect(t.id).toBe(handle.id);
      expect(t.priority).toBe(3);
      expect(t.attempts).toBe(0);
      expect(t.name).toBe('round_trip');
      expect(t.encoding).toBe(encoding);
      expect(t.created).toBeGreaterThanOrEqual(before);
      expect(t.created).toBeLessThanOrEqual(after);
      expect(t.due).toBe(t.created + 5_400_000);
      expect(handle.due).toBe(t.due);
      expect(normalize(t.body)).toEqual(
        normalize({ version: 1, type: 'fcall', args, retry: RETRY, timeout: 30_000, parent: '1763797180000a3f09c2d4e5b6f71', meta: META }),
      );

      // The integers beyond 32 bits are 64-bit integers in the file too.
      if (encoding === 'msgpack') {
        const raw = readFileSync(handle.path);
        for (const n of BEYOND_32_BITS) {
          expect(int64Bytes(n).some((seq) => raw.includes(seq))).toBe(true);
          expect(raw.includes(float64Bytes(n))).toBe(false);
        }
      }
    });

    it(`${encoding}: sendMessageRaw stores type, message and payload`, async () => {
      const spooler = Spooler.open(join(dir, 'spool'));
      const payload: PlainValue =
        encoding === 'msgpack' ? { table: 'users', raw: new Uint8Array([1, 2]), big: 2 ** 50 } : { table: 'users', big: 2 ** 50 };
      const handle = await spooler.sendMessageRaw('reindex 🎉', {
        type: 'reindex',
        payload,
        encoding,
        priority: 99,
        postpone: new Date(2_000_000_000_000),
        retries: 0,
        backoff: 'constant',
        timeout: 1500,
        parent: '1763797180000a3f09c2d4e5b6f71',
        meta: { why: 'nightly' },
      });
      const t = Spooler.readTaskFile(handle.path);
      expect(t.name).toBe('reindex');
      expect(t.priority).toBe(99);
      expect(t.due).toBe(2_000_000_000_000);
      expect(t.encoding).toBe(encoding);
      expect(basename(handle.path)).toBe(`99-2000000000000-${handle.id}-a0-reindex.${encoding}`);
      expect(normalize(t.body)).toEqual(
        normalize({
          version: 1,
          type: 'reindex',
          message: 'reindex 🎉',
          payload,
          retry: { limit: 0, backoff: { kind: 'constant', delay: 1000 } },
          timeout: 1500,
          parent: '1763797180000a3f09c2d4e5b6f71',
          meta: { why: 'nightly' },
        }),
      );
    });

    it(`${encoding}: every argument type, one per task, through enqueueMany`, async () => {
      const spooler = Spooler.open(join(dir, 'spool'), { encoding });
      const args = argsFor(encoding);
      const handles = await spooler.enqueueMany(args.map((a) => ({ name: 'each', args: [a, 'end'] })));
      expect(handles).toHaveLength(args.length);
      handles.forEach((h, i) => {
        const t = Spooler.readTaskFile(h.path);
        expect(t.encoding).toBe(encoding);
        expect(normalize(t.body)).toEqual(normalize({ version: 1, type: 'fcall', args: [args[i], 'end'] }));
      });
    });
  }
});
