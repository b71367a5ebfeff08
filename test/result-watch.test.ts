/** runtime/wait.ts without a daemon: records written with spool/protocol.ts keepResult wake the waiters of one shared watch. */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpoolLayout } from '../spool/layout.js';
import { keepResult } from '../spool/protocol.js';
import { encodeResult, resultFileName, type NewResult } from '../spool/results.js';
import { ResultTimeoutError, ResultWatch, TaskFailedError, TaskSkippedError, settleRecord } from '../runtime/wait.js';
import { tempDir } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
let layout: SpoolLayout;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('result-watch-'));
  layout = new SpoolLayout(join(dir, 'spool'));
  mkdirSync(layout.results, { recursive: true });
});
afterEach(() => cleanup());

const id = (n: number): string => `1796190546088${n.toString(16).padStart(16, '0')}`;
function write(n: number, more: Partial<NewResult> = {}, encoding: 'msgpack' | 'json' = 'msgpack'): void {
  const result: NewResult = { id: id(n), name: 't', ending: 'processed', attempts: 1, finishedAt: 1, keepUntil: Date.now() + 60_000, ...more };
  keepResult(layout, resultFileName(id(n), encoding), encodeResult(result, encoding, 1 << 20).bytes, result.keepUntil);
}

describe('ResultWatch', () => {
  it('resolves a record already there at once, and records written later as their names appear, in either encoding', async () => {
    const watch = new ResultWatch(layout);
    write(1, { value: 'early' });
    expect((await watch.record(id(1))).value).toBe('early');
    const later = [watch.record(id(2)), watch.record(id(3)), watch.record(id(2))];
    expect(watch.stats).toEqual({ ids: 2, mode: 'watching' });
    write(2, { value: 'two' });
    write(3, { value: 'three' }, 'json');
    expect((await Promise.all(later)).map((r) => r.value)).toEqual(['two', 'three', 'two']);
    expect(watch.stats).toEqual({ ids: 0, mode: 'idle' });
  });

  it('times out with ResultTimeoutError, and drops that waiter only', async () => {
    const watch = new ResultWatch(layout);
    const other = watch.record(id(5));
    await expect(watch.record(id(4), { timeout: 50 })).rejects.toBeInstanceOf(ResultTimeoutError);
    expect(watch.stats).toEqual({ ids: 1, mode: 'watching' });
    write(5);
    await other;
    expect(watch.stats.mode).toBe('idle');
  });

  it('polls where no watch can be had (results/ missing when the first wait starts)', async () => {
    rmSync(layout.results, { recursive: true });
    const watch = new ResultWatch(layout);
    const waiting = watch.record(id(6), { timeout: 10_000 });
    expect(watch.stats.mode).toBe('polling');
    mkdirSync(layout.results);
    write(6, { value: 6 });
    expect((await waiting).value).toBe(6);
  });

  it('refuses what is not an id', async () => {
    await expect(new ResultWatch(layout).record('../etc/passwd')).rejects.toThrow(/not a task id/);
  });

  it('maps each ending onto a value or a typed error', () => {
    const base = { version: 1 as const, id: id(7), name: 't', attempts: 2, finishedAt: 1, keepUntil: 2 };
    expect(settleRecord({ ...base, ending: 'processed', value: [1] })).toEqual({ value: [1] });
    const dead = settleRecord({ ...base, ending: 'dead', error: { name: 'RangeError', message: 'm', stack: 'RangeError: m\n    at f' } });
    expect('error' in dead && dead.error).toBeInstanceOf(TaskFailedError);
    expect('error' in dead && (dead.error as TaskFailedError).remote).toEqual({ name: 'RangeError', message: 'm', stack: 'RangeError: m\n    at f' });
    expect('error' in dead && dead.error.stack).toContain('    at f');
    const skipped = settleRecord({ ...base, ending: 'skipped', reason: 'why' });
    expect('error' in skipped && skipped.error).toBeInstanceOf(TaskSkippedError);
    expect('error' in skipped && skipped.error.message).toContain('why');
  });
});
