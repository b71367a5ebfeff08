/**
 * A daemon's identity and liveness. Each daemon process is an owner with its own
 * claim directory active/<id>/ and a proper-lockfile lock locks/owner-<id>.lock
 * whose mtime it refreshes every stale/3. Another daemon may reclaim the
 * owner's tasks only when that lock is stale (not refreshed for the stale time)
 * or gone. See claim.ts for the protocol.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import type { SpoolLayout } from '../spool/layout.js';
import type { Logger } from './logger.js';

export class Owner {
  private constructor(
    readonly id: string,
    readonly dir: string,
    private unlock: (() => Promise<void>) | undefined,
  ) {}

  /** Takes the liveness lock, then creates the claim directory (in that order: a claim directory without a live lock is fair game). */
  static async acquire(layout: SpoolLayout, staleMs: number, log: Logger, mode = 0o700): Promise<Owner> {
    const host = hostname().replace(/[^A-Za-z0-9_.-]/g, '_') || 'host';
    const id = `${host}-${process.pid}-${randomBytes(3).toString('hex')}`;
    const unlock = await lockfile.lock(lockTarget(layout, id), {
      realpath: false,
      stale: staleMs,
      update: Math.max(1000, Math.floor(staleMs / 3)),
      // The default throws from a timer and kills the process. Losing the lock means we
      // were stalled past the stale time and others may re-run our tasks: say so and go on.
      onCompromised: (err) => log.error('liveness lock lost: tasks claimed by this daemon may be run again by another one', { owner: id, err }),
    });
    const dir = join(layout.active, id);
    // Not recursive: this fails rather than accept anything (a link, say) already under our fresh id.
    mkdirSync(dir, { mode });
    return new Owner(id, dir, unlock);
  }

  /** Removes the claim directory (it must be empty) and releases the lock. */
  async release(): Promise<void> {
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
