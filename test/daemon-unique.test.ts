/**
 * Unique keys (README "Unique keys", SPOOL-FORMAT.md "Unique keys"), with
 * real producer processes, `spool add` and the real daemon: racing producers
 * enqueue one task per key; the modes keep, replace and preserve-due; a key
 * is released when a daemon claims its task (and, with while-running, only
 * when the task has ended); a stale key left by a producer killed between its
 * steps is swept; unique/ is hostile input.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { parseTaskName } from '../spool/name.js';
import { keyFileName } from '../spool/unique.js';
import { ROOT, spool, spoolAsync, type RunResult } from './helpers/cli.js';
import { describeSpool, ls, readRecords, waitFor, type DaemonProcess } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let root: string;
let records: string;
let dir: string;
const testSpool = useDaemonSpool('spoolerd-unique-', { bind: (s) => ({ root, records, dir } = s) });

const PRODUCER = join(ROOT, 'test/fixtures/unique-producer.mjs');
/** Producers (by prefix) in on-staged mode whose watch is set. */
const watching = new Set<string>();

/** Runs the producer fixture to its end; its JSON lines. */
function producer(prefix: string, count: number, mode = 'keep'): Promise<Array<Record<string, unknown>>> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [PRODUCER, root, prefix, String(count), mode], { env: { ...process.env, SPOOL_DIR: '' } });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (err.includes('watching\n')) watching.add(prefix);
    });
    child.on('error', fail);
    child.on('close', (code, signal) => {
      if (code !== 0 && signal !== 'SIGKILL') return fail(new Error(`producer exited ${code}: ${err}`));
      done(out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>));
    });
  });
}

/** Waiting task files (incoming/ and pending/) of task `name`. */
const waiting = (name = 'echo') => [...ls(join(root, 'incoming')), ...ls(join(root, 'pending'))].filter((f) => parseTaskName(f)?.name === name);
const keyFile = (name: string, key: string) => join(root, 'unique', keyFileName(name, key));
const add = (...args: string[]): RunResult => spool(['add', '--dir', root, '--create', ...args]);

describe('racing producers', () => {
  it('two producer processes enqueueing the same 300 keys at once add exactly one task per key, and both get its id', async () => {
    Spooler.open(root);
    const [a, b] = await Promise.all([producer('k', 300), producer('k', 300)]);
    const files = waiting();
    expect(files.length).toBe(300);
    const idOf = new Map(files.map((f) => [JSON.stringify(parseTaskName(f)!.id), f]));
    expect(idOf.size).toBe(300);
    for (let i = 0; i < 300; i++) {
      const x = a![i]!;
      const y = b![i]!;
      expect(x.id).toBe(y.id);
      // Exactly one of the two added it.
      expect([x.existing, y.existing].sort()).toEqual([false, true]);
      expect(idOf.has(JSON.stringify(x.id))).toBe(true);
    }
    // Every key file names its one task.
    for (let i = 0; i < 300; i++) expect(JSON.parse(readFileSync(keyFile('echo', `k-${i}`), 'utf8')).id).toBe(a![i]!.id);
  }, 60_000);

  it('`spool add --unique` racing a producer process on one key, 25 times over, adds one task each time', async () => {
    Spooler.open(root);
    for (let round = 0; round < 25; round++) {
      const key = `r${round}`;
      // The producer enqueues the key the instant `spool add` has staged its task: the two race for the key itself.
      const follower = producer(key, 1, 'on-staged');
      await waitFor(() => watching.has(key) || undefined, { what: 'the producer to watch tmp/' });
      const [viaCli, viaApi] = await Promise.all([spoolAsync(['add', '--dir', root, 'echo', `"${key}"`, '--unique', `${key}-0`, '--json']), follower]);
      expect(viaCli.code, viaCli.stderr).toBe(0);
      const cli = JSON.parse(viaCli.stdout) as { id: string; existing?: boolean };
      const api = viaApi[0]!;
      expect(cli.id).toBe(api.id);
      expect([cli.existing === true, api.existing].sort()).toEqual([false, true]);
      expect(waiting().filter((f) => parseTaskName(f)!.id === cli.id).length).toBe(1);
    }
    expect(waiting().length).toBe(25);
  }, 180_000);
});

describe('modes (spool add)', () => {
  it('keep (the default): a second add prints the waiting task\'s id and adds nothing', () => {
    const first = add('echo', '"one"', '--unique', 'k');
    const second = add('echo', '"two"', '--unique', 'k');
    expect(first.code).toBe(0);
    expect(second).toEqual({ code: 0, stdout: first.stdout, stderr: expect.stringContaining('the unique key is held by task') });
    expect(waiting().map((f) => parseTaskName(f)!.id)).toEqual([first.stdout.trim()]);
  });

  it('replace: the waiting task is revoked and the new one takes the key', () => {
    const first = add('echo', '"one"', '--unique', 'k', '--in', '1h').stdout.trim();
    const second = add('echo', '"two"', '--unique', 'k', '--unique-mode', 'replace').stdout.trim();
    expect(second).not.toBe(first);
    const files = waiting();
    expect(files.map((f) => parseTaskName(f)!.id)).toEqual([second]);
    // Due now, not at the replaced task's time.
    expect(parseTaskName(files[0]!)!.due).toBeLessThan(Date.now() + 60_000);
    expect(JSON.parse(readFileSync(keyFile('echo', 'k'), 'utf8'))).toEqual(expect.objectContaining({ id: second, file: files[0] }));
  });

  it('preserve-due: the new task replaces the waiting one and keeps its due time', () => {
    const first = JSON.parse(add('echo', '"one"', '--unique', 'k', '--in', '1h', '--json').stdout) as { id: string; due: number };
    const second = JSON.parse(add('echo', '"two"', '--unique', 'k', '--unique-mode', 'preserve-due', '--json').stdout) as { id: string; due: number };
    expect(second.id).not.toBe(first.id);
    expect(second.due).toBe(first.due);
    const files = waiting();
    expect(files.map((f) => parseTaskName(f)!.id)).toEqual([second.id]);
    expect(parseTaskName(files[0]!)!.due).toBe(first.due);
    const shown = JSON.parse(spool(['show', '--dir', root, second.id, '--json']).stdout) as { args?: unknown[]; body?: { args?: unknown[] } };
    expect(JSON.stringify(shown)).toContain('"two"');
  });

  it('spool rm and spool cancel of a waiting task give its key up at once: the next add enqueues a new task', () => {
    for (const remove of [['rm'], ['cancel']]) {
      const first = add('echo', '"one"', '--unique', `k-${remove[0]}`, '--in', '1h').stdout.trim();
      expect(existsSync(keyFile('echo', `k-${remove[0]}`))).toBe(true);
      const removed = spool([...remove, '--dir', root, first]);
      expect(removed.code, removed.stderr).toBe(0);
      expect(existsSync(keyFile('echo', `k-${remove[0]}`)), `${remove[0]} left the key`).toBe(false);
      const second = add('echo', '"two"', '--unique', `k-${remove[0]}`);
      expect(second.code).toBe(0);
      expect(second.stdout.trim()).not.toBe(first);
      expect(second.stderr).not.toContain('held by task');
      expect(waiting().map((f) => parseTaskName(f)!.id)).toContain(second.stdout.trim());
    }
  });

  it('keys are per task name, and a task without a key is never held back', () => {
    const a = add('echo', '"a"', '--unique', 'k').stdout.trim();
    const b = add('done_explicitly', '"b"', '--unique', 'k').stdout.trim();
    const c = add('echo', '"c"').stdout.trim();
    expect(new Set([a, b, c]).size).toBe(3);
  });
});

describe('with a daemon', () => {
  async function started(daemon: DaemonProcess, label: string): Promise<void> {
    await waitFor(() => readRecords(records).some((r) => r.task === 'wait_for_file' && r.phase === 'started' && (r.args as unknown[])[0] === label), {
      what: `wait_for_file ${label} to start`,
      explain: () => `${describeSpool(root)}\n${daemon.describe()}`,
    });
  }
  async function finished(daemon: DaemonProcess, label: string): Promise<void> {
    await waitFor(() => readRecords(records).some((r) => r.task === 'wait_for_file' && r.phase === 'finished' && (r.args as unknown[])[0] === label), {
      what: `wait_for_file ${label} to finish`,
      explain: () => `${describeSpool(root)}\n${daemon.describe()}`,
    });
  }

  it('the key is released when a daemon claims the task: a new enqueue goes through while the first runs, and both run', async () => {
    const daemon = await testSpool.serve({ imports: ['block'], args: ['--concurrency', '4'] });
    const gate = join(dir, 'gate');
    const first = add('wait_for_file', '"first"', JSON.stringify(gate), '--unique', 'k').stdout.trim();
    await started(daemon, 'first');
    await waitFor(() => !existsSync(keyFile('wait_for_file', 'k')) || undefined, { what: 'the key to be released at the claim' });
    const second = add('wait_for_file', '"second"', JSON.stringify(gate), '--unique', 'k', '--json');
    expect(JSON.parse(second.stdout)).toEqual(expect.not.objectContaining({ existing: true }));
    expect(JSON.parse(second.stdout).id).not.toBe(first);
    await started(daemon, 'second');
    writeFileSync(gate, '');
    await finished(daemon, 'first');
    await finished(daemon, 'second');
  });

  it('--unique-while-running holds the key while the task runs (an add returns the running task) and releases it when it ends', async () => {
    const daemon = await testSpool.serve({ imports: ['block'], args: ['--concurrency', '4'] });
    const gate = join(dir, 'gate');
    const first = add('wait_for_file', '"first"', JSON.stringify(gate), '--unique', 'k', '--unique-while-running').stdout.trim();
    await started(daemon, 'first');
    const again = add('wait_for_file', '"again"', JSON.stringify(gate), '--unique', 'k', '--unique-while-running', '--unique-mode', 'replace', '--json');
    expect(JSON.parse(again.stdout)).toEqual(expect.objectContaining({ id: first, existing: true }));
    expect(existsSync(keyFile('wait_for_file', 'k'))).toBe(true);
    writeFileSync(gate, '');
    await finished(daemon, 'first');
    await waitFor(() => !existsSync(keyFile('wait_for_file', 'k')) || undefined, { what: 'the key to be released when the task ended' });
    const third = JSON.parse(add('wait_for_file', '"third"', JSON.stringify(gate), '--unique', 'k', '--unique-while-running', '--json').stdout) as { id: string; existing?: boolean };
    expect(third.existing).toBeUndefined();
    await finished(daemon, 'third');
    // "again" never ran.
    expect(readRecords(records).filter((r) => (r.args as unknown[])[0] === 'again')).toEqual([]);
  });

  it('a stale key left by a producer killed between taking the key and renaming its task in is swept, then the key can be taken again', async () => {
    Spooler.open(root);
    const [dead] = await producer('stale', 1, 'die-after-link');
    expect(existsSync(join(root, 'unique', dead!.hash as string))).toBe(true);
    expect(waiting()).toEqual([]);
    // Held: an enqueue gets the dead producer's task (it never will exist).
    const held = JSON.parse(add('echo', '"x"', '--unique', 'stale-0', '--json').stdout) as { id: string; existing?: boolean };
    expect(held).toEqual(expect.objectContaining({ id: dead!.id, existing: true }));

    const daemon = await testSpool.serve({ imports: ['basic'], args: ['--scan-interval', '250ms'], env: { SPOOL_UNIQUE_GRACE_MS: '1500' } });
    const line = await daemon.waitForLog((l) => l.msg === 'removed a stale unique key: its task is not waiting or running', { timeoutMs: 20_000 });
    expect(line).toEqual(expect.objectContaining({ key: 'stale-0', id: dead!.id }));
    expect(existsSync(join(root, 'unique', dead!.hash as string))).toBe(false);
    const fresh = JSON.parse(add('echo', '"fresh"', '--unique', 'stale-0', '--json').stdout) as { id: string; existing?: boolean };
    expect(fresh.existing).toBeUndefined();
    await waitFor(() => readRecords(records).some((r) => r.task === 'echo' && r.id === fresh.id) || undefined, { what: 'the new task to run' });
  });

  it('unique/ is hostile input: links, directories, FIFOs, big files and bad records are never followed and are removed once past the grace', async () => {
    Spooler.open(root);
    const u = join(root, 'unique');
    const target = join(dir, 'precious');
    writeFileSync(target, 'keep me');
    symlinkSync(target, join(u, keyFileName('echo', 'link')));
    mkdirSync(join(u, keyFileName('echo', 'dir')));
    writeFileSync(join(u, keyFileName('echo', 'dir'), 'inside'), 'x');
    execFileSync('mkfifo', [join(u, keyFileName('echo', 'fifo'))]);
    writeFileSync(join(u, keyFileName('echo', 'big')), Buffer.alloc(100_000, 0x20));
    writeFileSync(join(u, keyFileName('echo', 'junk')), 'not json');
    writeFileSync(join(u, 'not-a-hash'), '{}');
    // A producer meeting one of them gets a clear error, not a hang or a crash.
    const r = add('echo', '"x"', '--unique', 'fifo');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('is not a valid key file');
    const daemon = await testSpool.serve({ imports: ['basic'], args: ['--scan-interval', '250ms'], env: { SPOOL_UNIQUE_GRACE_MS: '1000' } });
    await waitFor(() => ls(u).length === 0 || undefined, { what: 'unique/ to be swept', timeoutMs: 20_000, explain: () => `${ls(u)}\n${daemon.describe()}` });
    expect(readFileSync(target, 'utf8')).toBe('keep me');
    // Each entry is removed before its log line reaches us.
    const removals = () => daemon.logs.filter((l) => l.msg === 'removed an entry of unique/ that is not a key file');
    await waitFor(() => removals().length >= 6 || undefined, { what: 'a log line for each removed entry', explain: () => daemon.describe() });
    expect(removals().length).toBe(6);
    // The keys are usable again, and the daemon still serves.
    const h = add('echo', '"after"', '--unique', 'fifo').stdout.trim();
    await waitFor(() => readRecords(records).some((x) => x.task === 'echo' && x.id === h) || undefined, { what: 'a task with that key to run' });
  });
});
