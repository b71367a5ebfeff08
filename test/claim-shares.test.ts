/**
 * Claim shares (spooler/order/claim-shares.ts) and how the daemon's queue orders
 * claims by them (spooler/order/task-queue.ts): own share first, others' only when
 * none of ours is left or one of theirs has a better priority, taken from
 * the far end; a listing forgets what others claimed.
 */
import { describe, expect, it } from 'vitest';
import { formatTaskName } from '../spool/name.js';
import { ownShare, shareOf } from '../spooler/order/claim-shares.js';
import { TaskQueue } from '../spooler/order/task-queue.js';

const NOW = 1_800_000_000_000;
let counter = 0;
/** A due task name with a fresh id (consecutive ids, as one producer makes them within a millisecond). */
function name(priority = 50, due = NOW - 1000): string {
  counter++;
  const id = `${NOW - 5000}${'0'.repeat(8)}${counter.toString(16).padStart(8, '0')}`;
  return formatTaskName({ priority, due, id, attempts: 0, name: 'job', encoding: 'msgpack' });
}

function takeAll(queue: TaskQueue): string[] {
  const out: string[] = [];
  for (let t = queue.take(NOW); t !== undefined; t = queue.take(NOW)) out.push(t.fileName);
  return out;
}

describe('claim shares', () => {
  it('splits consecutive ids evenly between owners, and a task keeps its share across retries', () => {
    const names = Array.from({ length: 3000 }, () => name());
    const counts = [0, 0, 0];
    for (const n of names) counts[shareOf(n, 3)]!++;
    for (const c of counts) expect(c).toBeGreaterThan(900);
    const retried = names[0]!.replace('-a0-', '-a3-').replace(`-${NOW - 1000}-`, `-${NOW + 5000}-`);
    expect(shareOf(retried, 3)).toBe(shareOf(names[0]!, 3));
  });

  it('gives each live owner one share by the sorted order of the ids; none when alone', () => {
    const owners = ['h2-1-aaaaaa', 'h1-9-bbbbbb', 'h3-4-cccccc'];
    const n = name();
    const mine = owners.filter((me) => ownShare(owners, me)!(n));
    expect(mine).toEqual([[...owners].sort()[shareOf(n, 3)]]);
    expect(ownShare(['h1-9-bbbbbb'], 'h1-9-bbbbbb')).toBeUndefined();
    // An owner not (yet) among those seen has no share of its own: it only steals.
    expect(ownShare(owners, 'h4-1-dddddd')!(n)).toBe(false);
  });
});

describe('the queue with claim shares', () => {
  it('gives this daemon its own share in order first, then the others from the far end', () => {
    const queue = new TaskQueue(() => undefined);
    const names = Array.from({ length: 30 }, () => name());
    for (const n of names) queue.add(n, 'incoming', NOW);
    const mine = (n: string) => shareOf(n, 3) === 1;
    queue.setShare(mine);
    const own = names.filter(mine).sort();
    const others = names.filter((n) => !mine(n)).sort().reverse();
    expect(queue.readyCount).toBe(30);
    expect(takeAll(queue)).toEqual([...own, ...others]);
  });

  it('takes another share first when it has a better priority', () => {
    const queue = new TaskQueue(() => undefined);
    const mine = (n: string) => shareOf(n, 2) === 0;
    queue.setShare(mine);
    let urgent: string;
    do urgent = name(10);
    while (mine(urgent));
    let own: string;
    do own = name(50);
    while (!mine(own));
    queue.add(own, 'incoming', NOW);
    queue.add(urgent, 'incoming', NOW);
    expect(takeAll(queue)).toEqual([urgent, own]);
  });

  it('without shares takes every due task in name order, as before', () => {
    const queue = new TaskQueue(() => undefined);
    const names = Array.from({ length: 20 }, () => name());
    for (const n of [...names].reverse()) queue.add(n, 'incoming', NOW);
    queue.setShare((n) => shareOf(n, 2) === 0);
    queue.setShare(undefined);
    expect(takeAll(queue)).toEqual([...names].sort());
  });

  it('forgets the queued tasks of a directory that a fresh listing no longer holds', () => {
    const queue = new TaskQueue(() => undefined);
    const names = Array.from({ length: 10 }, () => name());
    for (const n of names.slice(0, 8)) queue.add(n, 'incoming', NOW);
    for (const n of names.slice(8)) queue.add(n, 'pending', NOW);
    queue.setShare((n) => shareOf(n, 2) === 0);
    const listing = new Set(names.slice(0, 3));
    expect(queue.forgetAbsent('incoming', listing)).toBe(5);
    expect(queue.hasOwnDue(NOW) || queue.readyCount > 0).toBe(true);
    expect(takeAll(queue).sort()).toEqual([...names.slice(0, 3), ...names.slice(8)].sort());
  });
});
