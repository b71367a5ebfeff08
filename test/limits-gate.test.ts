/**
 * The limit gate (spooler/limits/gate.ts) and the slot files (spool/limits.ts)
 * with fakes: a temp limits/ folder, a fake queue and clock.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LimitGate } from '../spooler/limits/gate.js';
import { Code, type Report } from '../spooler/run/task-path.js';
import { createLogger } from '../spooler/logger.js';
import { freeHolds, Hold, keyScope, nameScope, ownerHolds, rateScope, runnerHold, TokenHints, windowEnd } from '../spool/limits.js';
import type { LimitSpec } from '../runtime/limits.js';
import { toTaskLimits } from '../runtime/limits.js';

let dir: string;
beforeEach(() => {
  dir = join(mkdtempSync(join(tmpdir(), 'limits-gate-')), 'limits');
  mkdirSync(dir);
});
afterEach(() => rmSync(join(dir, '..'), { recursive: true, force: true }));

/** A valid task file name of `task` with id suffix `n` (names sort by n). */
const fileName = (task: string, n: number): string => `50-0000000000000-${String(1700000000000 + n).padStart(13, '0')}${n.toString(16).padStart(16, '0')}-a0-${task}.mpk`;

function makeGate(specs: Record<string, LimitSpec>, now = () => 0) {
  const requeued: string[] = [];
  // What give() would do when woken: take the woken names first.
  const gate: LimitGate = LimitGate.of(specs, {
    dir,
    log: createLogger({ level: 'error', format: 'json' }),
    now,
    wake: () => {
      for (let n = gate.nextWoken(); n !== undefined; n = gate.nextWoken()) requeued.push(n.fileName);
    },
    check: () => undefined,
  })!;
  return { gate, requeued };
}

const report = (name: string, code: Code, extra: Partial<Report> = {}): Report => ({ name, code, ...extra });

describe('LimitGate', () => {
  it('is undefined when no task has limits (nothing runs for plain tasks)', () => {
    expect(LimitGate.of(undefined, { dir, log: createLogger({ level: 'error', format: 'json' }), now: () => 0, wake: () => undefined, check: () => undefined })).toBeUndefined();
  });

  it('admits a name-limited task up to its limit, parks the rest, and admits tasks without limits always', () => {
    const { gate } = makeGate({ solo: { concurrency: 1 } });
    expect(gate.admits(fileName('solo', 1), 'incoming')).toBe(true);
    expect(gate.admits(fileName('solo', 2), 'incoming')).toBe(false);
    expect(gate.admits(fileName('other', 3), 'incoming')).toBe(true);
    expect(gate.holds(fileName('solo', 2))).toBe(true);
    expect(gate.scopeOf(fileName('solo', 2))).toBe(nameScope('solo'));
    gate.clear();
  });

  it('wakes one parked name per freed slot, in name order, and none for a task that was held back', () => {
    const { gate, requeued } = makeGate({ solo: { concurrency: 1 } });
    expect(gate.admits(fileName('solo', 1), 'incoming')).toBe(true);
    for (const n of [5, 3, 4, 2]) expect(gate.admits(fileName('solo', n), 'incoming')).toBe(false);
    expect(gate.parkedCount).toBe(4);
    gate.reported(report(fileName('solo', 1), Code.Processed, { limits: nameScope('solo') }));
    expect(requeued).toEqual([fileName('solo', 2)]);
    // The woken name goes ahead of the others still parked.
    expect(gate.admits(fileName('solo', 2), 'incoming')).toBe(true);
    // A runner found the slot taken (another daemon): parked again, and nothing else wakes.
    gate.reported(report(fileName('solo', 2), Code.Limited, { limits: nameScope('solo') }));
    expect(requeued).toHaveLength(1);
    expect(gate.parkedCount).toBe(4);
    gate.clear();
  });

  it('a completion costs one wake whatever the backlog parked behind it', () => {
    const { gate, requeued } = makeGate({ one: { keyConcurrency: 1 } });
    const scope = keyScope('one', 'k');
    for (let i = 0; i < 100_000; i++) gate.reported(report(fileName('one', i), Code.Limited, { limits: scope }));
    expect(gate.parkedCount).toBe(100_000);
    const t = performance.now();
    for (let i = 0; i < 1000; i++) gate.reported(report(`done-${i}`, Code.Processed, { limits: scope }));
    const perCompletionUs = ((performance.now() - t) * 1000) / 1000;
    expect(requeued).toHaveLength(1000);
    expect(requeued[0]).toBe(fileName('one', 0));
    // A heap pop: microseconds, not a walk over 100,000 names.
    expect(perCompletionUs).toBeLessThan(200);
    gate.clear();
  });

  it('poll wakes as many parked names as limits/ shows free slots (another daemon released)', () => {
    const { gate, requeued } = makeGate({ k: { keyConcurrency: 2 } });
    const scope = keyScope('k', 'acme');
    const other = Hold.create(dir, 'other-1-aaaaaa', '77');
    const taken = [other.takeSlot(scope, 2), other.takeSlot(scope, 2)];
    expect(taken).toEqual([`${scope}~0`, `${scope}~1`]);
    for (let i = 0; i < 5; i++) gate.reported(report(fileName('k', i), Code.Limited, { limits: scope }));
    gate.poll();
    expect(requeued).toHaveLength(0);
    for (const t of taken) other.releaseSlot(t!);
    gate.poll();
    expect(requeued).toEqual([fileName('k', 0), fileName('k', 1)]);
    // Woken and not yet reported: they count against the free slots, so the next poll wakes none.
    gate.poll();
    expect(requeued).toHaveLength(2);
    gate.clear();
  });

  it('wakes a rate scope when its window ends, at most max names', () => {
    let now = 1000;
    const { gate, requeued } = makeGate({ r: { rate: { max: 2, perMs: 1000, keyed: false } } }, () => now);
    const scope = rateScope('r');
    for (let i = 0; i < 5; i++) gate.reported(report(fileName('r', i), Code.Limited, { limits: scope, until: 2000 }));
    gate.poll();
    expect(requeued).toHaveLength(0);
    now = 2000;
    gate.poll();
    expect(requeued).toEqual([fileName('r', 0), fileName('r', 1)]);
    gate.clear();
  });
});

describe('slot files (spool/limits.ts)', () => {
  it('a slot is exclusive, released by its holder, and freed with a dead owner', () => {
    const a = Hold.create(dir, 'hostA-1-aaaaaa', '11');
    const b = Hold.create(dir, 'hostB-2-bbbbbb', '22');
    expect(a.takeSlot('c~solo', 1)).toBe('c~solo~0');
    expect(b.takeSlot('c~solo', 1)).toBeUndefined();
    a.releaseSlot('c~solo~0');
    expect(b.takeSlot('c~solo', 1)).toBe('c~solo~0');
    expect(freeHolds(dir, ownerHolds('hostB-2-bbbbbb'))).toEqual(['c~solo']);
    expect(readdirSync(dir)).toEqual(['hold~hostA-1-aaaaaa~11']);
    a.close();
    b.close();
  });

  it('a stalled owner that resumes does not release a slot the reclaim gave to another', () => {
    const stalled = Hold.create(dir, 'hostA-1-aaaaaa', '11');
    expect(stalled.takeSlot('k~t~0123456789abcdef', 1)).toBe('k~t~0123456789abcdef~0');
    // The reclaim takes A for dead: its slots and hold file go.
    expect(freeHolds(dir, ownerHolds('hostA-1-aaaaaa'))).toEqual(['k~t~0123456789abcdef']);
    const other = Hold.create(dir, 'hostB-2-bbbbbb', '22');
    expect(other.takeSlot('k~t~0123456789abcdef', 1)).toBe('k~t~0123456789abcdef~0');
    // A resumes and its task ends: B's slot stays (another inode; A's hold file is still open, so its inode is not reused).
    stalled.releaseSlot('k~t~0123456789abcdef~0');
    expect(readdirSync(dir).sort()).toEqual(['hold~hostB-2-bbbbbb~22', 'k~t~0123456789abcdef~0']);
    other.releaseSlot('k~t~0123456789abcdef~0');
    expect(readdirSync(dir)).toEqual(['hold~hostB-2-bbbbbb~22']);
    stalled.close();
    other.close();
  });

  it("frees one runner's slots (a worker that died) and leaves the owner's others", () => {
    const one = Hold.create(dir, 'o-1-aaaaaa', '101');
    const two = Hold.create(dir, 'o-1-aaaaaa', '102');
    one.takeSlot('c~x', 2);
    two.takeSlot('c~x', 2);
    expect(freeHolds(dir, runnerHold('o-1-aaaaaa', '101'))).toEqual(['c~x']);
    expect(readdirSync(dir).sort()).toEqual(['c~x~1', 'hold~o-1-aaaaaa~102']);
    // A new runner with the pid of one left behind frees what it held first.
    two.close();
    const again = Hold.create(dir, 'o-1-aaaaaa', '102');
    expect(readdirSync(dir).sort()).toEqual(['hold~o-1-aaaaaa~102']);
    again.close();
    one.close();
  });

  it('rate tokens: max per window, then the window end', () => {
    const hints = new TokenHints();
    const h = Hold.create(dir, 'o-1-aaaaaa', '1');
    expect(hints.take(h, 'r~t', 2, 1000, 5500)).toBeUndefined();
    expect(hints.take(h, 'r~t', 2, 1000, 5600)).toBeUndefined();
    expect(hints.take(h, 'r~t', 2, 1000, 5700)).toBe(6000);
    // Another daemon (no hints) finds them taken too.
    expect(new TokenHints().take(h, 'r~t', 2, 1000, 5800)).toBe(6000);
    expect(hints.take(h, 'r~t', 2, 1000, 6000)).toBeUndefined();
    expect(windowEnd(6000, 1000)).toBe(7000);
    h.close();
  });
});

describe('limit options (runtime/limits.ts)', () => {
  it('overlap: false is concurrency 1; bad values are refused with what to write', () => {
    expect(toTaskLimits({ overlap: false }, 't')?.spec).toEqual({ concurrency: 1 });
    expect(toTaskLimits({}, 't')).toBeUndefined();
    expect(toTaskLimits({ overlap: true }, 't')).toBeUndefined();
    expect(toTaskLimits({ concurrencyKey: (k: string) => k }, 't')?.spec).toEqual({ keyConcurrency: 1 });
    expect(toTaskLimits({ rateLimit: { max: 10, per: '1m' } }, 't')?.spec).toEqual({ rate: { max: 10, perMs: 60_000, keyed: false } });
    expect(() => toTaskLimits({ concurrency: 0 }, 't')).toThrow(/concurrency must be a whole number/);
    expect(() => toTaskLimits({ keyConcurrency: 2 }, 't')).toThrow(/needs concurrencyKey/);
    expect(() => toTaskLimits({ overlap: false, concurrency: 2 }, 't')).toThrow(/overlap: false means concurrency 1/);
    expect(() => toTaskLimits({ rateLimit: { max: 1, per: 'soon' } }, 't')).toThrow(/not a duration/);
  });
});
