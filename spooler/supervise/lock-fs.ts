import { lstat, mkdir, rmdir, rmdirSync, utimes, type Stats } from 'node:fs';
import type { SpoolClock } from '../../spool/clock.js';

type Done = (err: NodeJS.ErrnoException | null) => void;
/** What proper-lockfile reads of a stat: the mtime. */
type LockStat = Pick<Stats, 'mtime' | 'mtimeMs'>;

/** proper-lockfile's precision probe stamps a time this far past a whole second, to see whether the filesystem keeps it. */
const PROBE_PAST_SECOND_MS = 5;

const ceilToSecond = (ms: number): number => Math.ceil(ms / 1000) * 1000;

/**
 * Why this exists: proper-lockfile stamps a lock's mtime with this host's clock
 * (utimes to `new Date()`), but hosts sharing a network spool may disagree
 * about the time, and a host whose clock is behind stamps old times and is
 * taken for dead while alive (SPOOL-FORMAT.md, "Clocks"). Given to
 * proper-lockfile as its `fs` option, this writes the spool time instead (the
 * stamping end, SpoolClock.stampNow(); rounded up to a whole second when
 * proper-lockfile asks for whole seconds, as on sshfs, where the filesystem
 * would round it down), and reports that mtime back as the local time
 * proper-lockfile asked for, so that its check that the lock still bears the
 * mtime it set (else: compromised) holds exactly while nobody else touched the
 * lock. It also samples the spool clock before each refresh's stamp.
 *
 * The calls proper-lockfile 4 makes (lib/lockfile.js, lib/mtime-precision.js),
 * with realpath off: mkdir, stat, utimes, rmdir, and rmdirSync at exit.
 */
export class SpoolTimeLockFs {
  /** Per lock path: the time proper-lockfile last asked utimes for, and the spool time written instead. */
  private readonly stamped = new Map<string, { asked: number; wrote: number }>();
  /** Set once proper-lockfile holds the lock: from then on each stat begins a refresh. */
  private held = false;
  private released = false;
  private aimTimer: NodeJS.Timeout | undefined;
  private aimedSample: Promise<void> | undefined;

  /**
   * @param sample takes a sample of the spool clock (never rejects); awaited before each refresh's stamp
   * @param updateMs proper-lockfile's refresh interval
   */
  constructor(
    private readonly clock: SpoolClock,
    private readonly sample: () => Promise<void>,
    private readonly updateMs: number,
  ) {}

  /** proper-lockfile holds the lock: refreshes begin. */
  onHeld(): void {
    this.held = true;
    this.aimNextSample();
  }

  /** The lock is being released (or was lost): no more samples for it. */
  onReleased(): void {
    this.released = true;
    clearTimeout(this.aimTimer);
    this.aimedSample = undefined;
  }

  readonly mkdir = (path: string, done: Done): void => mkdir(path, done);

  readonly rmdir = (path: string, done: Done): void => {
    this.stamped.delete(path);
    rmdir(path, done);
  };

  readonly rmdirSync = (path: string): void => {
    this.stamped.delete(path);
    rmdirSync(path);
  };

  /** lstat, never following a link; the mtime we wrote is reported as the time proper-lockfile asked for. */
  readonly stat = (path: string, done: (err: NodeJS.ErrnoException | null, st?: LockStat) => void): void => {
    void this.sampleBeforeRefresh().then(() =>
      lstat(path, (err, st) => {
        if (err) return done(err);
        const last = this.stamped.get(path);
        if (last === undefined || Math.round(st.mtimeMs) !== last.wrote) return done(null, st);
        done(null, { ...st, mtime: new Date(last.asked), mtimeMs: last.asked });
      }),
    );
  };

  readonly utimes = (path: string, _atime: Date, mtime: Date, done: Done): void => {
    const asked = mtime.getTime();
    const wrote = this.spoolStamp(asked);
    const at = new Date(wrote);
    utimes(path, at, at, (err) => {
      if (err) return done(err);
      this.stamped.set(path, { asked, wrote });
      if (this.held) this.aimNextSample();
      done(null);
    });
  };

  private spoolStamp(asked: number): number {
    const now = this.clock.stampNow();
    // Before the lock is held the only utimes is the precision probe: keep its "not on the second" part, in spool time.
    if (!this.held) return ceilToSecond(now) + PROBE_PAST_SECOND_MS;
    return asked % 1000 === 0 ? ceilToSecond(now) : now;
  }

  /**
   * Where the filesystem keeps whole seconds, the clock wants its samples at
   * chosen moments (SpoolClock.delayToNextSample): one is taken then, before
   * the next refresh, and that refresh uses it; otherwise the refresh samples.
   */
  private aimNextSample(): void {
    clearTimeout(this.aimTimer);
    this.aimTimer = undefined;
    if (this.released) return;
    const delay = this.clock.delayToNextSample(this.updateMs);
    if (delay >= this.updateMs) return;
    this.aimTimer = setTimeout(() => {
      this.aimTimer = undefined;
      if (!this.released) this.aimedSample = this.sample();
    }, delay);
    this.aimTimer.unref();
  }

  private sampleBeforeRefresh(): Promise<void> {
    if (!this.held || this.released) return Promise.resolve();
    clearTimeout(this.aimTimer);
    this.aimTimer = undefined;
    const sampled = this.aimedSample ?? this.sample();
    this.aimedSample = undefined;
    return sampled;
  }
}
