/**
 * The owners serving this spool (their claim directories in active/), which
 * split the due tasks into claim shares (claim-shares.ts). Looked at by every
 * reconciliation scan (reconcile.ts), and again after a lost claim race.
 */
import type { Logger } from '../logger.js';
import { ownShare } from '../order/claim-shares.js';
import type { QueueFeed } from './feed.js';

/** Beside other daemons, a lost claim race makes the daemon look at the owners serving the spool again, at most this often. */
const PEER_LOOK_MIN_MS = 1000;

export interface PeersHost {
  readonly log: Logger;
  readonly feed: QueueFeed;
  /** This daemon's owner id (undefined while it has none: starting, or rejoining). */
  ownerId(): string | undefined;
  /** The names in active/ (throws when it cannot be listed). */
  listActive(): string[];
  stopped(): boolean;
}

export class Peers {
  /** The owners serving this spool as last seen, ours included, sorted. */
  private live: string[] = [];
  /** Owners the last scan found dead (their lock stale or gone), left out until their directory goes. */
  readonly dead = new Set<string>();
  private lastLook = 0;
  /** Another daemon's claim directory was seen here once: claim batches start at a random place. */
  shared = false;
  /** Whether another daemon has served this spool since pending/ was last read: only then can pending/ hold tasks we do not know. */
  othersSeen = false;

  constructor(private readonly host: PeersHost) {}

  /** The live owners, ours included, sorted. */
  get ids(): readonly string[] {
    return this.live;
  }

  /** An owner other than us has a claim directory (seen by a scan). */
  sawOther(): void {
    this.othersSeen = true;
    this.shared = true;
  }

  /**
   * Another daemon won a claim of ours: the owners may have changed since we
   * last looked (one started), so look again, at most once a second (one
   * listing of active/). Owners found dead by the last scan stay out.
   */
  lookAgain(): void {
    const now = Date.now();
    if (now - this.lastLook < PEER_LOOK_MIN_MS || this.host.stopped()) return;
    try {
      this.set(this.host.listActive());
    } catch (err) {
      this.host.log.debug('cannot list active/ for the owners serving this spool', { err: (err as Error).message });
    }
  }

  /** Splits the due tasks into claim shares among the live owners in `ids`. */
  set(ids: readonly string[]): void {
    this.lastLook = Date.now();
    const me = this.host.ownerId();
    if (me === undefined) return;
    const live = ids.filter((id) => !this.dead.has(id) && id.charCodeAt(0) !== 46 /* "." */);
    if (!live.includes(me)) live.push(me);
    live.sort();
    if (live.length === this.live.length && live.every((id, i) => id === this.live[i])) return;
    this.live = live;
    if (live.length > 1) this.shared = true;
    this.host.feed.setShare(ownShare(live, me));
    this.host.log.debug('owners serving this spool changed; claiming from this share first', { owners: live.length, share: live.indexOf(me) });
  }
}
