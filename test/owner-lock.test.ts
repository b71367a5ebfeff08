/**
 * The liveness lock (spooler/owner.ts): proper-lockfile's lock, stamped in
 * spool time through SpoolTimeLockFs (spooler/supervise/lock-fs.ts; SPOOL-FORMAT.md,
 * "Clocks"). With the spool clock 30 s off this host's, the lock's mtime on
 * disk is the spool time, proper-lockfile keeps refreshing it without taking
 * it for compromised, and does report it once the lock directory is removed.
 */
import { lstatSync, mkdirSync, mkdtempSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SpoolClock } from '../spool/clock.js';
import { SpoolLayout } from '../spool/layout.js';
import { isOwnerAlive, Owner } from '../spooler/supervise/owner.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function layout(): SpoolLayout {
  const root = mkdtempSync(join(tmpdir(), 'spoolerd-owner-lock-'));
  dirs.push(root);
  const l = new SpoolLayout(root);
  mkdirSync(l.active);
  mkdirSync(l.locks);
  return l;
}

/** A spool clock `offsetMs` off the local clock, known within ±2 ms (as samples would tell it). */
function clockOff(offsetMs: number): SpoolClock {
  const clock = new SpoolClock();
  clock.add({ lo: offsetMs - 2, hi: offsetMs + 2, subSecond: true });
  return clock;
}

async function until<T>(what: string, get: () => T | undefined, timeoutMs = 8000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('the liveness lock, stamped in spool time', () => {
  for (const offsetMs of [30_000, -30_000]) {
    it(`spool clock ${offsetMs > 0 ? '+' : ''}${offsetMs / 1000} s: the lock's mtime is the spool time; refreshes are not taken for a compromise; a removed lock is`, { timeout: 20_000 }, async () => {
      const l = layout();
      const clock = clockOff(offsetMs);
      let samples = 0;
      const lost: Error[] = [];
      const owner = await Owner.acquire(l, 2000, { clock, beforeRefresh: async () => void samples++ }, (err) => lost.push(err));
      const lockDir = join(l.locks, `owner-${owner.id}.lock`);
      const mtimeOf = (): number => lstatSync(lockDir).mtimeMs;

      // The stamp at acquisition (proper-lockfile's precision probe) is in spool time too, at most a second ahead.
      const first = mtimeOf();
      expect(first).toBeGreaterThanOrEqual(Date.now() + offsetMs - 100);
      expect(first).toBeLessThanOrEqual(Date.now() + offsetMs + 1100);

      // Several refreshes (every second at this stale time), each stamped with the spool time and each preceded by a sample.
      let last = first;
      for (let i = 0; i < 3; i++) {
        const seen = await until(`refresh ${i + 1}`, () => {
          const m = mtimeOf();
          return m !== last ? m : undefined;
        });
        const now = Date.now() + offsetMs;
        expect(seen, `refresh ${i + 1}`).toBeGreaterThanOrEqual(now - 200);
        expect(seen, `refresh ${i + 1}`).toBeLessThanOrEqual(now + 10);
        expect(samples).toBeGreaterThanOrEqual(i + 1);
        last = seen;
      }
      expect(lost).toEqual([]);
      expect(await isOwnerAlive(l, owner.id, 2000, clock)).toBe(true);
      expect(owner.lost).toBe(false);

      // Someone removes the lock (a peer took this owner for dead): the next refresh reports it.
      rmdirSync(lockDir);
      await until('the lock reported lost', () => (lost.length > 0 ? true : undefined), 5000);
      expect(lost).toHaveLength(1);
      expect((lost[0] as NodeJS.ErrnoException).code).toBe('ECOMPROMISED');
      expect(owner.lost).toBe(true);
      await owner.release();
    });
  }

  it('removes the lock directory on release, and another owner judges it by the spool clock', { timeout: 10_000 }, async () => {
    const l = layout();
    const clock = clockOff(-30_000);
    const owner = await Owner.acquire(l, 2000, { clock }, () => undefined);
    const lockDir = join(l.locks, `owner-${owner.id}.lock`);
    // Judged by a peer whose clock is the local one, the lock stamped 30 s behind looks stale; by the spool clock it is fresh.
    expect(await isOwnerAlive(l, owner.id, 2000, new SpoolClock())).toBe(false);
    expect(await isOwnerAlive(l, owner.id, 2000, clock)).toBe(true);
    await owner.release();
    expect(() => lstatSync(lockDir)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(await isOwnerAlive(l, owner.id, 2000, clock)).toBe(false);
  });
});
