/**
 * Progress events for waiting producers: spooler.onProgress(id, cb) and
 * handle.result({ onProgress }).
 *
 * One ProgressWatch per progress/ folder in a process, shared by every
 * listener, as runtime/wait.ts shares one watch on results/: one fs.watch on
 * the folder however many tasks are followed, a poll where a watch cannot be
 * had, and a slow rescan beside a watch (other hosts' writes on a network
 * filesystem, dropped events):
 *
 *   idle --first listener--> watching (fs.watch + rescan every RESCAN_MS)
 *                         '-> polling (watch refused: rescan every POLL_MS)
 *   watching --watch errors--> polling
 *   watching | polling --last listener gone--> idle (watch closed, timer cleared)
 *
 * A listener is called with each new value (a record with a later `at` than
 * the last one it was given); a value already there when it subscribes is
 * given at once. Records are renamed into place whole (spool/progress.ts).
 */
import { watch, type FSWatcher } from 'node:fs';
import { InvalidOptionError } from '../spool/errors.js';
import type { SpoolLayout } from '../spool/layout.js';
import { TASK_ID_PATTERN } from '../spool/name.js';
import { progressIdOf, readProgress, type Progress } from '../spool/progress.js';
import { POLL_MS, RESCAN_MS } from './wait.js';

export type ProgressListener = (progress: Progress) => void;

interface Followed {
  listeners: Set<ProgressListener>;
  /** `at` of the last value given. */
  lastAt: number;
}

type Mode = 'idle' | 'watching' | 'polling';

export class ProgressWatch {
  private readonly followed = new Map<string, Followed>();
  private mode: Mode = 'idle';
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly layout: SpoolLayout) {}

  /** How many tasks are followed, and how (tests). */
  get stats(): { ids: number; mode: Mode } {
    return { ids: this.followed.size, mode: this.mode };
  }

  /** Calls `listener` with each new progress of task `id`; returns the function that stops it. */
  follow(id: string, listener: ProgressListener): () => void {
    if (typeof id !== 'string' || !TASK_ID_PATTERN.test(id)) throw new InvalidOptionError(`onProgress(): ${JSON.stringify(id)} is not a task id (29 characters: 13 digits, then 16 hex digits)`);
    if (typeof listener !== 'function') throw new InvalidOptionError('onProgress(id, listener): the listener must be a function of the progress');
    let f = this.followed.get(id);
    if (f === undefined) this.followed.set(id, (f = { listeners: new Set(), lastAt: -Infinity }));
    // Our own copy of the listener, so that one function can follow a task twice and stop each.
    const own: ProgressListener = (p) => listener(p);
    f.listeners.add(own);
    // Watch first, then look: a record renamed in between is seen by one or the other.
    this.start();
    const now = readProgress(this.layout, id);
    if (now !== undefined) queueMicrotask(() => f.listeners.has(own) && own(now));
    if (now !== undefined && now.at > f.lastAt) f.lastAt = now.at;
    return () => this.unfollow(id, own);
  }

  private unfollow(id: string, listener: ProgressListener): void {
    const f = this.followed.get(id);
    if (f === undefined || !f.listeners.delete(listener)) return;
    if (f.listeners.size === 0) this.followed.delete(id);
    if (this.followed.size === 0 && this.mode !== 'idle') {
      this.watcher?.close();
      this.watcher = undefined;
      this.setMode('idle', 0);
    }
  }

  private start(): void {
    if (this.mode !== 'idle') return;
    try {
      this.watcher = watch(this.layout.progress, { persistent: false }, (_event, fileName) => {
        if (typeof fileName !== 'string') return;
        const id = progressIdOf(fileName);
        if (id !== undefined) this.look(id);
      });
      this.watcher.on('error', () => this.fallBackToPolling());
      this.setMode('watching', RESCAN_MS);
    } catch {
      this.setMode('polling', POLL_MS);
    }
  }

  private fallBackToPolling(): void {
    if (this.mode !== 'watching') return;
    this.watcher?.close();
    this.watcher = undefined;
    this.setMode('polling', POLL_MS);
  }

  private setMode(mode: Mode, every: number): void {
    const allowed: Record<Mode, Mode[]> = { idle: ['watching', 'polling'], watching: ['polling', 'idle'], polling: ['idle'] };
    if (!allowed[this.mode].includes(mode)) throw new Error(`progress watch: cannot go from ${this.mode} to ${mode}`);
    this.mode = mode;
    clearInterval(this.timer);
    this.timer = undefined;
    if (mode !== 'idle') {
      this.timer = setInterval(() => {
        for (const id of [...this.followed.keys()]) this.look(id);
      }, every);
      // A producer that only follows progress does not stay alive for it (its wait for a result does).
      this.timer.unref();
    }
  }

  /** Reads task `id`'s record and gives a new value to its listeners. */
  private look(id: string): void {
    const f = this.followed.get(id);
    if (f === undefined) return;
    const p = readProgress(this.layout, id);
    if (p === undefined || p.at <= f.lastAt) return;
    f.lastAt = p.at;
    for (const l of [...f.listeners]) {
      try {
        l(p);
      } catch {
        // A listener's own failure is not the watch's: the others are still called.
      }
    }
  }
}

/** One watch per progress/ folder in this process (by its path). */
const watches = new Map<string, ProgressWatch>();

export function progressWatch(layout: SpoolLayout): ProgressWatch {
  let w = watches.get(layout.progress);
  if (w === undefined) watches.set(layout.progress, (w = new ProgressWatch(layout)));
  return w;
}
