/**
 * The spool clock (spool/clock.ts; SPOOL-FORMAT.md, "Clocks"): how samples
 * bound the offset between this host's clock and the filesystem server's, and
 * which end of the bounds each use takes.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLOCK_SAMPLE_PREFIX, sampleClock, sampleClockSync, SpoolClock } from '../spool/clock.js';

describe('SpoolClock', () => {
  it('goes by the local clock until sampled, and when the bounds contain 0', () => {
    const clock = new SpoolClock();
    expect(clock.estimate()).toEqual(expect.objectContaining({ judgeOffset: 0, stampOffset: 0, samples: 0 }));
    expect(clock.add({ lo: -400, hi: 610, subSecond: false })).toBe(true);
    expect(clock.estimate()).toEqual(expect.objectContaining({ judgeOffset: 0, stampOffset: 0, wholeSeconds: true }));
    const before = Date.now();
    const now = clock.now();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
  });

  it('judges by the lower bound and stamps by the upper one when the bounds exclude 0', () => {
    const clock = new SpoolClock();
    // A host 30 s fast: the server's times are 30 s behind its own.
    clock.add({ lo: -30_600, hi: -29_590, subSecond: false });
    expect(clock.estimate()).toEqual(expect.objectContaining({ lo: -30_600, hi: -29_590, judgeOffset: -30_600, stampOffset: -29_590 }));
    const local = Date.now();
    expect(clock.now()).toBeLessThanOrEqual(Date.now() - 30_600);
    expect(clock.now()).toBeGreaterThanOrEqual(local - 30_600);
    expect(clock.stampNow()).toBeGreaterThanOrEqual(local - 29_590);
    expect(clock.toSpoolStamp(1_000_000)).toBe(1_000_000 - 29_590);
  });

  it('narrows to the intersection of its samples', () => {
    const clock = new SpoolClock();
    clock.add({ lo: 29_400, hi: 30_410, subSecond: false });
    clock.add({ lo: 29_900, hi: 30_910, subSecond: false });
    clock.add({ lo: 28_990, hi: 30_005, subSecond: false });
    expect(clock.estimate()).toEqual(expect.objectContaining({ lo: 29_900, hi: 30_005, judgeOffset: 29_900, stampOffset: 30_005, samples: 3 }));
  });

  it('drops older samples that a new one contradicts (a clock was stepped)', () => {
    const clock = new SpoolClock();
    clock.add({ lo: -5, hi: 5, subSecond: true });
    clock.add({ lo: -3, hi: 7, subSecond: true });
    expect(clock.add({ lo: 59_995, hi: 60_004, subSecond: true })).toBe(false);
    expect(clock.estimate()).toEqual(expect.objectContaining({ lo: 59_995, hi: 60_004, samples: 1, judgeOffset: 59_995, wholeSeconds: false }));
  });

  it('aims samples at a turn of the server second only where times are whole seconds and the bounds are wide', () => {
    const clock = new SpoolClock();
    expect(clock.delayToNextSample(3000)).toBe(3000);
    clock.add({ lo: 200, hi: 1210, subSecond: false });
    for (let i = 0; i < 50; i++) {
      const at = Date.now();
      const delay = clock.delayToNextSample(3000);
      expect(delay).toBeGreaterThanOrEqual(1500);
      expect(delay).toBeLessThanOrEqual(3000);
      // The server's second turns at that moment for some offset within the bounds (+ the ms this loop took).
      const turn = (o: number) => (((at + delay + o) % 1000) + 1000) % 1000;
      expect(Array.from({ length: 1011 }, (_, k) => 200 + k).some((o) => turn(o) <= 3 || turn(o) >= 997)).toBe(true);
    }
    const fine = new SpoolClock();
    fine.add({ lo: -3, hi: 12, subSecond: true });
    expect(fine.delayToNextSample(3000)).toBe(3000);
  });
});

describe('sampling on a local disk', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('finds this host agreeing with its own disk, and leaves no file behind', async () => {
    dir = mkdtempSync(join(tmpdir(), 'spoolerd-clock-'));
    for (const sample of [sampleClockSync(dir), await sampleClock(dir)]) {
      // The kernel stamps with a coarse clock: up to a tick behind, never ahead of the moment of the create.
      expect(sample.lo).toBeLessThanOrEqual(0);
      expect(sample.hi).toBeGreaterThanOrEqual(0);
      expect(sample.hi - sample.lo).toBeLessThan(1000);
    }
    const clock = new SpoolClock();
    clock.add(sampleClockSync(dir));
    clock.add(await sampleClock(dir));
    expect(clock.estimate()).toEqual(expect.objectContaining({ judgeOffset: 0, stampOffset: 0 }));
    expect(readdirSync(dir).filter((n) => n.startsWith(CLOCK_SAMPLE_PREFIX))).toEqual([]);
  });
});
