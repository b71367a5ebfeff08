/**
 * The queue's window (spooler/order/task-queue.ts) against a fake spool: a
 * set of names standing for the files on disk, listed whenever the queue asks
 * for a refill. What must hold however small the window: memory bounded by
 * it, due tasks taken in file-name order (a better priority arriving later
 * still goes first), postponed tasks never early, nothing forgotten, and claim
 * shares still ordering claims.
 */
import { describe, expect, it } from 'vitest';
import { formatTaskName } from '../spool/name.js';
import { shareOf } from '../spooler/order/claim-shares.js';
import { TaskQueue, windowFromTestKnob, WINDOW } from '../spooler/order/task-queue.js';

const NOW = 1_800_000_000_000;
let counter = 0;
function name(priority = 50, due = NOW - 1000): string {
  counter++;
  const id = `${NOW - 5000}${'0'.repeat(8)}${counter.toString(16).padStart(8, '0')}`;
  return formatTaskName({ priority, due, id, attempts: 0, name: 'job', encoding: 'msgpack' });
}

/** A queue over a fake spool: `disk` holds the files; a take claims (removes) one; refills list `disk` when asked. */
function spool(window: number, names: string[] = []) {
  const disk = new Set(names);
  let asked = 0;
  let maxHeld = 0;
  const queue = new TaskQueue(() => undefined, () => NOW, { window, wantsRefill: () => asked++ });
  const refill = (now: number) => {
    queue.refill([[disk, 'incoming']], now);
    maxHeld = Math.max(maxHeld, queue.size);
  };
  return {
    disk,
    queue,
    refill,
    get asked() {
      return asked;
    },
    get maxHeld() {
      return maxHeld;
    },
    /** Takes every due task, refilling whenever the queue asks (as the daemon does, between claims). */
    drain(now = NOW): string[] {
      const out: string[] = [];
      let answered = asked;
      for (;;) {
        const t = queue.take(now);
        maxHeld = Math.max(maxHeld, queue.size);
        if (t !== undefined) {
          disk.delete(t.fileName);
          out.push(t.fileName);
          continue;
        }
        if (asked === answered) return out;
        answered = asked;
        refill(now);
      }
    },
  };
}

describe('the queue window', () => {
  it('holds at most its window of a larger backlog and drains all of it in file-name order', () => {
    const names = Array.from({ length: 2000 }, (_, i) => name(10 + (i % 7) * 10));
    const s = spool(64, names);
    s.refill(NOW);
    expect(s.queue.size).toBeLessThanOrEqual(64);
    expect(s.queue.complete).toBe(false);
    const taken = s.drain();
    expect(taken).toEqual([...names].sort());
    expect(s.maxHeld).toBeLessThanOrEqual(64);
    expect(s.disk.size).toBe(0);
    expect(s.queue.complete).toBe(true);
  });

  it('takes a task of better priority that arrives while the window is full first', () => {
    const names = Array.from({ length: 500 }, () => name(50));
    const s = spool(32, names);
    s.refill(NOW);
    const first = s.queue.take(NOW)!;
    s.disk.delete(first.fileName);
    const urgent = name(10);
    s.disk.add(urgent);
    expect(s.queue.add(urgent, 'incoming', NOW)).toBe(true);
    expect(s.queue.take(NOW)!.fileName).toBe(urgent);
    s.disk.delete(urgent);
    expect([first.fileName, urgent, ...s.drain()].sort()).toEqual([...names, urgent].sort());
  });

  it('leaves an arrival after the cut-off on disk, and a later refill finds it in its place', () => {
    const names = Array.from({ length: 300 }, () => name(50));
    const s = spool(32, names);
    s.refill(NOW);
    const late = name(90);
    s.disk.add(late);
    expect(s.queue.add(late, 'incoming', NOW)).toBe(false);
    expect(s.queue.has(late)).toBe(false);
    const taken = s.drain();
    expect(taken).toEqual([...names, late].sort());
  });

  it('keeps arrivals before the cut-off within the window by dropping its worst names, which stay findable', () => {
    const s = spool(40);
    const arrivals: string[] = [];
    // A flood of arrivals, each better than the last: the window must shrink, not grow.
    for (let p = 99; p >= 10; p--) {
      for (let i = 0; i < 5; i++) {
        const n = name(p);
        arrivals.push(n);
        s.disk.add(n);
        s.queue.add(n, 'incoming', NOW);
        expect(s.queue.size).toBeLessThanOrEqual(40);
      }
    }
    expect(s.queue.complete).toBe(false);
    expect(s.drain()).toEqual([...arrivals].sort());
  });

  it('never takes a postponed task early, and asks for the ones left on disk before they fall due', () => {
    let now = NOW;
    const disk = new Set<string>();
    let asked = 0;
    const queue = new TaskQueue(() => undefined, () => now, { window: 32, wantsRefill: () => asked++ });
    const names = Array.from({ length: 400 }, (_, i) => name(50, NOW + 1000 + i * 10));
    for (const n of names) disk.add(n);
    queue.refill([[disk, 'incoming']], now);
    expect(queue.size).toBeLessThanOrEqual(32);
    expect(queue.take(now)).toBeUndefined();
    const taken: string[] = [];
    let answered = 0;
    while (now < NOW + 1000 + 400 * 10 + 10) {
      now += 5;
      for (let t = queue.take(now); t !== undefined; t = queue.take(now)) {
        // Due by its name at the moment it is taken: never early.
        expect(Number(t.fileName.slice(3, 16))).toBeLessThanOrEqual(now);
        disk.delete(t.fileName);
        taken.push(t.fileName);
      }
      if (asked > answered) {
        answered = asked;
        queue.refill([[disk, 'incoming']], now);
      }
      expect(queue.size).toBeLessThanOrEqual(32);
    }
    queue.close();
    expect(taken.sort()).toEqual([...names].sort());
    // Taken as they fell due: none later than one step of the fake clock plus one refill.
    expect(asked).toBeGreaterThan(5);
  });

  it('asks for no refill while the whole backlog fits (3/4 of the window: the rest is room for arrivals)', () => {
    const names = Array.from({ length: 48 }, () => name(50));
    const s = spool(64, names);
    s.refill(NOW);
    expect(s.queue.complete).toBe(true);
    expect(s.drain()).toEqual([...names].sort());
    expect(s.asked).toBe(0);
  });

  it('still gives its own claim share first, window after window', () => {
    const names = Array.from({ length: 600 }, () => name(50));
    const s = spool(48, names);
    const mine = (n: string) => shareOf(n, 2) === 0;
    s.queue.setShare(mine);
    s.refill(NOW);
    const taken = s.drain();
    expect([...taken].sort()).toEqual([...names].sort());
    // Within each refill's window own tasks come before others': overall, the own share is taken far earlier.
    const ownPositions = taken.map((n, i) => (mine(n) ? i : -1)).filter((i) => i >= 0);
    const otherPositions = taken.map((n, i) => (mine(n) ? -1 : i)).filter((i) => i >= 0);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(ownPositions)).toBeLessThan(mean(otherPositions));
  });

  it('reads its size from the test knob only when it is a positive whole number', () => {
    expect(windowFromTestKnob({})).toBe(WINDOW);
    expect(windowFromTestKnob({ SPOOLERD_TEST_QUEUE_WINDOW: '50' })).toBe(50);
    expect(windowFromTestKnob({ SPOOLERD_TEST_QUEUE_WINDOW: 'x' })).toBe(WINDOW);
  });
});
