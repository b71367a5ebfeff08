/**
 * A daemon's side of cancelling a running task (spool/cancel.ts has the
 * request and the crash table rows). Every CANCEL_CHECK_MS the daemon lists
 * cancel/ (a readdir of a folder that is almost always empty: microseconds,
 * and nothing on the per-task path); for each request whose task it runs it
 * asks its runner to cancel it (the AbortSignal, then the kill after
 * --kill-grace). The request is removed once the task has ended as cancelled;
 * a request no daemon acts on is removed when REQUEST_TTL_MS old (its task
 * unknown, or finished before the request was seen); anything in cancel/ that
 * is not a request is removed unread (hostile input).
 *
 * Polled, not watched: one inotify watch less per spool, and a poll also works
 * on network filesystems where a request from another host raises no event.
 *
 *   idle --start()--> checking (timer) --stop()--> stopped
 */
import { CANCEL_CHECK_MS, readCancelRequests, removeCancelRequest, REQUEST_TTL_MS } from '../spool/cancel.js';
import type { SpoolLayout } from '../spool/layout.js';
import type { Logger } from './logger.js';

export interface CancelHost {
  layout: SpoolLayout;
  log: Logger;
  /** Cancels those of the tasks `ids` this process runs (one pass over what it holds); returns their ids. */
  cancel(ids: ReadonlySet<string>): ReadonlySet<string>;
  /** Throws unless cancel/ is still the folder checked at start-up (folders.ts). */
  check(): void;
  /** Whether the daemon may act (owning its claims, not stopping). */
  active(): boolean;
}

type State = 'idle' | 'checking' | 'stopped';

export class CancelRequests {
  private state: State = 'idle';
  private timer: NodeJS.Timeout | undefined;
  private warnedAbout = new Set<string>();

  constructor(private readonly host: CancelHost) {}

  start(): void {
    if (this.state !== 'idle') throw new Error(`cancel requests: cannot start from ${this.state}`);
    this.state = 'checking';
    this.timer = setInterval(() => this.check(), CANCEL_CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    this.state = 'stopped';
    clearInterval(this.timer);
  }

  /** One look at cancel/. Public for tests. */
  check(now = Date.now()): void {
    if (this.state !== 'checking' || !this.host.active()) return;
    const { layout, log } = this.host;
    try {
      this.host.check();
      const requests = readCancelRequests(layout, (name, why) => log.warn('removed a file from cancel/ that is not a cancel request', { file: name, reason: why }));
      if (requests.length === 0) return;
      const running = this.host.cancel(new Set(requests.map((r) => r.id)));
      for (const r of requests) {
        if (running.has(r.id)) continue;
        if (now - r.mtimeMs > REQUEST_TTL_MS) {
          removeCancelRequest(layout, r.id);
          log.info('removed a cancel request no daemon acted on (its task is not running: finished, or unknown)', { id: r.id, ageMs: Math.round(now - r.mtimeMs) });
        }
      }
    } catch (err) {
      // Logged once per kind of failure: the check runs four times a second.
      const key = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      if (!this.warnedAbout.has(key)) {
        this.warnedAbout.add(key);
        log.warn('cannot read cancel requests; running tasks cannot be cancelled until this is fixed', { err });
      }
    }
  }

  /** The task `id` ended as cancelled: its request is done with. */
  done(id: string): void {
    try {
      removeCancelRequest(this.host.layout, id);
    } catch (err) {
      this.host.log.warn('cannot remove a cancel request of a task that was cancelled; it is removed when stale', { id, err });
    }
  }
}
