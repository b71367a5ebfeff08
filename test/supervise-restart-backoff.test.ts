/** The delay before a runner process that died is replaced (spooler/supervise/restart-backoff.ts). */
import { describe, expect, it } from 'vitest';
import { RESTART_HEALTHY_MS, RestartBackoff } from '../spooler/supervise/restart-backoff.js';

describe('RestartBackoff', () => {
  it('replaces a runner that died soon after it started after 100 ms, doubling, at most 10 s', () => {
    const b = new RestartBackoff();
    const delays = Array.from({ length: 9 }, () => b.delayAfter({ killed: false, starting: false, livedMs: 10 }));
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
  });

  it('counts a runner that died while starting as an early death, however long it took', () => {
    const b = new RestartBackoff();
    expect(b.delayAfter({ killed: false, starting: true, livedMs: 60_000 })).toBe(100);
    expect(b.delayAfter({ killed: false, starting: true, livedMs: 60_000 })).toBe(200);
  });

  it('replaces at once after a healthy life, and starts the delays over', () => {
    const b = new RestartBackoff();
    b.delayAfter({ killed: false, starting: false, livedMs: 10 });
    b.delayAfter({ killed: false, starting: false, livedMs: 10 });
    expect(b.delayAfter({ killed: false, starting: false, livedMs: RESTART_HEALTHY_MS })).toBe(0);
    expect(b.delayAfter({ killed: false, starting: false, livedMs: 10 })).toBe(100);
  });

  it('replaces a runner the daemon killed (a timeout) at once, without counting it', () => {
    const b = new RestartBackoff();
    b.delayAfter({ killed: false, starting: false, livedMs: 10 });
    expect(b.delayAfter({ killed: true, starting: false, livedMs: 10 })).toBe(0);
    expect(b.delayAfter({ killed: false, starting: false, livedMs: 10 })).toBe(200);
  });

  it('starts the delays over once a runner finishes tasks', () => {
    const b = new RestartBackoff();
    b.delayAfter({ killed: false, starting: false, livedMs: 10 });
    b.delayAfter({ killed: false, starting: false, livedMs: 10 });
    b.healthy();
    expect(b.delayAfter({ killed: false, starting: false, livedMs: 10 })).toBe(100);
  });
});
