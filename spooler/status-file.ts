/**
 * The per-daemon status file, state/daemon-<owner>.json: what this daemon is
 * doing, for `spool top` and the dashboard to read without asking it
 * (SPOOL-FORMAT.md, "Daemon status files", is the contract).
 *
 * Rewritten atomically (spool/protocol.ts writeJsonAtomic: staged beside it, then renamed) about once
 * a second by the daemon's timer, never on the per-task path; removed at a
 * clean stop, and by the daemon that reclaims the claims of a dead owner. A
 * reader takes a file not updated for 10 s as a daemon that is gone.
 */
import { hostname } from 'node:os';
import { writeJsonAtomic } from '../spool/protocol.js';
import { removeStatusFile, STATUS_FILE_VERSION, STATUS_MAX_RUNNING, statusFilePath, type DaemonStatusRecord as DaemonStatus } from '../spool/status-file.js';
import { pausesAnything } from '../spool/pause.js';
import type { Logger } from './logger.js';
import type { ServedSpool } from './served-spool.js';

/** The status file's `paused`: absent while nothing is paused. */
function pausedField({ state, problem }: ServedSpool['paused']): Pick<DaemonStatus, 'paused'> {
  if (!pausesAnything(state)) return {};
  return { paused: { all: state.all, tasks: state.tasks, schedules: state.schedules, ...(problem !== undefined && { problem }) } };
}

/** How often the file is rewritten (ms). */
export const STATUS_EVERY_MS = 1000;

/** The status file of one spool served by this daemon. */
export class StatusFile {
  /** The owner whose file was last written: an owner lost and rejoined writes under a new id. */
  private writtenAs: string | undefined;
  /** The last write's error (readiness reports it: the spool is not writable), or undefined after a success. */
  lastError: string | undefined;
  private readonly startedAt = Date.now();
  private readonly host = hostname();

  constructor(
    private readonly service: ServedSpool,
    private readonly concurrency: number,
    private readonly log: Logger,
  ) {}

  /** The record as it would be written now; undefined while the spool has no owner (starting, rejoining, stopped). */
  snapshot(now: number): DaemonStatus | undefined {
    const s = this.service;
    const owner = s.ownerId;
    if (owner === undefined) return undefined;
    const st = s.stats;
    const byTask: DaemonStatus['byTask'] = {};
    for (const [name, t] of s.tally.byName) byTask[name] = { processed: t.processed, skipped: t.skipped, rescheduled: t.rescheduled, dead: t.dead };
    const status: DaemonStatus = {
      version: STATUS_FILE_VERSION,
      owner,
      host: this.host,
      pid: process.pid,
      startedAt: this.startedAt,
      updatedAt: now,
      concurrency: this.concurrency,
      totals: { processed: st.processed, skipped: st.skipped, rescheduled: st.rescheduled, dead: st.dead, quarantined: st.quarantined, reclaimed: st.reclaimed, lost: st.lost },
      byTask,
      running: s.runningTasks(STATUS_MAX_RUNNING),
      queue: { ready: s.queue.readyCount, known: s.queue.size, nextDueAt: s.queue.nextDueAt },
      tasks: s.servedNames,
      ...pausedField(s.paused),
    };
    const parked = s.parkedByScope(100);
    if (parked !== undefined) status.limits = { parked };
    return status;
  }

  /** Writes the file (from the timer). A failure is logged when it starts and when it ends, not every second. */
  write(now = Date.now()): void {
    const status = this.snapshot(now);
    if (this.writtenAs !== undefined && this.writtenAs !== status?.owner) {
      // Lost and rejoined: the old owner's file goes (whoever reclaimed it may have removed it already).
      removeStatusFile(this.service.layout, this.writtenAs);
      this.writtenAs = undefined;
    }
    if (status === undefined) return;
    try {
      this.service.checkFolders('state');
      writeJsonAtomic(statusFilePath(this.service.layout, status.owner), status);
      this.writtenAs = status.owner;
      if (this.lastError !== undefined) this.log.info('the status file is written again', { spool: this.service.layout.root });
      this.lastError = undefined;
    } catch (err) {
      const message = (err as Error).message;
      if (this.lastError === undefined) this.log.error('cannot write the status file (state/daemon-<owner>.json); trying again every second', { spool: this.service.layout.root, err: message });
      this.lastError = message;
    }
  }

  /** Removes the file (a clean stop). */
  remove(): void {
    if (this.writtenAs !== undefined) removeStatusFile(this.service.layout, this.writtenAs);
    this.writtenAs = undefined;
  }
}
