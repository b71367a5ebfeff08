/**
 * Debris sweeps, run by the reconciliation scan (reconcile.ts): staging files
 * of crashed producers in tmp/, and unfinished records of crashed daemons in
 * state/ and quarantine/.
 */
import { lstatSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { readNames } from '../../spool/read-names.js';
import type { SpoolLayout } from '../../spool/layout.js';
import type { SpoolFolders } from '../folders.js';
import type { Logger } from '../logger.js';
import { RECORD_STAGING_PREFIX } from '../records.js';

/** Staging files older than this are debris of crashed producers. */
export const TMP_DEBRIS_AGE = 3_600_000;
/** tmp/ is swept at most this often. */
const TMP_SWEEP_EVERY_MS = 60_000;

export class DebrisSweeper {
  private lastTmpSweep = 0;
  private lastRecordSweep = 0;

  constructor(
    private readonly layout: SpoolLayout,
    private readonly folders: SpoolFolders,
    private readonly log: Logger,
  ) {}

  /** Deletes staging debris of crashed producers, at most once a minute; `now` by the spool clock (files' mtimes). */
  sweep(now: number): void {
    if (Date.now() - this.lastTmpSweep < TMP_SWEEP_EVERY_MS) return;
    this.lastTmpSweep = Date.now();
    try {
      this.folders.check('tmp');
    } catch (err) {
      this.log.error('tmp/ is not swept', { err: (err as Error).message });
      return;
    }
    for (const n of readdirSync(this.layout.tmp)) {
      const path = join(this.layout.tmp, n);
      try {
        if (now - lstatSync(path).mtimeMs > TMP_DEBRIS_AGE) unlinkSync(path);
      } catch {
        // Renamed by its producer meanwhile, or not ours to delete.
      }
    }
    this.sweepRecordDebris(now);
  }

  /**
   * Records are staged beside their target (records.ts), out of the producers'
   * tmp/; a daemon killed between the write and the rename leaves a `.record-*`
   * file there. At the first sweep and then hourly (state/ may hold many records),
   * those older than an hour go.
   */
  private sweepRecordDebris(now: number): void {
    if (Date.now() - this.lastRecordSweep < TMP_DEBRIS_AGE) return;
    this.lastRecordSweep = Date.now();
    for (const sub of ['state', 'quarantine'] as const) {
      try {
        this.folders.check(sub);
        for (const n of readNames(this.layout[sub])) {
          if (!n.startsWith(RECORD_STAGING_PREFIX)) continue;
          const path = join(this.layout[sub], n);
          try {
            const st = lstatSync(path);
            if (st.isFile() && now - st.mtimeMs > TMP_DEBRIS_AGE) unlinkSync(path);
          } catch {
            // Renamed into place meanwhile.
          }
        }
      } catch (err) {
        this.log.error(`${sub}/ is not swept of unfinished records`, { err: (err as Error).message });
      }
    }
  }
}
