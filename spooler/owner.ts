/**
 * A daemon's identity and liveness. Each daemon process is an owner with its own
 * claim directory active/<id>/ and a liveness lock, the directory
 * locks/owner-<id>.lock, whose mtime it sets to the spool time (spool/clock.ts)
 * every stale/3. Another daemon may reclaim the owner's tasks only when that
 * lock is stale (its mtime more than the stale time behind the spool clock) or
 * gone. See claim.ts for the protocol, SPOOL-FORMAT.md "Clocks" for why the
 * lock is stamped in spool time rather than with this host's clock: a host
 * whose clock is behind stamped old times and was taken for dead while alive.
 *
 * A daemon stalled past the stale time (SIGSTOP, a VM pause) finds on resuming
 * that its lock was taken for dead: the others have reclaimed its claims and
 * removed its lock and claim directory. Its next refresh finds the lock gone,
 * and the owner is then lost for good: the daemon gives up everything it held
 * under it and rejoins as a new owner (SpoolService). Nothing may be renamed
 * into or out of a lost owner's directory by its daemon any more; what is left
 * there is reclaimed like any dead owner's claims.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmdirSync } from 'node:fs';
import { lstat, mkdir, rmdir, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { SpoolClock } from '../spool/clock.js';
import type { SpoolLayout } from '../spool/layout.js';

/** The least stale time honoured (as proper-lockfile, which this lock replaces, did): a refresh takes a round trip or more. */
const MIN_STALE_MS = 2000;

/** Lock directories held by this process, removed if it exits without releasing them (a fatal error). */
const heldLocks = new Set<string>();
let exitHookInstalled = false;
function removeHeldLocksOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const path of heldLocks) {
      try {
        rmdirSync(path);
      } catch {
        // Gone already.
      }
    }
  });
}

export interface OwnerClock {
  clock: SpoolClock;
  /** Called before each refresh of the lock: the daemon samples the spool clock there. */
  beforeRefresh?: () => Promise<void>;
}

/**
 * The lock directory, kept fresh by a timer. Its mtime is set with utimes to
 * the spool time (the upper bound: it never looks older than it is), rounded
 * up to a whole second where the filesystem keeps only seconds (sshfs would
 * round it down).
 */
class LivenessLock {
  private timer: NodeJS.Timeout | undefined;
  private released = false;
  /** performance.now() of the last successful refresh. */
  private lastRefresh = performance.now();

  constructor(
    readonly path: string,
    private readonly staleMs: number,
    private readonly updateMs: number,
    private readonly time: OwnerClock,
    private readonly onLost: (err: Error) => void,
  ) {}

  async stamp(): Promise<void> {
    const est = this.time.clock.estimate();
    let t = this.time.clock.stampNow();
    if (est.wholeSeconds) t = Math.ceil(t / 1000) * 1000;
    await utimes(this.path, t / 1000, t / 1000);
    this.lastRefresh = performance.now();
  }

  schedule(delay = this.time.clock.delayToNextSample(this.updateMs)): void {
    if (this.released) return;
    this.timer = setTimeout(() => void this.refresh(), delay);
    // The daemon's other timers keep it alive; a lock alone should not.
    this.timer.unref();
  }

  private async refresh(): Promise<void> {
    this.timer = undefined;
    if (this.released) return;
    await this.time.beforeRefresh?.().catch(() => undefined);
    if (this.released) return;
    try {
      await this.stamp();
    } catch (err) {
      if (this.released) return;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || performance.now() - this.lastRefresh > this.staleMs) {
        return this.lose(Object.assign(new Error(`liveness lock ${this.path} is gone or could not be refreshed within the stale time`), { code: 'ECOMPROMISED', cause: err }));
      }
      // A passing error (a network filesystem hiccup): try again soon, while the lock is still fresh.
      return this.schedule(1000);
    }
    this.schedule();
  }

  private lose(err: Error): void {
    this.released = true;
    heldLocks.delete(this.path);
    this.onLost(err);
  }

  /** Stops refreshing; removes the lock directory unless `keep`. */
  async release(keep = false): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearTimeout(this.timer);
    heldLocks.delete(this.path);
    if (!keep) await rmdir(this.path).catch(() => undefined);
  }
}

export class Owner {
  private constructor(
    readonly id: string,
    readonly dir: string,
    private lock: LivenessLock | undefined,
  ) {}

  /**
   * Takes the liveness lock, then creates the claim directory (in that order: a
   * claim directory without a live lock is fair game). `onLost` is called, once,
   * if the lock is lost while held.
   */
  static async acquire(layout: SpoolLayout, staleMs: number, time: OwnerClock, onLost: (err: Error) => void, mode = 0o700): Promise<Owner> {
    staleMs = Math.max(staleMs, MIN_STALE_MS);
    const host = hostname().replace(/[^A-Za-z0-9_.-]/g, '_') || 'host';
    const id = `${host}-${process.pid}-${randomBytes(3).toString('hex')}`;
    let owner: Owner | undefined;
    const lock = new LivenessLock(lockPath(layout, id), staleMs, Math.max(1000, Math.floor(staleMs / 3)), time, (err) => {
      if (owner === undefined || owner.lost) return;
      owner.lost = true;
      owner.lock = undefined;
      onLost(err);
    });
    // Not recursive, and never an existing one: the id is fresh.
    await mkdir(lock.path);
    heldLocks.add(lock.path);
    removeHeldLocksOnExit();
    try {
      await lock.stamp();
      const dir = join(layout.active, id);
      // Not recursive: this fails rather than accept anything (a link, say) already under our fresh id.
      mkdirSync(dir, { mode });
      owner = new Owner(id, dir, lock);
    } catch (err) {
      await lock.release();
      throw err;
    }
    lock.schedule();
    return owner;
  }

  /** Set once the lock was lost: this owner's claims may be reclaimed, and it must not touch them. */
  lost = false;

  /**
   * Gives the owner up without touching its claims (its claim directory was
   * found gone): the lock goes too, if it is still ours, so that whatever is
   * left under this owner is reclaimed. No onLost call follows.
   */
  async abandon(): Promise<void> {
    this.lost = true;
    const lock = this.lock;
    this.lock = undefined;
    await lock?.release();
  }

  /** Removes the claim directory (it must be empty) and releases the lock. Nothing for a lost owner: its leftovers are reclaimed. */
  async release(): Promise<void> {
    if (this.lost) return;
    try {
      rmdirSync(this.dir);
    } catch {
      // Not empty: whatever is left is reclaimed by the next daemon once the lock is gone.
    }
    const lock = this.lock;
    this.lock = undefined;
    await lock?.release();
  }
}

/**
 * Whether the owner `id` holds a fresh lock: its mtime no more than `staleMs`
 * behind the spool clock's judging time (which is never ahead of the server's).
 */
export async function isOwnerAlive(layout: SpoolLayout, id: string, staleMs: number, clock: SpoolClock): Promise<boolean> {
  try {
    const st = await lstat(lockPath(layout, id));
    return st.mtimeMs >= clock.now() - Math.max(staleMs, MIN_STALE_MS);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

const lockPath = (layout: SpoolLayout, id: string): string => join(layout.locks, `owner-${id}.lock`);

/** Removes a dead owner's lock directory once its claims are reclaimed. */
export function removeOwnerLock(layout: SpoolLayout, id: string): void {
  try {
    rmdirSync(lockPath(layout, id));
  } catch {
    // Already gone, or taken over meanwhile.
  }
}
