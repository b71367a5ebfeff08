/**
 * A refill of the queue's window spread over several slices
 * (spooler/order/refill.ts, spooler/discover/sliced-refill.ts) against a fake
 * spool: a set of names standing for the files on disk. While a refill is
 * open the queue keeps giving out tasks, and the first names of a listing may
 * be held at once (a start from a partial listing); what must hold: nothing
 * given out twice, nothing forgotten, the window bounded, and once the
 * listing is committed every take is the best task on disk (the order's one
 * concession lasts one listing).
 */
import { describe, expect, it } from 'vitest';
import { formatTaskName } from '../spool/name.js';
import { TaskQueue } from '../spooler/order/task-queue.js';
import { refillInSlices } from '../spooler/discover/sliced-refill.js';

const NOW = 1_800_000_000_000;
let counter = 0;
function name(priority = 50, due = NOW - 1000): string {
  counter++;
  const id = `${NOW - 5000}${'0'.repeat(8)}${counter.toString(16).padStart(8, '0')}`;
  return formatTaskName({ priority, due, id, attempts: 0, name: 'job', encoding: 'msgpack' });
}

/** Names in an order no sort gave them (as ext4's hash order is). */
function shuffled(names: string[]): string[] {
  const out = [...names];
  let seed = 12345;
  for (let i = out.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const j = seed % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** A listing of `disk` as a directory gives it: each name present throughout is given once; one removed before it is reached is not. */
function* listing(disk: Set<string>): Generator<string> {
  for (const n of [...disk]) if (disk.has(n)) yield n;
}

function minOf(disk: Set<string>): string | undefined {
  let min: string | undefined;
  for (const n of disk) if (min === undefined || n < min) min = n;
  return min;
}

describe('a refill spread over slices', () => {
  it('starts from the first names of a listing, gives nothing twice, and once committed takes the best task on disk every time', () => {
    const names = shuffled(Array.from({ length: 3000 }, (_, i) => name(10 + (i % 9) * 10)));
    const disk = new Set(names);
    let asked = 0;
    const queue = new TaskQueue(() => undefined, () => NOW, { window: 200, wantsRefill: () => asked++ });
    const taken: string[] = [];
    const take = (): boolean => {
      const t = queue.take(NOW);
      if (t === undefined) return false;
      expect(disk.delete(t.fileName)).toBe(true); // on disk, never given twice
      taken.push(t.fileName);
      return true;
    };
    // Start-up: an empty window; the first names of the listing are held at once, in the listing's order.
    const refill = queue.beginRefill(NOW);
    const names0 = listing(disk);
    expect(refill.hold(names0, 'incoming', 40)).toBe(false);
    expect(queue.readyCount).toBe(40);
    // Claims go on between slices of the listing (100 names a slice).
    let ended = false;
    const slice = function* (): Generator<string> {
      for (let i = 0; i < 100; i++) {
        const r = names0.next();
        if (r.done === true) return void (ended = true);
        yield r.value;
      }
    };
    for (let slices = 0; !ended; slices++) {
      if (slices < 10) take();
      refill.offer(slice(), 'incoming');
    }
    queue.endRefill(refill, NOW);
    expect(queue.size).toBeLessThanOrEqual(200);
    // Committed: from now on every take is the best task left on disk, window after window.
    let answered = asked;
    for (;;) {
      const best = minOf(disk);
      if (!take()) {
        if (asked === answered) break;
        answered = asked;
        queue.refill([[listing(disk), 'incoming']], NOW);
        continue;
      }
      expect(taken[taken.length - 1]).toBe(best);
      expect(queue.size).toBeLessThanOrEqual(200);
    }
    expect(disk.size).toBe(0);
    expect([...taken].sort()).toEqual([...names].sort());
  });

  it('does not hold again at the commit a name offered and then given out while the listing went on', () => {
    const names = Array.from({ length: 50 }, () => name(50));
    const disk = new Set(names);
    const queue = new TaskQueue(() => undefined, () => NOW, { window: 100 });
    const refill = queue.beginRefill(NOW);
    // Offered (not held yet) ...
    expect(refill.offer(listing(disk), 'incoming')).toBe(true);
    // ... then queued by an arrival's add() and given out before the commit.
    const early = names[7]!;
    expect(queue.add(early, 'incoming', NOW)).toBe(true);
    expect(queue.take(NOW)!.fileName).toBe(early);
    disk.delete(early);
    queue.endRefill(refill, NOW);
    expect(queue.has(early)).toBe(false);
    const rest: string[] = [];
    for (let t = queue.take(NOW); t !== undefined; t = queue.take(NOW)) rest.push(t.fileName);
    expect(rest).toEqual([...disk].sort());
  });

  it('keeps the cut-off at or before one a shrink set while the listing went on: the names it dropped are found later', () => {
    const backlog = Array.from({ length: 400 }, () => name(60));
    const disk = new Set(backlog);
    let asked = 0;
    const queue = new TaskQueue(() => undefined, () => NOW, { window: 40, wantsRefill: () => asked++ });
    queue.refill([[listing(disk), 'incoming']], NOW);
    const refill = queue.beginRefill(NOW);
    const names = listing(disk);
    // Half the listing offered, then a flood of better arrivals shrinks the window (dropping names the listing passed held).
    expect(refill.offer(stepsOf(names, 200), 'incoming')).toBe(true);
    for (let i = 0; i < 60; i++) {
      const n = name(20);
      disk.add(n);
      queue.add(n, 'incoming', NOW);
    }
    refill.offer(names, 'incoming');
    queue.endRefill(refill, NOW);
    // Everything is still found, and in order once committed.
    const taken: string[] = [];
    let answered = asked;
    for (;;) {
      const best = minOf(disk);
      const t = queue.take(NOW);
      if (t === undefined) {
        if (asked === answered) break;
        answered = asked;
        queue.refill([[listing(disk), 'incoming']], NOW);
        continue;
      }
      expect(t.fileName).toBe(best);
      disk.delete(t.fileName);
      taken.push(t.fileName);
    }
    expect(disk.size).toBe(0);
    expect(taken.length).toBe(460);
  });
});

describe("the backlog count beyond the window (the census's estimate)", () => {
  it('counts the whole backlog from the last listing less what was taken since, and exactly once it all fits', () => {
    const due = Array.from({ length: 900 }, () => name(50));
    const later = Array.from({ length: 100 }, () => name(50, NOW + 60_000));
    const disk = new Set([...due, ...later]);
    const queue = new TaskQueue(() => undefined, () => NOW, { window: 64 });
    queue.refill([[listing(disk), 'pending']], NOW);
    expect(queue.size).toBeLessThanOrEqual(64);
    expect(queue.backlogIn('pending')).toBe(1000);
    expect(queue.backlogIn('incoming')).toBe(0);
    expect(queue.dueBacklog).toBe(900);
    for (let i = 0; i < 10; i++) disk.delete(queue.take(NOW)!.fileName);
    expect(queue.backlogIn('pending')).toBe(990);
    expect(queue.dueBacklog).toBe(890);
    // A listing of incoming/ alone sets its base.
    queue.noteListing('incoming', 40);
    expect(queue.backlogIn('incoming')).toBe(40);
    // A backlog that fits is counted exactly, from what is held.
    const small = new TaskQueue(() => undefined, () => NOW, { window: 64 });
    small.refill([[due.slice(0, 20), 'incoming']], NOW);
    expect(small.complete).toBe(true);
    expect(small.backlogIn('incoming')).toBe(20);
    small.take(NOW);
    expect(small.backlogIn('incoming')).toBe(19);
    queue.close();
  });
});

describe('refillInSlices (discovery)', () => {
  it('holds names at once while the window is low, yields between slices, and commits once every listing ended', async () => {
    const names = Array.from({ length: 20_000 }, () => name(50));
    const queue = new TaskQueue(() => undefined, () => NOW, { window: 100_000 });
    let wakes = 0;
    let turns = 0;
    const ticking = setInterval(() => turns++, 0);
    const done = await refillInSlices({ queue, wake: () => wakes++, stopped: () => false }, [[slow(names), 'incoming']], NOW);
    clearInterval(ticking);
    expect(done!.listed).toEqual({ incoming: 20_000, pending: 0, due: 20_000 });
    expect(queue.refilling).toBe(false);
    expect(queue.size).toBe(20_000);
    expect(queue.complete).toBe(true);
    expect(wakes).toBeGreaterThan(0);
    // The slow listing took several slices: the event loop ran between them.
    expect(turns).toBeGreaterThan(0);
  });

  it('abandons the refill when discovery stops, and when a listing throws (rejecting), leaving the queue usable', async () => {
    const queue = new TaskQueue(() => undefined, () => NOW, { window: 64 });
    // Discovery stops after the first slice (a listing of 20,000 slow names takes several).
    let looks = 0;
    const names = Array.from({ length: 20_000 }, () => name(50));
    const running = refillInSlices({ queue, wake: () => undefined, stopped: () => looks++ > 0 }, [[slow(names), 'incoming']], NOW);
    await expect(running).resolves.toBeUndefined();
    expect(queue.refilling).toBe(false);
    const failing = function* (): Generator<string> {
      yield name(50);
      throw Object.assign(new Error('EACCES'), { code: 'EACCES' });
    };
    await expect(refillInSlices({ queue, wake: () => undefined, stopped: () => false }, [[failing(), 'pending']], NOW)).rejects.toThrow('EACCES');
    expect(queue.refilling).toBe(false);
    // A new refill opens.
    queue.refill([[names, 'incoming']], NOW);
    expect(queue.size).toBeGreaterThan(0);
  });
});

/** Up to `n` more names of `names` (the same iterator goes on afterwards). */
function* stepsOf(names: Iterator<string>, n: number): Generator<string> {
  for (let i = 0; i < n; i++) {
    const r = names.next();
    if (r.done === true) return;
    yield r.value;
  }
}

/** A listing that costs time per name (as a large directory does), so that slices end on the clock. */
function* slow(names: string[]): Generator<string> {
  for (const n of names) {
    const until = performance.now() + 0.002;
    while (performance.now() < until);
    yield n;
  }
}
