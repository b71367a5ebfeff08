/**
 * The queue's one wake-up timer for every postponed task (spooler/order/task-queue.ts),
 * on a fake clock (test/helpers/fake-clock.ts): a postponed task becomes due at
 * its due time, not a millisecond before, and a thousand of them arm one timer.
 * The real daemon's timing is tested end to end in test/daemon-order.test.ts.
 */
import { describe, expect, it, vi } from 'vitest';
import { TaskQueue } from '../spooler/order/task-queue.js';
import { T0, useFakeClock } from './helpers/fake-clock.js';

const clock = useFakeClock();

/** A task file name (SPOOL-FORMAT.md, "File name") due at `due`, priority 50, unique by `n`. */
const nameDueAt = (due: number, n = 0): string => `50-${due}-${T0}${n.toString(16).padStart(16, '0')}-a0-echo.msgpack`;

describe('TaskQueue on a fake clock', () => {
  it('wakes the daemon when a postponed task falls due, not a millisecond before, and hands it out then', () => {
    const onDue = vi.fn();
    const queue = new TaskQueue(onDue);
    const name = nameDueAt(T0 + 1000);
    expect(queue.add(name, 'pending', clock.now())).toBe(true);
    expect(queue.nextDueAt).toBe(T0 + 1000);

    clock.advance(999);
    // Every timer due by now has run inside advance(): nothing due is a fact, not a race.
    expect(onDue).not.toHaveBeenCalled();
    expect(queue.take(clock.now())).toBeUndefined();

    clock.advance(1);
    expect(onDue).toHaveBeenCalledTimes(1);
    expect(queue.take(clock.now())).toEqual({ fileName: name, dir: 'pending' });
    expect(clock.armed()).toBe(0);
    queue.close();
  });

  it('arms one timer for a thousand postponed tasks, re-armed for the next due time as each falls due', () => {
    const onDue = vi.fn();
    const queue = new TaskQueue(onDue);
    for (let i = 0; i < 1000; i++) queue.add(nameDueAt(T0 + 1000 + (i % 10) * 100, i), 'pending', clock.now());
    expect(clock.armed()).toBe(1);
    expect(queue.nextDueAt).toBe(T0 + 1000);

    expect(clock.next()).toBe(T0 + 1000);
    expect(onDue).toHaveBeenCalledTimes(1);
    expect(queue.readyCount).toBe(100);
    expect(clock.armed()).toBe(1);
    expect(queue.nextDueAt).toBe(T0 + 1100);

    clock.advance(900);
    expect(queue.readyCount).toBe(1000);
    expect(onDue).toHaveBeenCalledTimes(10);
    expect(clock.armed()).toBe(0);
    queue.close();
  });
});
