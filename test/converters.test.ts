/**
 * Argument converters and validation in isolation (runtime/converters.ts):
 * dependency order, registration errors, refusals that fail a task for good,
 * the returns converter, and tasks without any conversion called as they are.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ArgumentConversionError,
  ConverterCycleError,
  InvalidOptionError,
  MissingConverterDependencyError,
  PermanentError,
  ReturnConversionError,
  Spooler,
  outcomeOf,
  processed,
  skipped,
} from '../runtime/index.js';
import { callConverted, compileConversion, ruleProblem, visitOrder } from '../runtime/converters.js';
import { tempDir } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir('spoolerd-converters-')));
afterEach(() => cleanup());

const specs = (needs: Record<string, string[]>) => new Map(Object.entries(needs).map(([k, v]) => [k, { needs: v }]));

describe('converter order', () => {
  it('runs each converter after every converter it needs; ties keep the declaration order', () => {
    expect(visitOrder('t', specs({ box: ['width', 'height'], width: ['path'], height: [], path: [] }))).toEqual(['height', 'path', 'width', 'box']);
    expect(visitOrder('t', specs({ a: [], b: [], c: [] }))).toEqual(['a', 'b', 'c']);
    expect(visitOrder('t', specs({ c: ['b'], b: ['a'], a: [] }))).toEqual(['a', 'b', 'c']);
  });

  it('refuses a cycle at registration, naming it', () => {
    const err = (() => {
      try {
        visitOrder('resize', specs({ a: ['c'], b: ['a'], c: ['b'], d: [] }));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConverterCycleError);
    expect((err as ConverterCycleError).cycle).toEqual(['a', 'c', 'b', 'a']);
    expect((err as Error).message).toContain('need each other in a cycle: a -> c -> b -> a; remove one');
    expect(() => visitOrder('t', specs({ self: ['self'] }))).toThrow(/self -> self/);
  });

  it('refuses a need that names no converter, saying what to do', () => {
    expect(() => visitOrder('resize', specs({ box: ['size'] }))).toThrow(MissingConverterDependencyError);
    expect(() => visitOrder('resize', specs({ box: ['size'] }))).toThrow('converter "box" of task resize needs "size", but no converter "size" is declared; add converters.size');
  });

  it('spooler.task() refuses bad conversions when the task is defined, not when it runs', () => {
    const spooler = Spooler.open(join(dir, 'spool'));
    const f = (a: unknown) => a;
    expect(() => spooler.task(f, { name: 'cyc', converters: { a: { needs: ['b'], convert: String }, b: { needs: ['a'], convert: String } } })).toThrow(ConverterCycleError);
    expect(() => spooler.task(f, { name: 'miss', converters: { a: { needs: ['zz'], convert: String } } })).toThrow(MissingConverterDependencyError);
    expect(() => spooler.task(f, { name: 'typo', params: ['width'], converters: { widht: Number } })).toThrow('converters.widht of task typo names no parameter; params are: width');
    expect(() => spooler.task(f, { name: 'dup', params: ['a', 'a'] })).toThrow(InvalidOptionError);
    expect(() => spooler.task(f, { name: 'rule', params: ['a'], validate: { a: { type: 'int' as never } } })).toThrow(/type "int" is none of string, number, integer/);
    expect(spooler.taskNames).toEqual([]);
  });
});

describe('converting a call', () => {
  it('converts positional arguments by params, a converter seeing the converted values it needs', async () => {
    const seen: unknown[] = [];
    const conversion = compileConversion('resize', {
      params: ['path', 'width', 'label'],
      converters: {
        // Declared first, runs last: it needs both others.
        label: { needs: ['path', 'width'], convert: (_v, args) => `${String(args.path)}@${String(args.width)}` },
        width: { needs: ['path'], convert: (v, args) => (seen.push(args.path), Number(v)) },
        path: (v) => String(v).toUpperCase(),
      },
    })!;
    const value = await callConverted(conversion, (...args) => args, ['a.png', '300']);
    expect(value).toEqual(['A.PNG', 300, 'A.PNG@300']);
    expect(seen).toEqual(['A.PNG']);
  });

  it('without params, converts the keys of one object argument (and copies it)', async () => {
    const sent = { n: '7', keep: true };
    const conversion = compileConversion('count', { converters: { n: Number, twice: { needs: ['n'], convert: (_v, a) => (a.n as number) * 2 } } })!;
    expect(await callConverted(conversion, (o) => o, [sent])).toEqual({ n: 7, keep: true, twice: 14 });
    expect(sent).toEqual({ n: '7', keep: true });
    const refused = await callConverted(conversion, (o) => o, ['7']).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ArgumentConversionError);
    expect((refused as Error).message).toContain('declares no params, so it takes one object argument');
  });

  it('a converter that throws refuses the task for good, naming the argument and the converter', async () => {
    const conversion = compileConversion('resize', {
      params: ['path', 'width'],
      converters: {
        width: function toPixels(v) {
          const n = Number(v);
          if (!Number.isInteger(n)) throw new Error(`${JSON.stringify(v)} is not a whole number of pixels`);
          return n;
        },
      },
    })!;
    let called = false;
    const err = await callConverted(conversion, () => (called = true), ['a.png', 'wide']).catch((e: unknown) => e);
    expect(called).toBe(false);
    expect(err).toBeInstanceOf(ArgumentConversionError);
    expect(PermanentError.is(err)).toBe(true);
    expect(err).toMatchObject({ argument: 'width', converter: 'converters.width (toPixels)', taskName: 'resize' });
    expect((err as Error).message).toBe('argument "width" of task resize was refused by converters.width (toPixels): "wide" is not a whole number of pixels');
    // Failed for good: a dead letter at once, not a retry.
    expect(outcomeOf({ error: err })).toMatchObject({ kind: 'failed', reason: (err as Error).message });
  });

  it('rules check what was sent, before any converter', async () => {
    const converted: unknown[] = [];
    const conversion = compileConversion('resize', {
      params: ['path', 'width', 'mode'],
      validate: { path: { type: 'string', required: true, min: 1 }, width: { type: 'integer', min: 1, max: 4000 }, mode: { enum: ['fit', 'fill'] } },
      converters: { width: (v) => (converted.push(v), v) },
    })!;
    const refusal = (args: unknown[]) => callConverted(conversion, () => 'ran', args).then(() => undefined, (e: ArgumentConversionError) => `${e.argument}/${e.converter}: ${e.message.split(': ').slice(1).join(': ')}`);
    expect(await refusal([])).toBe('path/validate.path: it is required but was not given');
    expect(await refusal(['', 10])).toBe('path/validate.path: it must be at least 1 long, got string ""');
    expect(await refusal(['a', '10'])).toBe('width/validate.width: it must be an integer, got string "10"');
    expect(await refusal(['a', 5000])).toBe('width/validate.width: it must be at most 4000, got number 5000');
    expect(await refusal(['a', 10, 'stretch'])).toBe('mode/validate.mode: it must be one of "fit", "fill", got string "stretch"');
    expect(converted).toEqual([]);
    expect(await refusal(['a', 10, 'fit'])).toBeUndefined();
    expect(await refusal(['a'])).toBeUndefined(); // width not required: absent is fine
  });

  it('a custom check refuses with its own words', () => {
    const even = { check: (v: unknown) => ((v as number) % 2 === 0 ? true : 'it must be even') };
    expect(ruleProblem(even, 3, true)).toBe('it must be even');
    expect(ruleProblem(even, 4, true)).toBeUndefined();
    expect(ruleProblem({ check: () => false }, 'x', true)).toBe('its check refused string "x"');
    expect(ruleProblem({ type: ['string', 'null'] }, null, true)).toBeUndefined();
    expect(ruleProblem({ type: 'number' }, Number.NaN, true)).toMatch(/must be a number/);
  });

  it('returns converts the processed value (plain or processed()), and leaves other endings alone', async () => {
    const conversion = compileConversion('info', { returns: (v) => ({ size: (v as { bytes: number }).bytes }) })!;
    expect(await callConverted(conversion, () => ({ bytes: 5, other: 1 }), [])).toEqual({ size: 5 });
    const wrapped = await callConverted(conversion, () => processed({ bytes: 6 }), []);
    expect(outcomeOf({ value: wrapped })).toEqual({ kind: 'processed', value: { size: 6 } });
    const skip = skipped('nothing to do');
    expect(await callConverted(conversion, () => skip, [])).toBe(skip);
    const err = await callConverted(compileConversion('info', { returns: function toSummary() { throw new Error('no bytes'); } })!, () => 1, []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReturnConversionError);
    expect((err as Error).message).toBe('the value of task info was refused by returns (toSummary): no bytes');
    expect(outcomeOf({ error: err }).kind).toBe('failed');
  });

  it('a task without conversion is called as it is: no promise added, the function gets the arguments as sent', () => {
    const spooler = Spooler.open(join(dir, 'spool'));
    const plain = spooler.task(function plainTask(a: number, b: number) {
      return a + b;
    });
    expect(compileConversion('plainTask', plain.options)).toBeUndefined();
    const value = spooler.getTaskCall('plainTask')!([1, 2]);
    expect(value).toBe(3); // a value, not a promise: a synchronous task settles synchronously as before
    const converted = spooler.task(function convertedTask(a: number) {
      return a;
    }, { params: ['a'], converters: { a: Number } });
    expect(spooler.getTaskCall(converted.taskName)!(['4'])).toBeInstanceOf(Promise);
  });
});
