/**
 * A fake clock for unit tests of the daemon's parts (a queue's due timer, a
 * supervisor's timeouts, a discovery mode's scan schedule): vitest's fake
 * timers (vi.useFakeTimers), which replace setTimeout, setInterval,
 * setImmediate and Date together, so a part that reads Date.now() and arms a
 * timer sees one consistent time that moves only when the test moves it.
 *
 *   const clock = useFakeClock();               // per test, from T0
 *   const queue = new TaskQueue(onDue);          // its Date.now() is the fake one
 *   clock.advance(999);  expect(onDue).not.toHaveBeenCalled();
 *   clock.advance(1);    expect(onDue).toHaveBeenCalledOnce();
 *
 * Here "nothing happened" after advance(999) is a sound assertion: every timer
 * due by then has run, synchronously, inside advance(). Real processes
 * (test/helpers/daemon.ts) keep real time; this is for code in the test's own
 * process only. process.nextTick and queueMicrotask stay real, so promises
 * still settle (use advanceAsync where a timer callback awaits).
 */
import { afterEach, beforeEach, vi } from 'vitest';

/** A whole second, well after any real file's timestamps, so a test's times read easily: T0 + 1500. */
export const T0 = 1_800_000_000_000;

export interface FakeClock {
  /** The fake Date.now(). */
  now(): number;
  /** Moves time on by `ms`, running every timer due by then, in order. */
  advance(ms: number): void;
  /** advance(), letting promises settle between the timers (for timer callbacks that await). */
  advanceAsync(ms: number): Promise<void>;
  /** Moves time to the next armed timer and runs it; returns the new now. */
  next(): number;
  /** How many timers are armed (0: the part under test left nothing behind). */
  armed(): number;
}

const FAKED = ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'clearImmediate', 'Date'] as const;

/** Installs the fake clock before each test (time starts at `start`) and puts the real one back after it. */
export function useFakeClock(start = T0): FakeClock {
  beforeEach(() => {
    vi.useFakeTimers({ now: start, toFake: [...FAKED] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  return {
    now: () => Date.now(),
    advance: (ms) => {
      vi.advanceTimersByTime(ms);
    },
    advanceAsync: async (ms) => {
      await vi.advanceTimersByTimeAsync(ms);
    },
    next: () => {
      vi.advanceTimersToNextTimer();
      return Date.now();
    },
    armed: () => vi.getTimerCount(),
  };
}
