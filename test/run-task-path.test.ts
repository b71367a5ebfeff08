/**
 * The per-task path a runner owns (spooler/run/task-path.ts), driven directly
 * on real temp folders with a fake clock and a fake supervisor that collects
 * the reports: claim → read → decode → run → settle, each way a name can end,
 * and the supervision pieces that live in the runner (its own timeout, the
 * in-process kill grace, revoke).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ClaimLostError, TaskTimeoutError } from '../runtime/context.js';
import { Spooler } from '../runtime/index.js';
import { SpoolLayout } from '../spool/layout.js';
import { formatTaskName, parseTaskName, renameTask } from '../spool/name.js';
import { createLogger } from '../spooler/logger.js';
import { decodeWire } from '../spool/wire.js';
import { WorkerCrashedError } from '../spooler/run/runners.js';
import { Code, TaskPath, type PathHooks, type Report, type Site } from '../spooler/run/task-path.js';
import { tempDir } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
let layout: SpoolLayout;
let claimDir: string;
let reports: Report[];
let now: number;
let spooler: Spooler;
let lines: Array<Record<string, unknown>>;
const seen: Array<{ signal: AbortSignal }> = [];
const registry = new Map<string, (ctx: { signal: AbortSignal }) => unknown>();

function site(over: Partial<Site> = {}): Site {
  return {
    layout,
    root: layout.root,
    sources: layout,
    claimDir,
    claimDirPath: claimDir,
    maxBytes: 1 << 20,
    settle: 5000,
    archive: false,
    keepResults: 0,
    taskTimeout: 0,
    clock: { now: () => now, stampNow: () => now },
    check: () => undefined,
    log: createLogger({ level: 'debug', format: 'json', write: (l) => void lines.push(JSON.parse(l) as Record<string, unknown>) }),
    ...over,
  };
}

function path(hooks: Partial<PathHooks> = {}, over: Partial<Site> = {}): TaskPath {
  return new TaskPath(site(over), { report: (r) => void reports.push(r), ...hooks });
}

beforeEach(() => {
  ({ dir, cleanup } = tempDir('spoolerd-task-path-'));
  spooler = Spooler.open(join(dir, 'spool'));
  layout = new SpoolLayout(join(dir, 'spool'));
  claimDir = join(layout.active, 'host-1-abcdef');
  for (const d of [layout.incoming, layout.pending, claimDir, layout.dead, layout.state, layout.quarantine, layout.archive]) mkdirSync(d, { recursive: true });
  reports = [];
  lines = [];
  now = Date.now();
  seen.length = 0;
});
afterEach(() => {
  vi.useRealTimers();
  cleanup();
});

const ok = spooler_task('ok', () => undefined);
const fails = spooler_task('fails', () => {
  throw new Error('boom');
});
const returns = spooler_task('returns', () => ({ answer: 42 }));
const hangs = spooler_task('hangs', (ctx) => {
  seen.push(ctx);
  return new Promise(() => undefined);
});

/** A task registered on every spool opened in this test file (the path finds its handler by spool). */
function spooler_task(name: string, fn: (ctx: { signal: AbortSignal }) => unknown): string {
  registry.set(name, fn);
  return name;
}

async function enqueue(name: string, options: { retries?: number; timeout?: number; keepResult?: number } = {}): Promise<string> {
  const fn = registry.get(name)!;
  const { taskContext } = await import('../runtime/context.js');
  const t = spooler.task(
    Object.defineProperty(() => fn(taskContext()!), 'name', { value: name }),
    options,
  );
  await t();
  return readdirSync(layout.incoming).find((n) => parseTaskName(n)?.name === name)!;
}

describe('the per-task path (run/task-path.ts)', () => {
  it('claims, runs and removes a task, and reports it processed with its name and run time; the body never leaves', async () => {
    const name = await enqueue(ok);
    expect(path().start({ name, dir: 'incoming' })).toBe(true);
    expect(reports).toEqual([{ name, task: 'ok', ms: expect.any(Number), failed: false, code: Code.Processed }]);
    expect(readdirSync(claimDir)).toEqual([]);
    expect(readdirSync(layout.incoming)).toEqual([]);
  });

  it('--archive: a processed task goes to archive/', async () => {
    const name = await enqueue(ok);
    path({}, { archive: true }).start({ name, dir: 'incoming' });
    expect(reports[0]!.code).toBe(Code.Processed);
    expect(readdirSync(layout.archive)).toEqual([name]);
  });

  it('a name another process claimed first is a race, and nothing moves', () => {
    path().start({ name: 'gone', dir: 'incoming' });
    expect(reports).toEqual([{ name: 'gone', code: Code.Race }]);
  });

  it('a claim directory that is gone says OwnerGone and leaves the file in incoming/', async () => {
    const name = await enqueue(ok);
    rmdirSync(claimDir);
    path().start({ name, dir: 'incoming' });
    expect(reports).toEqual([{ name, code: Code.OwnerGone }]);
    expect(readdirSync(layout.incoming)).toEqual([name]);
  });

  it('a young file that does not decode goes back to incoming/ and is held until it has settled; an old one is quarantined with its reason', async () => {
    const name = await enqueue(ok);
    writeFileSync(join(layout.incoming, name), 'not msgpack');
    const mtime = Math.floor(now / 1000) * 1000;
    utimesSync(join(layout.incoming, name), mtime / 1000, mtime / 1000);
    path().start({ name, dir: 'incoming' });
    expect(reports).toEqual([{ name, code: Code.Held, until: mtime + 5000, from: 'incoming' }]);
    expect(readdirSync(layout.incoming)).toEqual([name]);
    now += 10_000;
    path().start({ name, dir: 'incoming' });
    expect(reports[1]).toEqual({ name, code: Code.Quarantined });
    expect(readdirSync(layout.quarantine).sort()).toEqual([name, expect.stringMatching(/\.reason\.json$|reason/)].sort());
    expect(lines.some((l) => l.msg === 'quarantined a file that is not a valid task')).toBe(true);
  });

  it('a failure moves the task to pending/ under its next name (one more attempt), which the report carries for the queue', async () => {
    const name = await enqueue(fails, { retries: 1 });
    path().start({ name, dir: 'incoming' });
    const r = reports[0]!;
    expect(r).toEqual(expect.objectContaining({ name, code: Code.Rescheduled, task: 'fails', failed: true, next: expect.any(String) }));
    expect(readdirSync(layout.pending)).toEqual([r.next]);
    expect(parseTaskName(r.next!)!.attempts).toBe(1);
    // Its last retry fails too: a dead letter, its error recorded in state/.
    path().start({ name: r.next!, dir: 'pending' });
    expect(reports[1]).toEqual(expect.objectContaining({ code: Code.Dead, task: 'fails' }));
    expect(readdirSync(layout.dead)).toHaveLength(1);
    const record = JSON.parse(readFileSync(join(layout.state, `${parseTaskName(name)!.id}.json`), 'utf8')) as { error: { message: string } };
    expect(record.error.message).toBe('boom');
  });

  it('an unknown task name is a failure (UnknownTaskError), retried like any other', async () => {
    const name = await enqueue(ok);
    const renamed = formatTaskName({ ...parseTaskName(name)!, name: 'nobody' });
    writeFileSync(join(layout.incoming, renamed), readFileSync(join(layout.incoming, name)));
    path().start({ name: renamed, dir: 'incoming' });
    expect(reports[0]).toEqual(expect.objectContaining({ name: renamed, code: Code.Rescheduled, task: 'nobody', failed: true }));
    const line = lines.find((l) => l.msg === 'task rescheduled')!;
    expect(line.error).toMatch(/^no task named "nobody"/);
  });

  it('a task over its retry limit when claimed (reclaimed after crashes) is buried without running', async () => {
    const name = await enqueue(fails, { retries: 0 });
    const crashed = renameTask(parseTaskName(name)!, { attempts: 3 });
    writeFileSync(join(layout.incoming, crashed), readFileSync(join(layout.incoming, name)));
    path().start({ name: crashed, dir: 'incoming' });
    expect(reports[0]).toEqual(expect.objectContaining({ name: crashed, code: Code.Dead }));
    // Not run: a run of `fails` would have been reported with its run time.
    expect(reports[0]!.ms).toBeUndefined();
    expect(readdirSync(layout.dead)).toHaveLength(1);
  });

  it('revoke: a running task gets ClaimLostError on its signal; its end is reported Revoked and its claimed file is left alone', async () => {
    const name = await enqueue(hangs);
    const p = path();
    expect(p.start({ name, dir: 'incoming' })).toBe(true);
    expect(p.runningCount).toBe(1);
    expect(reports).toEqual([]);
    expect(p.revoke(new ClaimLostError())).toBe(1);
    expect(seen[0]!.signal.aborted).toBe(true);
    expect(seen[0]!.signal.reason).toBeInstanceOf(ClaimLostError);
    expect(readdirSync(claimDir)).toEqual([name]);
  });

  it('its own timeout fires the AbortSignal; in the daemon thread, the kill grace later it is counted as failed (TaskTimeoutError)', async () => {
    const name = await enqueue(hangs, { timeout: 100 });
    vi.useFakeTimers();
    const timed: Array<[string, number]> = [];
    const p = path({ timed: (n, ms) => void timed.push([n, ms]), graceExpired: { killGrace: 50 } });
    p.start({ name, dir: 'incoming' });
    expect(timed).toEqual([[name, 100]]);
    vi.advanceTimersByTime(99);
    expect(seen[0]!.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(seen[0]!.signal.reason).toBeInstanceOf(TaskTimeoutError);
    expect(reports).toEqual([]);
    vi.advanceTimersByTime(50);
    expect(reports).toEqual([expect.objectContaining({ name, code: Code.Rescheduled, failed: true })]);
    expect(lines.some((l) => String(l.msg).startsWith('a task ignored its AbortSignal after its timeout'))).toBe(true);
  });

  it('in a worker process (no grace hook) a timed-out task is left to its supervisor: nothing is reported', async () => {
    const name = await enqueue(hangs, { timeout: 100 });
    vi.useFakeTimers();
    path().start({ name, dir: 'incoming' });
    vi.advanceTimersByTime(10_000);
    expect(seen[0]!.signal.aborted).toBe(true);
    expect(reports).toEqual([]);
    expect(readdirSync(claimDir)).toEqual([name]);
  });

  it('settleOrphan: the supervisor fails a crashed runner\'s claimed task with its attempt counted', async () => {
    const name = await enqueue(ok);
    const p = path();
    // As a runner that died after claiming it would leave it.
    const { renameSync } = await import('node:fs');
    renameSync(join(layout.incoming, name), join(claimDir, name));
    p.settleOrphan(name, 'incoming', { kind: 'rescheduled', error: new WorkerCrashedError('its worker process died') });
    expect(reports[0]).toEqual(expect.objectContaining({ name, code: Code.Rescheduled, failed: true }));
    expect(parseTaskName(reports[0]!.next!)!.attempts).toBe(1);
    expect(existsSync(join(claimDir, name))).toBe(false);
  });

  it('a move that fails (a full disk) reports Stuck at once, frees the runner, and reports the final code once it succeeds', async () => {
    const name = await enqueue(fails, { retries: 0 });
    vi.useFakeTimers();
    let broken = true;
    const p = path({}, { check: () => {
      if (broken) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    } });
    p.start({ name, dir: 'incoming' });
    expect(reports).toEqual([expect.objectContaining({ name, code: Code.Stuck })]);
    expect(readdirSync(claimDir)).toEqual([name]);
    broken = false;
    vi.advanceTimersByTime(1000);
    expect(reports[1]).toEqual(expect.objectContaining({ name, code: Code.Dead }));
    expect(readdirSync(claimDir)).toEqual([]);
  });
});

describe('cancelling on the per-task path (run/task-path.ts cancel())', () => {
  it('fires the running task\'s signal with a TaskCancelledError; whatever it returns then, it ends as cancelled and its file is removed', async () => {
    const { TaskCancelledError } = await import('../runtime/context.js');
    let finish!: () => void;
    const name = await enqueue(spooler_task('returns_later', (ctx) => {
      seen.push(ctx);
      return new Promise<string>((done) => (finish = () => done('a value')));
    }));
    const p = path();
    expect(p.start({ name, dir: 'incoming' })).toBe(true);
    expect(p.cancel(name)).toBe(true);
    expect(seen[0]!.signal.reason).toBeInstanceOf(TaskCancelledError);
    finish();
    await vi.waitFor(() => expect(reports).toEqual([expect.objectContaining({ name, code: Code.Cancelled, failed: false })]));
    expect(readdirSync(claimDir)).toEqual([]);
    expect(lines.filter((l) => l.msg === 'task cancelled')).toEqual([expect.objectContaining({ id: parseTaskName(name)!.id, durationMs: expect.any(Number) })]);
  });

  it('in the daemon\'s own thread, one that ignores its signal is settled as cancelled the kill grace later; a name not running here is not cancelled', async () => {
    vi.useFakeTimers();
    const name = await enqueue(hangs);
    const p = path({ graceExpired: { killGrace: 1000 } });
    expect(p.cancel(name)).toBe(false);
    p.start({ name, dir: 'incoming' });
    expect(p.cancel(name)).toBe(true);
    vi.advanceTimersByTime(999);
    expect(reports).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(reports).toEqual([expect.objectContaining({ name, code: Code.Cancelled })]);
    expect(lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('a cancelled task ignored its AbortSignal'))).toBe(true);
  });

  it('a name cancelled before it started is claimed and settled as cancelled without running', async () => {
    let ran = false;
    const name = await enqueue(spooler_task('never_runs', () => void (ran = true)));
    path().start({ name, dir: 'incoming' }, true);
    expect(ran).toBe(false);
    expect(reports).toEqual([expect.objectContaining({ name, code: Code.Cancelled })]);
    expect(readdirSync(claimDir)).toEqual([]);
  });
});

describe('what the per-task path keeps (run/result-store.ts)', () => {
  const resultOf = (name: string) => decodeWire(readFileSync(join(layout.results, `${parseTaskName(name)!.id}.msgpack`)), 'msgpack') as Record<string, unknown>;

  it('keeps nothing for a task that asks for nothing', async () => {
    const name = await enqueue(returns);
    path().start({ name, dir: 'incoming' });
    expect(reports[0]!.code).toBe(Code.Processed);
    expect(readdirSync(layout.results)).toEqual([]);
  });

  it("a task's keepResult, or the daemon's --keep-results, keeps its value, owner and times, before its file goes", async () => {
    const name = await enqueue(returns, { keepResult: 60_000 });
    path().start({ name, dir: 'incoming' });
    expect(resultOf(name)).toEqual({ version: 1, id: parseTaskName(name)!.id, name: 'returns', ending: 'processed', value: { answer: 42 }, attempts: 1, owner: 'host-1-abcdef', finishedAt: now, keepUntil: now + 60_000 });
    const other = await enqueue(ok);
    path({}, { keepResults: 1000 }).start({ name: other, dir: 'incoming' });
    expect(resultOf(other)).toEqual(expect.objectContaining({ ending: 'processed', keepUntil: now + 1000 }));
    expect(resultOf(other)).not.toHaveProperty('value');
  });

  it('a failed attempt is noted in state/<id>.json with its time, owner and next try; the dead letter gets the whole history and a dead result', async () => {
    const name = await enqueue(fails, { retries: 1, keepResult: 60_000 });
    path().start({ name, dir: 'incoming' });
    expect(reports[0]!.code).toBe(Code.Rescheduled);
    const id = parseTaskName(name)!.id;
    const first = JSON.parse(readFileSync(join(layout.state, `${id}.json`), 'utf8')) as { history: unknown[]; error: { stack: string } };
    expect(first.history).toEqual([{ attempt: 1, at: now, owner: 'host-1-abcdef', error: { name: 'Error', message: 'boom' }, retryAt: expect.any(Number) }]);
    expect(first.error.stack).toContain('boom');
    expect(readdirSync(layout.results)).toEqual([]);
    path().start({ name: reports[0]!.next!, dir: 'pending' });
    expect(reports[1]!.code).toBe(Code.Dead);
    const last = JSON.parse(readFileSync(join(layout.state, `${id}.json`), 'utf8')) as { history: Array<{ attempt: number }> };
    expect(last.history.map((h) => h.attempt)).toEqual([1, 2]);
    expect(resultOf(name)).toEqual(expect.objectContaining({ ending: 'dead', attempts: 2, error: expect.objectContaining({ name: 'Error', message: 'boom' }) }));
  });

  it('a result that cannot be written is logged, and the task is settled all the same', async () => {
    const name = await enqueue(returns, { keepResult: 60_000 });
    const check = (...subs: string[]) => {
      if (subs.includes('results')) throw new Error('results/ was replaced');
    };
    path({}, { check }).start({ name, dir: 'incoming' });
    expect(reports[0]!.code).toBe(Code.Processed);
    expect(readdirSync(claimDir)).toEqual([]);
    expect(lines).toContainEqual(expect.objectContaining({ level: 'error', msg: expect.stringContaining('cannot write the result of a task'), err: 'results/ was replaced' }));
  });
});
