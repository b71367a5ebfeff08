/**
 * Debris sweeps, run by the reconciliation scan (reconcile.ts): staging files
 * of crashed producers in tmp/, unfinished records of crashed daemons in
 * state/, results/, quarantine/ and progress/, progress records left by runners
 * killed while their task ran (spool/progress.ts), and result records past their keep-until
 * time. A record's keep-until time is its mtime (spool/protocol.ts,
 * keepResult), so the result sweep lists results/ and lstats each name, at
 * most once a minute, and reads none: no work per task.
 */
import { readdirSync } from 'node:fs';
import { sep } from 'node:path';
import { parseTaskName } from '../../spool/name.js';
import { sweepOrphanProgress } from '../../spool/progress.js';
import { DEBRIS_AGE_MS, sweepExpiredResults, sweepRecordDebris, sweepTmp } from '../../spool/protocol.js';
import { readNames } from '../../spool/read-names.js';
import type { SpoolLayout } from '../../spool/layout.js';
import type { SpoolFolders } from '../folders.js';
import type { Logger } from '../logger.js';
import { UniqueKeySweeper } from './unique-sweep.js';
import { FlowsSweeper } from './flows-sweep.js';
/** tmp/ is swept at most this often. */
const TMP_SWEEP_EVERY_MS = 60_000;

export class DebrisSweeper {
  private lastTmpSweep = 0;
  private lastRecordSweep = 0;
  private readonly uniqueKeys: UniqueKeySweeper;
  private readonly flows: FlowsSweeper;

  constructor(
    private readonly layout: SpoolLayout,
    private readonly folders: SpoolFolders,
    private readonly log: Logger,
  ) {
    this.uniqueKeys = new UniqueKeySweeper(layout, folders, log);
    this.flows = new FlowsSweeper(layout, folders, log);
  }

  /** Deletes staging debris of crashed producers, at most once a minute; `now` by the spool clock (files' mtimes). */
  sweep(now: number): void {
    // Stale unique keys, on their own cadence (unique-sweep.ts).
    this.uniqueKeys.sweep(now);
    // Unfinished enqueues of chains and old markers in flows/ (flows-sweep.ts).
    this.flows.sweep(now);
    if (Date.now() - this.lastTmpSweep < TMP_SWEEP_EVERY_MS) return;
    this.lastTmpSweep = Date.now();
    try {
      this.folders.check('tmp');
    } catch (err) {
      this.log.error('tmp/ is not swept', { err: (err as Error).message });
      return;
    }
    sweepTmp(this.layout, readdirSync(this.layout.tmp), now);
    this.sweepRecordDebris(now);
    this.sweepExpiredResults(now);
    this.sweepOrphanProgress(now);
  }

  /**
   * Progress records whose task is not running (its runner was killed before
   * the run's end removed it). One listing of progress/ (usually empty); the
   * claim folders are listed only when it holds a record old enough to judge.
   */
  private sweepOrphanProgress(now: number): void {
    try {
      this.folders.check('progress');
      const names = readNames(this.layout.progress);
      if (names.length === 0) return;
      const removed = sweepOrphanProgress(this.layout, names, () => this.runningIds(), now);
      if (removed > 0) this.log.info('removed progress records of tasks that are not running', { count: removed });
    } catch (err) {
      // A spool made before progress/ existed has none until a daemon makes it.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.error('progress/ is not swept of orphan records', { err: (err as Error).message });
    }
  }

  /** The ids of the tasks in every claim folder, active/<owner>/. */
  private runningIds(): Set<string> {
    const ids = new Set<string>();
    for (const owner of readNames(this.layout.active)) {
      try {
        for (const n of readNames(this.layout.active + sep + owner)) {
          const t = parseTaskName(n);
          if (t !== undefined) ids.add(t.id);
        }
      } catch {
        // Reclaimed meanwhile.
      }
    }
    return ids;
  }

  /** Deletes result records whose keep-until time (their mtime) has passed. */
  private sweepExpiredResults(now: number): void {
    try {
      this.folders.check('results');
      const deleted = sweepExpiredResults(this.layout, readNames(this.layout.results), now);
      if (deleted > 0) this.log.info('deleted expired results', { count: deleted });
    } catch (err) {
      this.log.error('results/ is not swept of expired results', { err: (err as Error).message });
    }
  }

  /**
   * Records are staged beside their target (spool/protocol.ts), out of the producers'
   * tmp/; a daemon killed between the write and the rename leaves a `.record-*`
   * file there. At the first sweep and then hourly (state/ may hold many records),
   * those older than an hour go.
   */
  private sweepRecordDebris(now: number): void {
    if (Date.now() - this.lastRecordSweep < DEBRIS_AGE_MS) return;
    this.lastRecordSweep = Date.now();
    for (const sub of ['state', 'results', 'quarantine', 'progress'] as const) {
      try {
        this.folders.check(sub);
        sweepRecordDebris(this.layout[sub], readNames(this.layout[sub]), now);
      } catch (err) {
        this.log.error(`${sub}/ is not swept of unfinished records`, { err: (err as Error).message });
      }
    }
  }
}
