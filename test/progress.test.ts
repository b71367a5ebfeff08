/**
 * Progress in isolation: the reporter's throttle (runtime/progress.ts) with a
 * fake clock, the record's format and the orphan sweep (spool/progress.ts),
 * and the producer's shared watch (runtime/progress-watch.ts) on a real folder.
 */
import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidOptionError, Spooler, type Progress } from '../runtime/index.js';
import { ProgressReporter, type ProgressClock } from '../runtime/progress.js';
import { progressWatch } from '../runtime/progress-watch.js';
import { SpoolLayout } from '../spool/layout.js';
import { PROGRESS_MESSAGE_MAX, readProgress, removeProgress, sweepOrphanProgress, writeProgress } from '../spool/progress.js';
import { tempDir } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir('spoolerd-progress-')));
afterEach(() => cleanup());

/** A clock whose time moves only when told, with the timers due by then fired in order. */
class FakeClock implements ProgressClock {
  t = 1_000_000;
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private next = 1;
  now = () => this.t;
  setTimeout = (fn: () => void, ms: number) => {
    const id = this.next++;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  };
  clearTimeout = (h: unknown) => {
    this.timers = this.timers.filter((t) => t.id !== h);
  };
  get pending() {
    return this.timers.length;
  }
  advance(ms: number) {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const due = this.timers[0];
      if (due === undefined || due.at > end) break;
      this.timers.shift();
      this.t = due.at;
      due.fn();
    }
    this.t = end;
  }
}

function reporter(clock: FakeClock) {
  const writes: Progress[] = [];
  let removed = 0;
  const errors: unknown[] = [];
  const r = new ProgressReporter({ write: (p) => writes.push(p), remove: () => void removed++ }, (e) => errors.push(e), clock, 200);
  return { r, writes, errors, removed: () => removed };
}

describe('the progress throttle', () => {
  it('writes the first report at once, then at most once per 200 ms, the latest value always landing', () => {
    const clock = new FakeClock();
    const { r, writes } = reporter(clock);
    r.report(0.1, 'first');
    expect(writes.map((w) => w.fraction)).toEqual([0.1]);
    // A tight loop of reports within the interval: none written now, one timer armed.
    for (let i = 2; i <= 1000; i++) r.report(i / 1000);
    expect(writes).toHaveLength(1);
    expect(clock.pending).toBe(1);
    clock.advance(199);
    expect(writes).toHaveLength(1);
    clock.advance(1);
    expect(writes.map((w) => w.fraction)).toEqual([0.1, 1]);
    expect(writes[1]!.at).toBe(1_000_000); // the time it was reported, not written
    // Quiet for longer than the interval: the next report writes at once again.
    clock.advance(1000);
    r.report(0.5, 'again');
    expect(writes.at(-1)).toEqual({ fraction: 0.5, message: 'again', at: clock.t });
    expect(clock.pending).toBe(0);
  });

  it('end() drops a pending write and removes the record only when one was written', () => {
    const clock = new FakeClock();
    const a = reporter(clock);
    a.r.end();
    expect(a.removed()).toBe(0);
    const b = reporter(clock);
    b.r.report(0.2);
    b.r.report(0.3);
    b.r.end();
    expect(clock.pending).toBe(0);
    clock.advance(1000);
    expect(b.writes.map((w) => w.fraction)).toEqual([0.2]);
    expect(b.removed()).toBe(1);
    b.r.report(0.9); // after the end: ignored (a task that goes on after its timeout)
    expect(b.writes).toHaveLength(1);
  });

  it('checks the fraction, caps the message, and survives a failing sink (told once)', () => {
    const clock = new FakeClock();
    const { r, writes } = reporter(clock);
    expect(() => r.report(1.5)).toThrow(InvalidOptionError);
    expect(() => r.report(-0.1)).toThrow('fraction must be a number from 0 to 1');
    expect(() => r.report(Number.NaN)).toThrow(InvalidOptionError);
    expect(() => r.report(0.5, 42 as never)).toThrow('message must be a string');
    r.report(0.5, 'x'.repeat(1000));
    expect(writes[0]!.message).toHaveLength(PROGRESS_MESSAGE_MAX);
    expect(writes[0]!.message!.endsWith('…')).toBe(true);
    const errors: unknown[] = [];
    const failing = new ProgressReporter({ write: () => { throw new Error('ENOSPC'); }, remove: () => {} }, (e) => errors.push(e), clock, 200);
    failing.report(0.1);
    clock.advance(500);
    failing.report(0.2);
    expect(errors).toHaveLength(1);
  });

  it('a tight loop of a million reports stays cheap (in memory; no write per call)', () => {
    let writes = 0;
    const r = new ProgressReporter({ write: () => void writes++, remove: () => {} }, () => {});
    const t0 = performance.now();
    for (let i = 0; i < 1_000_000; i++) r.report(i / 1_000_000, 'working');
    const ms = performance.now() - t0;
    r.end();
    expect(writes).toBeLessThanOrEqual(1 + Math.ceil(ms / 200));
    expect(ms).toBeLessThan(2000);
  });
});

describe('progress records', () => {
  const id = '1764000000000a1b2c3d4e5f6a7b8';
  const id2 = '1764000000000ffffffffffffffff';

  it('are written whole as JSON, read back checked, and removed', () => {
    const layout = new SpoolLayout(join(dir, 'spool')).ensure();
    writeProgress(layout, id, { fraction: 0.4, message: 'resized 40 of 100', at: 5 });
    expect(readdirSync(layout.progress)).toEqual([`${id}.json`]);
    expect(readProgress(layout, id)).toEqual({ fraction: 0.4, message: 'resized 40 of 100', at: 5 });
    writeFileSync(join(layout.progress, `${id2}.json`), '{"fraction": 7, "at": 1}');
    expect(readProgress(layout, id2)).toBeUndefined();
    expect(removeProgress(layout, id)).toBe(true);
    expect(removeProgress(layout, id)).toBe(false);
  });

  it('the orphan sweep removes old records of tasks not running, keeps the running and the young', () => {
    const layout = new SpoolLayout(join(dir, 'spool')).ensure();
    const now = Date.now();
    const old = (name: string) => utimesSync(join(layout.progress, name), (now - 60_000) / 1000, (now - 60_000) / 1000);
    writeProgress(layout, id, { fraction: 0.1, at: 1 });
    writeProgress(layout, id2, { fraction: 0.2, at: 1 });
    const young = '1764000000000aaaaaaaaaaaaaaaa';
    writeProgress(layout, young, { fraction: 0.3, at: 1 });
    writeFileSync(join(layout.progress, 'junk'), '');
    mkdirSync(join(layout.progress, 'a-dir'));
    for (const n of [`${id}.json`, `${id2}.json`, 'junk', 'a-dir']) old(n);
    let listed = 0;
    const removed = sweepOrphanProgress(layout, readdirSync(layout.progress), () => (listed++, new Set([id2])), now);
    expect(removed).toBe(2);
    expect(listed).toBe(1);
    expect(readdirSync(layout.progress).sort()).toEqual([`${id2}.json`, `${young}.json`, 'a-dir'].sort());
  });
});

describe('following progress from a producer', () => {
  it('calls listeners with each new value through one shared watch, the current value at once', async () => {
    const spooler = Spooler.open(join(dir, 'spool'));
    const id = '1764000000000a1b2c3d4e5f6a7b8';
    writeProgress(spooler.layout, id, { fraction: 0.1, at: 1 });
    const a: number[] = [];
    const b: number[] = [];
    const stopA = spooler.onProgress(id, (p) => a.push(p.fraction));
    const stopB = spooler.onProgress(id, (p) => b.push(p.fraction));
    expect(progressWatch(spooler.layout).stats.ids).toBe(1);
    await until(() => a.length === 1 && b.length === 1);
    writeProgress(spooler.layout, id, { fraction: 0.6, message: 'more', at: 2 });
    await until(() => a.length === 2 && b.length === 2);
    expect(a).toEqual([0.1, 0.6]);
    expect(await (await Promise.resolve(spooler.progressOf(id)))).toEqual({ fraction: 0.6, message: 'more', at: 2 });
    stopA();
    stopB();
    expect(progressWatch(spooler.layout).stats).toEqual({ ids: 0, mode: 'idle' });
    expect(() => spooler.onProgress('nope', () => {})).toThrow(InvalidOptionError);
  });
});

async function until(ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}
