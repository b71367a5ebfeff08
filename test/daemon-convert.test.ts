/**
 * Argument converters, validation and progress with a real daemon
 * (README, "Argument converters", "Progress"): a shell producer (`spool add`,
 * plain JSON) feeds tasks whose converters (one needing another) give the
 * function what it takes; a refused argument is a dead letter after one
 * attempt, its message naming the argument and the converter; a running
 * task's progress is seen by `spool show`, `spool ls` and a waiting producer,
 * and its progress file is gone once it ends.
 */
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler, type Progress } from '../runtime/index.js';
import { spool } from './helpers/cli.js';
import { describeSpool, readRecords, waitFor } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let dir: string;
let root: string;
let records: string;
const testSpool = useDaemonSpool('spoolerd-convert-', { bind: (s) => ({ dir, root, records } = s) });

const ARGS = ['--processes', '1', '--keep-results', '10m', '--scan-interval', '200ms'];

/** `spool add` as a shell script would run it: each argument one JSON text. */
function add(...args: string[]): string {
  const r = spool(['add', '--dir', root, '--encoding', 'json', ...args]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

/** A result record as a foreign producer reads it: results/<id>.json (JSON tasks get JSON records). */
function resultOf(id: string): { ending: string; value?: unknown; attempts: number; error?: { name?: string; message: string } } {
  return JSON.parse(readFileSync(join(root, 'results', `${id}.json`), 'utf8'));
}

function show(id: string): Record<string, unknown> & { state: string; attempts: number; error: { name: string; message: string } | null; result: { ending: string; value?: unknown } | null } {
  const r = spool(['show', '--dir', root, id]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

describe('argument converters and validation', () => {
  it('convert plain JSON in dependency order, and refuse a bad argument for good (a dead letter after one attempt, naming it)', async () => {
    const daemon = await testSpool.serve({ imports: ['convert'], args: ARGS });
    const good = add('area_of', '"3"', '4');
    const greeting = add('greet', '{"name": "world", "extra": [1]}');
    const badConversion = add('area_of', '"wide"', '2', '--retries', '5');
    const badLabel = add('area_of', '3', '4', '"a label far longer than twenty"');
    const badRequired = add('greet', '{"name": ""}');
    const ids = [good, greeting, badConversion, badLabel, badRequired];
    await waitFor(() => ids.every((id) => existsSync(join(root, 'results', `${id}.json`))), {
      what: 'every task to end',
      explain: () => `${describeSpool(root)}\n${daemon.describe(20)}`,
    });

    // The function got numbers for the strings and the label its converter made from both converted sides;
    // what is kept is what `returns` made of the value.
    const runs = readRecords(records);
    expect(runs.filter((r) => r.task === 'area_of')).toEqual([expect.objectContaining({ args: [3, 4, 'box 3x4'], types: ['number', 'number', 'string'] })]);
    expect(show(good).result).toMatchObject({ ending: 'processed', value: 'box 3x4 = 12' });
    // One object argument: its keys converted, the others left as sent.
    expect(runs.filter((r) => r.task === 'greet')).toEqual([expect.objectContaining({ args: [{ name: 'WORLD', extra: [1], greeting: 'Hello' }] })]);
    expect(resultOf(greeting)).toMatchObject({ ending: 'processed', value: 'Hello, WORLD' });

    // A converter that throws: failed for good after one attempt, retries left unspent, the message naming the argument and the converter.
    const bad = show(badConversion);
    expect(bad.state).toBe('dead');
    expect(bad.attempts).toBe(1);
    expect(bad.error?.message).toBe('argument "width" of task area_of was refused by converters.width (toNumber): "wide" is not a number');
    expect(bad.error?.name).toBe('ArgumentConversionError');
    const line = await daemon.waitForLog((l) => l.msg === 'task is a dead letter: it failed for good (no retry)' && l.id === badConversion);
    expect(line.reason).toBe(bad.error?.message);

    // Validation refuses what was sent before any converter runs (the label's converter would have accepted it).
    for (const [id, message] of [
      [badLabel, 'argument "label" of task area_of was refused by validate.label: it must be at most 20 long, got string "a label far longer than twenty"'],
      [badRequired, 'argument "name" of task greet was refused by validate.name: it must be at least 1 long, got string ""'],
    ] as const) {
      const r = resultOf(id);
      expect(r.ending, id).toBe('dead');
      expect(r.attempts).toBe(1);
      expect(r.error?.message).toBe(message);
    }
    // None of the refused calls reached its function.
    expect(runs).toHaveLength(2);
  });
});

describe('progress', () => {
  it('is seen by spool show, spool ls and a waiting producer while the task runs, and gone once it ends', async () => {
    // A record left by a runner killed while its task ran: the daemon's first sweep removes it (its task is not running).
    const spooler = Spooler.open(root);
    const orphan = join(root, 'progress', '1764000000000deadbeefdeadbeef.json');
    writeFileSync(orphan, '{"fraction":0.5,"at":1}');
    utimesSync(orphan, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const daemon = await testSpool.serve({ imports: ['convert'], args: ARGS });
    const swept = await daemon.waitForLog((l) => l.msg === 'removed progress records of tasks that are not running');
    expect(swept.count).toBe(1);
    expect(existsSync(orphan)).toBe(false);
    const gate = join(dir, 'gate');
    const handle = await spooler.enqueue({ name: 'report_progress', args: [gate] });
    const seen: Progress[] = [];
    const result = handle.result({ onProgress: (p) => seen.push(p), timeout: 20_000 });
    const progressFile = join(root, 'progress', `${handle.id}.json`);

    // The task has reported (a tight loop, then 0.4) and now waits for the gate: look while it runs.
    await waitFor(() => readRecords(records).some((r) => r.task === 'report_progress' && r.phase === 'reported'), { what: 'the task to report', explain: () => daemon.describe(20) });
    await waitFor(() => spooler.progressOf(handle.id)?.fraction === 0.4, { what: 'the trailing write of the last value reported' });
    const shown = show(handle.id);
    expect(shown.state).toBe('active');
    expect(shown.progress).toEqual({ fraction: 0.4, message: 'resized 40 of 100', at: expect.any(Number) });
    expect(await handle.progress()).toEqual(shown.progress);
    const ls = spool(['ls', '--dir', root, '--json']);
    expect(JSON.parse(ls.stdout)).toEqual([expect.objectContaining({ id: handle.id, state: 'active', progress: shown.progress, reason: expect.stringMatching(/^progress 40% resized 40 of 100 \(\d+s ago\)$/) })]);
    expect(spool(['ls', '--dir', root]).stdout).toMatch(/NOTE\n.*progress 40% resized 40 of 100/);
    // The waiting producer was told: the loop's values throttled to at most a few writes, the last one 0.4.
    await waitFor(() => seen.some((p) => p.fraction === 0.4), { what: 'the producer to be told of 0.4' });
    expect(seen.length).toBeLessThanOrEqual(3);
    expect(seen.map((p) => p.fraction)).toEqual([...seen.map((p) => p.fraction)].sort((a, b) => a - b));

    writeFileSync(gate, '');
    expect(await result).toBe('done');
    expect(seen.at(-1)).toMatchObject({ fraction: 0.9, message: 'almost' });
    // Removed before the result was kept: gone as soon as a waiter knows the ending.
    expect(existsSync(progressFile)).toBe(false);
    expect(show(handle.id).progress).toBeUndefined();
  });
});
