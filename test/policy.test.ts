/**
 * The pure policy code of the runtime: durations and due times (runtime/duration.ts),
 * retry specs and backoff delays (runtime/backoff.ts), and how a task's result
 * maps onto an outcome (runtime/results.ts).
 */
import { describe, expect, it } from 'vitest';
import { backoffDelay, DEFAULT_RETRY, toRetrySpec } from '../runtime/backoff.js';
import { toDueTime, toMs } from '../runtime/duration.js';
import { outcomeOf, processed, rescheduled, skipped, TaskResult } from '../runtime/results.js';
import type { BackoffSpec } from '../spool/body.js';
import { InvalidOptionError } from '../spool/errors.js';

const NOW = 1_763_797_190_000;

describe('toMs', () => {
  it('takes numbers of ms, rounded to whole ms', () => {
    expect(toMs(0)).toBe(0);
    expect(toMs(250)).toBe(250);
    expect(toMs(1.4)).toBe(1);
    expect(toMs(1.5)).toBe(2);
    expect(toMs(86_400_000)).toBe(86_400_000);
  });

  it('takes a string of digits as ms', () => {
    expect(toMs('0')).toBe(0);
    expect(toMs('1000')).toBe(1000);
    expect(toMs(' 42 ')).toBe(42);
  });

  it('reads every unit', () => {
    expect(toMs('250ms')).toBe(250);
    expect(toMs('30s')).toBe(30_000);
    expect(toMs('5m')).toBe(300_000);
    expect(toMs('2h')).toBe(7_200_000);
    expect(toMs('2d')).toBe(172_800_000);
    expect(toMs('1w')).toBe(604_800_000);
  });

  it('reads compound and fractional durations', () => {
    expect(toMs('1h30m')).toBe(5_400_000);
    expect(toMs('1m30s')).toBe(90_000);
    expect(toMs('1d2h3m4s5ms')).toBe(86_400_000 + 7_200_000 + 180_000 + 4_000 + 5);
    expect(toMs('1m5ms')).toBe(60_005);
    expect(toMs('1.5s')).toBe(1500);
    expect(toMs('0.5h')).toBe(1_800_000);
    expect(toMs('1.5ms')).toBe(2);
    expect(toMs('0s')).toBe(0);
    expect(toMs('  30s\n')).toBe(30_000);
  });

  it('refuses what is not a duration, naming the option', () => {
    for (const bad of ['', ' ', 'abc', 's', '30x', '10 minutes', '-5s', '1h 30m', '1,5s', '.5s', '5.s', '5S', '1e3ms', 'ms5']) {
      expect(() => toMs(bad, 'postpone')).toThrow(InvalidOptionError);
      expect(() => toMs(bad, 'postpone')).toThrow(`postpone ${JSON.stringify(bad)} is not a duration`);
    }
  });

  it('refuses negative and non-finite numbers', () => {
    for (const bad of [-1, -0.5, NaN, Infinity, -Infinity]) {
      expect(() => toMs(bad, 'timeout')).toThrow(InvalidOptionError);
      expect(() => toMs(bad, 'timeout')).toThrow(`timeout must be a non-negative number of ms, got ${bad}`);
    }
  });
});

describe('toDueTime', () => {
  it('without postpone: now', () => {
    expect(toDueTime(undefined, NOW)).toBe(NOW);
  });

  it('a delay in ms or as a duration string, from now', () => {
    expect(toDueTime(0, NOW)).toBe(NOW);
    expect(toDueTime(1500, NOW)).toBe(NOW + 1500);
    expect(toDueTime('30s', NOW)).toBe(NOW + 30_000);
    expect(toDueTime('1h30m', NOW)).toBe(NOW + 5_400_000);
    expect(toDueTime('250ms', NOW)).toBe(NOW + 250);
  });

  it('a Date is an absolute due time, past or future', () => {
    expect(toDueTime(new Date(2_000_000_000_000), NOW)).toBe(2_000_000_000_000);
    expect(toDueTime(new Date(1_000), NOW)).toBe(1_000);
    expect(toDueTime(new Date(0), NOW)).toBe(0);
    expect(toDueTime(new Date(9_999_999_999_999), NOW)).toBe(9_999_999_999_999);
  });

  it('refuses due times outside what a file name can hold, and invalid dates', () => {
    for (const bad of [new Date(-1), new Date(10_000_000_000_000), new Date('not a date')]) {
      expect(() => toDueTime(bad, NOW)).toThrow(InvalidOptionError);
      expect(() => toDueTime(bad, NOW)).toThrow('postpone must be whole ms between 1970 and 2286');
    }
    expect(() => toDueTime(9_999_999_999_999, NOW)).toThrow('postpone must be whole ms between 1970 and 2286');
  });

  it('refuses bad postpone values', () => {
    expect(() => toDueTime('soon', NOW)).toThrow('postpone "soon" is not a duration');
    expect(() => toDueTime(-5, NOW)).toThrow('postpone must be a non-negative number of ms, got -5');
  });
});

describe('DEFAULT_RETRY', () => {
  it('is what SPOOL-FORMAT.md documents: 3 retries, exponential from 1 s, factor 2, ceiling 1 h, jitter 0.1', () => {
    expect(DEFAULT_RETRY).toEqual({ limit: 3, backoff: { kind: 'exponential', delay: 1000, factor: 2, ceiling: 3_600_000, jitter: 0.1 } });
    expect(Object.isFrozen(DEFAULT_RETRY)).toBe(true);
  });
});

describe('toRetrySpec', () => {
  it('stores nothing when no retry option was given', () => {
    expect(toRetrySpec(undefined, undefined)).toBeUndefined();
  });

  it('retries alone: the limit only', () => {
    expect(toRetrySpec(5, undefined)).toEqual({ limit: 5 });
    expect(toRetrySpec(0, undefined)).toEqual({ limit: 0 });
  });

  it('a backoff kind alone: the default limit and a 1 s delay', () => {
    expect(toRetrySpec(undefined, 'linear')).toEqual({ limit: 3, backoff: { kind: 'linear', delay: 1000 } });
    expect(toRetrySpec(2, 'constant')).toEqual({ limit: 2, backoff: { kind: 'constant', delay: 1000 } });
  });

  it('backoff options: kind defaults to exponential, durations become ms, only given fields are stored', () => {
    expect(toRetrySpec(1, {})).toEqual({ limit: 1, backoff: { kind: 'exponential', delay: 1000 } });
    expect(toRetrySpec(1, { delay: '2s' })).toEqual({ limit: 1, backoff: { kind: 'exponential', delay: 2000 } });
    expect(toRetrySpec(5, { kind: 'exponential', delay: '2s', factor: 3, floor: '500ms', ceiling: '10m', jitter: 0.25 })).toEqual({
      limit: 5,
      backoff: { kind: 'exponential', delay: 2000, factor: 3, floor: 500, ceiling: 600_000, jitter: 0.25 },
    });
    expect(toRetrySpec(undefined, { kind: 'constant', delay: 0, factor: 1, floor: 0, ceiling: 0, jitter: 0 })).toEqual({
      limit: 3,
      backoff: { kind: 'constant', delay: 0, factor: 1, floor: 0, ceiling: 0, jitter: 0 },
    });
    expect(toRetrySpec(1, { jitter: 1 })).toEqual({ limit: 1, backoff: { kind: 'exponential', delay: 1000, jitter: 1 } });
  });

  it('refuses bad retries', () => {
    for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 53]) {
      expect(() => toRetrySpec(bad, undefined)).toThrow(InvalidOptionError);
      expect(() => toRetrySpec(bad, undefined)).toThrow(`retries must be a non-negative integer, got ${bad}`);
    }
  });

  it('refuses bad backoff options', () => {
    expect(() => toRetrySpec(1, 'fibonacci' as never)).toThrow('backoff kind "fibonacci" is unknown; use one of constant, linear, exponential');
    expect(() => toRetrySpec(1, { kind: 'Linear' as never })).toThrow(InvalidOptionError);
    for (const factor of [0.5, 0, -1, NaN]) {
      expect(() => toRetrySpec(1, { factor })).toThrow(`backoff.factor must be ≥ 1, got ${factor}`);
    }
    for (const jitter of [-0.1, 1.5, NaN]) {
      expect(() => toRetrySpec(1, { jitter })).toThrow(`backoff.jitter must be from 0 to 1, got ${jitter}`);
    }
    expect(() => toRetrySpec(1, { delay: 'soon' })).toThrow('backoff.delay "soon" is not a duration');
    expect(() => toRetrySpec(1, { delay: -1 })).toThrow('backoff.delay must be a non-negative number of ms, got -1');
    expect(() => toRetrySpec(1, { floor: 'x' })).toThrow('backoff.floor "x" is not a duration');
    expect(() => toRetrySpec(1, { ceiling: -5 })).toThrow('backoff.ceiling must be a non-negative number of ms, got -5');
  });
});

describe('backoffDelay', () => {
  const spec = (s: Partial<BackoffSpec> & Pick<BackoffSpec, 'kind'>): BackoffSpec => ({ delay: 1000, ...s });

  it('constant: the delay every time', () => {
    expect([1, 2, 3, 10].map((n) => backoffDelay(spec({ kind: 'constant' }), n))).toEqual([1000, 1000, 1000, 1000]);
  });

  it('linear: delay × n', () => {
    expect([1, 2, 3, 10].map((n) => backoffDelay(spec({ kind: 'linear' }), n))).toEqual([1000, 2000, 3000, 10_000]);
  });

  it('exponential: delay × factor^(n−1), factor 2 by default', () => {
    expect([1, 2, 3, 4, 11].map((n) => backoffDelay(spec({ kind: 'exponential' }), n))).toEqual([1000, 2000, 4000, 8000, 1_024_000]);
    expect([1, 2, 3].map((n) => backoffDelay(spec({ kind: 'exponential', factor: 3 }), n))).toEqual([1000, 3000, 9000]);
    expect([1, 2, 3].map((n) => backoffDelay(spec({ kind: 'exponential', factor: 1.5, delay: 100 }), n))).toEqual([100, 150, 225]);
    expect([1, 5].map((n) => backoffDelay(spec({ kind: 'exponential', factor: 1 }), n))).toEqual([1000, 1000]);
  });

  it('treats 0 (or fewer) failures as the first', () => {
    expect(backoffDelay(spec({ kind: 'linear' }), 0)).toBe(1000);
    expect(backoffDelay(spec({ kind: 'exponential' }), -3)).toBe(1000);
  });

  it('floor raises a short delay', () => {
    expect(backoffDelay(spec({ kind: 'constant', delay: 100, floor: 500 }), 1)).toBe(500);
    expect(backoffDelay(spec({ kind: 'linear', delay: 100, floor: 250 }), 3)).toBe(300);
    expect(backoffDelay(spec({ kind: 'constant', delay: 0, floor: 0 }), 1)).toBe(0);
  });

  it('ceiling caps a long delay', () => {
    expect(backoffDelay(spec({ kind: 'exponential', ceiling: 60_000 }), 10)).toBe(60_000);
    expect(backoffDelay(spec({ kind: 'exponential', ceiling: 60_000 }), 6)).toBe(32_000);
    expect(backoffDelay(spec({ kind: 'exponential', ceiling: 60_000 }), 1000)).toBe(60_000);
    expect(backoffDelay({ ...DEFAULT_RETRY.backoff!, jitter: 0 }, 13)).toBe(3_600_000);
  });

  it('jitter: random 0 gives delay × (1 − jitter), random ~1 gives delay × (1 + jitter), random 0.5 the delay', () => {
    const s = spec({ kind: 'constant', jitter: 0.5 });
    expect(backoffDelay(s, 1, 0)).toBe(500);
    expect(backoffDelay(s, 1, 0.5)).toBe(1000);
    expect(backoffDelay(s, 1, 0.999_999_9)).toBe(1500);
    expect(backoffDelay(s, 1, 0.75)).toBe(1250);
    const full = spec({ kind: 'linear', jitter: 1 });
    expect(backoffDelay(full, 2, 0)).toBe(0);
    expect(backoffDelay(full, 2, 0.999_999_9)).toBe(4000);
  });

  it('jitter stays within [delay × (1 − jitter), delay × (1 + jitter)] for any random in [0, 1)', () => {
    const s = spec({ kind: 'exponential', delay: 2000, jitter: 0.1 });
    for (let i = 0; i < 1000; i++) {
      const r = i / 1000;
      const d = backoffDelay(s, 3, r);
      expect(d).toBeGreaterThanOrEqual(7200);
      expect(d).toBeLessThanOrEqual(8800);
      expect(Number.isInteger(d)).toBe(true);
    }
    // And with Math.random by default.
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(s, 3);
      expect(d).toBeGreaterThanOrEqual(7200);
      expect(d).toBeLessThanOrEqual(8800);
    }
  });

  it('no jitter: random has no effect', () => {
    expect(backoffDelay(spec({ kind: 'constant' }), 1, 0)).toBe(1000);
    expect(backoffDelay(spec({ kind: 'constant', jitter: 0 }), 1, 0.999)).toBe(1000);
  });

  it('floor and ceiling apply after jitter', () => {
    const s = spec({ kind: 'constant', jitter: 0.5, floor: 800, ceiling: 1200 });
    expect(backoffDelay(s, 1, 0)).toBe(800);
    expect(backoffDelay(s, 1, 0.999_999_9)).toBe(1200);
    expect(backoffDelay(s, 1, 0.55)).toBe(1050);
  });

  it('rounds to whole ms', () => {
    expect(backoffDelay(spec({ kind: 'exponential', delay: 3, factor: 1.5 }), 2)).toBe(5);
    expect(backoffDelay(spec({ kind: 'constant', delay: 3, jitter: 0.1 }), 1, 0)).toBe(3);
  });
});

describe('outcomeOf', () => {
  it('a plain return, undefined included, means processed', () => {
    expect(outcomeOf({ value: undefined })).toEqual({ kind: 'processed' });
    expect(outcomeOf({ value: undefined })).not.toHaveProperty('value');
    expect(outcomeOf({ value: 42 })).toEqual({ kind: 'processed', value: 42 });
    expect(outcomeOf({ value: null })).toEqual({ kind: 'processed', value: null });
    expect(outcomeOf({ value: false })).toEqual({ kind: 'processed', value: false });
    expect(outcomeOf({ value: '' })).toEqual({ kind: 'processed', value: '' });
    expect(outcomeOf({ value: { sent: 3 } })).toEqual({ kind: 'processed', value: { sent: 3 } });
  });

  it('a plain object that looks like an outcome is still a processed value', () => {
    expect(outcomeOf({ value: { kind: 'skipped', reason: 'x' } })).toEqual({ kind: 'processed', value: { kind: 'skipped', reason: 'x' } });
    expect(outcomeOf({ value: { outcome: { kind: 'skipped' } } })).toEqual({ kind: 'processed', value: { outcome: { kind: 'skipped' } } });
  });

  it('processed()', () => {
    expect(outcomeOf({ value: processed() })).toEqual({ kind: 'processed' });
    expect(outcomeOf({ value: processed() })).not.toHaveProperty('value');
    expect(outcomeOf({ value: processed('done') })).toEqual({ kind: 'processed', value: 'done' });
    expect(outcomeOf({ value: processed(null) })).toEqual({ kind: 'processed', value: null });
  });

  it('skipped()', () => {
    expect(outcomeOf({ value: skipped() })).toEqual({ kind: 'skipped' });
    expect(outcomeOf({ value: skipped() })).not.toHaveProperty('reason');
    expect(outcomeOf({ value: skipped('no recipient') })).toEqual({ kind: 'skipped', reason: 'no recipient' });
  });

  it('rescheduled()', () => {
    expect(outcomeOf({ value: rescheduled() })).toEqual({ kind: 'rescheduled' });
    expect(Object.keys(outcomeOf({ value: rescheduled() }))).toEqual(['kind']);
    expect(outcomeOf({ value: rescheduled({ delay: '30s' }) })).toEqual({ kind: 'rescheduled', delay: 30_000 });
    expect(outcomeOf({ value: rescheduled({ delay: 250 }) })).toEqual({ kind: 'rescheduled', delay: 250 });
    expect(outcomeOf({ value: rescheduled({ delay: 0 }) })).toEqual({ kind: 'rescheduled', delay: 0 });
    expect(outcomeOf({ value: rescheduled({ delay: '1h30m', reason: 'busy' }) })).toEqual({ kind: 'rescheduled', delay: 5_400_000, reason: 'busy' });
    expect(outcomeOf({ value: rescheduled({ reason: 'busy' }) })).toEqual({ kind: 'rescheduled', reason: 'busy' });
  });

  it('rescheduled() with a bad delay throws InvalidOptionError', () => {
    expect(() => rescheduled({ delay: 'later' })).toThrow(InvalidOptionError);
    expect(() => rescheduled({ delay: -1 })).toThrow('rescheduled delay must be a non-negative number of ms, got -1');
  });

  it('a throw means rescheduled, with the error', () => {
    const error = new Error('smtp down');
    const outcome = outcomeOf({ error });
    expect(outcome).toEqual({ kind: 'rescheduled', error });
    expect((outcome as { error: unknown }).error).toBe(error);
    expect(outcomeOf({ error: 'a string' })).toEqual({ kind: 'rescheduled', error: 'a string' });
    // Even `throw undefined` is a failure, not a plain return.
    expect(outcomeOf({ error: undefined })).toEqual({ kind: 'rescheduled', error: undefined });
    expect(outcomeOf({ error: undefined }).kind).toBe('rescheduled');
  });

  it('TaskResult.is recognises results, also from another copy of spoolerd (Symbol.for)', () => {
    expect(TaskResult.is(processed())).toBe(true);
    expect(TaskResult.is(skipped('x'))).toBe(true);
    expect(TaskResult.is(rescheduled())).toBe(true);
    const foreign = { [Symbol.for('spoolerd.TaskResult')]: true, outcome: { kind: 'skipped', reason: 'other copy' } };
    expect(TaskResult.is(foreign)).toBe(true);
    expect(outcomeOf({ value: foreign })).toEqual({ kind: 'skipped', reason: 'other copy' });
    for (const v of [undefined, null, 0, 'x', {}, { outcome: { kind: 'skipped' } }, { [Symbol('spoolerd.TaskResult')]: true }]) {
      expect(TaskResult.is(v)).toBe(false);
    }
  });
});
