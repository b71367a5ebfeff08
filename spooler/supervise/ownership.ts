/**
 * This daemon's ownership of one spool: its liveness lock and claim directory
 * (owner.ts), and what happens when the ownership is lost.
 *
 *   idle --acquire()--> acquiring --acquired--> owning --lost()--> rejoining --acquired--> owning
 *                           |                      |                   |
 *                           '----------------------+-------------------+--release()--> released
 *
 * Lost: the daemon was taken for dead. It stalled (SIGSTOP, a VM pause, a long
 * pause of the event loop) or could not refresh its lock for --stale-after
 * (its clock being off does not do it: SPOOL-FORMAT.md, "Clocks"), or its
 * claim directory is gone. Other daemons may have reclaimed everything it held
 * and may be running it already; no fencing can undo what its tasks did
 * meanwhile (SPOOL-FORMAT.md, "Stalled daemons"). So it stops acting as that
 * owner at once: the running tasks' AbortSignals fire and their outcomes are
 * ignored, nothing it held is settled, moved or deleted (what is left in the
 * old claim directory is reclaimed like any dead owner's claims, with an
 * attempt counted), and it rejoins as a new owner: new id, lock and claim
 * directory.
 *
 * On a network filesystem, claims, reads and unlinks go through directory
 * handles (dir-handles.ts): incoming/ and pending/ for the daemon's life, the
 * claim directory for an ownership's.
 */
import type { SpoolClock } from '../../spool/clock.js';
import type { SpoolLayout } from '../../spool/layout.js';
import { folderMode } from '../../spool/trust.js';
import { openDirHandle, wantsDirHandles, type DirHandle } from '../dir-handles.js';
import type { SpoolFolders } from '../folders.js';
import type { Logger } from '../logger.js';
import type { DaemonOptions } from '../options.js';
import type { ClockSampler } from './clock-sampler.js';
import { Owner } from './owner.js';

type OwnershipState = 'idle' | 'acquiring' | 'owning' | 'rejoining' | 'released';

const NEXT: Record<OwnershipState, readonly OwnershipState[]> = {
  idle: ['acquiring', 'released'],
  acquiring: ['owning', 'released'],
  owning: ['rejoining', 'released'],
  rejoining: ['owning', 'released'],
  released: [],
};

export type SourceHandles = { incoming: DirHandle; pending: DirHandle };

export interface OwnershipHost {
  layout: SpoolLayout;
  folders: SpoolFolders;
  clock: SpoolClock;
  sampler: ClockSampler;
  options: Pick<DaemonOptions, 'staleAfter' | 'group' | 'scanInterval'>;
  log: Logger;
  /** A new claim directory is ours (`claimDir` is the path claims go through: a handle's on a network filesystem). */
  opened(ownerDir: string, claimDir: string, sources: SourceHandles | undefined): void;
  /** The ownership is lost: forget every name held and fire the running tasks' AbortSignals. */
  revoke(): { running: number; held: number };
  /** Ask for a dispatch (after a rejoin). */
  wake(): void;
  stopping(): boolean;
}

export class Ownership {
  private state: OwnershipState = 'idle';
  private current: Owner | undefined;
  private sources: SourceHandles | undefined;
  private claimDirHandle: DirHandle | undefined;

  constructor(private readonly host: OwnershipHost) {}

  /** The owner's id while this daemon owns claims on the spool. */
  get id(): string | undefined {
    return this.current?.id;
  }

  get owning(): boolean {
    return this.state === 'owning';
  }

  /** The first acquisition, at start-up: throws what stops it. */
  async acquire(): Promise<Owner> {
    this.go('acquiring');
    this.openSourceHandles();
    const owner = await this.lockAndOpen();
    // A stop while the lock was taken: release() has run, and this owner goes too.
    if (this.state === 'released') {
      await owner.release();
      return owner;
    }
    this.current = owner;
    this.go('owning');
    return owner;
  }

  /** The claim directory vanished under a claim: other daemons took this owner for dead. */
  claimDirGone(): void {
    if (this.current !== undefined) this.lost(this.current, 'its claim directory is gone (a claim into it failed)');
  }

  async release(): Promise<void> {
    const owner = this.current;
    this.current = undefined;
    if (this.state !== 'released') this.go('released');
    await owner?.release();
  }

  private go(to: OwnershipState): void {
    if (!NEXT[this.state].includes(to)) throw new Error(`spool ownership: no transition from ${this.state} to ${to} (a bug in spoolerd)`);
    this.state = to;
  }

  private lockAndOpen(): Promise<Owner> {
    const { layout, options, clock, sampler, folders } = this.host;
    const owner = Owner.acquire(
      layout,
      options.staleAfter,
      { clock, beforeRefresh: () => sampler.sample() },
      (err) => void owner.then((lost) => this.lost(lost, 'its liveness lock was taken for stale or removed', err)),
      folderMode('active', { gid: options.group }),
    ).then((acquired) => {
      folders.adoptClaimDir(acquired.dir);
      if (this.sources !== undefined) this.claimDirHandle = openDirHandle(acquired.dir, folders.checkedId(acquired.dir)!);
      this.host.opened(acquired.dir, this.claimDirHandle?.path ?? acquired.dir, this.sources);
      return acquired;
    });
    return owner;
  }

  private openSourceHandles(): void {
    const { layout, folders, log } = this.host;
    if (!wantsDirHandles(layout.root)) return;
    const incoming = openDirHandle(layout.incoming, folders.checkedId(layout.incoming)!);
    const pending = openDirHandle(layout.pending, folders.checkedId(layout.pending)!);
    if (incoming !== undefined && pending !== undefined) this.sources = { incoming, pending };
    else {
      incoming?.close();
      pending?.close();
    }
    log.debug('on a network filesystem: per-task file operations go through directory handles', { handles: this.sources !== undefined });
  }

  private lost(owner: Owner, how: string, err?: unknown): void {
    if (owner !== this.current || this.state !== 'owning') return;
    this.go('rejoining');
    this.current = undefined;
    void owner.abandon();
    const handle = this.claimDirHandle;
    this.claimDirHandle = undefined;
    // Runners on this thread may still use it for revoked tasks' last steps (none move files): closed at the next turn.
    if (handle !== undefined) setImmediate(() => handle.close());
    // Every name it held is forgotten and its slot freed now; the reports that still come for them are ignored.
    const { running, held } = this.host.revoke();
    this.host.log.error(
      'this daemon lost its claims: it was stalled (or could not refresh its liveness lock) for longer than --stale-after, and other daemons may already be running the tasks it held. ' +
        'The tasks it was running were told to stop (AbortSignal, ClaimLostError) and may have run twice; their outcomes are ignored and nothing it held is touched. Rejoining as a new owner.',
      { owner: owner.id, how, running, held, ...(err !== undefined && { err }) },
    );
    if (!this.host.stopping()) void this.rejoin(owner.id);
  }

  private async rejoin(previous: string): Promise<void> {
    while (this.state === 'rejoining' && !this.host.stopping()) {
      try {
        const owner = await this.lockAndOpen();
        if (this.state !== 'rejoining' || this.host.stopping()) return void (await owner.release());
        this.current = owner;
        this.go('owning');
        this.host.log.info('serving spool as a new owner', { owner: owner.id, previous });
        this.host.wake();
        return;
      } catch (err) {
        this.host.log.error('cannot rejoin the spool as a new owner; trying again', { err, inMs: this.host.options.scanInterval });
        await new Promise((done) => setTimeout(done, this.host.options.scanInterval));
      }
    }
  }
}
