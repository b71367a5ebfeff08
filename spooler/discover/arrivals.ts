/**
 * What to do with a name found in incoming/ (by a watch event or a listing):
 * queue it, move it to pending/ (not due soon, and incoming/ watched), hold
 * it (a file that may still be written, or whose claim failed), or
 * quarantine it (not a task name, once settled).
 */
import { sep } from 'node:path';
import { dueOfTaskName, explainBadName } from '../../spool/name.js';
import type { Logger } from '../logger.js';
import type { PendingDir } from '../order/task-queue.js';
import type { UnmatchedNames } from '../task-names.js';
import type { QueueFeed } from './feed.js';

export interface ArrivalsHost {
  readonly dirs: { readonly incoming: string; readonly pending: string };
  readonly scanIntervalMs: number;
  readonly settleMs: number;
  readonly log: Logger;
  readonly feed: QueueFeed;
  /** The spool clock now (spool/clock.ts). */
  now(): number;
  unmatched(): UnmatchedNames | undefined;
  /** Whether a move of this file failed and is being retried (stuck-moves.ts). */
  moveUnderWay(fileName: string): boolean;
  /** Moves a file that is not a valid task to quarantine/. */
  quarantine(path: string, fileName: string, reason: string, from: PendingDir): void;
}

export interface ArrivalsFs {
  /** A file's mtime (never following a link). */
  mtimeOf(path: string): number;
  /** Moves a task from incoming/ to pending/ (spool/claim.ts accept()); false: it was gone. */
  moveToPending(fileName: string): boolean;
}

export class Arrivals {
  constructor(
    private readonly host: ArrivalsHost,
    private readonly fs: ArrivalsFs,
    /** Names this process moved out of incoming/: the watch event their departure causes is not an arrival. */
    readonly departed: Set<string>,
    /** Files to leave alone until the given time (possibly still being written, or a claim that failed). */
    readonly held: Map<string, number>,
  ) {}

  /** Forgets holds long past (a file held and then gone); `now` by the spool clock. */
  forgetOldHolds(now: number): void {
    for (const [name, until] of this.held) if (until < now - 10 * this.host.settleMs) this.held.delete(name);
  }

  /** Decides what to do with a name in incoming/: queue it, move it to pending/, hold it or quarantine it. */
  consider(fileName: string, now: number, watched: boolean): void {
    const feed = this.host.feed;
    // beyondWindow: a name after the window's cut-off stays on disk for a later refill (order/task-queue.ts).
    if (fileName.charCodeAt(0) === 46 /* "." */ || feed.has(fileName) || feed.beyondWindow(fileName, now)) return;
    const heldUntil = this.held.get(fileName);
    if (heldUntil !== undefined) {
      if (now < heldUntil) return;
      this.held.delete(fileName);
    }
    const due = dueOfTaskName(fileName);
    if (due === undefined) return this.considerBadName(fileName, 'incoming', undefined);
    this.host.unmatched()?.check(fileName);
    // Not due for a while and incoming/ is watched: move it out of the watched directory now.
    // While incoming/ is too large to watch, the mover does this in the background.
    if (due > now + this.host.scanIntervalMs && watched) {
      this.departed.add(fileName);
      let accepted = false;
      try {
        accepted = this.fs.moveToPending(fileName);
      } catch (err) {
        this.host.log.error('cannot move a task to pending/; it waits in incoming/', { file: fileName, err });
        this.departed.delete(fileName);
        feed.add(fileName, 'incoming', now);
        return;
      }
      if (accepted) feed.add(fileName, 'pending', now);
      else this.departed.delete(fileName);
      return;
    }
    feed.add(fileName, 'incoming', now);
  }

  /** A name that is not a task name: quarantine it once it has settled (a producer may rename it yet). */
  considerBadName(fileName: string, from: PendingDir, mtimeMs: number | undefined): void {
    if (this.host.moveUnderWay(fileName)) return;
    const path = this.host.dirs[from] + sep + fileName;
    let mtime = mtimeMs;
    if (mtime === undefined) {
      try {
        mtime = this.fs.mtimeOf(path);
      } catch {
        return;
      }
    }
    if (this.host.now() - mtime < this.host.settleMs) {
      this.held.set(fileName, mtime + this.host.settleMs);
      return;
    }
    this.host.quarantine(path, fileName, `bad file name: ${explainBadName(fileName)}`, from);
  }
}
