/**
 * A daemon's watch of control/pause.json (spool/pause.ts): every
 * PAUSE_POLL_MS one lstat of the file; when it changed (inode, size, mtime,
 * ctime: `spool pause` renames a new file into place), it is read and the new
 * state applied (served-spool.ts: the gate stops giving out paused names, the
 * runners give back those they hold and have not started). Idle cost: four
 * lstat calls a second per spool (~4 µs each here while the file is absent,
 * ~6 µs while it exists: ~0.002 % of a core), nothing on the per-task path.
 *
 * Polled, not watched: one inotify watch less, and a poll also sees a change
 * made from another host over a network filesystem.
 *
 * A file that cannot be used (not JSON, wrong fields, a symbolic link, not a
 * regular file, too large) is logged as an error, once per version of it, and
 * taken as "every task paused" until it is fixed: the file says an
 * administrator paused something and this daemon cannot tell what, and a task
 * started against that intent (a migration under way, say) may do harm that
 * waiting does not. Schedules are not paused by it (as with `spool pause`
 * alone): they enqueue, and their tasks wait.
 *
 *   idle --load()--> watching (timer) --stop()--> stopped
 */
import { lstatSync } from 'node:fs';
import type { SpoolLayout } from '../spool/layout.js';
import { NOTHING_PAUSED, PAUSE_POLL_MS, pauseFilePath, readPauseStateSync, samePauseState, type PauseState } from '../spool/pause.js';
import type { Logger } from './logger.js';

export interface PauseHost {
  layout: SpoolLayout;
  log: Logger;
  /** Throws unless control/ is still the folder checked at start-up (folders.ts). */
  check(): void;
  /** The state to apply from now on (called only when it changes). */
  apply(state: PauseState, previous: PauseState): void;
}

type State = 'idle' | 'watching' | 'stopped';

/** What a bad file means (see the module comment). */
const BAD_FILE_STATE: PauseState = Object.freeze({ all: true, tasks: [], schedules: [] });

export class PauseWatch {
  private state: State = 'idle';
  private timer: NodeJS.Timeout | undefined;
  /** The state applied now. */
  current: PauseState = NOTHING_PAUSED;
  /** Why control/pause.json cannot be used, while it cannot (then every task is paused); undefined otherwise. */
  problem: string | undefined;
  /** The file's identity and times when last read ('' : absent). */
  private seen: string | undefined;
  private readonly path: string;

  constructor(private readonly host: PauseHost) {
    this.path = pauseFilePath(host.layout.root);
  }

  /** Reads the file now and applies it, then looks again every PAUSE_POLL_MS (start-up, before any task is queued). */
  load(): void {
    if (this.state !== 'idle') throw new Error(`pause watch: cannot load from ${this.state}`);
    this.state = 'watching';
    this.check();
    this.timer = setInterval(() => this.check(), PAUSE_POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    this.state = 'stopped';
    clearInterval(this.timer);
  }

  /** One look at the file. Public for tests. */
  check(): void {
    if (this.state !== 'watching') return;
    const signature = this.signature();
    if (signature === this.seen) return;
    this.seen = signature;
    let next: PauseState;
    try {
      this.host.check();
      next = signature === '' ? NOTHING_PAUSED : readPauseStateSync(this.host.layout.root);
      if (this.problem !== undefined) this.host.log.info('control/pause.json can be used again', { file: this.path });
      this.problem = undefined;
    } catch (err) {
      this.problem = (err as Error).message;
      this.host.log.error('cannot use control/pause.json; every task stays paused until it is fixed (schedules go on)', { file: this.path, err: this.problem });
      next = BAD_FILE_STATE;
    }
    if (samePauseState(next, this.current)) return;
    const previous = this.current;
    this.current = next;
    this.host.apply(next, previous);
    this.host.log.info('pause applied', { all: next.all, tasks: next.tasks, schedules: next.schedules, ...(this.problem !== undefined && { because: 'control/pause.json cannot be used' }) });
  }

  /** The file's (ino, size, mtime, ctime), '' when it is absent, or the error's code: a change of any of them is a change of the file. */
  private signature(): string {
    try {
      // Absent is the common case: no exception made for it (~4 µs a look, against ~20 µs with one).
      const st = lstatSync(this.path, { bigint: true, throwIfNoEntry: false });
      return st === undefined ? '' : `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.mode}`;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return code === 'ENOENT' ? '' : `error:${code ?? (err as Error).message}`;
    }
  }
}
