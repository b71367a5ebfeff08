/**
 * The reconciliation scan: what no watch reports. Every scan interval (timed
 * from the end of the last scan), whatever the mode of incoming/ (mode.ts):
 *
 *   1. the spool folders are still the ones checked at start-up (else the spool stops being served);
 *   2. a watched incoming/ is listed again if it may have changed (missed events; incoming.ts);
 *   3. pending/ is read again if another daemon may have moved tasks there;
 *   4. claims that failed are queued again once their backoff is over;
 *   5. the claims of dead owners go back to incoming/, and the live owners split the claim shares (peers.ts);
 *   6. tmp/ and unfinished records are swept of debris (sweep.ts);
 *   7. the retention sweeps: tasks no daemon runs, old dead letters and archived tasks (spooler/unknown-tasks.ts, spooler/retention.ts).
 *
 *          start()         the timer fires        the scan ends
 *   off ─────────▶ armed ──────────────────▶ scanning ──────────────▶ armed
 *                    │                          │
 *                    └──────── stop() ──────────┴──────▶ stopped (final; a scan under way ends, none follows)
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { SpoolClock } from '../../spool/clock.js';
import type { SpoolLayout } from '../../spool/layout.js';
import { eachName } from '../../spool/read-names.js';
import { reclaimOwner } from '../../spool/protocol.js';
import { freeHolds, ownerHolds } from '../../spool/limits.js';
import type { SpoolFolders } from '../folders.js';
import type { Logger } from '../logger.js';
import { isOwnerAlive } from '../supervise/owner.js';
import { removeStatusFile } from '../../spool/status-file.js';
import type { UnmatchedNames } from '../task-names.js';
import type { QueueFeed } from './feed.js';
import type { IncomingDiscovery } from './incoming.js';
import { assertState } from './mode.js';
import type { Peers } from './peers.js';
import type { DebrisSweeper } from './sweep.js';

export interface ReconcileHost {
  readonly layout: SpoolLayout;
  readonly folders: SpoolFolders;
  readonly options: { readonly scanInterval: number; readonly staleAfter: number };
  readonly log: Logger;
  readonly clock: SpoolClock;
  readonly feed: QueueFeed;
  readonly incoming: IncomingDiscovery;
  readonly peers: Peers;
  readonly sweeper: DebrisSweeper;
  ownerId(): string | undefined;
  unmatched(): UnmatchedNames | undefined;
  /** Queues again the tasks whose claim failed, once their backoff is over. */
  retryFailedClaims(now: number): void;
  /** Counts tasks reclaimed from dead owners. */
  reclaimed(tasks: number): void;
  /** A spool folder was replaced: stop serving this spool. */
  untrusted(): void;
  /** The retention sweeps, each on its own cadence. */
  sweepRetention?(now: number): void;
}

type ScanState = 'off' | 'armed' | 'scanning' | 'stopped';

export class Reconciler {
  private state: ScanState = 'off';
  private timer: NodeJS.Timeout | undefined;
  /** When the last scan began (ms epoch; 0: none yet). */
  lastScanAt = 0;
  /** Scans finished so far. */
  private scans = 0;
  private pendingMtime = -1;
  private nextPendingScan = 0;

  constructor(private readonly host: ReconcileHost) {}

  get current(): ScanState {
    return this.state;
  }

  /** pending/ was read whole at start-up (its mtime then). */
  pendingLoaded(mtimeMs: number): void {
    this.pendingMtime = mtimeMs;
    this.nextPendingScan = Date.now() + this.host.options.scanInterval;
  }

  start(): void {
    assertState('reconciliation scan', this.state, ['off'], 'armed');
    this.arm();
  }

  stop(): void {
    if (this.state === 'stopped') return;
    clearTimeout(this.timer);
    this.state = 'stopped';
  }

  private arm(): void {
    this.state = 'armed';
    this.timer = setTimeout(() => this.fire(), this.host.options.scanInterval);
  }

  private fire(): void {
    assertState('reconciliation scan', this.state, ['armed'], 'scanning');
    this.state = 'scanning';
    const began = Date.now();
    this.scan()
      .catch((err: unknown) => this.host.log.error('scan failed', { err }))
      .finally(() => {
        this.scans++;
        // Tests wait for this line to know the spool was listed again (rather than sleeping for scan intervals).
        if (this.host.log.enabled('debug')) this.host.log.debug('reconciliation scan finished', { scan: this.scans, ms: Date.now() - began });
        if (this.state === 'scanning') this.arm();
      });
  }

  private async scan(): Promise<void> {
    if (!this.foldersStillTrusted()) return;
    const local = Date.now();
    const now = this.host.clock.now();
    this.lastScanAt = local;
    this.host.incoming.arrivals.forgetOldHolds(now);
    this.host.incoming.relistIfChanged(local);
    this.rescanPendingIfChanged();
    this.host.retryFailedClaims(now);
    await this.reclaimDeadOwners();
    this.host.sweeper.sweep(now);
    this.host.sweepRetention?.(now);
  }

  /**
   * Re-checks every folder checked at start-up (one lstat each, once per scan).
   * A folder replaced meanwhile (by a link, or another directory) ends the
   * serving of this spool: no more claims, moves or deletes here; running
   * tasks finish, and their files stay claimed for a daemon that checked its
   * folders to reclaim.
   */
  private foldersStillTrusted(): boolean {
    const problems = this.host.folders.checkAll();
    if (problems.length === 0) return true;
    for (const p of problems) this.host.log.error(p.message);
    this.host.log.error('a spool folder was replaced while spoolerd ran: this spool is no longer served; restore the folder and restart spoolerd');
    this.host.untrusted();
    return false;
  }

  /**
   * pending/ is written only by daemons; it holds tasks we do not know only when
   * another daemon serves the same spool. Re-read it only then, only if its
   * mtime moved, and no more often than 50 times the last read's cost, so a
   * million idle files cost nothing.
   */
  private rescanPendingIfChanged(): void {
    const { layout, options, feed, peers } = this.host;
    if (Date.now() < this.nextPendingScan || !peers.othersSeen) return;
    const mtime = statSync(layout.pending).mtimeMs;
    if (mtime === this.pendingMtime) return;
    this.pendingMtime = mtime;
    peers.othersSeen = false;
    const started = Date.now();
    const spoolNow = this.host.clock.now();
    let added = 0;
    for (const n of eachName(layout.pending)) {
      if (n.charCodeAt(0) !== 46 && feed.add(n, 'pending', spoolNow)) {
        added++;
        this.host.unmatched()?.check(n);
      }
    }
    const cost = Date.now() - started;
    this.nextPendingScan = Date.now() + Math.max(options.scanInterval, 50 * cost);
    if (added > 0) {
      this.host.log.debug('found tasks in pending/ moved there by another daemon', { added });
      feed.wake();
    }
  }

  /** Frees the concurrency slots a dead owner held in limits/ (spool/limits.ts). */
  private freeSlotsOf(id: string): boolean {
    const { layout, folders, log } = this.host;
    try {
      folders.check('limits');
      const freed = freeHolds(layout.limits, ownerHolds(id));
      if (freed.length > 0) log.warn('freed the concurrency slots of a daemon that died', { owner: id, slots: freed.length, scopes: [...new Set(freed)].slice(0, 20) });
      return true;
    } catch (err) {
      // Its lock stays, so the next scan tries again (its claims wait with it).
      log.error('cannot free the concurrency slots of a daemon that died; its claims are reclaimed with them at the next scan', { owner: id, err: (err as Error).message });
      return false;
    }
  }

  /** Returns the claims of owners whose liveness lock is stale or gone to incoming/; also at start-up. */
  async reclaimDeadOwners(): Promise<void> {
    const { layout, folders, log, clock, peers } = this.host;
    let owners: string[];
    try {
      folders.check('active', 'incoming', 'locks');
      owners = readdirSync(layout.active);
    } catch (err) {
      log.error('claims of dead daemons are not reclaimed', { err: (err as Error).message });
      return;
    }
    peers.dead.clear();
    for (const id of owners) {
      if (id === this.host.ownerId() || this.state === 'stopped') continue;
      peers.sawOther();
      if (await isOwnerAlive(layout, id, this.host.options.staleAfter, clock)) continue;
      peers.dead.add(id);
      const dir = join(layout.active, id);
      // Never followed: a link or a foreign directory here is refused (logged once), and the
      // directory listed must still be the one checked when its files are moved.
      const checked = folders.claimDir(dir, log);
      if (checked === undefined) continue;
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        continue;
      }
      if (!folders.sameFolder(dir, checked)) continue;
      // Its concurrency slots first: while its lock remains, a crash here leaves them to the next reclaim.
      if (!this.freeSlotsOf(id)) continue;
      const reclaimed = reclaimOwner(layout, dir, names, clock.now());
      try {
        folders.check('state');
        removeStatusFile(layout, id);
      } catch {
        // state/ replaced: the scan's folder check reports it.
      }
      if (reclaimed.length === 0) continue;
      this.host.reclaimed(reclaimed.length);
      log.warn('reclaimed tasks of a daemon that died; their attempt is counted', { owner: id, tasks: reclaimed.length });
      const now = clock.now();
      for (const n of reclaimed) this.host.feed.add(n, 'incoming', now);
      this.host.unmatched()?.checkAll(reclaimed);
      this.host.feed.wake();
    }
    peers.set(owners);
  }
}
