/**
 * The edges of the format contract (SPOOL-FORMAT.md, "Body" and "Values"), in
 * both directions: what Python (Debian's python3-msgpack, a real foreign
 * producer) writes must be read by the daemon's decoder under the documented
 * rule, and what the runtime writes must reach Python under the same rule.
 * The daemon quarantines what decodeTask refuses (test/daemon-fuzz.test.ts
 * drops these shapes into a running daemon).
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { decodeTask } from '../spool/task-file.js';
import { lsJson, tempDir } from './helpers/cli.js';
import { PYTHON, requirePythonMsgpack, runPythonJson } from './helpers/python.js';

const MSGPACK_NAME = '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-foreign.msgpack';
const JSON_NAME = '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-foreign.json';

beforeAll(() => requirePythonMsgpack());

/** Runs Python that prints {case: base64 bytes}; returns the bytes per case. */
function pythonBodies(script: string): Record<string, Buffer> {
  const r = spawnSync(PYTHON, ['-c', `import base64, json, msgpack, struct, sys\nout = {}\n${script}\nprint(json.dumps({k: base64.b64encode(v).decode() for k, v in out.items()}))`], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return Object.fromEntries(Object.entries(JSON.parse(r.stdout) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
}

function accepted(fileName: string, bytes: Uint8Array): Record<string, unknown> {
  const decoded = decodeTask(fileName, bytes);
  if (!decoded.ok) throw new Error(`refused: ${decoded.reason}`);
  return decoded.task.body as unknown as Record<string, unknown>;
}
function refused(fileName: string, bytes: Uint8Array): string {
  const decoded = decodeTask(fileName, bytes);
  expect(decoded.ok, 'decodeTask accepted it').toBe(false);
  return decoded.ok ? '' : decoded.reason;
}

describe('numbers: integers within ±(2^53 − 1); any other finite number is a double', () => {
  let py: Record<string, Buffer>;
  beforeAll(() => {
    py = pythonBodies(`
def body(*args, **kw): return msgpack.packb({"version": 1, "type": "fcall", "args": list(args)}, **kw)
out["int_2_53"] = body(2**53)
out["int_minus_2_53"] = body(-(2**53))
out["int_max_safe"] = body(2**53 - 1, -(2**53 - 1))
out["floats"] = body(float(2**53), -float(2**53), 1e20, sys.float_info.max, -sys.float_info.max, 1e300)
out["float32"] = body(1.5, 0.1, use_single_float=True)
out["minus_zero"] = body(-0.0)
out["map70k"] = body({"k%d" % i: i for i in range(70000)})
`);
  });

  it('Python: an integer of ±2^53 (uint64/int64) is refused, as the runtime refuses to make one', () => {
    expect(refused(MSGPACK_NAME, py.int_2_53!)).toMatch(/beyond ±2\^53 − 1/);
    expect(refused(MSGPACK_NAME, py.int_minus_2_53!)).toMatch(/beyond ±2\^53 − 1/);
    expect(accepted(MSGPACK_NAME, py.int_max_safe!).args).toEqual([Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER]);
  });

  it('Python: floats at or beyond 2^53 (2.0**53, 1e20, the largest double) are accepted, exactly', () => {
    expect(accepted(MSGPACK_NAME, py.floats!).args).toEqual([2 ** 53, -(2 ** 53), 1e20, Number.MAX_VALUE, -Number.MAX_VALUE, 1e300]);
  });

  it('Python: float32 is accepted as the float32 value it holds', () => {
    expect(accepted(MSGPACK_NAME, py.float32!).args).toEqual([1.5, Math.fround(0.1)]);
  });

  it('Python: −0.0 is accepted; its sign is not part of the format (it reads as zero)', () => {
    const [z] = accepted(MSGPACK_NAME, py.minus_zero!).args as number[];
    expect(z === 0).toBe(true);
  });

  it('Python: a map of 70,000 keys (map32) is accepted', () => {
    const [m] = accepted(MSGPACK_NAME, py.map70k!).args as Array<Record<string, number>>;
    expect(Object.keys(m!)).toHaveLength(70_000);
    expect(m!.k69999).toBe(69_999);
  });

  it('runtime → Python: 2^53, 1e20 and the largest double are written as doubles, −0 as 0, a 70,000-key map as map32', async () => {
    const { dir, cleanup } = tempDir('contract-numbers-');
    try {
      const spooler = Spooler.open(join(dir, 'spool'));
      const values = [2 ** 53, -(2 ** 53), 1e20, Number.MAX_VALUE, -0, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2];
      const big = Object.fromEntries(Array.from({ length: 70_000 }, (_, i) => [`k${i}`, i]));
      const m = await spooler.enqueue({ name: 'numbers', args: values });
      const j = await spooler.enqueue({ name: 'numbers', args: values, options: { encoding: 'json' } });
      const b = await spooler.enqueue({ name: 'big_map', args: [big] });
      // The runtime reads back what it wrote, −0 as 0 (toEqual tells them apart).
      const readBack = values.map((v) => (v === 0 ? 0 : v));
      expect(Spooler.readTaskFile(m.path).body.args).toEqual(readBack);
      expect(Spooler.readTaskFile(j.path).body.args).toEqual(readBack);
      expect(Object.is(Spooler.readTaskFile(m.path).body.args![4], 0)).toBe(true);
      expect(Object.keys((Spooler.readTaskFile(b.path).body.args![0] as object))).toHaveLength(70_000);

      const consumed = runPythonJson<Array<{ file: string; body: { args: unknown[] }; types: { args: unknown[] }; error?: string }>>('consumer.py', [join(dir, 'spool')]);
      expect(consumed.filter((c) => c.error)).toEqual([]);
      const byFile = (f: string) => consumed.find((c) => c.file === f)!;
      // MessagePack: the doubles are floats in Python; −0 is the integer 0; the safe integer an int.
      expect(byFile(m.fileName).body.args).toEqual([2 ** 53, -(2 ** 53), 1e20, Number.MAX_VALUE, 0, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2]);
      expect(byFile(m.fileName).types.args).toEqual(['float', 'float', 'float', 'float', 'int', 'int', 'float']);
      // JSON has one number type: the same values (Python's json reads digits without a point as int).
      expect(byFile(j.fileName).body.args).toEqual([2 ** 53, -(2 ** 53), 1e20, Number.MAX_VALUE, 0, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2]);
      const map = byFile(b.fileName).body.args[0] as Record<string, number>;
      expect(Object.keys(map)).toHaveLength(70_000);
      expect(map.k12345).toBe(12_345);
    } finally {
      cleanup();
    }
  });
});

describe('text: strings must be valid UTF-8 / Unicode', () => {
  let py: Record<string, Buffer>;
  beforeAll(() => {
    py = pythonBodies(`
def body(*args, **kw): return msgpack.packb({"version": 1, "type": "fcall", "args": list(args)}, **kw)
out["bytes_as_str_utf8"] = body(b"plain text", use_bin_type=False)
out["bytes_as_str_binary"] = body(b"\\xff\\xfe\\x00", use_bin_type=False)
out["key_invalid"] = msgpack.packb({"version": 1, "type": "fcall", "args": [{b"\\xc3\\x28": 1}]}, use_bin_type=False)
out["bin"] = body(b"\\xff\\xfe\\x00")
out["json_lone_surrogate"] = json.dumps({"version": 1, "type": "fcall", "args": ["a\\ud800b"]}).encode()
out["json_pair"] = json.dumps({"version": 1, "type": "fcall", "args": ["\\U0001F389"]}).encode()
out["json_invalid_utf8"] = b'{"version":1,"type":"fcall","args":["\\xe2\\x28\\xa1"]}'
out["json_bom"] = "\\ufeff".encode() + b'{"version":1,"type":"fcall"}'
`);
  });

  it('MessagePack str that is not UTF-8 (bytes sent as str) is refused, never turned into U+FFFD', () => {
    expect(refused(MSGPACK_NAME, py.bytes_as_str_binary!)).toMatch(/^the body is not valid MessagePack: the string at byte \d+ is not valid UTF-8; text must be UTF-8 \(send bytes as MessagePack bin, not str\)$/);
    expect(refused(MSGPACK_NAME, py.key_invalid!)).toMatch(/not valid UTF-8/);
    // Bytes sent as str that happen to be UTF-8 arrive as a string; bytes sent as bin arrive as bytes.
    expect(accepted(MSGPACK_NAME, py.bytes_as_str_utf8!).args).toEqual(['plain text']);
    const [bin] = accepted(MSGPACK_NAME, py.bin!).args as Uint8Array[];
    expect(bin).toBeInstanceOf(Uint8Array);
    expect([...bin!]).toEqual([0xff, 0xfe, 0]);
  });

  it('a UTF-8-encoded surrogate (CESU-8) and an overlong form are not UTF-8', () => {
    for (const bad of [[0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xf4, 0x90, 0x80, 0x80]]) {
      const s = Buffer.from(bad);
      const bytes = Buffer.concat([Buffer.from([0x83, 0xa7]), Buffer.from('version'), Buffer.from([0x01, 0xa4]), Buffer.from('type'), Buffer.from([0xa5]), Buffer.from('fcall'), Buffer.from([0xa4]), Buffer.from('args'), Buffer.from([0x91, 0xa0 | s.length]), s]);
      expect(refused(MSGPACK_NAME, bytes)).toMatch(/not valid UTF-8/);
    }
  });

  it('JSON: a lone surrogate escape is refused, a pair is accepted; invalid UTF-8 and a BOM are refused', () => {
    expect(refused(JSON_NAME, py.json_lone_surrogate!)).toMatch(/^body\.args\[0\]: .*lone UTF-16 surrogate/);
    expect(refused(JSON_NAME, Buffer.from('{"version":1,"type":"fcall","args":[{"\\udc00":1}]}'))).toMatch(/^body\.args\[0\]\{key #0\}: .*lone UTF-16 surrogate/);
    expect(accepted(JSON_NAME, py.json_pair!).args).toEqual(['🎉']);
    expect(refused(JSON_NAME, py.json_invalid_utf8!)).toBe('the body is not valid JSON: the text is not valid UTF-8');
    expect(refused(JSON_NAME, py.json_bom!)).toBe('the body is not valid JSON: the text starts with a byte order mark (U+FEFF); write UTF-8 without one');
  });

  it('spool ls reports a body with invalid UTF-8 as invalid, and valid non-ASCII text as valid', () => {
    const { dir, cleanup } = tempDir('contract-ls-');
    try {
      const root = join(dir, 'spool');
      Spooler.open(root);
      const now = Date.now();
      const name = (n: number, ext: string) => `50-${now}-${now}${String(n).padStart(16, '0')}-a0-echo.${ext}`;
      writeFileSync(join(root, 'incoming', name(1, 'msgpack')), py.bytes_as_str_binary!);
      writeFileSync(join(root, 'incoming', name(2, 'json')), py.json_lone_surrogate!);
      writeFileSync(join(root, 'incoming', name(3, 'msgpack')), py.bytes_as_str_utf8!);
      const listed = lsJson(root, ['--state', 'invalid', 'due']);
      const reasons = Object.fromEntries(listed.map((e) => [e.file, e.reason]));
      expect(reasons[name(1, 'msgpack')]).toMatch(/not valid UTF-8/);
      expect(reasons[name(2, 'json')]).toMatch(/lone UTF-16 surrogate/);
      expect(reasons[name(3, 'msgpack')]).toBeNull();
    } finally {
      cleanup();
    }
  });
});

describe('JSON details and fields', () => {
  it('a trailing newline is accepted; version 1.0 is version 1; duplicate keys: the last one counts', () => {
    expect(accepted(JSON_NAME, Buffer.from('{"version":1,"type":"fcall","args":[1]}\n')).args).toEqual([1]);
    expect(accepted(JSON_NAME, Buffer.from('{"version":1.0,"type":"fcall","args":[1]}')).version).toBe(1);
    expect(accepted(JSON_NAME, Buffer.from('{"version":1,"type":"fcall","args":[1],"args":[2]}')).args).toEqual([2]);
  });

  it('args: null is refused (leave the field out for no arguments)', () => {
    expect(refused(JSON_NAME, Buffer.from('{"version":1,"type":"fcall","args":null}'))).toBe('"args" must be an array');
  });

  it('nesting: the body map is level 1; 64 levels are accepted, 65 refused, in both encodings', () => {
    const nest = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);
    // body (1) + args (2) + 62 = 64
    expect(decodeTask(JSON_NAME, Buffer.from(`{"version":1,"type":"fcall","args":[${nest(62)}]}`)).ok).toBe(true);
    expect(refused(JSON_NAME, Buffer.from(`{"version":1,"type":"fcall","args":[${nest(63)}]}`))).toMatch(/nested deeper than 64 levels/);
    const head = Buffer.concat([Buffer.from([0x83, 0xa7]), Buffer.from('version'), Buffer.from([0x01, 0xa4]), Buffer.from('type'), Buffer.from([0xa5]), Buffer.from('fcall'), Buffer.from([0xa4]), Buffer.from('args'), Buffer.from([0x91])]);
    const arrays = (levels: number) => Buffer.concat([Buffer.alloc(levels - 1, 0x91), Buffer.from([0x90])]);
    expect(decodeTask(MSGPACK_NAME, Buffer.concat([head, arrays(62)])).ok).toBe(true);
    expect(refused(MSGPACK_NAME, Buffer.concat([head, arrays(63)]))).toMatch(/nested deeper than 64 levels/);
  });
});
