/**
 * A daemon's identity and liveness. Each daemon process is an owner with its own
 * claim directory active/<id>/ and a proper-lockfile lock locks/owner-<id>.lock
 * whose mtime it refreshes every stale/3. Another daemon may reclaim the
 * owner's tasks only when that lock is stale (not refreshed for the stale time)
 * or gone. See claim.ts for the protocol.
 *
 * A daemon stalled past the stale time (SIGSTOP, a VM pause, a clock off by
 * that much) finds on resuming that its lock was taken for dead: the others
 * have reclaimed its claims and removed its lock and claim directory.
 * proper-lockfile reports that through onCompromised, and the owner is then
 * lost for good: the daemon gives up everything it held under it and rejoins
 * as a new owner (SpoolService). Nothing may be renamed into or out of a lost
 * owner's directory by its daemon any more; what is left there is reclaimed
 * like any dead owner's claims.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import type { SpoolLayout } from '../spool/layout.js';

export class Owner {
  private constructor(
    readonly id: string,
    readonly dir: string,
    private unlock: (() => Promise<void>) | undefined,
  ) {}

  /**
   * Takes the liveness lock, then creates the claim directory (in that order: a
   * claim directory without a live lock is fair game). `onLost` is called, once,
   * if the lock is lost while held.
   */
  static async acquire(layout: SpoolLayout, staleMs: number, onLost: (err: Error) => void, mode = 0o700): Promise<Owner> {
    const host = hostname().replace(/[^A-Za-z0-9_.-]/g, '_') || 'host';
    const id = `${host}-${process.pid}-${randomBytes(3).toString('hex')}`;
    let owner: Owner | undefined;
    const unlock = await lockfile.lock(lockTarget(layout, id), {
      realpath: false,
      stale: staleMs,
      update: Math.max(1000, Math.floor(staleMs / 3)),
      // The default throws from a timer and kills the process: the daemon rejoins instead.
      onCompromised: (err) => {
        if (owner === undefined || owner.lost) return;
        owner.lost = true;
        owner.unlock = undefined;
        onLost(err);
      },
    });
    const dir = join(layout.active, id);
    // Not recursive: this fails rather than accept anything (a link, say) already under our fresh id.
    mkdirSync(dir, { mode });
    owner = new Owner(id, dir, unlock);
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
    const unlock = this.unlock;
    this.unlock = undefined;
    await unlock?.().catch(() => undefined);
  }

  /** Removes the claim directory (it must be empty) and releases the lock. Nothing for a lost owner: its leftovers are reclaimed. */
  async release(): Promise<void> {
    if (this.lost) return;
    try {
      rmdirSync(this.dir);
    } catch {
      // Not empty: whatever is left is reclaimed by the next daemon once the lock is gone.
    }
    const unlock = this.unlock;
    this.unlock = undefined;
    await unlock?.().catch(() => undefined);
  }
}

/** Whether the owner `id` holds a fresh lock. */
export async function isOwnerAlive(layout: SpoolLayout, id: string, staleMs: number): Promise<boolean> {
  return lockfile.check(lockTarget(layout, id), { realpath: false, stale: staleMs });
}

const lockTarget = (layout: SpoolLayout, id: string): string => join(layout.locks, `owner-${id}`);

/** Removes a dead owner's lock directory once its claims are reclaimed. */
export function removeOwnerLock(layout: SpoolLayout, id: string): void {
  try {
    rmdirSync(lockTarget(layout, id) + '.lock');
  } catch {
    // Already gone, or taken over meanwhile.
  }
}
