/**
 * Failures (README, "Outcomes"; SPOOL-FORMAT.md, "Attempts"): a thrown error
 * or rescheduled() retries after the backoff with the attempt counted; past the
 * retry limit the task becomes a dead letter in dead/, its error and stack in
 * state/<id>.json; `spool retry <id>` and `spool retry --all` put dead letters
 * back with a fresh retry budget.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { spool } from './helpers/cli.js';
import {
  describeSpool,
  ls,
  lsActive,
  parseName,
  readRecords,
  waitFor,
  type DaemonProcess,
  type TaskRecord,
} from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let dir: string;
let root: string;
let records: string;
const testSpool = useDaemonSpool('spoolerd-retry-', { bind: (s) => ({ dir, root, records } = s) });

// --concurrency 1: a fixture reads its own attempt from the one file it has claimed.
const serve = () => testSpool.serve({ imports: ['retry', 'basic'], args: ['--concurrency', '1', '--scan-interval', '1s'] });

const runsOf = (task: string, key: string): TaskRecord[] => readRecords(records).filter((r) => r.task === task && (r.args as unknown[])[0] === key);

function waitForDead(id: string, daemon: DaemonProcess): Promise<string> {
  return waitFor(() => ls(join(root, 'dead')).find((f) => f.includes(id)), {
    what: `task ${id} in dead/`,
    explain: () => `${describeSpool(root)}\n${daemon.describe()}`,
  });
}

function deadLetters(): Array<Record<string, unknown>> {
  const r = spool(['ls', '--dir', root, '--state', 'dead', '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Array<Record<string, unknown>>;
}

describe('a task that throws', () => {
  it('is retried by its backoff, attempt by attempt, then becomes a dead letter with its error and stack in state/<id>.json', async () => {
    const spooler = Spooler.open(root);
    const h = await spooler.enqueue({ name: 'always_fails', args: ['k1'], options: { retries: 2, backoff: { kind: 'constant', delay: 200 } } });
    await spooler.enqueue({ name: 'echo', args: ['bystander'], options: { priority: 99 } });
    const daemon = await serve();
    const deadName = await waitForDead(h.id, daemon);

    // Three runs (the first attempt and two retries), each with the next attempt number, at least 200 ms apart.
    const runs = runsOf('always_fails', 'k1');
    expect(runs.map((r) => r.attempt)).toEqual([0, 1, 2]);
    expect(runs.map((r) => r.id)).toEqual([h.id, h.id, h.id]);
    for (let i = 1; i < runs.length; i++) expect(runs[i]!.time - runs[i - 1]!.time).toBeGreaterThanOrEqual(200);

    // dead/ holds it with its three failed attempts counted in the name.
    expect(ls(join(root, 'dead'))).toEqual([deadName]);
    expect(parseName(deadName)).toEqual(expect.objectContaining({ id: h.id, attempts: 3, name: 'always_fails', priority: 50 }));
    const record = JSON.parse(readFileSync(join(root, 'state', `${h.id}.json`), 'utf8')) as Record<string, any>;
    expect(record).toEqual(expect.objectContaining({ id: h.id, name: 'always_fails', attempts: 3 }));
    expect(record.error.name).toBe('Error');
    expect(record.error.message).toBe('always_fails k1 boom (attempt 2)');
    expect(record.error.stack).toContain('always_fails k1 boom (attempt 2)');
    expect(record.error.stack).toContain('retry.mjs');

    // Logged as two retries, then a dead letter (wait for that last line: the file can be seen before it comes through the pipe).
    const deadLine = await daemon.waitForLog((l) => l.msg === 'task is a dead letter: out of retries' && l.id === h.id);
    expect(daemon.logsWith('task rescheduled').filter((l) => l.id === h.id).map((l) => [l.level, l.attempt, l.inMs, l.retriesLeft, l.error])).toEqual([
      ['warn', 0, 200, 1, 'always_fails k1 boom (attempt 0)'],
      ['warn', 1, 200, 0, 'always_fails k1 boom (attempt 1)'],
    ]);
    expect(deadLine).toEqual(expect.objectContaining({ level: 'warn', task: 'always_fails', attempt: 2, retries: 2, error: 'always_fails k1 boom (attempt 2)' }));
    expect(deadLine.stack).toContain('retry.mjs');

    // `spool ls --state dead` shows it, and nothing else is dead.
    expect(deadLetters()).toEqual([expect.objectContaining({ id: h.id, name: 'always_fails', state: 'dead', attempts: 3, location: 'dead', reason: null })]);
    // The other task ran once and is gone; nothing is left running or waiting.
    expect(runsOf('echo', 'bystander')).toHaveLength(1);
    expect(ls(join(root, 'incoming'))).toEqual([]);
    expect(ls(join(root, 'pending'))).toEqual([]);
    expect(lsActive(root)).toEqual([]);
    // It stays dead: no further runs, not even one due 200 ms on (its backoff), which would run before a marker due later.
    await testSpool.runMarker(daemon, 600);
    expect(runsOf('always_fails', 'k1')).toHaveLength(3);
  });

  it('with retries 0 becomes a dead letter at its first failure', async () => {
    const spooler = Spooler.open(root);
    const h = await spooler.enqueue({ name: 'always_fails', args: ['once'], options: { retries: 0 } });
    const daemon = await serve();
    const deadName = await waitForDead(h.id, daemon);
    expect(parseName(deadName)?.attempts).toBe(1);
    expect(runsOf('always_fails', 'once').map((r) => r.attempt)).toEqual([0]);
    await daemon.waitForLog((l) => l.msg === 'task is a dead letter: out of retries' && l.id === h.id);
    expect(daemon.logsWith('task rescheduled')).toEqual([]);
  });
});

describe('spool retry', () => {
  it('`spool retry <id>` puts a dead letter back with a fresh budget, and it runs again', async () => {
    const spooler = Spooler.open(root);
    const marker = join(dir, 'marker-1');
    const h = await spooler.enqueue({ name: 'fails_until_marker', args: ['r1', marker], options: { retries: 1, backoff: { kind: 'constant', delay: 100 } } });
    const daemon = await serve();
    const deadName = await waitForDead(h.id, daemon);
    expect(parseName(deadName)?.attempts).toBe(2);
    expect(runsOf('fails_until_marker', 'r1').map((r) => [r.attempt, r.ok])).toEqual([
      [0, false],
      [1, false],
    ]);

    writeFileSync(marker, '');
    const r = spool(['retry', '--dir', root, h.id]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`retrying ${h.id}\n`);

    await waitFor(() => runsOf('fails_until_marker', 'r1').length === 3 && lsActive(root).length === 0, {
      what: 'the revived task to run',
      explain: () => `${describeSpool(root)}\n${daemon.describe()}`,
    });
    // It ran again from attempt 0, succeeded, and left the spool.
    expect(runsOf('fails_until_marker', 'r1').map((r) => [r.attempt, r.ok, r.id])).toEqual([
      [0, false, h.id],
      [1, false, h.id],
      [0, true, h.id],
    ]);
    for (const sub of ['incoming', 'pending', 'dead']) expect(ls(join(root, sub)), sub).toEqual([]);
    expect(deadLetters()).toEqual([]);
  });

  it('`spool retry --all` puts every dead letter back, and they run again', async () => {
    const spooler = Spooler.open(root);
    const marker = join(dir, 'marker-all');
    const opts = { retries: 0 };
    const a = await spooler.enqueue({ name: 'fails_until_marker', args: ['all-a', marker], options: opts });
    const b = await spooler.enqueue({ name: 'fails_until_marker', args: ['all-b', marker], options: opts });
    const daemon = await serve();
    await waitForDead(a.id, daemon);
    await waitForDead(b.id, daemon);
    expect(deadLetters().map((e) => e.id).sort()).toEqual([a.id, b.id].sort());

    writeFileSync(marker, '');
    const r = spool(['retry', '--dir', root, '--all']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('retrying 2 dead letters\n');

    await waitFor(() => runsOf('fails_until_marker', 'all-a').length === 2 && runsOf('fails_until_marker', 'all-b').length === 2 && lsActive(root).length === 0, {
      what: 'both revived tasks to run',
      explain: () => `${describeSpool(root)}\n${daemon.describe()}`,
    });
    for (const key of ['all-a', 'all-b']) expect(runsOf('fails_until_marker', key).map((r) => [r.attempt, r.ok])).toEqual([[0, false], [0, true]]);
    for (const sub of ['incoming', 'pending', 'dead']) expect(ls(join(root, sub)), sub).toEqual([]);
    expect(existsSync(marker)).toBe(true);
  });
});

describe('a task that returns rescheduled()', () => {
  it('runs again after the delay it asked for, with the attempt counted, until it returns normally', async () => {
    const spooler = Spooler.open(root);
    const h = await spooler.enqueue({ name: 'resched', args: ['again', 2, 300], options: { retries: 5, backoff: { kind: 'constant', delay: 10_000 } } });
    const daemon = await serve();
    await waitFor(() => runsOf('resched', 'again').length === 3 && lsActive(root).length === 0, {
      what: 'three runs of the rescheduled task',
      explain: () => `${describeSpool(root)}\n${daemon.describe()}`,
    });
    const runs = runsOf('resched', 'again');
    expect(runs.map((r) => [r.id, r.attempt])).toEqual([
      [h.id, 0],
      [h.id, 1],
      [h.id, 2],
    ]);
    // The delay it asked for (300 ms), not its backoff (10 s).
    for (let i = 1; i < runs.length; i++) {
      expect(runs[i]!.time - runs[i - 1]!.time).toBeGreaterThanOrEqual(300);
      expect(runs[i]!.time - runs[i - 1]!.time).toBeLessThan(10_000);
    }
    await daemon.waitForLog((l) => l.msg === 'task rescheduled' && l.attempt === 1);
    expect(daemon.logsWith('task rescheduled').map((l) => [l.level, l.id, l.attempt, l.inMs, l.error])).toEqual([
      ['info', h.id, 0, 300, 'not yet (again)'],
      ['info', h.id, 1, 300, 'not yet (again)'],
    ]);
    for (const sub of ['incoming', 'pending', 'dead']) expect(ls(join(root, sub)), sub).toEqual([]);
    // No fourth run: one rescheduled again would be due 300 ms on, before the marker.
    await testSpool.runMarker(daemon, 600);
    expect(runsOf('resched', 'again')).toHaveLength(3);
  });

  it('counts each rescheduling as an attempt: past its retry limit it becomes a dead letter', async () => {
    const spooler = Spooler.open(root);
    const h = await spooler.enqueue({ name: 'resched', args: ['forever', 1000, 100], options: { retries: 2 } });
    const daemon = await serve();
    const deadName = await waitForDead(h.id, daemon);
    expect(parseName(deadName)?.attempts).toBe(3);
    expect(runsOf('resched', 'forever').map((r) => r.attempt)).toEqual([0, 1, 2]);
    const record = JSON.parse(readFileSync(join(root, 'state', `${h.id}.json`), 'utf8')) as Record<string, any>;
    expect(record).toEqual(expect.objectContaining({ id: h.id, name: 'resched', attempts: 3 }));
    expect(record.error.message).toBe('not yet (forever)');
  });
});
