/**
 * Chains without a daemon: what chain(), spooler.chain() and fn.then() write
 * (the first task's body carries the rest), the ids known up front, and the
 * daemon's rules for the step it enqueues next (spool/flows.ts), which the
 * runner and the inline mode share. With real daemons: test/daemon-chains.test.ts.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { chain, CHAIN_KEEP_RESULT_MS, Spooler } from '../runtime/index.js';
import { derivedId } from '../spool/derived-id.js';
import { InvalidOptionError, UnencodableValueError } from '../spool/errors.js';
import { chainPlaceOf, errorStepTask, nextStepTask } from '../spool/flows.js';
import { decodeTask, readTaskFile } from '../spool/task-file.js';

const root = mkdtempSync(join(tmpdir(), 'chains-unit-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const spooler = Spooler.open(root);
const add = spooler.task(function add(previous: number | null, n: number) {
  return (previous ?? 0) + n;
});
const notify = spooler.task(function notify(_value: unknown) {}, { keepResult: '5m', priority: 7 });
const alert = spooler.task(function alert(_failure: unknown, _channel: string) {});
const read = (fileName: string) => readTaskFile(join(root, 'incoming', fileName));

describe('enqueueing a chain', () => {
  it('writes the first task only, its body carrying the rest and onError; every step keeps its result a day unless it says', async () => {
    const h = await chain(add.request(null, 1), add.step(10), notify).onError(alert.step('ops')).enqueue();
    const task = read(h.fileName);
    expect(task.body.args).toEqual([null, 1]);
    expect(task.body.keepResult).toBe(CHAIN_KEEP_RESULT_MS);
    expect(task.body.chain).toEqual([
      { name: 'add', args: [10], keepResult: CHAIN_KEEP_RESULT_MS },
      { name: 'notify', keepResult: 300_000, priority: 7 },
    ]);
    expect(task.body.onError).toEqual({ name: 'alert', args: ['ops'], keepResult: CHAIN_KEEP_RESULT_MS });
    expect(h.steps).toEqual([h.id, derivedId(h.id, 'next'), derivedId(derivedId(h.id, 'next'), 'next')]);
    expect(readdirSync(join(root, 'incoming'))).toContain(h.fileName);
  });

  it('fn.then() is callable with fn\'s arguments and chainable; spooler.chain() takes plain requests', async () => {
    const h = await add.then(add.step(2)).then(notify).onError(alert)(null, 1);
    expect(read(h.fileName).body.chain!.map((s) => s.name)).toEqual(['add', 'notify']);
    expect(read(h.fileName).body.onError!.name).toBe('alert');
    expect(h.steps).toHaveLength(3);
    const p = await spooler.chain({ name: 'add', args: [null, 5] }, { name: 'add', args: [6] }).enqueue();
    expect(read(p.fileName).body.chain).toEqual([{ name: 'add', args: [6], keepResult: CHAIN_KEEP_RESULT_MS }]);
  });

  it('refuses what it cannot enqueue, before writing anything', async () => {
    expect(() => chain({ name: 'add', args: [1] }, { name: 'add' })).toThrow(/cannot tell which spool/);
    expect(() => spooler.chain(add as never)).toThrow(/must be a request/);
    expect(() => chain(add.request(null, 1), { name: 'add', args: [new Date()] })).toThrow(UnencodableValueError);
    // A wrapper has then(): awaiting it (as a promise would be) says what went wrong.
    await expect(Promise.resolve().then((): unknown => add)).rejects.toThrow(/was awaited or returned from an async function/);
    await expect(spooler.chain({ name: 'add', args: [1], options: { unique: 'k' } }).enqueue()).rejects.toThrow(InvalidOptionError);
  });
});

describe('the step the daemon enqueues (spool/flows.ts)', () => {
  it('next: the value first, the rest of the chain, onError inherited, parent the task, its id derived', async () => {
    const h = await chain(add.request(null, 1), add.step(10), notify).onError(alert.step('ops')).enqueue();
    const task = read(h.fileName);
    const next = nextStepTask(task, 1, 1_800_000_000_000, 1 << 20);
    expect(next.id).toBe(h.steps[1]);
    expect(next.due).toBe(1_800_000_000_000);
    const decoded = decodeTask(next.fileName, next.bytes);
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    expect(decoded.task.name).toBe('add');
    expect(decoded.task.body).toEqual({ version: 1, type: 'fcall', args: [1, 10], parent: h.id, keepResult: CHAIN_KEEP_RESULT_MS, chain: [{ name: 'notify', keepResult: 300_000, priority: 7 }], onError: task.body.onError });
    expect(decoded.task.priority).toBe(50);
    // The last step has no chain, and still its onError.
    const last = nextStepTask(decoded.task, 11, 1_800_000_000_000, 1 << 20);
    const lastTask = decodeTask(last.fileName, last.bytes);
    expect(lastTask.ok && lastTask.task.body.chain).toBe(undefined);
    expect(lastTask.ok && lastTask.task.priority).toBe(7);
    expect(chainPlaceOf(decoded.task)).toEqual({ next: ['notify'], nextId: h.steps[2], previous: h.id, onError: 'alert', onErrorId: derivedId(h.steps[1]!, 'error') });
    expect(chainPlaceOf(task)).toMatchObject({ next: ['add', 'notify'], nextId: h.steps[1] });
    expect(() => nextStepTask(task, new Date(), 0, 1 << 20)).toThrow(UnencodableValueError);
    expect(() => nextStepTask(task, 'x'.repeat(2000), 0, 1000)).toThrow(/over the spool's/);
  });

  it('onError: the failure first, then its own arguments; delay postpones it', async () => {
    const h = await chain(add.request(null, 1)).onError({ name: 'alert', args: ['ops'], options: { postpone: '2s' } }).enqueue();
    const task = read(h.fileName);
    const failure = { id: h.id, name: 'add', attempts: 4, error: { name: 'TypeError', message: 'no' } };
    const e = errorStepTask(task, failure, 1_800_000_000_000, 1 << 20);
    expect(e.id).toBe(derivedId(h.id, 'error'));
    expect(e.due).toBe(1_800_000_002_000);
    const decoded = decodeTask(e.fileName, e.bytes);
    expect(decoded.ok && decoded.task.body.args).toEqual([failure, 'ops']);
    expect(decoded.ok && decoded.task.body.onError).toBe(undefined);
  });
});
