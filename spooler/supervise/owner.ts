/**
 * A daemon's identity and liveness. Each daemon process is an owner with its own
 * claim directory active/<id>/ and a liveness lock, proper-lockfile's lock
 * directory locks/owner-<id>.lock, whose mtime is set to the spool time
 * (spool/clock.ts; through SpoolTimeLockFs, lock-fs.ts) every stale/3.
 * Another daemon may reclaim the owner's tasks only when that lock is stale
 * (its mtime more than the stale time behind the spool clock) or gone. See spool/protocol.ts for the protocol (reclaim removes a dead owner's claim directory and lock), SPOOL-FORMAT.md "Clocks" for why the
 * lock is stamped in spool time rather than with this host's clock: a host
 * whose clock is behind stamped old times and was taken for dead while alive.
 *
 * A daemon stalled past the stale time (SIGSTOP, a VM pause) finds on resuming
 * that its lock was taken for dead: the others have reclaimed its claims and
 * removed its lock and claim directory. Its next refresh finds the lock gone,
 * and the owner is then lost for good: the daemon gives up everything it held
 * under it and rejoins as a new owner (supervise/ownership.ts). Nothing may be renamed
 * into or out of a lost owner's directory by its daemon any more; what is left
 * there is reclaimed like any dead owner's claims.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmdirSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import type { SpoolClock } from '../../spool/clock.js';
import type { SpoolLayout } from '../../spool/layout.js';
import { ownerLockPath, ownerLockTarget } from '../../spool/protocol.js';
import { SpoolTimeLockFs } from './lock-fs.js';

/** The least stale time honoured (proper-lockfile's own floor): a refresh takes a round trip or more. */
const MIN_STALE_MS = 2000;

export interface OwnerClock {
  clock: SpoolClock;
  /** Called before each refresh of the lock: the daemon samples the spool clock there. */
  beforeRefresh?: () => Promise<void>;
}

/** The held liveness lock: proper-lockfile's, stamping spool time through SpoolTimeLockFs. */
interface HeldLock {
  fs: SpoolTimeLockFs;
  unlock: () => Promise<void>;
}

async function releaseLock(lock: HeldLock | undefined): Promise<void> {
  if (lock === undefined) return;
  lock.fs.onReleased();
  // ERELEASED when proper-lockfile found it compromised meanwhile: nothing left to remove.
  await lock.unlock().catch(() => undefined);
}

export class Owner {
  private constructor(
    readonly id: string,
    readonly dir: string,
    private lock: HeldLock | undefined,
  ) {}

  /**
   * Takes the liveness lock, then creates the claim directory (in that order: a
   * claim directory without a live lock is fair game). `onLost` is called, once,
   * if the lock is lost while held.
   */
  static async acquire(layout: SpoolLayout, staleMs: number, time: OwnerClock, onLost: (err: Error) => void, mode = 0o700): Promise<Owner> {
    staleMs = Math.max(staleMs, MIN_STALE_MS);
    const updateMs = Math.max(1000, Math.floor(staleMs / 3));
    const host = hostname().replace(/[^A-Za-z0-9_.-]/g, '_') || 'host';
    const id = `${host}-${process.pid}-${randomBytes(3).toString('hex')}`;
    const sample = time.beforeRefresh ?? (() => Promise.resolve());
    const fs = new SpoolTimeLockFs(time.clock, () => sample().catch(() => undefined), updateMs);
    let owner: Owner | undefined;
    // Not an existing lock ever (mkdir, and the id is fresh); removed by proper-lockfile if this process exits holding it.
    const unlock = await lockfile.lock(ownerLockTarget(layout, id), {
      realpath: false,
      stale: staleMs,
      update: updateMs,
      fs,
      // The default throws from a timer and kills the process: the daemon rejoins instead.
      onCompromised: (err) => {
        fs.onReleased();
        if (owner === undefined || owner.lost || owner.lock?.fs !== fs) return;
        owner.lost = true;
        owner.lock = undefined;
        onLost(err);
      },
    });
    const lock: HeldLock = { fs, unlock };
    fs.onHeld();
    try {
      const dir = join(layout.active, id);
      // Not recursive: this fails rather than accept anything (a link, say) already under our fresh id.
      mkdirSync(dir, { mode });
      owner = new Owner(id, dir, lock);
    } catch (err) {
      await releaseLock(lock);
      throw err;
    }
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
    await releaseLock(lock);
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
    await releaseLock(lock);
  }
}

/**
 * Whether the owner `id` holds a fresh lock: its mtime no more than `staleMs`
 * behind the spool clock's judging time (which is never ahead of the server's).
 */
export async function isOwnerAlive(layout: SpoolLayout, id: string, staleMs: number, clock: SpoolClock): Promise<boolean> {
  try {
    const st = await lstat(ownerLockPath(layout, id));
    return st.mtimeMs >= clock.now() - Math.max(staleMs, MIN_STALE_MS);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}


