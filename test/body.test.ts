/**
 * The body check (spool/body.ts): findBodyProblem, the checks a decoded body
 * must pass (SPOOL-FORMAT.md, "Body"), the table of fields that drives it and
 * the document that lists them, and isValidBody, the same check on raw bytes
 * that `spool ls` makes of every file.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { BACKOFF_FIELDS, BODY_FIELDS, findBodyProblem, FORMAT_VERSION, isValidBody, RESERVED_FIELDS, RETRY_FIELDS } from '../spool/body.js';
import { decodeTask, encodeTask } from '../spool/task-file.js';
import { ROOT } from './helpers/cli.js';

const base = { version: 1, type: 'fcall' };
const withField = (field: string, value: unknown): Record<string, unknown> => ({ ...base, [field]: value });
const withRetry = (retry: unknown): Record<string, unknown> => ({ ...base, retry });
const withBackoff = (backoff: Record<string, unknown>): Record<string, unknown> => withRetry({ limit: 3, backoff });

describe('findBodyProblem: valid bodies', () => {
  it('accepts the smallest body', () => {
    expect(FORMAT_VERSION).toBe(1);
    expect(findBodyProblem({ version: 1, type: 'fcall' })).toBeUndefined();
    expect(findBodyProblem({ version: 1, type: 'fcall', args: [] })).toBeUndefined();
  });

  it('accepts every documented field with a valid value', () => {
    expect(
      findBodyProblem({
        version: 1,
        type: 'fcall',
        args: [1, 'two', null, { three: [3] }, new Uint8Array([4])],
        payload: { anything: [true] },
        retry: { limit: 0, backoff: { kind: 'exponential', delay: 0, factor: 1, floor: 0, ceiling: 0, jitter: 0 } },
        timeout: 1,
        parent: '1763797190000a3f09c2d4e5b6f71',
        meta: {},
      }),
    ).toBeUndefined();
    expect(
      findBodyProblem({ version: 1, type: 'message', message: '', payload: null, retry: { limit: 9, backoff: { kind: 'linear', delay: 5, jitter: 1, factor: 2.5 } } }),
    ).toBeUndefined();
    expect(findBodyProblem({ version: 1, type: 'x', message: 'm', timeout: Number.MAX_SAFE_INTEGER })).toBeUndefined();
  });

  it('accepts a payload of any kind', () => {
    for (const payload of [null, false, 0, -1.5, '', 'text', [], [1, [2]], {}, { a: { b: null } }, new Uint8Array([1])]) {
      expect(findBodyProblem(withField('payload', payload))).toBeUndefined();
    }
  });

  it('allows unknown extra fields (forward compatibility)', () => {
    expect(findBodyProblem({ ...base, future: 1, priority: 5, due: 'tomorrow', nested: { x: [1] }, version2_note: null })).toBeUndefined();
    expect(findBodyProblem({ ...base, results: true, uniq: 'k', chains: [] })).toBeUndefined();
  });

  it('accepts every type matching [a-z][a-z0-9_-]{0,63}', () => {
    for (const type of ['a', 'message', 'fcall', 'x-y_z9', 'a'.repeat(64), 'z0-_']) {
      expect(findBodyProblem({ version: 1, type })).toBeUndefined();
    }
  });

  it('accepts each backoff kind', () => {
    for (const kind of ['constant', 'linear', 'exponential']) expect(findBodyProblem(withBackoff({ kind, delay: 100 }))).toBeUndefined();
  });
});

describe('findBodyProblem: the body itself', () => {
  it('refuses anything but a map', () => {
    for (const body of [null, undefined, 1, 'fcall', true, [], [{ version: 1, type: 'fcall' }], new Uint8Array([1]), Buffer.from('{}')]) {
      expect(findBodyProblem(body)).toBe('the body must be a map (a JSON object)');
    }
  });

  it('refuses a body without a version', () => {
    expect(findBodyProblem({ type: 'fcall' })).toBe('the body has no "version" field');
    expect(findBodyProblem({})).toBe('the body has no "version" field');
  });

  it('refuses versions it does not know, naming whole-number ones and only the kind of anything else (nothing else of the file is echoed)', () => {
    const message = (v: string): string =>
      `format version ${v} is not supported; this spoolerd reads version 1 (upgrade spoolerd, or write version 1)`;
    expect(findBodyProblem({ version: 2, type: 'fcall' })).toBe(message('2'));
    expect(findBodyProblem({ version: 0, type: 'fcall' })).toBe(message('0'));
    expect(findBodyProblem({ version: '1', type: 'fcall' })).toBe(message('(a string)'));
    expect(findBodyProblem({ version: 'SECRET', type: 'fcall' })).not.toContain('SECRET');
    expect(findBodyProblem({ version: 1.5, type: 'fcall' })).toBe(message('(a number)'));
    expect(findBodyProblem({ version: null, type: 'fcall' })).toBe(message('(null)'));
    expect(findBodyProblem({ version: true, type: 'fcall' })).toBe(message('(a boolean)'));
    expect(findBodyProblem({ version: [1], type: 'fcall' })).toBe(message('(an array)'));
  });
});

describe('findBodyProblem: wrong types of each field', () => {
  it('type', () => {
    const problem = '"type" must be a lowercase identifier such as "fcall"';
    expect(findBodyProblem({ version: 1 })).toBe(problem);
    for (const type of [null, 1, true, [], {}, '', 'Fcall', 'FCALL', '1x', '_x', '-x', 'x y', 'x.y', 'x:y', 'é', 'a'.repeat(65), 'fcall\n']) {
      expect(findBodyProblem({ version: 1, type })).toBe(problem);
    }
  });

  it('args', () => {
    for (const args of [null, {}, 'a', 1, true, new Uint8Array([1])]) {
      expect(findBodyProblem(withField('args', args))).toBe('"args" must be an array');
    }
  });

  it('message: not on fcall, and a string elsewhere', () => {
    expect(findBodyProblem(withField('message', 'hi'))).toBe('an fcall task has "args", not "message"');
    expect(findBodyProblem(withField('message', 1))).toBe('an fcall task has "args", not "message"');
    for (const message of [null, 1, true, [], {}, new Uint8Array([1])]) {
      expect(findBodyProblem({ version: 1, type: 'message', message })).toBe('"message" must be a string');
    }
  });

  it('timeout', () => {
    for (const timeout of [0, -1, 1.5, '30', '30s', null, true, [], {}, Number.MAX_SAFE_INTEGER + 1, Infinity, NaN]) {
      expect(findBodyProblem(withField('timeout', timeout))).toBe('"timeout" must be a positive integer of ms');
    }
  });

  it('parent', () => {
    for (const parent of ['', 1, null, true, [], {}]) {
      expect(findBodyProblem(withField('parent', parent))).toBe('"parent" must be a task id');
    }
  });

  it('meta', () => {
    for (const meta of [null, [], 'x', 1, true, new Uint8Array([1])]) {
      expect(findBodyProblem(withField('meta', meta))).toBe('"meta" must be a map');
    }
  });

  it('retry', () => {
    for (const retry of [null, [], 3, 'three', true, new Uint8Array([1])]) {
      expect(findBodyProblem(withRetry(retry))).toBe('"retry" must be a map');
    }
  });

  it('retry.limit', () => {
    for (const limit of [undefined, -1, 1.5, '3', null, true, Number.MAX_SAFE_INTEGER + 1, NaN, Infinity]) {
      expect(findBodyProblem(withRetry(limit === undefined ? {} : { limit }))).toBe('"retry.limit" must be a non-negative integer');
    }
  });

  it('retry.backoff', () => {
    for (const backoff of [null, [], 'exponential', 1, true]) {
      expect(findBodyProblem(withRetry({ limit: 1, backoff }))).toBe('"retry.backoff" must be a map');
    }
  });

  it('retry.backoff.kind', () => {
    for (const kind of [undefined, 'Exponential', 'fibonacci', '', 1, null]) {
      const backoff = kind === undefined ? { delay: 1 } : { kind, delay: 1 };
      expect(findBodyProblem(withBackoff(backoff))).toBe('"retry.backoff.kind" must be one of constant, linear, exponential');
    }
  });

  it('retry.backoff.delay', () => {
    for (const delay of [undefined, -1, 1.5, '1s', null, true, Number.MAX_SAFE_INTEGER + 1]) {
      const backoff = delay === undefined ? { kind: 'constant' } : { kind: 'constant', delay };
      expect(findBodyProblem(withBackoff(backoff))).toBe('"retry.backoff.delay" must be a non-negative integer of ms');
    }
  });

  it('retry.backoff.factor', () => {
    for (const factor of [0, 0.5, 0.999, -2, '2', null, true, NaN]) {
      expect(findBodyProblem(withBackoff({ kind: 'exponential', delay: 1, factor }))).toBe('"retry.backoff.factor" must be a number ≥ 1');
    }
  });

  it('retry.backoff.floor and ceiling', () => {
    for (const field of ['floor', 'ceiling']) {
      for (const value of [-1, 1.5, '1s', null, true, NaN]) {
        expect(findBodyProblem(withBackoff({ kind: 'constant', delay: 1, [field]: value }))).toBe(
          `"retry.backoff.${field}" must be a non-negative integer of ms`,
        );
      }
    }
  });

  it('retry.backoff.jitter', () => {
    for (const jitter of [-0.1, 1.01, 2, '0.5', null, true, NaN]) {
      expect(findBodyProblem(withBackoff({ kind: 'constant', delay: 1, jitter }))).toBe('"retry.backoff.jitter" must be a number from 0 to 1');
    }
  });
});

describe('findBodyProblem: reserved fields', () => {
  it('lists exactly the fields SPOOL-FORMAT.md reserves', () => {
    expect([...RESERVED_FIELDS]).toEqual(['overlap', 'periodic', 'result']);
  });

  for (const field of ['overlap', 'periodic', 'result']) {
    it(`refuses "${field}", whatever its value`, () => {
      for (const value of [true, null, 0, 'x', [], {}]) {
        expect(findBodyProblem(withField(field, value))).toBe(`"${field}" is reserved for a later format version`);
      }
      expect(findBodyProblem({ version: 1, type: 'message', message: 'm', [field]: 1 })).toBe(`"${field}" is reserved for a later format version`);
    });
  }
});

describe('findBodyProblem: chain and onError (steps)', () => {
  const step = { name: 'resize', args: [1, 'x'], priority: 0, delay: 0, retry: { limit: 2, backoff: { kind: 'constant', delay: 5 } }, timeout: 1, keepResult: 0, meta: { a: 1 }, encoding: 'json' };
  it('accepts an array of steps (empty too) and one onError step; a step\'s unknown fields are carried', () => {
    expect(findBodyProblem(withField('chain', []))).toBeUndefined();
    expect(findBodyProblem(withField('chain', [step, { name: 'notify' }, { name: 'x', future: true }]))).toBeUndefined();
    expect(findBodyProblem(withField('onError', step))).toBeUndefined();
    expect(findBodyProblem(withField('onError', { name: 'alert', later: [1] }))).toBeUndefined();
    expect(findBodyProblem({ ...base, chain: [{ name: 'b', priority: 99 }], onError: { name: 'c' } })).toBeUndefined();
  });
  it('refuses what is not an array of steps, naming the step and its field', () => {
    for (const bad of [true, null, 0, 'x', {}]) expect(findBodyProblem(withField('chain', bad))).toBe('"chain" must be an array of steps: maps with a task "name"');
    expect(findBodyProblem(withField('chain', [{ name: 'a' }, 'b']))).toBe('"chain" must be an array of steps: maps with a task "name" (step 2 is not a map)');
    expect(findBodyProblem(withField('chain', [{ args: [] }]))).toBe('"chain" step 1: "name" must be a task name (a letter or _ first, then letters, digits, _ . : -, at most 128)');
    expect(findBodyProblem(withField('chain', [{ name: 'a' }, { name: '9bad' }]))).toMatch(/^"chain" step 2: "name" must be a task name/);
    expect(findBodyProblem(withField('chain', [{ name: 'a', priority: 100 }]))).toBe('"chain" step 1: "priority" must be an integer from 0 to 99');
    expect(findBodyProblem(withField('chain', [{ name: 'a', priority: -1 }]))).toBe('"chain" step 1: "priority" must be an integer from 0 to 99');
    expect(findBodyProblem(withField('chain', [{ name: 'a', delay: 1.5 }]))).toBe('"chain" step 1: "delay" must be a non-negative integer of ms');
    expect(findBodyProblem(withField('chain', [{ name: 'a', args: {} }]))).toBe('"chain" step 1: "args" must be an array');
    expect(findBodyProblem(withField('chain', [{ name: 'a', timeout: 0 }]))).toBe('"chain" step 1: "timeout" must be a positive integer of ms');
    expect(findBodyProblem(withField('chain', [{ name: 'a', retry: { limit: -1 } }]))).toBe('"chain" step 1: "retry.limit" must be a non-negative integer');
    expect(findBodyProblem(withField('chain', [{ name: 'a', encoding: 'xml' }]))).toBe('"chain" step 1: "encoding" must be one of msgpack, json');
    for (const bad of [true, null, 0, 'x', []]) expect(findBodyProblem(withField('onError', bad))).toBe('"onError" must be a step: a map with a task "name"');
    expect(findBodyProblem(withField('onError', { name: 'a', keepResult: -1 }))).toBe('"onError": "keepResult" must be a non-negative integer of ms');
    expect(findBodyProblem(withField('onError', { name: 'a', meta: [] }))).toBe('"onError": "meta" must be a map');
  });
  it('the raw-bytes check agrees (a chain is decoded only where a body has one)', () => {
    for (const body of [withField('chain', [step]), withField('chain', [{ name: 'a', priority: 100 }]), withField('onError', { name: 'a' }), withField('onError', { name: '' })]) {
      const bytes = new Packr({ useRecords: false, variableMapSize: true }).pack(body);
      expect(isValidBody(bytes, 'msgpack'), JSON.stringify(body)).toBe(findBodyProblem(body) === undefined);
    }
  });
});

describe('findBodyProblem: unique keys and expiry', () => {
  it('takes a key of 1 to 1024 characters, uniqueWhile pending or running, and expires as a time in ms', () => {
    expect(findBodyProblem(withField('unique', 'k'))).toBeUndefined();
    expect(findBodyProblem(withField('unique', 'é'.repeat(1024)))).toBeUndefined();
    expect(findBodyProblem({ ...withField('unique', 'k'), uniqueWhile: 'running' })).toBeUndefined();
    expect(findBodyProblem({ ...withField('unique', 'k'), uniqueWhile: 'pending' })).toBeUndefined();
    expect(findBodyProblem(withField('expires', 1_763_797_200_000))).toBeUndefined();
    expect(findBodyProblem(withField('expires', 0))).toBeUndefined();
  });
  it('refuses anything else', () => {
    for (const bad of ['', 'x'.repeat(1025), 1, null, [], {}]) expect(findBodyProblem(withField('unique', bad))).toBe('"unique" must be a key of 1 to 1024 characters');
    for (const bad of ['always', 1, null]) expect(findBodyProblem(withField('uniqueWhile', bad))).toBe('"uniqueWhile" must be one of pending, running');
    for (const bad of [-1, 1.5, '1763797200000', null, 2 ** 53]) expect(findBodyProblem(withField('expires', bad))).toBe('"expires" must be a time: a non-negative integer of ms since the epoch (spool clock)');
  });
});

describe('the table of fields and SPOOL-FORMAT.md', () => {
  const doc = readFileSync(join(ROOT, 'SPOOL-FORMAT.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Body ('), doc.indexOf('### Values'));
  /** The rows of the first table after `heading`: the first column's names (`a`, `b` give two) and the rest. */
  const tableAfter = (from: number): Array<{ names: string[]; cells: string[] }> => {
    const lines = section.slice(from).split('\n');
    const start = lines.findIndex((l) => l.startsWith('| field'));
    const rows: Array<{ names: string[]; cells: string[] }> = [];
    for (const line of lines.slice(start + 2)) {
      if (!line.startsWith('|')) break;
      const cells = line.split(' | ').map((c) => c.replace(/^\| ?| ?\|$/g, '').trim());
      rows.push({ names: [...cells[0]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!), cells: cells.slice(1) });
    }
    return rows;
  };
  const namesOf = (fields: readonly { name: string; rule: { kind: string } }[]) => fields.filter((f) => f.rule.kind !== 'reserved').map((f) => f.name).sort();

  it('the body table lists exactly the fields of BODY_FIELDS, and says which are required', () => {
    const rows = tableAfter(0);
    expect(rows.flatMap((r) => r.names).sort()).toEqual(namesOf(BODY_FIELDS));
    const required = rows.filter((r) => r.cells[1]!.startsWith('yes')).flatMap((r) => r.names).sort();
    expect(required).toEqual(BODY_FIELDS.filter((f) => f.required).map((f) => f.name).sort());
  });

  it('the backoff table lists exactly the fields of BACKOFF_FIELDS; retry is limit and backoff', () => {
    const rows = tableAfter(section.indexOf('`retry` is'));
    expect(rows.flatMap((r) => r.names).sort()).toEqual(namesOf(BACKOFF_FIELDS));
    const retry = /`retry` is `([^`]+)`/.exec(section)![1]!;
    expect([...retry.matchAll(/"(\w+)"/g)].map((m) => m[1]).sort()).toEqual(namesOf(RETRY_FIELDS));
  });

  it('the reserved names are the ones the document reserves', () => {
    const sentence = /These names are reserved[^:]*:([^(]*)\(/.exec(section)![1]!;
    expect([...sentence.matchAll(/`(\w+)`/g)].map((m) => m[1])).toEqual([...RESERVED_FIELDS]);
    expect(BODY_FIELDS.filter((f) => f.rule.kind === 'reserved').map((f) => f.name)).toEqual([...RESERVED_FIELDS]);
  });
});

/**
 * isValidBody reads a MessagePack body's fields from the bytes without
 * decoding the rest (body.ts). Each case says whether the body is valid; both
 * decodeTask (the daemon's read) and isValidBody must say so.
 */
describe('isValidBody: the check `spool ls` makes of raw bytes', () => {
  const MSGPACK_NAME = '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-t.msgpack';
  const JSON_NAME = '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-t.json';
  // A plain encoder, as a foreign producer would use, including what the runtime refuses to write.
  const packr = new Packr({ useRecords: false, variableMapSize: true });
  const verdicts = (name: string, bytes: Uint8Array) => ({ decodeTask: decodeTask(name, bytes).ok, isValidBody: isValidBody(bytes, name.endsWith('.json') ? 'json' : 'msgpack') });
  const expectValid = (bytes: Uint8Array, valid: boolean, what: string, name = MSGPACK_NAME) =>
    expect(verdicts(name, bytes), what).toEqual({ decodeTask: valid, isValidBody: valid });
  const fromHex = (hex: string) => Buffer.from(hex.replace(/\s+/g, ''), 'hex');
  /** A fixstr key or value. */
  const str = (s: string) => Buffer.concat([Buffer.from([0xa0 | s.length]), Buffer.from(s)]);
  const VERSION_1 = Buffer.concat([str('version'), Buffer.from([0x01])]);
  const TYPE_FCALL = Buffer.concat([str('type'), str('fcall')]);
  const map = (pairs: number, ...parts: Buffer[]) => Buffer.concat([Buffer.from([0x80 | pairs]), ...parts]);

  it('accepts the bodies the runtime writes', () => {
    const task = (body: Record<string, unknown>) => encodeTask({ name: 't', priority: 50, body: body as never }).bytes;
    const bodies = [
      task({ type: 'fcall', args: [] }),
      task({ type: 'fcall', args: ['user-1@example.com', 1] }),
      task({ type: 'fcall', args: [null, true, false, -1, -200, 70000, -70000, 4294967295, -2147483648, 2 ** 40, 1.5, -0.25, 'x'.repeat(300), 'é日本', new Uint8Array(3)] }),
      task({ type: 'fcall', args: [{ a: 1, b: [1, 2, { c: 'd' }], e: {} }, [[[[]]]]] }),
      task({ type: 'fcall', args: [1], retry: { limit: 3 } }),
      task({ type: 'fcall', args: [1], retry: { limit: 0, backoff: { kind: 'exponential', delay: 1000, factor: 2, floor: 10, ceiling: 60000, jitter: 0.5 } } }),
      task({ type: 'fcall', args: [1], retry: { limit: 5, backoff: { kind: 'constant', delay: 5 } }, timeout: 30_000, parent: '1763797190000a3f09c2d4e5b6f71', meta: { who: 'me', n: 1 } }),
      task({ type: 'message', message: 'hello' }),
      task({ type: 'message', message: 'héllo wörld' }),
      task({ type: 'raw-handler_2', payload: { anything: [1, 'two', null] } }),
      task({ type: 'x'.repeat(64), args: [] }),
      task({ type: 'fcall', args: Array.from({ length: 70_000 }, (_, i) => i) }),
    ];
    for (const bytes of bodies) expectValid(bytes, true, bytes.subarray(0, 40).toString('hex'));
  });

  it('says what decodeTask says, for each field and value SPOOL-FORMAT.md rules on', () => {
    const cases: Array<[unknown, boolean]> = [
      [{ version: 1, type: 'fcall', args: [], message: 'm' }, false],
      [{ version: 1, type: 'fcall', args: [], message: 7 }, false],
      [{ version: 2, type: 'fcall', args: [] }, false],
      [{ version: 1.0001, type: 'fcall', args: [] }, false],
      [{ version: '1', type: 'fcall', args: [] }, false],
      [{ type: 'fcall', args: [] }, false],
      [{ version: 1, args: [] }, false],
      [{ version: 1, type: 'Fcall', args: [] }, false],
      [{ version: 1, type: 'fcallé', args: [] }, false],
      [{ version: 1, type: 'x'.repeat(65), args: [] }, false],
      [{ version: 1, type: 'fcall', args: 'x' }, false],
      [{ version: 1, type: 'fcall', args: null }, false],
      [{ version: 1, type: 'fcall', args: new Uint8Array(2) }, false],
      [{ version: 1, type: 'fcall', args: {} }, false],
      [{ version: 1, type: 'fcall', args: [], timeout: 0 }, false],
      [{ version: 1, type: 'fcall', args: [], timeout: -5 }, false],
      [{ version: 1, type: 'fcall', args: [], timeout: 1.5 }, false],
      [{ version: 1, type: 'fcall', args: [], timeout: 2 ** 40 }, true],
      [{ version: 1, type: 'fcall', args: [], parent: '' }, false],
      [{ version: 1, type: 'fcall', args: [], parent: 5 }, false],
      [{ version: 1, type: 'fcall', args: [], meta: [] }, false],
      [{ version: 1, type: 'fcall', args: [], meta: null }, false],
      [{ version: 1, type: 'fcall', args: [], retry: { limit: -1 } }, false],
      [{ version: 1, type: 'fcall', args: [], retry: {} }, false],
      [{ version: 1, type: 'fcall', args: [], retry: [] }, false],
      [{ version: 1, type: 'fcall', args: [], retry: { limit: 1, backoff: { kind: 'fast', delay: 1 } } }, false],
      [{ version: 1, type: 'fcall', args: [], retry: { limit: 1, backoff: { kind: 'linear' } } }, false],
      [{ version: 1, type: 'fcall', args: [], retry: { limit: 1, backoff: { kind: 'linear', delay: 1, factor: 0.5 } } }, false],
      [{ version: 1, type: 'fcall', args: [], retry: { limit: 1, backoff: { kind: 'linear', delay: 1, jitter: 2 } } }, false],
      [{ version: 1, type: 'fcall', args: [], retry: { limit: 1, backoff: { kind: 'linear', delay: 1, other: 3 } } }, true],
      [{ version: 1, type: 'message', message: 7 }, false],
      [{ version: 1, type: 'message', message: 'hi', args: [] }, true],
      [{ version: 1, type: 'fcall', args: [], unique: true }, false],
      [{ version: 1, type: 'fcall', args: [], expires: null }, false],
      [{ version: 1, type: 'fcall', args: [], extra: 1, 'é': 2 }, true],
      [{ version: 1, type: 'fcall', args: [JSON.parse('{"__proto__":1}')] }, true],
      // NaN and infinities anywhere, even where no rule looks.
      [{ version: 1, type: 'fcall', args: [1, [NaN]] }, false],
      [{ version: 1, type: 'fcall', args: [], payload: { x: Infinity } }, false],
      [{ version: 1, type: 'fcall', args: [], extra: -Infinity }, false],
      [[{ version: 1, type: 'fcall' }], false],
      ['fcall', false],
      [null, false],
    ];
    for (const [body, valid] of cases) expectValid(packr.pack(body), valid, JSON.stringify(body));
    for (const [body, valid] of cases) {
      // The same in JSON, where JSON can say it (no bytes, no NaN).
      const json = JSON.stringify(body);
      if (json.includes('null') && JSON.stringify(body, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? 'x' : v)) !== json) continue;
      if (/"0":/.test(json)) continue;
      expectValid(Buffer.from(json), valid, json, JSON_NAME);
    }
  });

  it('reads a field however the producer encoded it: longer string and integer forms, integer keys, keys written twice', () => {
    // "version" as str8 and the value 1 as uint8 and int64; "type" as str16.
    const str8 = (s: string) => Buffer.concat([Buffer.from([0xd9, s.length]), Buffer.from(s)]);
    const str16 = (s: string) => Buffer.concat([Buffer.from([0xda, 0, s.length]), Buffer.from(s)]);
    expectValid(map(2, str8('version'), fromHex('cc01'), str16('type'), str16('fcall')), true, 'str8/str16 keys, uint8 version');
    expectValid(map(2, str8('version'), fromHex('d3 0000000000000001'), TYPE_FCALL), true, 'int64 version');
    expectValid(map(2, str8('version'), fromHex('cb 3ff0000000000000'), TYPE_FCALL), true, 'float64 version 1.0, the number 1');
    expectValid(map(2, str8('version'), fromHex('cb 3ff0000000000001'), TYPE_FCALL), false, 'float64 version just above 1');
    // A bad value behind a key in a longer form is still seen.
    expectValid(map(3, VERSION_1, TYPE_FCALL, str8('timeout'), fromHex('00')), false, 'str8 "timeout": 0');
    expectValid(map(3, VERSION_1, TYPE_FCALL, str16('unique'), fromHex('c3')), false, 'str16 "unique": true');
    expectValid(map(3, VERSION_1, TYPE_FCALL, str16('chain'), fromHex('c3')), false, 'str16 "chain": true (not an array of steps)');
    expectValid(map(3, VERSION_1, TYPE_FCALL, str16('result'), fromHex('c3')), false, 'str16 reserved key');
    expectValid(map(3, VERSION_1, TYPE_FCALL, Buffer.concat([Buffer.from([0xdb, 0, 0, 0, 4]), Buffer.from('args')]), fromHex('a178')), false, 'str32 "args": "x"');
    // Integer keys read as digits: never a field.
    expectValid(map(3, VERSION_1, TYPE_FCALL, fromHex('01'), fromHex('c0')), true, 'an integer key');
    // Written twice, the last counts: either way round.
    expectValid(map(3, VERSION_1, TYPE_FCALL, str('type'), str('Bad')), false, 'type written twice, the last bad');
    expectValid(map(3, VERSION_1, str('type'), str('Bad'), TYPE_FCALL), true, 'type written twice, the last good');
    expectValid(map(3, str('version'), fromHex('02'), TYPE_FCALL, VERSION_1), true, 'version 2 then 1');
    // map16 and map32 bodies, arrays in any length format.
    expectValid(Buffer.concat([fromHex('de0003'), VERSION_1, TYPE_FCALL, str('args'), fromHex('dc0001 01')]), true, 'map16 body, array16 args');
    expectValid(Buffer.concat([fromHex('df00000003'), VERSION_1, TYPE_FCALL, str('args'), fromHex('dd00000001 01')]), true, 'map32 body, array32 args');
    expectValid(Buffer.concat([fromHex('df00000003'), VERSION_1, TYPE_FCALL, str('meta'), fromHex('dd00000000')]), false, 'array32 meta');
  });

  it('refuses what the scan refuses, inside fields no rule looks into', () => {
    const withArgs = (arg: string) => map(3, VERSION_1, TYPE_FCALL, str('args'), fromHex('91' + arg));
    expectValid(withArgs('c0'), true, 'nil');
    expectValid(withArgs('a2c328'), false, 'invalid UTF-8');
    expectValid(withArgs('d6ff00000000'), false, 'a timestamp extension');
    expectValid(withArgs('cf0020000000000000'), false, '2^53 as uint64');
    expectValid(withArgs('92 01'), false, 'truncated');
    expectValid(Buffer.concat([withArgs('01'), fromHex('c0')]), false, 'a byte after the map');
    expectValid(withArgs('81 90 01'), false, 'an array as a map key');
  });

  it('nesting: 64 levels of arrays and maps; bytes are a scalar and do not count', () => {
    const arrays = (levels: number, inner: string) => '91'.repeat(levels) + inner;
    // body (1) + args (2) + 62 arrays = 64 levels.
    const withArgs = (hex: string) => map(3, VERSION_1, TYPE_FCALL, str('args'), fromHex('91' + hex));
    expectValid(withArgs(arrays(61, '90')), true, '64 levels');
    expectValid(withArgs(arrays(62, '90')), false, '65 levels');
    expectValid(withArgs(arrays(62, 'c40101')), true, 'bytes inside the 64th level');
    expectValid(withArgs(arrays(62, 'a178')), true, 'a string inside the 64th level');
  });
});
