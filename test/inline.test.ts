/**
 * The inline test mode (runtime/inline.ts): tasks run in this process with the
 * daemon's outcome rules, retries (backoff skipped, compressed or real),
 * results and their typed errors, hooks, timeouts, cancel, the task context,
 * unique keys and expiry; no spool directory is made or touched.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  PermanentError,
  ResultTimeoutError,
  ResultValueLostError,
  Spooler,
  TaskCancelledError,
  TaskExpiredError,
  TaskFailedError,
  TaskSkippedError,
  TaskTimeoutError,
  TaskWasCancelledError,
  UnencodableValueError,
  chain,
  failed,
  rescheduled,
  skipped,
  taskContext,
} from '../runtime/index.js';

const base = mkdtempSync(join(tmpdir(), 'spoolerd-inline-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe('a spooler with no directory', () => {
  it('runs a task after its enqueue resolved, keeps its value for result(), and records the run', async () => {
    const spooler = Spooler.inline();
    const seen: string[] = [];
    const add = spooler.task(function add(a: number, b: number) {
      seen.push('ran');
      return a + b;
    });
    const handle = await add(2, 3);
    seen.push('enqueued');
    expect(await handle.result()).toBe(5);
    expect(seen).toEqual(['enqueued', 'ran']);
    expect(spooler.inline!.history).toEqual([expect.objectContaining({ id: handle.id, name: 'add', args: [2, 3], attempt: 0, ending: 'processed', ran: true, value: 5 })]);
    expect(handle.path).toBe('');
    expect(existsSync(spooler.dir)).toBe(false);
  });

  it('checks arguments as a task file would: a value a file cannot carry fails at the enqueue', async () => {
    const spooler = Spooler.inline();
    const take = spooler.task(function take(_x: unknown) {});
    await expect(take(() => 1)).rejects.toThrow(UnencodableValueError);
    expect(spooler.inline!.pending).toBe(0);
  });

  it('a value that cannot be kept makes result() reject with ResultValueLostError, as a daemon does', async () => {
    const spooler = Spooler.inline();
    const give = spooler.task(function give() {
      return { f: () => 1 };
    });
    await expect((await give()).result()).rejects.toThrow(ResultValueLostError);
  });

  it('starts due tasks by priority, then due time, then enqueue order; one at a time with concurrency 1', async () => {
    const spooler = Spooler.inline({ concurrency: 1 });
    const order: string[] = [];
    const step = spooler.task(async function step(label: string) {
      order.push(`start ${label}`);
      await new Promise((r) => setTimeout(r, 2));
      order.push(`end ${label}`);
    });
    await step.with({ priority: 60 })('low');
    await step.with({ priority: 10 })('high');
    await step.with({ postpone: '1h' })('later');
    await step('middle');
    await spooler.drain();
    expect(order).toEqual(['start high', 'end high', 'start middle', 'end middle', 'start later', 'end later', 'start low', 'end low']);
  });

  it('idle() also waits for what tasks enqueue, and taskContext() gives id, attempt, parent and a log', async () => {
    const spooler = Spooler.inline();
    const child = spooler.task(function child(n: number) {
      const ctx = taskContext();
      ctx.log.info('child ran', { n });
      return ctx.parent;
    });
    const parent = spooler.task(async function parent() {
      const ctx = taskContext();
      expect(ctx.attempt).toBe(0);
      expect(ctx.signal.aborted).toBe(false);
      const a = await child(1);
      const b = await child(2);
      return [a.id, b.id, ctx.id];
    });
    const h = await parent();
    await spooler.drain();
    const [a, b, id] = (await h.result()) as string[];
    expect(id).toBe(h.id);
    expect(await spooler.wait(a!)).toBe(h.id);
    expect(await spooler.wait(b!)).toBe(h.id);
    expect(spooler.inline!.runsOf(child).map((r) => r.parent)).toEqual([h.id, h.id]);
    expect(spooler.inline!.logs.filter((l) => l.msg === 'child ran').map((l) => [l.task, l.n, l.level])).toEqual([
      ['child', 1, 'info'],
      ['child', 2, 'info'],
    ]);
  });
});

describe('outcomes and retries', () => {
  it('retries a throwing task with its backoff skipped: attempts 0, 1, 2, the backoff delays recorded', async () => {
    const spooler = Spooler.inline();
    const flaky = spooler.task(
      function flaky() {
        if (taskContext().attempt < 2) throw new Error('not yet');
        return 'done';
      },
      { retries: 3, backoff: { kind: 'exponential', delay: '1h' } },
    );
    const started = Date.now();
    const h = await flaky();
    expect(await h.result()).toBe('done');
    expect(Date.now() - started).toBeLessThan(5000);
    const runs = spooler.inline!.runsOf('flaky');
    expect(runs.map((r) => [r.attempt, r.ending, r.delayMs])).toEqual([
      [0, 'rescheduled', 3_600_000],
      [1, 'rescheduled', 7_200_000],
      [2, 'processed', undefined],
    ]);
    expect((runs[0]!.error as Error).message).toBe('not yet');
  });

  it('compresses a backoff on request: 2 s divided by 100 is waited for as 20 ms', async () => {
    const spooler = Spooler.inline({ backoff: 'compress', compress: 100 });
    const times: number[] = [];
    const once = spooler.task(
      function once() {
        times.push(Date.now());
        if (times.length === 1) throw new Error('first');
      },
      { retries: 1, backoff: { kind: 'constant', delay: '2s' } },
    );
    await (await once()).result();
    const waited = times[1]! - times[0]!;
    expect(waited).toBeGreaterThanOrEqual(19);
    expect(waited).toBeLessThan(2000);
  });

  it('waits for a real backoff on request', async () => {
    const spooler = Spooler.inline({ backoff: 'real' });
    const times: number[] = [];
    const once = spooler.task(
      function once() {
        times.push(Date.now());
        if (times.length === 1) throw new Error('first');
      },
      { retries: 1, backoff: { kind: 'constant', delay: 60 } },
    );
    await (await once()).result();
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(59);
  });

  it('a task out of retries is a dead letter: result() rejects with TaskFailedError carrying the thrown error', async () => {
    const spooler = Spooler.inline();
    const broken = spooler.task(
      function broken() {
        throw new RangeError('always');
      },
      { retries: 2 },
    );
    const h = await broken();
    const error = await h.result().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskFailedError);
    expect((error as TaskFailedError).remote).toEqual(expect.objectContaining({ name: 'RangeError', message: 'always' }));
    expect((error as TaskFailedError).record.attempts).toBe(3);
    expect(spooler.inline!.runsOf(broken).map((r) => r.ending)).toEqual(['rescheduled', 'rescheduled', 'dead']);
  });

  it('PermanentError, failed() and noRetryOn fail for good at once; skipped() rejects with TaskSkippedError', async () => {
    const spooler = Spooler.inline();
    class Declined extends Error {
      override name = 'Declined';
    }
    const permanent = spooler.task(function permanent() {
      throw new PermanentError('bad input');
    });
    const refuse = spooler.task(function refuse() {
      return failed('refused');
    });
    const charge = spooler.task(
      function charge() {
        throw new Declined('card declined');
      },
      { noRetryOn: [Declined] },
    );
    const skip = spooler.task(function skip() {
      return skipped('nothing to do');
    });
    const [p, r, c, s] = await Promise.all([permanent(), refuse(), charge(), skip()]);
    await expect(p.result()).rejects.toThrow(/bad input/);
    await expect(r.result()).rejects.toMatchObject({ record: { ending: 'dead', attempts: 1, error: { message: 'refused' } } });
    await expect(c.result()).rejects.toMatchObject({ remote: { name: 'Declined' }, record: { attempts: 1 } });
    await expect(s.result()).rejects.toThrow(TaskSkippedError);
    await expect(s.result()).rejects.toThrow(/nothing to do/);
    expect(spooler.inline!.history.map((h) => h.ending).sort()).toEqual(['dead', 'dead', 'dead', 'skipped']);
  });

  it('rescheduled({ delay }) runs again (delay skipped by default) and counts an attempt', async () => {
    const spooler = Spooler.inline();
    const poll = spooler.task(function poll() {
      return taskContext().attempt === 0 ? rescheduled({ delay: '1h', reason: 'not ready' }) : 'ready';
    });
    expect(await (await poll()).result()).toBe('ready');
    expect(spooler.inline!.runsOf(poll).map((r) => [r.ending, r.reason, r.delayMs])).toEqual([
      ['rescheduled', 'not ready', 3_600_000],
      ['processed', undefined, undefined],
    ]);
  });

  it('an unregistered task name fails like in a daemon: retried, then a dead letter naming what is registered', async () => {
    const spooler = Spooler.inline();
    spooler.task(function known() {});
    const h = await spooler.enqueue({ name: 'unknown', options: { retries: 0 } });
    await expect(h.result()).rejects.toMatchObject({ remote: { name: 'UnknownTaskError', message: expect.stringContaining('known') } });
  });

  it('result() with a timeout rejects with ResultTimeoutError while the task waits', async () => {
    const spooler = Spooler.inline({ postpone: 'real' });
    const later = spooler.task(function later() {});
    const h = await later.with({ postpone: '1h' })();
    await expect(h.result({ timeout: 20 })).rejects.toThrow(ResultTimeoutError);
    expect(spooler.cancel(h.id).kind).toBe('revoked');
  });
});

describe('hooks', () => {
  it('calls the hooks in the daemon order, inside the task context, and waits for them in idle()', async () => {
    const calls: string[] = [];
    const spooler = Spooler.inline({ hooks: { after: (t, end) => void calls.push(`spooler after ${t.attempt} ${end.outcome}`) } });
    const flaky = spooler.task(
      function flaky() {
        if (taskContext().attempt === 0) throw new Error('once');
        return 1;
      },
      {
        retries: 1,
        hooks: {
          before: (t) => void calls.push(`before ${t.attempt}`),
          onFailure: (t) => void calls.push(`onFailure ${t.attempt}`),
          onRetry: (_t, end) => void calls.push(`onRetry ${end.error instanceof Error ? end.error.message : ''}`),
          onSuccess: async (t, end) => {
            await new Promise((r) => setTimeout(r, 5));
            calls.push(`onSuccess ${taskContext().id === t.id} ${String(end.value)}`);
          },
        },
      },
    );
    await flaky();
    await spooler.drain();
    // Each hook name in turn (task-behaviour.ts hooksFor), the task's own hooks before its spooler's.
    expect(calls).toEqual(['before 0', 'spooler after 0 rescheduled', 'onFailure 0', 'onRetry once', 'before 1', 'spooler after 1 processed', 'onSuccess true 1']);
  });

  it('a hook that throws is logged and changes nothing; onDeadLetter gets the dead letter', async () => {
    const dead: unknown[] = [];
    const spooler = Spooler.inline();
    const doomed = spooler.task(
      function doomed() {
        throw new Error('boom');
      },
      {
        retries: 0,
        hooks: {
          after: () => {
            throw new Error('hook broke');
          },
          onDeadLetter: (_t, end) => void dead.push(end.error),
        },
      },
    );
    const h = await doomed();
    await spooler.drain();
    await expect(h.result()).rejects.toThrow(TaskFailedError);
    expect((dead[0] as Error).message).toBe('boom');
    expect(spooler.inline!.logs).toEqual([expect.objectContaining({ level: 'warn', msg: 'a task hook failed; the outcome stands', hook: 'after', error: 'hook broke' })]);
  });
});

describe('timeouts and cancel', () => {
  it("a timeout fires the task's AbortSignal with a TaskTimeoutError, recorded as the attempt's error", async () => {
    const spooler = Spooler.inline();
    const slow = spooler.task(
      async function slow() {
        const signal = taskContext().signal;
        await new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error)));
      },
      { timeout: 30, retries: 0 },
    );
    const h = await slow();
    await expect(h.result()).rejects.toMatchObject({ remote: { name: 'TaskTimeoutError' } });
    expect(spooler.inline!.runsOf(slow)[0]!.error).toBeInstanceOf(TaskTimeoutError);
  });

  it('a task that ignores its AbortSignal is counted as failed the kill grace after its timeout', async () => {
    const spooler = Spooler.inline({ killGrace: 20 });
    let release!: () => void;
    const stubborn = spooler.task(
      async function stubborn() {
        await new Promise<void>((r) => (release = r));
        return 'too late';
      },
      { timeout: 20, retries: 0 },
    );
    const h = await stubborn();
    await expect(h.result()).rejects.toMatchObject({ remote: { name: 'TaskTimeoutError', message: expect.stringContaining('may still be running') } });
    release();
    await spooler.drain();
    expect(spooler.inline!.runsOf(stubborn).map((r) => r.ending)).toEqual(['dead']);
  });

  it('cancel() revokes a waiting task and stops a running one, which ends as cancelled whatever it returns', async () => {
    const spooler = Spooler.inline({ postpone: 'real' });
    const started: string[] = [];
    const work = spooler.task(async function work(label: string) {
      started.push(label);
      const signal = taskContext().signal;
      await new Promise<void>((r) => signal.addEventListener('abort', () => r()));
      expect(signal.reason).toBeInstanceOf(TaskCancelledError);
      expect(taskContext().cancelled).toBe(true);
      return 'returned anyway';
    });
    const running = await work('now');
    const waiting = await work.with({ postpone: '1h' })('later');
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual(['now']);
    expect(spooler.cancel(waiting.id)).toEqual({ kind: 'revoked', name: waiting.fileName });
    expect(spooler.cancel(running.id)).toEqual(expect.objectContaining({ kind: 'requested', already: false }));
    await spooler.drain();
    await expect(running.result()).rejects.toThrow(TaskWasCancelledError);
    await expect(waiting.result()).rejects.toThrow(TaskWasCancelledError);
    expect(spooler.cancel(running.id)).toEqual({ kind: 'not-found' });
    expect(started).toEqual(['now']);
  });
});

describe('unique keys and expiry', () => {
  it('a second enqueue with a held key adds nothing and returns the holder; replace swaps the waiting task', async () => {
    const spooler = Spooler.inline();
    const sync = spooler.task(function sync(account: string) {
      return account;
    });
    const first = await sync.with({ unique: 'acct-1' })('a');
    const second = await sync.with({ unique: 'acct-1' })('b');
    expect(second).toEqual(expect.objectContaining({ id: first.id, existing: true }));
    const third = await sync.with({ unique: 'acct-1', uniqueMode: 'replace' })('c');
    expect(third.id).not.toBe(first.id);
    await spooler.drain();
    expect(spooler.inline!.runsOf(sync).map((r) => r.args)).toEqual([['c']]);
    // Released when it started: the key can be taken again.
    expect((await sync.with({ unique: 'acct-1' })('d')).existing).toBeUndefined();
    await spooler.drain();
  });

  it('a task whose postpone (skipped) puts it past its expiry ends as expired, never run', async () => {
    const spooler = Spooler.inline();
    const ran: string[] = [];
    const offer = spooler.task(function offer() {
      ran.push('offer');
    });
    const h = await offer.with({ postpone: '2h', expires: '1h' })();
    await expect(h.result()).rejects.toThrow(TaskExpiredError);
    expect(ran).toEqual([]);
    expect(spooler.inline!.history).toEqual([expect.objectContaining({ ending: 'expired', ran: false })]);
  });
});

describe('switching a spooler of a directory to inline', () => {
  it('runInline() on an opened spooler: its enqueues write nothing into the spool', async () => {
    const dir = join(base, 'opened');
    const spooler = Spooler.open(dir);
    const ping = spooler.task(function ping() {
      return 'pong';
    });
    const inline = spooler.runInline();
    expect(spooler.runInline({ backoff: 'compress' })).toBe(inline);
    const h = await ping();
    expect(await h.result()).toBe('pong');
    expect(readdirSync(join(dir, 'incoming'))).toEqual([]);
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
    expect(readdirSync(join(dir, 'results'))).toEqual([]);
  });

  it('SPOOLERD_INLINE=1: Spooler.open() gives an inline spooler and creates no folder', async () => {
    const dir = join(base, 'never-made');
    process.env.SPOOLERD_INLINE = '1';
    let spooler: Spooler;
    try {
      spooler = Spooler.open(dir);
    } finally {
      delete process.env.SPOOLERD_INLINE;
    }
    expect(spooler.inline).toBeDefined();
    const echo = spooler.task(function echo(s: string) {
      return s;
    });
    expect(await (await echo('x')).result()).toBe('x');
    expect(existsSync(dir)).toBe(false);
  });

  it('drain() on a spooler served by daemons says it is for the inline mode', async () => {
    await expect(Spooler.open(join(base, 'served')).drain()).rejects.toThrow(/inline test mode/);
  });
});

describe("other helpers' features, inline", () => {
  it('converters run before the function in dependency order; a refused argument is a dead letter at once naming it', async () => {
    const spooler = Spooler.inline();
    const area = spooler.task(
      function area(size: { w: number; h: number }) {
        return size.w * size.h;
      },
      {
        params: ['size'],
        validate: { size: { type: 'object', required: true } },
        converters: { size: (v) => ({ w: Number((v as { w: string }).w), h: Number((v as { h: string }).h) }) },
        returns: (value) => ({ area: value }),
      },
    );
    expect(await (await area({ w: '3', h: '4' } as never)).result()).toEqual({ area: 12 });
    const bad = await area('not an object' as never);
    const error = (await bad.result().catch((e: unknown) => e)) as TaskFailedError;
    expect(error).toBeInstanceOf(TaskFailedError);
    expect(error.remote.message).toContain('size');
    expect(error.record.attempts).toBe(1);
  });

  it('progress: each value reaches a waiting producer and the run record; progressOf() while it runs', async () => {
    const spooler = Spooler.inline();
    let midway: unknown;
    const resize = spooler.task(async function resize(n: number) {
      const ctx = taskContext();
      for (let i = 1; i <= n; i++) {
        ctx.progress(i / n, `resized ${i} of ${n}`);
        if (i === 2) midway = await spooler.progressOf(ctx.id);
      }
      return n;
    });
    const seen: string[] = [];
    const h = await resize(4);
    expect(await h.result({ onProgress: (p) => seen.push(`${p.fraction} ${p.message}`) })).toBe(4);
    expect(seen).toEqual(['0.25 resized 1 of 4', '0.5 resized 2 of 4', '0.75 resized 3 of 4', '1 resized 4 of 4']);
    expect(midway).toEqual(expect.objectContaining({ fraction: 0.5 }));
    expect(await h.progress()).toBeUndefined();
    expect(spooler.inline!.runsOf(resize)[0]!.progress!.map((p) => p.fraction)).toEqual([0.25, 0.5, 0.75, 1]);
  });
});

describe('chains, inline', () => {
  it('each step gets the value before it first; last() gives the final value; the step ids are the ones announced', async () => {
    const spooler = Spooler.inline();
    const fetchPage = spooler.task(function fetchPage(url: string) {
      return `<p>${url}</p>`;
    });
    const measure = spooler.task(function measure(html: string, unit: string) {
      return `${html.length} ${unit}`;
    });
    const shout = spooler.task(function shout(text: string) {
      return text.toUpperCase();
    });
    const h = await chain(fetchPage.request('x.org'), measure.step('chars'), shout).enqueue();
    expect(await h.last()).toBe('12 CHARS');
    expect(spooler.inline!.history.map((r) => [r.id, r.name, r.args])).toEqual([
      [h.steps[0], 'fetchPage', ['x.org']],
      [h.steps[1], 'measure', ['<p>x.org</p>', 'chars']],
      [h.steps[2], 'shout', ['12 chars']],
    ]);
    // fn.then(), the same chain from the wrapper
    const h2 = await fetchPage.then(measure.step('chars')).then(shout)('y.org');
    expect(await h2.last()).toBe('12 CHARS');
  });

  it('onError runs once with the failure when a step ends dead; the steps after it never run', async () => {
    const spooler = Spooler.inline();
    const failures: unknown[] = [];
    const parse = spooler.task(
      function parse(_s: string) {
        throw new SyntaxError('bad page');
      },
      { retries: 1 },
    );
    const store = spooler.task(function store(_v: unknown) {});
    const alert = spooler.task(function alert(failure: unknown) {
      failures.push(failure);
    });
    const h = await chain(parse.request('<'), store).onError(alert).enqueue();
    await expect(h.last()).rejects.toThrow(TaskFailedError);
    await spooler.drain();
    expect(failures).toEqual([{ id: h.id, name: 'parse', attempts: 2, error: { name: 'SyntaxError', message: 'bad page' } }]);
    expect(spooler.inline!.runsOf(store)).toEqual([]);
  });
});

/** The children part of the task context (issue 18's contract; on TaskContext once branch children is merged). */
interface Family {
  enqueueChild(step: unknown): Promise<{ id: string; existing?: boolean }>;
  enqueueChildren(steps: unknown[], options?: { limit?: number }): Promise<{ id: string }[]>;
  enqueueChildOnce(step: unknown): Promise<{ id: string; existing?: boolean }>;
  waitForChildren(options?: { timeout?: number }): Promise<unknown[]>;
  afterChildren(step: unknown): void;
}
const family = () => taskContext() as unknown as Family;

describe('children, inline', () => {
  it('a continuation gets every child ending in order once the parent is processed and all children ended', async () => {
    const spooler = Spooler.inline();
    const square = spooler.task(function square(n: number) {
      if (n < 0) throw new PermanentError(`negative: ${n}`);
      return n * n;
    });
    const summed: unknown[] = [];
    const sum = spooler.task(function sum(endings: { ending: string; value?: number }[], label: string) {
      summed.push([label, endings]);
    });
    const fanOut = spooler.task(async function fanOut(ns: number[]) {
      await family().enqueueChildren(ns.map((n) => square.request(n)));
      family().afterChildren(sum.step('total'));
    });
    await fanOut([2, -1, 3]);
    await spooler.drain();
    expect(summed).toEqual([
      [
        'total',
        [
          expect.objectContaining({ name: 'square', ending: 'processed', value: 4 }),
          expect.objectContaining({ name: 'square', ending: 'dead', error: expect.objectContaining({ message: 'negative: -1' }) }),
          expect.objectContaining({ name: 'square', ending: 'processed', value: 9 }),
        ],
      ],
    ]);
    expect(spooler.inline!.runsOf(sum)).toHaveLength(1);
  });

  it('enqueueChildren with a limit never has more than that many started; waitForChildren gives their values in order', async () => {
    const spooler = Spooler.inline();
    let running = 0;
    let most = 0;
    const work = spooler.task(async function work(n: number) {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 3));
      running--;
      return n * 10;
    });
    const parent = spooler.task(async function parent() {
      await family().enqueueChildren([1, 2, 3, 4, 5, 6].map((n) => work.request(n)), { limit: 2 });
      return family().waitForChildren({ timeout: 5000 });
    });
    expect(await (await parent()).result()).toEqual([10, 20, 30, 40, 50, 60]);
    expect(most).toBe(2);
  });

  it('enqueueChildOnce adds nothing the second time', async () => {
    const spooler = Spooler.inline();
    const index = spooler.task(function index(_doc: string) {});
    const parent = spooler.task(async function parent() {
      const a = await family().enqueueChildOnce(index.request('d1'));
      const b = await family().enqueueChildOnce(index.request('d1'));
      return [a.id === b.id, b.existing];
    });
    expect(await (await parent()).result()).toEqual([true, true]);
    await spooler.drain();
    expect(spooler.inline!.runsOf(index)).toHaveLength(1);
  });

  it('cancelling the parent cancels its children that have not ended, and no continuation runs', async () => {
    const spooler = Spooler.inline({ postpone: 'real' });
    const later = spooler.task(function later() {});
    const after = spooler.task(function after(_e: unknown) {});
    const parent = spooler.task(async function parent() {
      await family().enqueueChild({ ...later.request(), options: { postpone: '1h' } });
      family().afterChildren(after);
    });
    const p = await parent();
    await p.result();
    const child = spooler.inline!.waitingTasks()[0]!;
    expect(child.body.parent).toBe(p.id);
    expect(spooler.cancel(p.id)).toEqual({ kind: 'not-found' });
    await spooler.drain();
    expect(spooler.inline!.record(child.id)?.ending).toBe('cancelled');
    expect(spooler.inline!.runsOf(after)).toEqual([]);
  });
});
