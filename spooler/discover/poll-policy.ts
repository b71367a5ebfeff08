/**
 * When to poll a directory that inotify cannot watch (fs-kind.ts), and when a
 * poll must list it. Pure logic over a clock the caller passes in, so that it
 * can be tested with a fake one; poll.ts runs it on timers.
 *
 * A poll is one stat of the directory. It lists the directory (expensive:
 * every name crosses the network) only when the directory's stamp (mtime,
 * ctime, size, inode) moved, or when an unchanged stamp does not prove that
 * nothing changed: a filesystem stamps times with a resolution (sshfs, whose
 * SFTP v3 carries whole seconds: 1 s; Linux's own filesystems: a clock tick),
 * and a file that arrives after a listing but within the same tick as the
 * change before it leaves the mtime where it was. So after the stamp changes,
 * polls keep listing until one lists it a full resolution (plus a margin)
 * after that stamp was first seen: by then the tick it names has ended, and
 * any later arrival moves the stamp. Elapsed time on this host's clock is all
 * that is compared, so a skew between this host and the server does not
 * matter.
 *
 * The pace adapts: fast (pollFastMs) while the directory changes (tasks
 * flowing, or other daemons claiming), then backing off geometrically to the
 * idle period once it has been quiet for a while. A poll that lists also
 * waits for a multiple of the listing's cost (up to the idle period), so that
 * a crowded directory on a slow mount is not listed back to back; past 1,000
 * entries the daemon stops polling and scans instead (discover/incoming.ts).
 */

/** A directory's stamp: what a stat says that moves when an entry is added or removed. */
export interface DirectoryStamp {
  mtimeMs: number;
  ctimeMs: number;
  size: number;
  ino: number;
}

export interface PollSettings {
  /** The poll period while the directory changes (ms). */
  fastMs: number;
  /** The longest poll period, reached when the directory has been quiet (ms). */
  idleMs: number;
}

/** Timestamps of whole seconds: the resolution assumed until a stamp shows a finer one. */
export const COARSE_RESOLUTION_MS = 1000;
/**
 * Finer timestamps: Linux stamps files from a clock that advances once per
 * tick (up to 10 ms at HZ=100), so a stamp can stay put for that long.
 */
export const FINE_RESOLUTION_MS = 10;
/** Added to the resolution: a stat's answer left the server a round trip ago, and clocks advance at slightly different rates. */
export const RESOLUTION_MARGIN_MS = 100;
/** The pace stays fast this long after the last change. */
export const HOT_MS = 2000;
/** Each quiet poll past the hot period waits this many times longer than the one before, up to idleMs. */
export const BACKOFF_FACTOR = 2;
/** A poll that listed waits at least this many times the listing's cost (at most the idle period): listing takes at most a fifth of the time. */
export const LISTING_COST_FACTOR = 4;

/** The stamp of a directory's stat. */
export const directoryStamp = (s: { mtimeMs: number; ctimeMs: number; size: number; ino: number }): DirectoryStamp => ({
  mtimeMs: s.mtimeMs,
  ctimeMs: s.ctimeMs,
  size: s.size,
  ino: s.ino,
});

const sameStamp = (a: DirectoryStamp, b: DirectoryStamp): boolean => a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.size === b.size && a.ino === b.ino;

/** What a poll should do with the stamp it just read. */
export interface PollDecision {
  /** List the directory now. */
  list: boolean;
  /** The stamp differs from the previous poll's: the directory changed. */
  changed: boolean;
}

/**
 * Decides, from stamps, whether a poll must list. The caller lists at once
 * when told to (the stamp was read before the listing: anything that arrives
 * after the stat moves the stamp, or falls in the same tick and is caught by
 * the listings that follow).
 */
export class ListingGate {
  private seen: DirectoryStamp | undefined;
  /** When `seen` was first read. */
  private seenSince = -Infinity;
  /** When the last listing was decided (its stamp was read then). */
  private listedAt = -Infinity;
  private fine = false;

  /** The timestamp resolution assumed so far (ms). */
  get resolutionMs(): number {
    return this.fine ? FINE_RESOLUTION_MS : COARSE_RESOLUTION_MS;
  }

  /**
   * Records a listing the caller made without asking (start-up): `stamp` was
   * read just before it, at `now`.
   */
  listed(stamp: DirectoryStamp, now: number): void {
    this.observe(stamp, now);
    this.listedAt = now;
  }

  /** A poll read `stamp` at `now`: list or not. */
  decide(stamp: DirectoryStamp, now: number): PollDecision {
    const changed = this.observe(stamp, now);
    // Until a listing starts a full resolution after the stamp appeared, a later arrival may share its tick.
    const list = changed || this.listedAt < this.seenSince + this.resolutionMs + RESOLUTION_MARGIN_MS;
    if (list) this.listedAt = now;
    return { list, changed };
  }

  private observe(stamp: DirectoryStamp, now: number): boolean {
    // One stamp with a fraction of a second shows that this filesystem keeps finer times.
    if (!this.fine && (stamp.mtimeMs % 1000 !== 0 || stamp.ctimeMs % 1000 !== 0)) this.fine = true;
    if (this.seen !== undefined && sameStamp(this.seen, stamp)) return false;
    const first = this.seen === undefined;
    this.seen = { ...stamp };
    this.seenSince = now;
    return !first;
  }
}

/** The adaptive poll period: fast while the directory changes, backing off when it is quiet. */
export class PollPace {
  private lastChange = -Infinity;
  private current: number;

  constructor(private readonly settings: PollSettings) {
    this.current = settings.fastMs;
  }

  /** The directory changed at `now`. */
  changed(now: number): void {
    this.lastChange = now;
    this.current = this.settings.fastMs;
  }

  /** How long to wait before the next poll, after one at `now` (whose listing, if any, took listingMs). */
  next(now: number, listingMs = 0): number {
    const { fastMs, idleMs } = this.settings;
    if (now - this.lastChange < HOT_MS) this.current = fastMs;
    else this.current = Math.min(idleMs, Math.max(fastMs, this.current * BACKOFF_FACTOR));
    // Capped at the idle period: one listing slowed down by a busy machine or network must not hold back pickup for long.
    return Math.max(this.current, Math.min(idleMs, LISTING_COST_FACTOR * listingMs));
  }
}
