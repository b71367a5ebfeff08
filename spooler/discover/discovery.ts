/**
 * Discovery of one spool's tasks: what is there at start-up (loadBacklog()),
 * the next names whenever the queue's window runs low (refillSoon()),
 * arrivals in incoming/ (incoming.ts, an explicit mode machine drawn in
 * mode.ts), and the reconciliation scan on its own timer (reconcile.ts: pending/,
 * dead owners' claims, peers, debris). Its output is names in the task queue
 * (all through feed.ts) and wake-ups of dispatch.
 *
 *   start():  load the backlog ─▶ reclaim dead owners ─▶ watch incoming/ (or list it, crowded) ─▶ reconcile every scan interval
 *   stop():   incoming/ stopped, reconciliation stopped, the queue's timer closed
 */
import { readFileSync, statSync } from 'node:fs';
import type { SpoolClock } from '../../spool/clock.js';
import type { SpoolLayout } from '../../spool/layout.js';
import { compactDrainedFolder } from '../../spool/compact-folder.js';
import { roughDue } from '../../spool/name.js';
import { eachName, readNames } from '../../spool/read-names.js';
import { accept } from '../../spool/protocol.js';
import type { SpoolFolders } from '../folders.js';
import type { Logger } from '../logger.js';
import type { DaemonOptions } from '../options.js';
import type { PendingDir } from '../order/task-queue.js';
import type { UnmatchedNames } from '../task-names.js';
import { QueueFeed, type QueueForDiscovery } from './feed.js';
import { filesystemKind } from '../../spool/fs-kind.js';
import { IncomingDiscovery, realIncomingFs, type IncomingFs } from './incoming.js';
import { assertState } from './mode.js';
import { Peers } from './peers.js';
import { pollSettingsFor } from './poll.js';
import { refillInSlices, type RefillDone } from './sliced-refill.js';
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
  /** Whether this process holds the task (claimed: in active/<owner>/); a refill does not queue it again. */
  holds(fileName: string): boolean;
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
  /** The retention sweeps (tasks no daemon runs, --keep-dead, --keep-archive), run by each reconciliation scan. */
  sweepRetention?(now: number): void;
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
  /** refillSoon(): none asked, one to run on the next turn, one listing (slices), or one waiting to retry after a failed listing. */
  private refillState: 'idle' | 'soon' | 'listing' | 'retrying' = 'idle';
  /** relist() was asked while a listing was under way: list again once it is committed. */
  private relistAfter = false;
  /** Whether the spool is on a local filesystem, where a drained incoming/ may be recreated (asked once). */
  private localFolders: boolean | undefined;

  constructor(
    private readonly host: DiscoveryHost,
    /** Names this process moved out of incoming/ (incoming.ts); the claimer adds those it claims from there. */
    private readonly departed: Set<string>,
    /** Files to leave alone until the given time (incoming.ts); the claimer holds back failed claims. */
    private readonly held: Map<string, number>,
    fs: IncomingFs = realIncomingFs(
      (fileName) => accept(host.layout, fileName),
      () => this.recreateDrainedIncoming(),
    ),
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
        everShared: () => this.peers.shared,
        holds: (fileName) => host.holds(fileName),
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
    host.folders.onRecreated((sub) => {
      if (sub === 'incoming') this.incoming.followRecreated();
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
   * hold (claims start from the first names listed, while the rest is listed:
   * loadBacklog()), reclaims dead owners' claims, then watches incoming/ (or
   * lists it while crowded) and starts the reconciliation scan. The counts are
   * what the listings found.
   */
  async start(): Promise<Backlog> {
    const loaded = await this.loadBacklog(this.host.clock.now());
    if (loaded === undefined) return { due: 0, scheduled: 0 }; // stopped while loading
    await this.reconciler.reclaimDeadOwners();
    await this.incoming.start(loaded.entries, pollSettingsFor(this.host.layout.incoming, this.host.options, this.host.log));
    if (this.incoming.current !== 'stopped') this.reconciler.start();
    return { due: loaded.due, scheduled: loaded.scheduled };
  }

  async stop(): Promise<void> {
    this.reconciler.stop();
    this.feed.close();
    await this.incoming.stop();
  }

  /**
   * The best task names of pending/ and incoming/ into the queue's window, the
   * directories streamed (never one array of a million names: the queue keeps
   * what it has room for) a slice at a time, the first names held at once so
   * that claims start within milliseconds (sliced-refill.ts). Resolves with
   * what was found (entries: incoming/'s), or undefined if discovery stopped.
   */
  private async loadBacklog(now: number): Promise<{ entries: number; due: number; scheduled: number } | undefined> {
    const { layout } = this.host;
    let future = 0;
    const horizon = now + this.host.options.scanInterval;
    const counted = function* (names: Iterable<string>): Generator<string> {
      for (const n of names) {
        if (roughDue(n) > horizon) future++;
        yield n;
      }
    };
    this.reconciler.pendingLoaded(statSync(layout.pending).mtimeMs);
    assertState('queue refill', this.refillState, ['idle'], 'listing');
    this.refillState = 'listing';
    let done;
    try {
      done = await this.refillFromListings(now, counted(eachName(layout.incoming)));
    } finally {
      this.refillState = 'idle';
    }
    if (done === undefined) return undefined;
    this.askedMeanwhile();
    for (const [n, dir] of done.rejected) this.incoming.arrivals.considerBadName(n, dir, undefined);
    this.host.unmatched()?.checkAll(this.feed.inDir('pending'));
    this.host.unmatched()?.checkAll(this.feed.inDir('incoming'));
    const { incoming, pending, due } = done.listed;
    this.incoming.backlogCounted(future, done.busyMs);
    return { entries: incoming, due, scheduled: incoming + pending - due };
  }

  /** One refill over incoming/ (`incoming`: its listing, if the caller wraps it) and pending/, in slices. */
  private refillFromListings(now: number, incoming: Iterable<string> = eachName(this.host.layout.incoming)): Promise<RefillDone | undefined> {
    const skip = (n: string) => this.host.holds(n) || this.departed.has(n) || (this.held.get(n) ?? -Infinity) > now;
    return refillInSlices(
      { queue: this.host.queue, wake: () => this.feed.wake(), stopped: () => this.incoming.current === 'stopped' },
      [
        [incoming[Symbol.iterator](), 'incoming'],
        [eachName(this.host.layout.pending)[Symbol.iterator](), 'pending'],
      ],
      now,
      this.feed.refillSkip(skip),
    );
  }

  /**
   * The queue's window ran low while tasks wait on disk beyond it
   * (order/task-queue.ts): list both directories again, soon but not inside
   * the claim loop that noticed, a slice at a time between claims
   * (sliced-refill.ts), and give the queue the best names it has room for.
   * Tasks this process holds or holds back are not queued again. A listing
   * that fails is tried again after a scan interval.
   *
   *          refillSoon()       next turn        the refill committed (or discovery stopped)
   *   idle ──────────────▶ soon ─────────▶ listing ──────────────────────────────────────────▶ idle
   *                          ▲                │
   *       a scan interval    │                │ a listing failed
   *       later              └── retrying ◀───┘        (refillSoon() meanwhile, in any state but idle: a no-op)
   *
   * The start-up load (loadBacklog()) is a listing too: idle → listing → idle.
   */
  refillSoon(): void {
    if (this.refillState !== 'idle') return;
    this.refillState = 'soon';
    setImmediate(() => this.refill());
  }

  /**
   * The queue asked for a refill after the last one committed but before this
   * state machine was back in `idle` (claims run between the commit and the
   * promise's continuation), and that ask was a no-op: ask now.
   */
  private askedMeanwhile(): void {
    if (this.relistAfter) {
      this.relistAfter = false;
      return this.refillSoon();
    }
    if (this.host.queue.refillWanted) this.refillSoon();
  }

  /**
   * Names the queue refused may be taken now (paused tasks resumed:
   * QueueFeed.holdBack()): list both directories again at once, or, if a
   * listing is under way (it may have passed them already), once it is committed.
   */
  relist(): void {
    if (this.refillState === 'idle') return this.refillSoon();
    // 'soon' and 'retrying' list afresh later anyway.
    if (this.refillState === 'listing') this.relistAfter = true;
  }

  private refill(): void {
    assertState('queue refill', this.refillState, ['soon'], 'listing');
    if (this.incoming.current === 'stopped') return void (this.refillState = 'idle');
    this.refillState = 'listing';
    const { clock, log, options } = this.host;
    const started = Date.now();
    let listings: Promise<RefillDone | undefined>;
    try {
      listings = this.refillFromListings(clock.now());
    } catch (err) {
      listings = Promise.reject(err);
    }
    listings.then(
      (done) => {
        assertState('queue refill', this.refillState, ['listing'], 'idle');
        this.refillState = 'idle';
        if (done === undefined) return;
        this.askedMeanwhile();
        for (const [n, dir] of done.rejected) this.incoming.arrivals.considerBadName(n, dir, undefined);
        log.debug('queue refilled from the listings', { ms: Date.now() - started, held: this.feed.size, due: this.feed.readyCount });
        this.feed.wake();
      },
      (err: unknown) => {
        assertState('queue refill', this.refillState, ['listing'], 'retrying');
        // Asked again right away, it would fail again at once.
        log.error('cannot list the spool to refill the queue; trying again', { err, inMs: options.scanInterval });
        this.refillState = 'retrying';
        setTimeout(() => {
          assertState('queue refill', this.refillState, ['retrying'], 'soon');
          this.refillState = 'soon';
          this.refill();
        }, options.scanInterval).unref();
      },
    );
  }

  /**
   * incoming/ was listed empty (incoming.ts): recreate it empty if it grew
   * large (spool/compact-folder.ts), and check the new folder as ours from now
   * on. Only on a local filesystem: rename onto a directory and inotify may not
   * mean the same on a network or FUSE one.
   */
  private recreateDrainedIncoming(): boolean {
    const { layout, folders } = this.host;
    this.localFolders ??= filesystemKind(layout.root)?.remote === false;
    if (!this.localFolders) return false;
    const result = compactDrainedFolder(layout.incoming, layout.state, folders.checkedId(layout.incoming)!, compactMinBytes(), compactionGate());
    if (!result.done) return false;
    folders.adoptReplaced('incoming', result.id);
    return true;
  }
}

/**
 * Test knobs, not settings. SPOOLERD_TEST_COMPACT_MIN_BYTES: recreate a
 * drained incoming/ from this size (tmpfs shrinks its own: a test there needs
 * 0). SPOOLERD_TEST_COMPACT_GATE=<fifo>: between marking the replacement and
 * the swap, block until a line can be read from the FIFO, so that a test can
 * start another daemon in that window (test/daemon-compact-race.test.ts).
 */
function compactMinBytes(env = process.env): number | undefined {
  const n = Number(env.SPOOLERD_TEST_COMPACT_MIN_BYTES);
  return env.SPOOLERD_TEST_COMPACT_MIN_BYTES !== undefined && Number.isInteger(n) && n >= 0 ? n : undefined;
}

function compactionGate(env = process.env): (() => void) | undefined {
  const fifo = env.SPOOLERD_TEST_COMPACT_GATE;
  return fifo === undefined ? undefined : () => void readFileSync(fifo);
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
    sweepRetention: (now: number) => host.sweepRetention?.(now),
  };
}
