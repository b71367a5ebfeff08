/**
 * Values the format refuses (SPOOL-FORMAT.md, "Values"): the call throws
 * UnencodableValueError naming the path and nothing reaches tmp/ or incoming/.
 * And the decoding side: files that carry what the format forbids are rejected
 * by decodeTask with a reason.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Packr, pack as msgpackrPack } from 'msgpackr';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spooler, UnencodableValueError } from '../runtime/index.js';
import { decodeTask, encodeTask } from '../spool/task-file.js';
import { tempDir } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
let spooler: Spooler;
let counter = 0;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('spool-unenc-'));
  spooler = Spooler.open(join(dir, 'spool'));
});
afterEach(() => cleanup());

/** Every file in tmp/, incoming/ and pending/. */
function written(s: Spooler = spooler): string[] {
  return [s.layout.tmp, s.layout.incoming, s.layout.pending].flatMap((d) => readdirSync(d));
}

/** A fresh task wrapper; each test registers its own name. */
function taskOn(s: Spooler = spooler, encoding?: 'json' | 'msgpack') {
  return s.task((..._args: unknown[]) => undefined, { name: `t${counter++}`, ...(encoding && { encoding }) });
}

/** Calls the task with args and expects UnencodableValueError at `path`, with a message containing `problem`. */
async function expectRefused(args: unknown[], path: string, problem: string | RegExp, encoding?: 'json' | 'msgpack'): Promise<void> {
  const fn = taskOn(spooler, encoding);
  let error: unknown;
  try {
    await fn(...args);
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(UnencodableValueError);
  const e = error as UnencodableValueError;
  expect(e.path).toBe(path);
  expect(e.code).toBe('SPOOL_UNENCODABLE');
  expect(e.message.startsWith(`${path}: `)).toBe(true);
  if (typeof problem === 'string') expect(e.message).toContain(problem);
  else expect(e.message).toMatch(problem);
  expect(written()).toEqual([]);
}

class Point {
  constructor(
    public x: number,
    public y: number,
  ) {}
}

describe('arguments the format refuses are refused at the call, and nothing is written', () => {
  it('undefined inside an object', async () => {
    await expectRefused([1, { when: undefined }], 'task.args[1].when', 'undefined cannot be stored');
  });

  it('undefined inside an array', async () => {
    await expectRefused([[1, undefined, 3]], 'task.args[0][1]', 'undefined cannot be stored');
  });

  it('undefined as an argument before the last one', async () => {
    await expectRefused(['a', undefined, 'c'], 'task.args[1]', 'undefined cannot be stored');
  });

  it('functions', async () => {
    await expectRefused([{ cb: () => 1 }], 'task.args[0].cb', 'a function cannot be stored');
    await expectRefused([function named() {}], 'task.args[0]', 'a function cannot be stored');
  });

  it('symbols as values', async () => {
    await expectRefused([{ s: Symbol('x') }], 'task.args[0].s', 'a symbol cannot be stored');
  });

  it('symbol keys', async () => {
    await expectRefused([{ ok: 1, [Symbol('k')]: 2 }], 'task.args[0]', 'symbol keys cannot be stored');
  });

  it('BigInt', async () => {
    await expectRefused([{ n: 10n }], 'task.args[0].n', 'a BigInt');
    await expectRefused([2n ** 70n], 'task.args[0]', 'a BigInt');
  });

  it('NaN and infinities', async () => {
    await expectRefused([NaN], 'task.args[0]', 'NaN is not a finite number');
    await expectRefused([{ x: [Infinity] }], 'task.args[0].x[0]', 'Infinity is not a finite number');
    await expectRefused([-Infinity], 'task.args[0]', '-Infinity is not a finite number');
  });

  // Numbers beyond ±(2^53 − 1) are doubles, not refused: see test/format-contract.test.ts.

  it('Date', async () => {
    await expectRefused([1, { when: new Date(0) }], 'task.args[1].when', /a Date is not a plain object.*getTime\(\)/);
  });

  it('Map and Set', async () => {
    await expectRefused([new Map([['a', 1]])], 'task.args[0]', /a Map is not a plain object.*Object\.fromEntries/);
    await expectRefused([{ s: new Set([1]) }], 'task.args[0].s', /a Set is not a plain object.*\[\.\.\.set\]/);
  });

  it('RegExp', async () => {
    await expectRefused([{ re: /x+/g }], 'task.args[0].re', 'a RegExp is not a plain object');
  });

  it('class instances, Errors and boxed primitives', async () => {
    await expectRefused([new Point(1, 2)], 'task.args[0]', 'a Point is not a plain object');
    await expectRefused([{ err: new Error('boom') }], 'task.args[0].err', /Error is not a plain object.*err\.message/);
    await expectRefused([new String('s')], 'task.args[0]', 'a String is not a plain object');
    await expectRefused([Object.create({ inherited: 1 })], 'task.args[0]', 'is not a plain object');
  });

  it('typed arrays other than Uint8Array, ArrayBuffer and DataView', async () => {
    for (const [value, ctor] of [
      [new Uint16Array([1]), 'Uint16Array'],
      [new Int8Array([1]), 'Int8Array'],
      [new Uint8ClampedArray([1]), 'Uint8ClampedArray'],
      [new Float32Array([1]), 'Float32Array'],
      [new Float64Array([1]), 'Float64Array'],
      [new BigInt64Array([1n]), 'BigInt64Array'],
      [new ArrayBuffer(4), 'ArrayBuffer'],
      [new DataView(new ArrayBuffer(4)), 'DataView'],
    ] as const) {
      await expectRefused([{ data: value }], 'task.args[0].data', new RegExp(`a ${ctor} is not a plain object.*Uint8Array or Buffer`));
    }
  });

  it('sparse arrays', async () => {
    // eslint-disable-next-line no-sparse-arrays
    await expectRefused([[1, , 3]], 'task.args[0][1]', 'the array has a hole here');
    await expectRefused([{ list: new Array(2) }], 'task.args[0].list[0]', 'the array has a hole here');
  });

  it('circular references, direct and indirect', async () => {
    const direct: Record<string, unknown> = { a: 1 };
    direct.self = direct;
    await expectRefused([direct], 'task.args[0].self', 'circular reference');

    const outer: Record<string, unknown> = { name: 'outer' };
    const inner: Record<string, unknown> = { back: [outer] };
    outer.child = { inner };
    await expectRefused(['x', outer], 'task.args[1].child.inner.back[0]', 'circular reference');

    const arr: unknown[] = [1];
    arr.push(arr);
    await expectRefused([arr], 'task.args[0][1]', 'circular reference');
  });

  it('the same object twice without a cycle is not circular', async () => {
    const shared = { v: 1 };
    const handle = await taskOn()(shared, [shared, { again: shared }]);
    expect(Spooler.readTaskFile(handle.path).body.args).toEqual([{ v: 1 }, [{ v: 1 }, { again: { v: 1 } }]]);
  });

  it('nesting deeper than 64 levels (the body is the first level, args the second)', async () => {
    const nest = (levels: number): unknown => {
      let v: unknown = 'leaf';
      for (let i = 0; i < levels; i++) v = [v];
      return v;
    };
    // body (1) + args (2) + 62 levels of argument = 64: accepted.
    const handle = await taskOn()(nest(62));
    expect(Spooler.readTaskFile(handle.path).body.args).toEqual([nest(62)]);
    const ok = written();
    expect(ok).toHaveLength(1);
    // One more level is refused, at the 65th level.
    const fn = taskOn();
    const err = await fn(nest(63)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UnencodableValueError);
    expect((err as UnencodableValueError).path).toBe('task.args[0]' + '[0]'.repeat(62));
    expect((err as UnencodableValueError).message).toContain('nested deeper than 64 levels');
    expect(written()).toEqual(ok);
  });

  it('bytes in a JSON-encoded task', async () => {
    await expectRefused([{ raw: new Uint8Array([1]) }], 'task.args[0].raw', 'bytes cannot be stored in a JSON task', 'json');
    await expectRefused([Buffer.from('x')], 'task.args[0]', 'bytes cannot be stored in a JSON task', 'json');
  });

  it('bytes in a task of a spooler whose default encoding is JSON', async () => {
    const jsonSpooler = Spooler.open(join(dir, 'json-spool'), { encoding: 'json' });
    const fn = taskOn(jsonSpooler);
    await expect(fn(new Uint8Array([1]))).rejects.toThrow(UnencodableValueError);
    expect(written(jsonSpooler)).toEqual([]);
  });

  it('strings that are not valid UTF-8 (a lone surrogate), which MessagePack cannot carry unchanged', async () => {
    await expectRefused([{ s: 'a\uD800b' }], 'task.args[0].s', /surrogate|UTF-8/);
  });

  it('a key holding a lone surrogate, which msgpackr would write as U+FFFD', async () => {
    await expectRefused([{ ['k\uDC00']: 1 }], 'task.args[0].k\uDC00', /lone UTF-16 surrogate/);
  });

  it('bad values in meta and in a message payload are refused with their path', async () => {
    const fn = spooler.task((..._a: unknown[]) => undefined, { name: 'with_meta', meta: { when: new Date() as never } });
    await expect(fn()).rejects.toThrow(expect.objectContaining({ path: 'task.meta.when' }));
    await expect(spooler.sendMessageRaw('m', { payload: { f: (() => 1) as never } })).rejects.toThrow(
      expect.objectContaining({ name: 'UnencodableValueError', path: 'task.payload.f' }),
    );
    expect(written()).toEqual([]);
  });

  it('encodeTask itself throws before anything else happens', () => {
    expect(() => encodeTask({ name: 'x', priority: 50, body: { type: 'fcall', args: [{ d: new Date() }] as never } })).toThrow(
      expect.objectContaining({ name: 'UnencodableValueError', path: 'task.args[0].d' }),
    );
  });
});

describe('trailing undefined arguments', () => {
  it('f(a, undefined) stores [a]', async () => {
    const h = await taskOn()('a', undefined);
    expect(Spooler.readTaskFile(h.path).body.args).toEqual(['a']);
  });

  it('f(a, undefined, undefined) stores [a]; f(undefined) stores []', async () => {
    const fn = taskOn();
    expect(Spooler.readTaskFile((await fn('a', undefined, undefined)).path).body.args).toEqual(['a']);
    expect(Spooler.readTaskFile((await fn(undefined)).path).body.args).toEqual([]);
    expect(Spooler.readTaskFile((await fn()).path).body.args).toEqual([]);
  });

  it('null is kept: f(a, null) stores [a, null]', async () => {
    const h = await taskOn()('a', null);
    expect(Spooler.readTaskFile(h.path).body.args).toEqual(['a', null]);
  });

  it('through enqueueMany and request() too', async () => {
    const fn = taskOn();
    const [h] = await spooler.enqueueMany([fn.request(1, undefined)]);
    expect(Spooler.readTaskFile(h!.path).body.args).toEqual([1]);
  });
});

describe('enqueueMany with one bad request writes nothing at all', () => {
  it('a bad argument in the middle of a batch', async () => {
    const fn = taskOn();
    const requests = Array.from({ length: 20 }, (_, i) => fn.request(i));
    requests[13] = fn.request({ when: new Date() });
    const err = await spooler.enqueueMany(requests).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UnencodableValueError);
    expect((err as UnencodableValueError).path).toBe('task.args[0].when');
    expect(written()).toEqual([]);
  });

  it('a bad argument in the last request of a batch larger than one write slice', async () => {
    const fn = taskOn();
    const requests = Array.from({ length: 1100 }, (_, i) => fn.request(i));
    requests.push(fn.request(NaN));
    await expect(spooler.enqueueMany(requests)).rejects.toThrow(UnencodableValueError);
    expect(written()).toEqual([]);
  });

  it('a bad option in one request', async () => {
    const fn = taskOn();
    const requests = [fn.request(1), { name: fn.taskName, args: [2], options: { priority: 100 } }, fn.request(3)];
    await expect(spooler.enqueueMany(requests)).rejects.toThrow(/priority must be an integer from 0/);
    expect(written()).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// Decoding side

const MSGPACK_NAME = '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-foreign.msgpack';
const JSON_NAME = '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-foreign.json';
const plainPackr = new Packr({ useRecords: false, moreTypes: false });

/** A msgpack map header and string, by hand, so the bytes are exactly what a foreign producer wrote. */
const str = (s: string): Buffer => Buffer.concat([Buffer.from([0xa0 | Buffer.byteLength(s)]), Buffer.from(s)]);
/** {"version":1,"type":"fcall","args":[<raw>]} */
function bodyWithArg(raw: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x83]), str('version'), Buffer.from([0x01]), str('type'), str('fcall'), str('args'), Buffer.from([0x91]), raw]);
}

function reasonFor(fileName: string, bytes: Uint8Array): string {
  const decoded = decodeTask(fileName, bytes);
  expect(decoded.ok).toBe(false);
  return decoded.ok ? '' : decoded.reason;
}

describe('decodeTask rejects msgpack files the format forbids, with a reason', () => {
  it('the hand-built body is valid without the forbidden part', () => {
    const decoded = decodeTask(MSGPACK_NAME, bodyWithArg(Buffer.from([0x05])));
    expect(decoded.ok).toBe(true);
    expect(decoded.ok && decoded.task.body).toEqual({ version: 1, type: 'fcall', args: [5] });
  });

  it('a timestamp extension (type −1)', () => {
    // fixext4, type -1, seconds = 0
    const reason = reasonFor(MSGPACK_NAME, bodyWithArg(Buffer.from([0xd6, 0xff, 0, 0, 0, 0])));
    expect(reason).toMatch(/^the body is not valid MessagePack: an extension type at byte \d+; only plain types are allowed \(no timestamps, msgpackr records or other extensions\)$/);
  });

  it('a timestamp written by msgpackr for a Date', () => {
    const bytes = msgpackrPack({ version: 1, type: 'fcall', args: [new Date(1_763_797_190_000)] });
    expect(reasonFor(MSGPACK_NAME, bytes)).toMatch(/^the body is not valid MessagePack: an extension type at byte \d+/);
  });

  it('a msgpackr record (extension 0x72)', () => {
    const bytes = new Packr({ useRecords: true }).pack({ version: 1, type: 'fcall', args: [1] });
    // The record extension is really there: fixext1 0xd4, type 0x72.
    expect([...bytes.subarray(0, 2)]).toEqual([0xd4, 0x72]);
    expect(reasonFor(MSGPACK_NAME, bytes)).toMatch(/extension/);
  });

  it('a msgpackr record nested in an argument', () => {
    const recordPackr = new Packr({ useRecords: true });
    const inner = recordPackr.pack({ a: 1, b: 2 });
    expect(inner[0]).toBe(0xd4);
    expect(inner[1]).toBe(0x72);
    expect(reasonFor(MSGPACK_NAME, bodyWithArg(inner))).toMatch(/extension/);
  });

  it('an arbitrary extension type', () => {
    for (const ext of [
      Buffer.from([0xd4, 0x05, 0x07]), // fixext1, type 5
      Buffer.from([0xc7, 0x03, 0x10, 1, 2, 3]), // ext8, type 0x10
      Buffer.from([0xd6, 0x7f, 0, 0, 0, 0]), // fixext4, type 127
      Buffer.from([0xd5, 0x80, 0, 0]), // fixext2, type -128
      Buffer.from([0xd4, 0x00, 0x00]), // fixext1, type 0: what msgpackr writes for undefined
    ]) {
      const reason = reasonFor(MSGPACK_NAME, bodyWithArg(ext));
      expect(reason).toMatch(/^the body is not valid MessagePack: an extension type at byte \d+; only plain types are allowed/);
    }
  });

  it("msgpackr's BigInt extension (0x42) holding a small integer is reported as an extension", () => {
    // ext 0x42 holding 7 must not be reported as an integer beyond 2^53.
    const reason = reasonFor(MSGPACK_NAME, bodyWithArg(Buffer.from([0xd4, 0x42, 0x07])));
    expect(reason).toMatch(/extension/i);
    expect(reason).not.toContain('beyond ±2^53');
  });

  it("msgpackr's typed-array extension (0x74) is not accepted as bytes", () => {
    // ext8, type 0x74, msgpackr's type code 1 (Uint8Array), then the bytes 2, 3.
    expect(reasonFor(MSGPACK_NAME, bodyWithArg(Buffer.from([0xc7, 0x03, 0x74, 0x01, 0x02, 0x03])))).toMatch(/extension/i);
  });

  it('integers beyond 2^53, signed and unsigned', () => {
    const u = Buffer.alloc(9);
    u[0] = 0xcf;
    u.writeBigUInt64BE(2n ** 53n + 1n, 1);
    expect(reasonFor(MSGPACK_NAME, bodyWithArg(u))).toMatch(/^the body is not valid MessagePack: a 64-bit integer at byte \d+ is beyond ±2\^53/);
    expect(reasonFor(MSGPACK_NAME, bodyWithArg(u))).toContain('beyond ±2^53');
    const s = Buffer.alloc(9);
    s[0] = 0xd3;
    s.writeBigInt64BE(-(2n ** 62n), 1);
    expect(reasonFor(MSGPACK_NAME, bodyWithArg(s))).toContain('beyond ±2^53');
    const max = Buffer.alloc(9);
    max[0] = 0xcf;
    max.writeBigUInt64BE(2n ** 64n - 1n, 1);
    expect(reasonFor(MSGPACK_NAME, bodyWithArg(max))).toContain('beyond ±2^53');
  });

  it('integers up to 2^53 − 1 in 64-bit form are accepted', () => {
    const u = Buffer.alloc(9);
    u[0] = 0xcf;
    u.writeBigUInt64BE(2n ** 53n - 1n, 1);
    const decoded = decodeTask(MSGPACK_NAME, bodyWithArg(u));
    expect(decoded.ok && decoded.task.body.args).toEqual([2 ** 53 - 1]);
  });

  it('NaN and infinities written as floats', () => {
    for (const v of [NaN, Infinity, -Infinity]) {
      const f = Buffer.alloc(9);
      f[0] = 0xcb;
      f.writeDoubleBE(v, 1);
      expect(reasonFor(MSGPACK_NAME, bodyWithArg(f))).toBe('body.args[0]: NaN and infinities are not allowed');
    }
  });

  it('trailing bytes after the map, without copying the content into the reason', () => {
    const body = plainPackr.pack({ version: 1, type: 'fcall', args: ['SECRET-TOKEN-4711'] });
    for (const trailing of [Buffer.from([0xc0]), body, Buffer.from('garbage')]) {
      const reason = reasonFor(MSGPACK_NAME, Buffer.concat([body, trailing]));
      expect(reason).toMatch(/^the body is not valid MessagePack: \d+ bytes follow the map; a task file holds exactly one MessagePack map$/);
      // SPOOL-FORMAT.md, "Reading safely": the content of an invalid file is never copied into reasons.
      expect(reason).not.toContain('SECRET-TOKEN-4711');
    }
  });

  it('an empty file', () => {
    expect(reasonFor(MSGPACK_NAME, Buffer.alloc(0))).toBe('the body is not valid MessagePack: the file is empty');
    expect(reasonFor(JSON_NAME, Buffer.alloc(0))).toBe('the body is not valid JSON: the file is empty');
  });

  it('a truncated map', () => {
    const body = plainPackr.pack({ version: 1, type: 'fcall', args: ['a', 'b'] });
    for (let cut = 1; cut < body.length; cut++) {
      expect(reasonFor(MSGPACK_NAME, body.subarray(0, cut))).toMatch(/^the body is not valid MessagePack: truncated: it ends inside a value at byte \d+$/);
    }
  });

  it('a top level that is not a map', () => {
    for (const top of [[1, 2], 'fcall', 42, null, true, new Uint8Array([1])]) {
      expect(reasonFor(MSGPACK_NAME, plainPackr.pack(top))).toBe('the body must be a map (a JSON object)');
    }
    for (const top of ['[1,2]', '"fcall"', '42', 'null', 'true']) {
      expect(reasonFor(JSON_NAME, Buffer.from(top))).toBe('the body must be a map (a JSON object)');
    }
  });

  it('a bad file name, before the body is looked at', () => {
    expect(reasonFor('50-x-a0-foreign.msgpack', plainPackr.pack({ version: 1, type: 'fcall' }))).toBe(
      'bad file name: the due time must be 13 digits of ms since the epoch',
    );
  });

  it('a body that decodes but fails the checks', () => {
    expect(reasonFor(MSGPACK_NAME, plainPackr.pack({ version: 2, type: 'fcall' }))).toMatch(/^format version 2 is not supported/);
    expect(reasonFor(JSON_NAME, Buffer.from('{"version":1,"type":"fcall","overlap":"k"}'))).toBe('"overlap" is reserved for a later format version');
    expect(reasonFor(JSON_NAME, Buffer.from('{"version":1,"type":"fcall","chain":"k"}'))).toBe('"chain" must be an array of steps: maps with a task "name"');
    expect(reasonFor(JSON_NAME, Buffer.from('{"version":1,"type":"fcall","unique":7}'))).toBe('"unique" must be a key of 1 to 1024 characters');
  });
});
