/**
 * How a task function's return or throw becomes an outcome (runtime/execute.ts
 * invoke()): a synchronous function settles at once, with its outcome as a
 * value and no promise; anything awaitable settles when it does, exactly as
 * `await` would have treated it.
 */
import { describe, expect, it } from 'vitest';
import { processed, rescheduled, skipped } from '../runtime/results.js';
import type { TaskFile } from '../spool/task-file.js';
import { invoke } from '../runtime/execute.js';

const task = { name: 't', body: { version: 1, type: 'fcall', args: [] } } as unknown as TaskFile;

describe('invoke()', () => {
  it('gives the outcome of a synchronous function as a value, not a promise', () => {
    expect(invoke(() => undefined, task)).toEqual({ kind: 'processed' });
    expect(invoke(() => 42, task)).toEqual({ kind: 'processed', value: 42 });
    expect(invoke(() => skipped('no'), task)).toEqual({ kind: 'skipped', reason: 'no' });
    expect(invoke(() => rescheduled({ delay: 5 }), task)).toEqual({ kind: 'rescheduled', delay: 5 });
  });

  it('turns a synchronous throw into a rescheduled outcome carrying the error, at once', () => {
    const error = new Error('boom');
    const outcome = invoke(() => {
      throw error;
    }, task);
    expect(outcome).not.toBeInstanceOf(Promise);
    expect(outcome).toEqual({ kind: 'rescheduled', error });
  });

  it('settles a returned promise when it settles: resolved value, typed result, rejection', async () => {
    const resolved = invoke(async () => 7, task);
    expect(resolved).toBeInstanceOf(Promise);
    expect(await resolved).toEqual({ kind: 'processed', value: 7 });
    expect(await invoke(async () => processed('done'), task)).toEqual({ kind: 'processed', value: 'done' });
    const error = new Error('later');
    expect(await invoke(() => Promise.reject(error), task)).toEqual({ kind: 'rescheduled', error });
  });

  it('awaits any thenable, not only native promises', async () => {
    const thenable = { then: (ok: (v: unknown) => void) => setTimeout(() => ok(skipped('via thenable')), 1) };
    const outcome = invoke(() => thenable, task);
    expect(outcome).toBeInstanceOf(Promise);
    expect(await outcome).toEqual({ kind: 'skipped', reason: 'via thenable' });
  });

  it('treats a `then` getter that throws as a failure, as await would', () => {
    const error = new Error('getter');
    const hostile = Object.defineProperty({}, 'then', {
      get() {
        throw error;
      },
    });
    expect(invoke(() => hostile, task)).toEqual({ kind: 'rescheduled', error });
  });

  it('treats an object whose `then` is not a function as a plain value', () => {
    const value = { then: 3 };
    expect(invoke(() => value, task)).toEqual({ kind: 'processed', value });
  });
});
