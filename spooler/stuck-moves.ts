/**
 * File moves that failed for a reason that may pass (a full disk, a directory
 * that needs a block the filesystem does not have, a transient I/O error):
 * dead letters, archives, retries, releases, quarantines. Each is tried again
 * with an exponential backoff (RETRY_FIRST_MS doubling up to RETRY_MAX_MS)
 * until it succeeds or its file is gone, without a restart. When one succeeds
 * the others are tried at once: space that came back for one is there for all.
 *
 * The list lives in memory only. A crash loses it but not the files: they are
 * still where the failed move left them (a claim directory, incoming/), and the
 * next daemon reclaims or rescans them.
 */
import type { Logger, LogFields } from './logger.js';

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;

export interface StuckMove {
  /** The file's name: one move per file at a time. */
  readonly fileName: string;
  /** What is to be done, for the logs: "move a task to dead/". */
  readonly what: string;
  readonly fields: LogFields;
  /** Tries the move once: true when done, false when the file was gone. Throws when it failed again. */
  attempt(): boolean;
  /** Called once the move is done (true) or its file is gone (false). */
  settled(moved: boolean): void;
}

interface Entry {
  move: StuckMove;
  tries: number;
  delay: number;
  dueAt: number;
}

export class StuckMoves {
  private readonly entries = new Map<string, Entry>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;

  constructor(private readonly log: Logger) {}

  get size(): number {
    return this.entries.size;
  }

  has(fileName: string): boolean {
    return this.entries.has(fileName);
  }

  /** A move failed with `err`: logs it once, and tries it again later. */
  add(move: StuckMove, err: unknown): void {
    const entry: Entry = { move, tries: 1, delay: RETRY_FIRST_MS, dueAt: Date.now() + RETRY_FIRST_MS };
    this.entries.set(move.fileName, entry);
    this.log.error(`cannot ${move.what}; will try again until it succeeds`, { ...move.fields, file: move.fileName, retryInMs: entry.delay, err });
    this.arm();
  }

  /** Tries every move whose time has come (all of them with `all`). Returns how many are left. */
  retry(all = false): number {
    const now = Date.now();
    const waiting: Entry[] = [];
    let succeeded = false;
    for (const entry of [...this.entries.values()]) {
      if (all || entry.dueAt <= now) succeeded = this.tryOnce(entry) === 'moved' || succeeded;
      else waiting.push(entry);
    }
    // One move that succeeded means the cause may have passed for the others too.
    if (succeeded) for (const entry of waiting) this.tryOnce(entry);
    this.arm();
    return this.entries.size;
  }

  /** Stops the timer; the moves left stay where they are (see the module comment). */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  /** Tries one move once. */
  private tryOnce(entry: Entry): 'moved' | 'gone' | 'failed' {
    const { move } = entry;
    let moved: boolean;
    try {
      moved = move.attempt();
    } catch (err) {
      entry.tries++;
      entry.delay = Math.min(entry.delay * 2, RETRY_MAX_MS);
      entry.dueAt = Date.now() + entry.delay;
      this.log.debug(`still cannot ${move.what}`, { ...move.fields, file: move.fileName, tries: entry.tries, retryInMs: entry.delay, err });
      return 'failed';
    }
    this.entries.delete(move.fileName);
    if (moved) this.log.info(`could ${move.what} after all`, { ...move.fields, file: move.fileName, tries: entry.tries + 1 });
    try {
      move.settled(moved);
    } catch (err) {
      this.log.error('unexpected error after a file move', { ...move.fields, file: move.fileName, err });
    }
    return moved ? 'moved' : 'gone';
  }

  private arm(): void {
    let next = Infinity;
    for (const e of this.entries.values()) if (e.dueAt < next) next = e.dueAt;
    if (next === this.timerAt) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = next;
    if (next === Infinity) return;
    this.timer = setTimeout(
      () => {
        this.timerAt = Infinity;
        this.timer = undefined;
        this.retry();
      },
      Math.max(0, next - Date.now()),
    );
    // The daemon's own handles keep it alive while it serves; this timer must not keep a stopping one.
    this.timer.unref();
  }
}
