/**
 * Retention of dead letters and archived tasks (issue 16, point 8): with
 * --keep-dead / --keep-archive, the daemon's reconciliation scan deletes what
 * has been in dead/ or archive/ longer than that, a dead letter with its
 * failure record (spool/protocol.ts expire).
 *
 * How old a file there is: since it was renamed in (its ctime: a rename sets
 * it, by the filesystem's clock, which the spool clock follows). Its name
 * makes most files cheaper than that: a task dies or finishes only after its
 * due time, so one whose due time + the retention is still ahead is young
 * enough without a stat. A file with a bad name goes by its ctime; what is
 * not a regular file is left to `spool purge`.
 *
 * Cost: one listing of the folder per sweep, no work per task run. A folder
 * is swept at most every tenth of its retention (at least a scan interval,
 * at most an hour apart), and no more often than 50 times the last sweep's cost.
 */
import { lstatSync } from 'node:fs';
import { sep } from 'node:path';
import type { SpoolLayout, Subdir } from '../spool/layout.js';
import { parseTaskName, roughDue } from '../spool/name.js';
import { expire } from '../spool/protocol.js';
import { eachName } from '../spool/read-names.js';
import type { Logger } from './logger.js';

const HOUR_MS = 3_600_000;

export interface RetentionHost {
  readonly layout: SpoolLayout;
  readonly log: Logger;
  /** --keep-dead and --keep-archive (ms; 0: kept for ever). */
  readonly keepMs: { readonly dead: number; readonly archive: number };
  readonly scanIntervalMs: number;
  /** Throws unless these folders are still the ones checked at start-up. */
  check(...subs: Subdir[]): void;
}

const OPTION = { dead: '--keep-dead', archive: '--keep-archive' } as const;

export class RetentionSweep {
  /** Local clock: each folder is swept again no earlier than this. */
  private readonly nextAt = { dead: 0, archive: 0 };

  constructor(private readonly host: RetentionHost) {}

  /** From the reconciliation scan; `now` by the spool clock. Returns how many files each folder lost. */
  sweep(now: number, local = Date.now()): { dead: number; archive: number } {
    const deleted = { dead: 0, archive: 0 };
    for (const where of ['dead', 'archive'] as const) {
      const keep = this.host.keepMs[where];
      if (keep === 0 || local < this.nextAt[where]) continue;
      const started = Date.now();
      try {
        deleted[where] = this.sweepFolder(where, keep, now);
      } catch (err) {
        this.host.log.error(`${where}/ is not swept of files past ${OPTION[where]}`, { err: (err as Error).message });
      }
      const cost = Date.now() - started;
      this.nextAt[where] = Date.now() + Math.max(this.host.scanIntervalMs, Math.min(keep / 10, HOUR_MS), 50 * cost);
      if (deleted[where] > 0) this.host.log.info(`deleted ${where === 'dead' ? 'dead letters' : 'archived tasks'} past ${OPTION[where]}`, { count: deleted[where], keepMs: keep });
    }
    return deleted;
  }

  private sweepFolder(where: 'dead' | 'archive', keep: number, now: number): number {
    const { layout } = this.host;
    this.host.check(where, 'state');
    const dir = layout[where];
    let deleted = 0;
    for (const fileName of eachName(dir)) {
      const due = roughDue(fileName);
      if (due + keep > now) continue; // died or finished after its due time: younger than `keep`
      const path = dir + sep + fileName;
      let ctime: number;
      try {
        const st = lstatSync(path);
        if (!st.isFile()) continue;
        ctime = st.ctimeMs;
      } catch {
        continue; // retried or removed meanwhile
      }
      if (now - ctime <= keep) continue;
      if (expire(layout, path, parseTaskName(fileName)?.id)) deleted++;
    }
    return deleted;
  }
}
