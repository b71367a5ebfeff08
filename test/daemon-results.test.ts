/**
 * Issue 16, points 1-3: a finished task's ending kept in results/ (for tasks
 * that ask, or by --keep-results), waited for from this process (not the
 * daemon's) with handle.result() / spooler.wait() and from the shell with
 * `spool wait`, shown by `spool show` and `spool ls --state`, expired by the
 * daemon's sweep; a Python producer that waits from SPOOL-FORMAT.md alone.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ResultTimeoutError,
  ResultValueLostError,
  Spooler,
  TaskFailedError,
  TaskSkippedError,
  type TaskHandle,
} from '../runtime/index.js';
import { resultWatch } from '../runtime/wait.js';
import { decodeWire } from '../spool/wire.js';
import { ROOT, spool, spoolAsync } from './helpers/cli.js';
import { waitFor } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';
import { mountSkipReason, mountTmpfs, type Mounted } from './helpers/mounts.js';

let dir: string;
let root: string;
let mounted: Mounted | undefined;
const testSpool = useDaemonSpool('spoolerd-results-', {
  open: true,
  bind: (s) => ({ dir, root } = s),
  afterDaemons: () => {
    mounted?.unmount();
    mounted = undefined;
  },
});

const ARGS = ['--processes', '1', '--scan-interval', '500ms', '--settle', '200ms'];
const results = (r = root): string[] => (existsSync(join(r, 'results')) ? readdirSync(join(r, 'results')).sort() : []);
const KEEP = { keepResult: '1h' } as const;

describe('results: kept, waited for, shown', () => {
  it('handle.result() resolves with the value, and rejects with typed errors for skipped, dead (remote name, message, stack) and an unencodable value', async () => {
    const spooler = Spooler.open(root);
    const daemon = await testSpool.serve({ imports: ['results'], args: ARGS });
    const add = await spooler.enqueue({ name: 'add', args: [2, 3], options: KEEP });
    const skip = await spooler.enqueue({ name: 'skip_it', args: ['not today'], options: KEEP });
    const dead = await spooler.enqueue({ name: 'fail_hard', args: ['boom'], options: { ...KEEP, retries: 1, backoff: { kind: 'constant', delay: 10 } } });
    const date = await spooler.enqueue({ name: 'returns_date', args: [], options: KEEP });

    expect(await add.result({ timeout: 20_000 })).toEqual({ sum: 5 });
    expect(await spooler.wait(add.id)).toEqual({ sum: 5 });

    const skipped = await skip.result({ timeout: 20_000 }).catch((e: unknown) => e);
    expect(skipped).toBeInstanceOf(TaskSkippedError);
    expect((skipped as TaskSkippedError).message).toContain('not today');

    const failed = await dead.result({ timeout: 20_000 }).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(TaskFailedError);
    const f = failed as TaskFailedError;
    expect(f.ending).toBe('dead');
    expect(f.remote.name).toBe('TypeError');
    expect(f.remote.message).toBe('boom');
    expect(f.remote.stack).toContain('fail_hard');
    expect(f.stack).toContain('results.mjs');
    expect(f.record.attempts).toBe(2);

    const lost = await date.result({ timeout: 20_000 }).catch((e: unknown) => e);
    expect(lost).toBeInstanceOf(ResultValueLostError);
    expect((lost as Error).message).toMatch(/Date/);
    await daemon.waitForLog((l) => l.level === 'error' && l.msg.includes('cannot be kept') && l.id === date.id);

    // One record per task, named <id>.<encoding>; no staged record left.
    expect(results()).toEqual([add, skip, dead, date].map((h) => `${h.id}.msgpack`).sort());
  });

  it('keeps nothing for a task that asks for nothing; --keep-results keeps every ending, and keepResult: 0 opts out', async () => {
    const spooler = Spooler.open(root);
    let daemon = await testSpool.serve({ imports: ['results', 'basic'], args: ARGS });
    const plain = await spooler.enqueue({ name: 'add', args: [1, 1] });
    await testSpool.runMarker(daemon, 50);
    // The marker ran after the plain task, and nothing was kept for either.
    expect(results()).toEqual([]);
    await daemon.stop();

    daemon = await testSpool.serve({ imports: ['results'], args: [...ARGS, '--keep-results', '10m'] });
    const kept = await spooler.enqueue({ name: 'add', args: [4, 4] });
    const optOut = await spooler.enqueue({ name: 'add', args: [5, 5], options: { keepResult: 0 } });
    const after = await spooler.enqueue({ name: 'add', args: [6, 6], options: { priority: 99 } });
    expect(await kept.result({ timeout: 20_000 })).toEqual({ sum: 8 });
    expect(await after.result({ timeout: 20_000 })).toEqual({ sum: 12 });
    expect(results()).toEqual([`${kept.id}.msgpack`, `${after.id}.msgpack`].sort());
    expect(results()).not.toContain(`${optOut.id}.msgpack`);
    expect(results()).not.toContain(`${plain.id}.msgpack`);
    void daemon;
  });

  it('a wait with a timeout rejects with ResultTimeoutError; 2,000 waiters share one watch of results/', async () => {
    const spooler = Spooler.open(root);
    const never = '1700000000000aaaaaaaaaaaaaaaa';
    const timedOut = await spooler.wait(never, { timeout: 200 }).catch((e: unknown) => e);
    expect(timedOut).toBeInstanceOf(ResultTimeoutError);
    expect((timedOut as Error).message).toMatch(/keepResult/);

    const before = inotifyWatches();
    const handles = await spooler.enqueueMany(Array.from({ length: 2000 }, (_, i) => ({ name: 'add', args: [i, 1], options: { keepResult: '1h' } })));
    const waits = handles.map((h) => h.result({ timeout: 60_000 }));
    const watch = resultWatch(spooler.layout);
    expect(watch.stats).toEqual({ ids: 2000, mode: 'watching' });
    expect(inotifyWatches()).toBe(before + 1);
    await testSpool.serve({ imports: ['results'], args: [...ARGS, '--concurrency', '32'] });
    const values = await Promise.all(waits);
    expect(values.map((v) => (v as { sum: number }).sum)).toEqual(handles.map((_, i) => i + 1));
    // Once nothing is awaited, the watch is closed.
    expect(watch.stats).toEqual({ ids: 0, mode: 'idle' });
    // libuv drops the inotify watch when its handle's close completes.
    await waitFor(() => inotifyWatches() === before, { what: 'the inotify watch of results/ to be removed', explain: () => `${inotifyWatches()} watches, ${before} before` });
  });

  it('spool wait: prints each ending, exits with the code of the first task that did not end processed; 14 on --timeout', async () => {
    const spooler = Spooler.open(root);
    await testSpool.serve({ imports: ['results'], args: ARGS });
    const ok = await spooler.enqueue({ name: 'add', args: [1, 2], options: KEEP });
    const skip = await spooler.enqueue({ name: 'skip_it', args: ['nope'], options: KEEP });
    const dead = await spooler.enqueue({ name: 'fail_hard', args: ['bad'], options: { ...KEEP, retries: 0 } });

    const one = await spoolAsync(['wait', '--dir', root, ok.id, '--timeout', '20s']);
    expect(one.code).toBe(0);
    expect(one.stdout).toBe(`${ok.id}  processed  {"sum":3}\n`);
    const all = await spoolAsync(['wait', '--dir', root, ok.id, skip.id, dead.id, '--timeout', '20s']);
    expect(all.code).toBe(10);
    expect(all.stdout).toContain(`${skip.id}  skipped  nope`);
    expect(all.stdout).toContain(`${dead.id}  dead  TypeError: bad`);
    expect(spool(['wait', '--dir', root, dead.id, ok.id]).code).toBe(11);
    const json = spool(['wait', '--dir', root, dead.id, '--json']);
    expect(JSON.parse(json.stdout)).toEqual(expect.objectContaining({ id: dead.id, ending: 'dead', error: expect.objectContaining({ name: 'TypeError', message: 'bad' }) }));
    const late = spool(['wait', '--dir', root, '1700000000000bbbbbbbbbbbbbbbb', '--timeout', '300ms']);
    expect(late.code).toBe(14);
    expect(late.stdout).toContain('timeout');
    expect(spool(['wait', '--dir', root, 'abc']).code).toBe(2);
  });

  it('spool show: the history (enqueued, each failed attempt with its time, rescheduled until when, how it ended) and the last error with its stack; spool ls --state lists finished tasks', async () => {
    const spooler = Spooler.open(root);
    const daemon = await testSpool.serve({ imports: ['results'], args: ARGS });
    const dead = await spooler.enqueue({ name: 'fail_hard', args: ['again'], options: { ...KEEP, retries: 2, backoff: { kind: 'constant', delay: 20 } } });
    const waiting = await spooler.enqueue({ name: 'fail_hard', args: ['later'], options: { retries: 3, backoff: { kind: 'constant', delay: 3_600_000 } } });
    const ok = await spooler.enqueue({ name: 'add', args: [7, 7], options: KEEP });
    await dead.result({ timeout: 20_000 }).catch(() => undefined);
    await ok.result({ timeout: 20_000 });
    await daemon.waitForLog((l) => l.msg === 'task rescheduled' && l.id === waiting.id);

    const shown = JSON.parse(spool(['show', '--dir', root, dead.id]).stdout) as { state: string; history: Array<Record<string, unknown>>; error: { stack: string; history: unknown[] }; result: { ending: string } };
    expect(shown.state).toBe('dead');
    expect(shown.history.map((e) => e.event)).toEqual(['enqueued', 'failed', 'failed', 'failed', 'dead']);
    const failures = shown.history.filter((e) => e.event === 'failed');
    expect(failures.map((e) => e.attempt)).toEqual([1, 2, 3]);
    for (const e of failures) {
      expect(e.error).toEqual({ name: 'TypeError', message: 'again' });
      expect(e.owner).toBe(daemon.owner);
      expect(typeof e.at).toBe('number');
    }
    expect(failures[0]!.retryAt).toEqual(expect.any(Number));
    expect(failures[2]!.retryAt).toBeUndefined();
    expect(shown.error.stack).toContain('fail_hard');
    expect(shown.result.ending).toBe('dead');

    const later = JSON.parse(spool(['show', '--dir', root, waiting.id]).stdout) as { history: Array<Record<string, unknown>> };
    expect(later.history).toEqual([
      { event: 'enqueued', at: Number(waiting.id.slice(0, 13)) },
      expect.objectContaining({ event: 'failed', attempt: 1, error: { name: 'TypeError', message: 'later' } }),
      { event: 'rescheduled', until: expect.any(Number), attempts: 1 },
    ]);
    expect(later.history[2]!.until).toBe(later.history[1]!.retryAt);

    // A processed task has no file left: it is shown from its result, by its whole id.
    const done = JSON.parse(spool(['show', '--dir', root, ok.id]).stdout) as Record<string, unknown>;
    expect(done).toEqual(expect.objectContaining({ id: ok.id, state: 'processed', location: 'results', result: expect.objectContaining({ value: { sum: 14 } }) }));
    expect((done.history as Array<{ event: string }>).map((e) => e.event)).toEqual(['enqueued', 'processed']);

    const finished = JSON.parse(spool(['ls', '--dir', root, '--state', 'processed,dead', '--json']).stdout) as Array<{ id: string; state: string }>;
    expect(finished.map((e) => [e.id, e.state]).sort()).toEqual([[dead.id, 'dead'], [ok.id, 'processed']].sort());
    expect(JSON.parse(spool(['ls', '--dir', root, '--state', 'skipped', '--json']).stdout)).toEqual([]);
    const table = spool(['ls', '--dir', root, '--state', 'processed']);
    expect(table.stdout).toMatch(new RegExp(`${ok.id}\\s+add\\s+1\\s+processed .*\\{"sum":14\\}`));
    expect(spool(['ls', '--dir', root, '--state', 'processed,due']).code).toBe(2);
  });

  it("expired results are deleted by the daemon's sweep; results kept longer stay", async () => {
    const spooler = Spooler.open(root);
    let daemon = await testSpool.serve({ imports: ['results'], args: ARGS });
    const brief = await spooler.enqueue({ name: 'add', args: [1, 0], options: { keepResult: 300 } });
    const long = await spooler.enqueue({ name: 'add', args: [2, 0], options: KEEP });
    await brief.result({ timeout: 20_000 });
    await long.result({ timeout: 20_000 });
    // The record's mtime is its keep-until time.
    const mtime = statSync(join(root, 'results', `${brief.id}.msgpack`)).mtimeMs;
    const record = decodeWire(readFileSync(join(root, 'results', `${brief.id}.msgpack`)), 'msgpack') as { keepUntil: number };
    expect(Math.abs(mtime - record.keepUntil)).toBeLessThan(1000);
    await waitFor(() => Date.now() > record.keepUntil + 50, { what: 'the short result to pass its keep-until time' });
    await daemon.stop();
    // A daemon sweeps at its first scan (then once a minute).
    daemon = await testSpool.serve({ imports: ['results'], args: ARGS });
    await daemon.waitForLog((l) => l.msg === 'deleted expired results' && l.count === 1);
    expect(results()).toEqual([`${long.id}.msgpack`]);
  });

  it('kill -9 while a task that keeps a result runs: the task is not lost; the next daemon runs it and its result is kept', async () => {
    const spooler = Spooler.open(root);
    const first = await testSpool.serve({ imports: ['results'], args: [...ARGS, '--stale-after', '2s'] });
    const handle = await spooler.enqueue({ name: 'slow_echo', args: ['survived', 1500], options: KEEP });
    const waiting = handle.result({ timeout: 60_000 });
    await waitFor(() => readdirSync(join(root, 'active', first.owner)).length === 1, { what: 'the task to be claimed' });
    first.child.kill('SIGKILL');
    await testSpool.serve({ imports: ['results'], args: [...ARGS, '--stale-after', '2s'] });
    expect(await waiting).toBe('survived');
    expect(results()).toEqual([`${handle.id}.msgpack`]);
  });

  it('a Python producer enqueues and waits for a result with the SPOOL-FORMAT.md snippet, standard library only', async () => {
    const python = spawnSync('python3', ['--version'], { encoding: 'utf8' });
    if (python.error !== undefined) {
      console.warn(`skipped: python3 is not installed (${python.error.message})`);
      return;
    }
    await testSpool.serve({ imports: ['results'], args: ARGS });
    const doc = readFileSync(join(ROOT, 'SPOOL-FORMAT.md'), 'utf8');
    const from = doc.indexOf('## Results (`results/`');
    const snippet = /```python\n([\s\S]*?)```/.exec(doc.slice(from))![1]!.replace('"/var/spool/app"', JSON.stringify(root));
    const r = spawnSync('python3', ['-c', snippet], { cwd: dir, encoding: 'utf8', timeout: 40_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ sum: 5 });
  });
});

describe.skipIf(mountSkipReason !== undefined)('results on a full disk', () => {
  it('a result that cannot be written is logged; the task is settled (not run again) and later results are kept', async () => {
    mounted = mountTmpfs(4);
    const spoolRoot = join(mounted.path, 'spool');
    const spooler = Spooler.open(spoolRoot);
    const daemon = await testSpool.serve({ dir: spoolRoot, imports: ['results'], args: ARGS });
    const big: TaskHandle = await spooler.enqueue({ name: 'returns_big', args: [8 * 1024 * 1024], options: KEEP });
    const line = await daemon.waitForLog((l) => l.msg.startsWith('cannot write the result of a task') && l.id === big.id);
    expect(String(line.err)).toMatch(/ENOSPC|no space/i);
    const small = await spooler.enqueue({ name: 'add', args: [1, 2], options: KEEP });
    expect(await small.result({ timeout: 20_000 })).toEqual({ sum: 3 });
    // The big task was settled once: its file is gone from every folder, and only the small one's result is kept.
    expect(results(spoolRoot)).toEqual([`${small.id}.msgpack`]);
    // The result is written before the task's file goes (SPOOL-FORMAT.md, "Results"): a waiter may see it first.
    const left = () => ['incoming', 'pending', 'dead', join('active', daemon.owner)].flatMap((d) => readdirSync(join(spoolRoot, d)));
    await waitFor(() => left().length === 0, { what: 'the small task\'s file to go', explain: () => left().join(', ') });
    for (const d of ['incoming', 'pending', 'dead', join('active', daemon.owner)]) expect(readdirSync(join(spoolRoot, d))).toEqual([]);
    expect(daemon.logs.filter((l) => l.id === big.id && l.msg !== 'cannot write the result of a task; it is settled without one (waiters time out)')).toEqual([]);
  });
});
if (mountSkipReason !== undefined) console.warn(`results on a full disk: skipped: ${mountSkipReason}`);

/** inotify watches this process holds (the wd lines of its inotify descriptors' fdinfo). */
function inotifyWatches(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fdinfo')) {
    let info = '';
    try {
      info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    } catch {
      continue;
    }
    n += info.split('\n').filter((l) => l.startsWith('inotify wd:')).length;
  }
  return n;
}
