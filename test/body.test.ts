/**
 * findBodyProblem: the checks a decoded body must pass (SPOOL-FORMAT.md, "Body").
 */
import { describe, expect, it } from 'vitest';
import { findBodyProblem, FORMAT_VERSION, RESERVED_FIELDS } from '../spool/body.js';

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
    expect([...RESERVED_FIELDS]).toEqual(['unique', 'chain', 'overlap', 'periodic', 'result', 'expires']);
  });

  for (const field of ['unique', 'chain', 'overlap', 'periodic', 'result', 'expires']) {
    it(`refuses "${field}", whatever its value`, () => {
      for (const value of [true, null, 0, 'x', [], {}]) {
        expect(findBodyProblem(withField(field, value))).toBe(`"${field}" is reserved for a later format version`);
      }
      expect(findBodyProblem({ version: 1, type: 'message', message: 'm', [field]: 1 })).toBe(`"${field}" is reserved for a later format version`);
    });
  }
});
