/**
 * Discovery of one spool's tasks: what is there at start-up (loadBacklog()),
 * arrivals in incoming/ (incoming.ts, an explicit mode machine drawn in
 * mode.ts), and the reconciliation scan on its own timer (reconcile.ts: pending/,
 * dead owners' claims, peers, debris). Its output is names in the task queue
 * (all through feed.ts) and wake-ups of dispatch.
 *
 *   start():  load the backlog ─▶ reclaim dead owners ─▶ watch incoming/ (or list it, crowded) ─▶ reconcile every scan interval
 *   stop():   incoming/ stopped, reconciliation stopped, the queue's timer closed
 */
import { statSync } from 'node:fs';
import type { SpoolClock } from '../../spool/clock.js';
import type { SpoolLayout } from '../../spool/layout.js';
import { readNames } from '../../spool/read-names.js';
import { accept } from '../../spool/protocol.js';
import type { SpoolFolders } from '../folders.js';
import type { Logger } from '../logger.js';
import type { DaemonOptions } from '../options.js';
import type { PendingDir } from '../task-queue.js';
import type { UnmatchedNames } from '../task-names.js';
import { QueueFeed, type QueueForDiscovery } from './feed.js';
import { IncomingDiscovery, realIncomingFs, type IncomingFs } from './incoming.js';
import { Peers } from './peers.js';
import { pollSettingsFor } from './poll.js';
import { Reconciler } from './reconcile.js';
import { DebrisSweeper } from './sweep.js';

/** What discovery needs from the rest of the daemon (the spool's coordinator). */
export interface DiscoveryHost {
  readonly layout: SpoolLayout;
  readonly folders: SpoolFolders;
  readonly options: DaemonOptions;
  readonly log: Logger;
  readonly clock: SpoolClock;
  readonly queue: QueueForDiscovery;
  /** Asks the daemon to dispatch soon (coalesced). */
  wake(): void;
  ownerId(): string | undefined;
  unmatched(): UnmatchedNames | undefined;
  /** Whether a move of this file failed and is being retried (stuck-moves.ts). */
  moveUnderWay(fileName: string): boolean;
  /** Moves a file that is not a valid task to quarantine/. */
  quarantine(path: string, fileName: string, reason: string, from: PendingDir): void;
  /** Queues again the tasks whose claim failed, once their backoff is over. */
  retryFailedClaims(now: number): void;
  /** Counts tasks reclaimed from dead owners. */
  reclaimed(tasks: number): void;
  /** A spool folder was replaced: stop serving this spool. */
  untrusted(): void;
}

/** What start() found, for the "serving spool" line. */
export interface Backlog {
  due: number;
  scheduled: number;
}

export class Discovery {
  readonly feed: QueueFeed;
  readonly incoming: IncomingDiscovery;
  readonly peers: Peers;
  readonly reconciler: Reconciler;

  constructor(
    private readonly host: DiscoveryHost,
    /** Names this process moved out of incoming/ (incoming.ts); the claimer adds those it claims from there. */
    departed: Set<string>,
    /** Files to leave alone until the given time (incoming.ts); the claimer holds back failed claims. */
    held: Map<string, number>,
    fs: IncomingFs = realIncomingFs((fileName) => accept(host.layout, fileName)),
  ) {
    const { layout, options, log } = host;
    this.feed = new QueueFeed(host.queue, () => host.wake());
    this.incoming = new IncomingDiscovery(
      {
        dirs: layout,
        scanIntervalMs: options.scanInterval,
        settleMs: options.settle,
        log,
        feed: this.feed,
        now: () => host.clock.now(),
        unmatched: () => host.unmatched(),
        shared: () => this.peers.ids.length > 1,
        moveUnderWay: (fileName) => host.moveUnderWay(fileName),
        quarantine: (path, fileName, reason, from) => host.quarantine(path, fileName, reason, from),
      },
      departed,
      held,
      fs,
    );
    this.peers = new Peers({
      log,
      feed: this.feed,
      ownerId: () => host.ownerId(),
      listActive: () => readNames(layout.active),
      stopped: () => this.incoming.current === 'stopped',
    });
    this.reconciler = new Reconciler({
      ...pick(host),
      feed: this.feed,
      incoming: this.incoming,
      peers: this.peers,
      sweeper: new DebrisSweeper(layout, host.folders, log),
    });
  }

  /**
   * Start-up, once this daemon is an owner: queues what pending/ and incoming/
   * hold, reclaims dead owners' claims, then watches incoming/ (or lists it
   * while crowded) and starts the reconciliation scan. The counts are taken
   * before the first await: from then on claims may take tasks from the queue.
   */
  async start(): Promise<Backlog> {
    const entries = this.loadBacklog(this.host.clock.now());
    const due = this.feed.readyCount;
    const scheduled = this.feed.size - due;
    await this.reconciler.reclaimDeadOwners();
    await this.incoming.start(entries, pollSettingsFor(this.host.layout.incoming, this.host.options, this.host.log));
    if (this.incoming.current !== 'stopped') this.reconciler.start();
    return { due, scheduled };
  }

  async stop(): Promise<void> {
    this.reconciler.stop();
    this.feed.close();
    await this.incoming.stop();
  }

  /**
   * Every task name in pending/ and incoming/ into the queue at once (O(n), one
   * listing of each directory). Returns how many entries incoming/ has.
   */
  private loadBacklog(now: number): number {
    const { layout } = this.host;
    const pending = readNames(layout.pending);
    const incoming = readNames(layout.incoming);
    this.reconciler.pendingLoaded(statSync(layout.pending).mtimeMs);
    const rejected = this.feed.load(pending, incoming, now);
    for (const [n, dir] of rejected) this.incoming.arrivals.considerBadName(n, dir, undefined);
    this.host.unmatched()?.checkAll(this.feed.inDir('pending'));
    this.host.unmatched()?.checkAll(this.feed.inDir('incoming'));
    return incoming.length;
  }
}

function pick(host: DiscoveryHost) {
  return {
    layout: host.layout,
    folders: host.folders,
    options: host.options,
    log: host.log,
    clock: host.clock,
    ownerId: () => host.ownerId(),
    unmatched: () => host.unmatched(),
    retryFailedClaims: (now: number) => host.retryFailedClaims(now),
    reclaimed: (tasks: number) => host.reclaimed(tasks),
    untrusted: () => host.untrusted(),
  };
}
