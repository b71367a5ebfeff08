/**
 * Polling a directory that inotify cannot watch (a network filesystem: see
 * fs-kind.ts), on the schedule of poll-policy.ts: one stat per poll, a
 * listing only when the stamp moved or may hide a change.
 */
import { statSync } from 'node:fs';
import { filesystemKind } from '../../spool/fs-kind.js';
import type { Logger } from '../logger.js';
import { POLL_FAST_MS, type DaemonOptions } from '../options.js';
import { directoryStamp, ListingGate, PollPace, type DirectoryStamp, type PollSettings } from './poll-policy.js';

export class DirectoryPoller {
  private readonly gate = new ListingGate();
  private readonly pace: PollPace;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private failing = false;

  /**
   * `list()` lists the directory (synchronously: the stamp read just before
   * must still be the latest when the listing starts). The poller records
   * the stamp as listed now, and the caller lists right after.
   */
  constructor(
    private readonly dir: string,
    settings: PollSettings,
    private readonly list: () => void,
    private readonly onError: (err: unknown) => void,
  ) {
    this.pace = new PollPace(settings);
    const stamp = this.stamp();
    if (stamp !== undefined) this.gate.listed(stamp, Date.now());
    this.arm(settings.fastMs);
  }

  close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    return Promise.resolve();
  }

  private arm(delay: number): void {
    if (!this.closed) this.timer = setTimeout(() => this.poll(), delay);
  }

  private poll(): void {
    const now = Date.now();
    const stamp = this.stamp();
    let listingMs = 0;
    if (stamp !== undefined) {
      const { list, changed } = this.gate.decide(stamp, now);
      if (changed) this.pace.changed(now);
      if (list) {
        this.list();
        listingMs = Date.now() - now;
      }
    }
    this.arm(this.pace.next(Date.now(), listingMs));
  }

  private stamp(): DirectoryStamp | undefined {
    try {
      const stamp = directoryStamp(statSync(this.dir));
      this.failing = false;
      return stamp;
    } catch (err) {
      // Reported once per run of failures (a mount that went away fails every poll).
      if (!this.failing) this.onError(err);
      this.failing = true;
      return undefined;
    }
  }
}

/**
 * How the spool at `dir` is to be watched: the polling schedule, or undefined
 * for inotify. `--poll`/`--no-poll` decide; without either, a spool on a
 * network filesystem is polled (said once, at info, with how to override it).
 */
export function pollSettingsFor(dir: string, options: Pick<DaemonOptions, 'poll' | 'pollInterval'>, log: Logger): PollSettings | undefined {
  const settings = { fastMs: Math.min(POLL_FAST_MS, options.pollInterval), idleMs: options.pollInterval };
  if (options.poll === true) return settings;
  if (options.poll === false) return undefined;
  const kind = filesystemKind(dir);
  if (kind === undefined || !kind.remote) return undefined;
  log.info(`the spool is on a network filesystem (${kind.name}): inotify cannot see files other hosts drop, so incoming/ is polled; --no-poll turns this off`, {
    dir,
    filesystem: kind.name,
    statfsType: kind.type,
    pollFastMs: settings.fastMs,
    pollIdleMs: settings.idleMs,
  });
  return settings;
}
