/**
 * The spool clock: the time of the filesystem that holds the spool, as its
 * server stamps it on a file that is created there. Hosts sharing a spool over
 * a network filesystem may disagree about the time; they all agree on the
 * server's. Due times in task names, liveness lock times and staleness are in
 * spool time (SPOOL-FORMAT.md, "Clocks").
 *
 * A sample creates a new file in tmp/, reads its mtime back and removes it.
 * The server stamped that mtime at some instant between the local clock's t0
 * (before the create) and t1 (after the stat), so the offset (spool time minus
 * local time) lies in [mtime - t1, mtime + resolution - t0]: the resolution is
 * how much the stamp may lag the server's real time (1 s where the filesystem
 * keeps whole seconds, as sshfs does; a kernel timer tick elsewhere). Every
 * sample's interval contains the true offset, so the intersection of recent
 * samples does too, and narrows as samples fall at different places in the
 * server's second (SpoolClock.delayToNextSample() aims them). An empty
 * intersection means a clock was stepped: the older samples are dropped.
 *
 * Which end of the interval to use depends on the error that is safe:
 *  - judging (is a task due? is another daemon's lock stale?) uses the lower
 *    end: this host's idea of spool time is never ahead of the server's, so
 *    nothing starts early and no live peer is judged stale early;
 *  - stamping (a due time or lock time others will judge) uses the upper end:
 *    a task is never due earlier than asked, a lock never looks older than it is.
 * When the interval contains 0 the local clock agrees with the spool's as far as
 * can be measured, and both are the local clock unchanged (a local disk always).
 */
import { closeSync, constants, fstatSync, openSync, unlinkSync } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { sep } from 'node:path';

/** How far a server's file time may lag its clock where it keeps sub-second times (a coarse kernel tick, generously). */
const TICK_MS = 10;
/** Samples kept: about a minute of a daemon's liveness refreshes. */
const WINDOW = 16;
/** Below this width the interval is as narrow as round trips allow: samples need no aiming. */
const NARROW_MS = 20;

const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;

export interface ClockSample {
  /** Bounds of the offset (spool time - local time), ms. */
  lo: number;
  hi: number;
  /** Whether the filesystem stamped a time with a sub-second part. */
  subSecond: boolean;
}

/** What the clock knows: the offset interval and the offsets it uses. */
export interface ClockEstimate {
  /** Bounds of the offset (spool time - local time), ms; the true offset lies between. */
  lo: number;
  hi: number;
  /** Added to the local clock to judge (lower bound, or 0 when the clocks agree). */
  judgeOffset: number;
  /** Added to the local clock to stamp times others judge (upper bound, or 0). */
  stampOffset: number;
  /** Whether the filesystem keeps only whole seconds (sshfs): a sample then tells the offset within 1 s. */
  wholeSeconds: boolean;
  samples: number;
}

/** The name of a clock sample file in tmp/: a dot-name, never taken for a task. */
export const CLOCK_SAMPLE_PREFIX = '.clock-';

function samplePath(tmpDir: string): string {
  return tmpDir + sep + CLOCK_SAMPLE_PREFIX + randomBytes(6).toString('hex');
}

function toSample(mtimeMs: number, t0: number, t1: number): ClockSample {
  const subSecond = mtimeMs % 1000 !== 0;
  // A stamp may lag the server's clock by a tick, and by the dropped fraction of a second where only seconds are kept.
  const resolution = (subSecond ? 0 : 1000) + TICK_MS;
  return { lo: mtimeMs - t1, hi: mtimeMs + resolution - t0, subSecond };
}

/** One sample, with synchronous calls (producers: enqueue is synchronous file work anyway). */
export function sampleClockSync(tmpDir: string): ClockSample {
  const path = samplePath(tmpDir);
  const t0 = Date.now();
  const fd = openSync(path, CREATE_NEW, 0o600);
  let mtime: number;
  try {
    mtime = fstatSync(fd).mtimeMs;
  } finally {
    closeSync(fd);
  }
  const t1 = Date.now();
  try {
    unlinkSync(path);
  } catch {
    // Left for the daemon's sweep of old files in tmp/.
  }
  return toSample(Math.floor(mtime), t0, t1);
}

/** One sample without blocking the event loop (the daemon). */
export async function sampleClock(tmpDir: string): Promise<ClockSample> {
  const path = samplePath(tmpDir);
  const t0 = Date.now();
  const file = await open(path, CREATE_NEW, 0o600);
  let mtime: number;
  try {
    mtime = (await file.stat()).mtimeMs;
  } finally {
    await file.close();
  }
  const t1 = Date.now();
  await unlink(path).catch(() => undefined);
  return toSample(Math.floor(mtime), t0, t1);
}

export class SpoolClock {
  private samples: ClockSample[] = [];
  private lo = -Infinity;
  private hi = Infinity;
  private subSecondSeen = false;
  /** Added to Date.now() to judge; 0 until a sample says otherwise. */
  private judgeOffset = 0;
  private stampOffset = 0;

  /** Spool time for judging: never ahead of the server's clock (as far as measured). */
  now(): number {
    return Date.now() + this.judgeOffset;
  }

  /** Spool time for a time others will judge (a due time, a lock time): never behind the server's clock. */
  stampNow(): number {
    return Date.now() + this.stampOffset;
  }

  /** stampNow() at the instant a now() call returned `judged`: a task's id and its due time read the clock once. */
  stampAt(judged: number): number {
    return judged - this.judgeOffset + this.stampOffset;
  }

  /** Converts a time read from this host's clock (a Date a user passed) into spool time, for stamping. */
  toSpoolStamp(localMs: number): number {
    return localMs + this.stampOffset;
  }

  get measured(): boolean {
    return this.samples.length > 0;
  }

  estimate(): ClockEstimate {
    return {
      lo: this.lo,
      hi: this.hi,
      judgeOffset: this.judgeOffset,
      stampOffset: this.stampOffset,
      wholeSeconds: !this.subSecondSeen,
      samples: this.samples.length,
    };
  }

  /** Takes a sample into account. Returns false when it contradicted the older ones (a clock was stepped): they were dropped. */
  add(sample: ClockSample): boolean {
    if (sample.subSecond) this.subSecondSeen = true;
    this.samples.push(sample);
    if (this.samples.length > WINDOW) this.samples.shift();
    // The intersection from the newest back, as far as it stays consistent.
    let lo = -Infinity;
    let hi = Infinity;
    let kept = 0;
    for (let i = this.samples.length - 1; i >= 0; i--) {
      const s = this.samples[i]!;
      const nlo = Math.max(lo, s.lo);
      const nhi = Math.min(hi, s.hi);
      if (nlo > nhi) break;
      lo = nlo;
      hi = nhi;
      kept++;
    }
    const consistent = kept === this.samples.length;
    if (!consistent) this.samples = this.samples.slice(this.samples.length - kept);
    this.lo = lo;
    this.hi = hi;
    const agree = lo <= 0 && hi >= 0;
    this.judgeOffset = agree ? 0 : Math.floor(lo);
    this.stampOffset = agree ? 0 : Math.ceil(hi);
    return consistent;
  }

  /**
   * When to take the next sample, at most `maxMs` from now: where the
   * filesystem keeps whole seconds and the offset is not yet known closely,
   * a moment at which the server's clock is expected to turn a second
   * somewhere inside the current interval, so that the sample cuts it.
   * Otherwise `maxMs`. Never less than half of `maxMs`.
   */
  delayToNextSample(maxMs: number): number {
    if (this.subSecondSeen || !this.measured || this.hi - this.lo <= NARROW_MS) return maxMs;
    const guess = this.lo + Math.random() * (this.hi - this.lo);
    const at = Date.now() + maxMs;
    const past = (((at + guess) % 1000) + 1000) % 1000;
    let delay = maxMs - past;
    while (delay < maxMs / 2) delay += 1000;
    return delay > maxMs ? maxMs : Math.max(0, Math.round(delay));
  }
}
