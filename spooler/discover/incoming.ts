/**
 * Discovery of arrivals in incoming/: watched (inotify, or polling on a
 * network filesystem: watch.ts), or listed on a timer while it is too crowded
 * to watch. The modes and their transitions are drawn in mode.ts; the
 * setMode*() methods below are the only places the mode changes, and each
 * asserts the mode it leaves.
 */
import { lstatSync, statSync } from 'node:fs';
import { roughDue } from '../../spool/name.js';
import { eachName } from '../../spool/read-names.js';
import { Arrivals, type ArrivalsFs, type ArrivalsHost } from './arrivals.js';
import { Departures } from './departures.js';
import { ListingPace } from './listing-pace.js';
import { assertIncomingTransition, type IncomingMode } from './mode.js';
import { FutureMover } from './mover.js';
import { directoryStamp, ListingGate, type DirectoryStamp, type PollSettings } from './poll-policy.js';
import { watchDirectory, type DirectoryWatch } from './watch.js';

/**
 * Above this many tasks queued from incoming/, the watcher goes: on activity
 * chokidar re-reads (and lstats) the whole directory once a second, which a
 * large backlog makes expensive. Until it is small again the daemon lists
 * incoming/ itself.
 */
export const WATCH_MAX_BACKLOG = 1000;
/** A watched incoming/ whose stamp has not moved is still listed this often (mayHaveChanged()). */
const INCOMING_FULL_SCAN_MS = 60_000;

/** The filesystem as incoming/ discovery sees it; tests give fakes. */
export interface IncomingFs extends ArrivalsFs {
  watch: typeof watchDirectory;
  /** The names in a directory, streamed (spool/read-names.ts eachName: a million names are never one array). */
  list(dir: string): Iterable<string>;
  /** The directory's stamp (poll-policy.ts). */
  stamp(dir: string): DirectoryStamp;
  /**
   * incoming/ was listed empty: recreate it empty if it grew large, so that
   * listing it is cheap again (spool/compact-folder.ts; the daemon then checks
   * the new folder as its own). True when it was replaced; throws when it could
   * not be. Absent: never compacted.
   */
  compactDrained?(): boolean;
}

export const realIncomingFs = (moveToPending: (fileName: string) => boolean, compactDrained?: () => boolean): IncomingFs => ({
  watch: watchDirectory,
  list: eachName,
  compactDrained,
  stamp: (dir) => directoryStamp(statSync(dir)),
  mtimeOf: (path) => lstatSync(path).mtimeMs,
  moveToPending,
});

/** What incoming/ discovery needs from the rest of the daemon. */
export interface IncomingHost extends ArrivalsHost {
  /** Whether other daemons serve the spool (then a listing also forgets what they claimed). */
  shared(): boolean;
  /** Whether another daemon was ever seen on the spool (then incoming/ is never recreated: it would take that for a stranger's swap). */
  everShared?(): boolean;
  /** Whether this process holds the task (claimed, in active/<owner>/): the mover leaves its name alone. */
  holds?(fileName: string): boolean;
}

/** Beside other daemons, a listing of incoming/ of at most this many names also drops from the queue the tasks it no longer holds. */
const PRUNE_MAX_NAMES = 200_000;

export class IncomingDiscovery {
  private mode: IncomingMode = 'starting';
  private watcher: DirectoryWatch | undefined;
  private poll: PollSettings | undefined;
  /** incoming/'s stamp just before each listing, and whether it proves that nothing changed since (mayHaveChanged()). */
  private readonly gate = new ListingGate();
  private lastListingAt = 0;
  private lastListingMs = 0;
  private lastListingAdded = 0;
  /** Whether the first pause of the watch was logged: later ones go to debug. */
  private crowdedSaid = false;
  /**
   * How many names the last listing of incoming/ (or the start-up load) found
   * not due within a scan interval: the mover lists the whole folder, not for
   * nothing (a backlog of due tasks has none to move). Infinity: not counted yet.
   */
  private futureSeen = Infinity;
  private readonly pace: ListingPace;
  private readonly mover: FutureMover;
  readonly arrivals: Arrivals;

  constructor(
    private readonly host: IncomingHost,
    departed: Set<string>,
    held: Map<string, number>,
    private readonly fs: IncomingFs,
  ) {
    this.arrivals = new Arrivals(host, fs, departed, held);
    const costs = { lastListingMs: () => this.lastListingMs, lastListingAdded: () => this.lastListingAdded, readyCount: () => host.feed.readyCount };
    this.pace = new ListingPace(host.scanIntervalMs, costs, () => this.listUnwatched());
    this.mover = new FutureMover({
      // The listing itself, streamed: the queue holds only a window of the names, the rest are on disk.
      candidates: () => fs.list(host.dirs.incoming)[Symbol.iterator](),
      horizon: () => host.now() + host.scanIntervalMs,
      moveIfLater: (fileName, horizon) => {
        // The cheap look at the name (NaN for what is not shaped like a task name, never moved): a pass reads every name.
        if (fileName.charCodeAt(0) === 46 /* "." */ || !(roughDue(fileName) > horizon) || host.holds?.(fileName) === true) return;
        if (fs.moveToPending(fileName)) host.feed.movedToPending(fileName);
      },
      stopped: () => this.mode === 'stopped',
      failed: (err) => host.log.error('cannot move tasks to pending/; incoming/ stays unwatched and is scanned instead', { err }),
    });
  }

  get current(): IncomingMode {
    return this.mode;
  }

  get watching(): boolean {
    return this.mode === 'watching';
  }

  get how(): 'inotify' | 'poll' {
    return this.poll === undefined ? 'inotify' : 'poll';
  }

  /** When incoming/ was last listed (ms epoch). */
  get lastListedAt(): number {
    return this.lastListingAt;
  }

  /** What the last listing of incoming/ cost (ms). */
  get lastListingCost(): number {
    return this.lastListingMs;
  }

  /**
   * The start-up load listed incoming/ and pending/ (its slices costing `ms`)
   * and counted `future` names of incoming/ not due within a scan interval
   * (futureSeen): the listing pace spaces its first listing by that cost.
   */
  backlogCounted(future: number, ms?: number): void {
    this.futureSeen = future;
    if (ms !== undefined) this.lastListingMs = ms;
  }

  /** Start-up, once the backlog is queued: watch incoming/, or list it while it holds more than WATCH_MAX_BACKLOG entries. */
  async start(entries: number, poll: PollSettings | undefined): Promise<void> {
    this.poll = poll;
    // Stopped while the backlog loaded (a signal during start-up): nothing to start.
    if (this.mode === 'stopped') return;
    if (entries <= WATCH_MAX_BACKLOG) await this.startWatching();
    else this.setModeListing();
  }

  /** Stops discovering; resolves once the watch is closed. */
  stop(): Promise<void> {
    if (this.mode === 'stopped') return Promise.resolve();
    return this.setModeStopped();
  }

  // --- the transitions (mode.ts) ---------------------------------------------

  /**
   * From `starting` or `listing`: incoming/ is small. From `watching`:
   * incoming/ was recreated (recreateIfDrained()), and the watch, on the old
   * folder, which is gone, is closed to be set up on the new one.
   */
  private setModeArming(): void {
    assertIncomingTransition(this.mode, 'arming');
    const from = this.mode;
    this.mode = 'arming';
    this.departuresRecorded(true);
    if (from === 'listing') this.pace.stop();
    if (from === 'watching') {
      const watcher = this.watcher!;
      this.watcher = undefined;
      watcher.close().catch((err: unknown) => this.host.log.error('cannot close the watcher', { err }));
    }
  }

  private setModeWatching(watch: DirectoryWatch): void {
    assertIncomingTransition(this.mode, 'watching');
    this.mode = 'watching';
    this.watcher = watch;
  }

  /**
   * From `watching`: producers are outrunning the daemon. chokidar answers
   * every burst of events by re-reading the whole directory with an lstat per
   * entry, which on a crowded incoming/ took most of the daemon's time and
   * throughput fell to a few hundred tasks/s (BENCHMARKS.md, side by side,
   * "sustained"). From `starting`: a backlog was left while no daemon ran.
   */
  private setModeListing(): void {
    assertIncomingTransition(this.mode, 'listing');
    const from = this.mode;
    this.mode = 'listing';
    this.departuresRecorded(false);
    if (from === 'watching') {
      const watcher = this.watcher!;
      this.watcher = undefined;
      watcher.close().catch((err: unknown) => this.host.log.error('cannot close the watcher', { err }));
      this.sayCrowded();
    }
    this.pace.start();
    if (from !== 'arming') this.startMover();
  }

  /** Moves future tasks out of incoming/ in the background, if the last listing saw any. */
  private startMover(): void {
    if (this.futureSeen > 0) this.mover.start();
  }

  private setModeStopped(): Promise<void> {
    assertIncomingTransition(this.mode, 'stopped');
    if (this.mode === 'listing') this.pace.stop();
    this.mode = 'stopped';
    this.departuresRecorded(false);
    const watcher = this.watcher;
    this.watcher = undefined;
    return watcher?.close() ?? Promise.resolve();
  }

  /** Departures are recorded only while a watch may report them (departures.ts). */
  private departuresRecorded(watched: boolean): void {
    const departed = this.arrivals.departed;
    if (!(departed instanceof Departures)) return;
    if (watched) departed.record();
    else departed.ignore();
  }

  private sayCrowded(): void {
    // Normal operation under load, and it may come and go many times a minute: said once, at info.
    const fields = { queued: this.host.feed.incomingCount, threshold: WATCH_MAX_BACKLOG };
    if (this.crowdedSaid) return this.host.log.debug('incoming/ is crowded again; watching paused', fields);
    this.crowdedSaid = true;
    this.host.log.info('incoming/ is crowded; watching paused, scanning it instead until it is small again', {
      ...fields,
      reason: 'a watcher re-reads the whole folder on every burst of arrivals, which costs more than scanning it; this is said once, later pauses are logged at debug',
    });
  }

  private async startWatching(): Promise<void> {
    this.setModeArming();
    let watch: DirectoryWatch;
    try {
      watch = await this.fs.watch(
        this.host.dirs.incoming,
        { poll: this.poll },
        (fileName) => this.onWatchEvent(fileName),
        (err) => this.host.log.error('watcher error; relying on scans until it recovers', { err }),
      );
    } catch (err) {
      if (this.mode === 'arming') this.setModeListing();
      throw err;
    }
    // Stopped while the watch was being set up: it must not outlive the daemon's discovery.
    if (this.mode === 'stopped') return watch.close();
    this.setModeWatching(watch);
    // incoming/ was recreated by another daemon while this watch was set up: it may be on the old folder.
    if (this.rearmWanted) {
      this.rearmWanted = false;
      return this.startWatching();
    }
    // Anything that arrived between the last listing and the watch being in place.
    this.list();
  }

  private pauseIfCrowded(): void {
    if (this.mode === 'watching' && this.host.feed.incomingCount > WATCH_MAX_BACKLOG) this.setModeListing();
  }

  // --- events and listings -----------------------------------------------------

  /**
   * A watch event names a file that arrived in incoming/ or left it. Our own
   * departures are in `departed`; anything else is queued, and a departure by
   * another daemon then costs one failed claim, which is cheaper than an lstat
   * of every arrival.
   */
  onWatchEvent(fileName: string | undefined): void {
    if (this.mode === 'stopped') return;
    if (fileName === undefined) {
      this.list();
      return this.pauseIfCrowded();
    }
    if (this.arrivals.departed.delete(fileName)) return;
    this.arrivals.consider(fileName, this.host.now(), this.mode === 'watching');
    this.host.feed.wake();
    this.pauseIfCrowded();
  }

  /** Reads incoming/ and considers every entry. Returns how many entries it holds. */
  list(): number {
    const started = Date.now();
    this.lastListingAt = started;
    const feed = this.host.feed;
    // Beside other daemons the names are kept (up to PRUNE_MAX_NAMES) to forget what they claimed since the last listing.
    const kept: string[] | undefined = this.host.shared() ? [] : undefined;
    const known = feed.size;
    const watched = this.mode === 'watching';
    let count = 0;
    let future = 0;
    try {
      // Before the listing: a file that arrives after it moves the stamp, or shares its timestamp tick (the gate lists again then).
      this.gate.listed(this.fs.stamp(this.host.dirs.incoming), started);
      this.arrivals.departed.clear();
      const now = this.host.now();
      const horizon = now + this.host.scanIntervalMs;
      // Names only, streamed: a file's type is checked when it is claimed (safe-read.ts), which also catches a
      // file swapped after listing; a million Dirents would cost ~200 MB, and a million names in one array ~100 MB
      // (the queue keeps only its window of them).
      for (const name of this.fs.list(this.host.dirs.incoming)) {
        count++;
        if (kept !== undefined && count <= PRUNE_MAX_NAMES) kept.push(name);
        if (roughDue(name) > horizon) future++;
        this.arrivals.consider(name, now, watched);
      }
    } catch (err) {
      this.host.log.error('cannot read incoming/', { err });
      return 0;
    }
    // Beside other daemons: what they claimed since the last listing is gone from it; a claim of it would be lost.
    if (kept !== undefined && count <= PRUNE_MAX_NAMES) feed.forgetAbsentFromIncoming(new Set(kept));
    this.lastListingAdded = feed.size - known;
    // The census's estimate of the backlog beyond the window (order/task-queue.ts backlogIn()).
    feed.incomingListed(count);
    this.futureSeen = future;
    // Listing included: on a crowded incoming/ it is most of the cost.
    this.lastListingMs = Date.now() - started;
    if (count > 0) feed.wake();
    else this.recreateIfDrained();
    return count;
  }

  /**
   * incoming/ was listed empty: if it grew large (ext4 never shrinks a
   * directory), recreate it empty so that every later listing is cheap again
   * (spool/compact-folder.ts), then watch the new folder (watching → arming →
   * watching). Only while watched by inotify (the watch is re-armed on the new
   * folder; a polled incoming/ is on a network filesystem), and alone on the
   * spool (another daemon would take the new folder for a stranger's swap and
   * stop serving).
   */
  private recreateIfDrained(): void {
    const compact = this.fs.compactDrained;
    if (compact === undefined || this.mode !== 'watching' || this.poll !== undefined || this.host.everShared?.() !== false) return;
    let replaced: boolean;
    try {
      replaced = compact();
    } catch (err) {
      this.host.log.warn('cannot recreate the drained incoming/; its listings stay as costly as its largest backlog', { err });
      return;
    }
    if (!replaced) return;
    this.host.log.info('incoming/ had drained: recreated it empty, so that listing it is cheap again');
    // startWatching() lists the new folder once the watch is in place, for what came meanwhile.
    this.startWatching().catch((err: unknown) => this.host.log.error('cannot watch incoming/ again; relying on scans', { err }));
  }

  /** incoming/ was recreated while the watch was being set up: set it up again once in place. */
  private rearmWanted = false;

  /**
   * Another daemon recreated the drained incoming/ (spool/compact-folder.ts)
   * and this daemon's folder check followed it (spooler/folders.ts): a watch
   * on the old folder hears nothing more, so it is set up on the new one
   * (watching → arming → watching), which is then listed. A listed
   * incoming/ is listed by its path: nothing to do.
   */
  followRecreated(): void {
    if (this.mode === 'arming') {
      this.rearmWanted = true;
      return;
    }
    if (this.mode !== 'watching') return;
    this.host.log.info('incoming/ was recreated empty by another daemon; watching the new folder');
    this.startWatching().catch((err: unknown) => this.host.log.error('cannot watch incoming/ again; relying on scans', { err }));
  }

  /** The listing pace's tick (mode `listing`): list, then watch again if incoming/ has become small. */
  private listUnwatched(): void {
    const entries = this.list();
    if (this.mode !== 'listing') return;
    if (entries > WATCH_MAX_BACKLOG) return this.startMover();
    this.startWatching().then(
      () => this.host.log.debug('incoming/ is small again; watching it', { queued: entries }),
      (err: unknown) => this.host.log.error('scan failed', { err }),
    );
  }

  /** The daemon is running out of due tasks: bring the next listing of an unwatched incoming/ forward. */
  hurry(): void {
    if (this.mode === 'listing') this.pace.hurry();
  }

  /**
   * For the reconciliation scan, which is there for events the watch missed:
   * lists a watched incoming/ only if its stamp moved since the last listing
   * or that listing came within the stamp's timestamp tick (a whole second on
   * sshfs: poll-policy.ts; on a local disk that costs one more listing after a
   * burst), while files are held, or once every INCOMING_FULL_SCAN_MS. An
   * ext4 directory keeps the size of the largest backlog it ever held: an
   * empty incoming/ that once held a million names took ~37 ms to list, every
   * 5 s, 0.75% of a core on an idle daemon. An unwatched incoming/ is listed
   * by the listing pace instead.
   */
  relistIfChanged(now: number): void {
    if (this.mode === 'watching' && this.mayHaveChanged(now)) this.list();
  }

  private mayHaveChanged(now: number): boolean {
    if (this.arrivals.held.size > 0 || now - this.lastListingAt >= INCOMING_FULL_SCAN_MS) return true;
    try {
      return this.gate.decide(this.fs.stamp(this.host.dirs.incoming), now).list;
    } catch {
      return true;
    }
  }
}
