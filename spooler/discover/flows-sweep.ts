/**
 * The flows/ sweep (SPOOL-FORMAT.md, "Chains"), run by the reconciliation scan
 * through the debris sweeper:
 *
 *   - stages of daemons killed between the link and the rename of an
 *     enqueue-once (link count 2, over STAGE_GRACE_MS old) are renamed into
 *     incoming/ (spool/enqueue-once.ts, finishStagedEnqueues); stage debris
 *     (count 1) over an hour old is deleted;
 *   - markers whose task has ended (count 1) and that are over a day old are
 *     pruned (spool/flows.ts, pruneFlowMarkers).
 *
 * flows/ holds a marker per chain step for a day, so it is listed rarely: at the
 * first scan (daemon start-up), then every minute, or every second while a
 * stage is there (one that is still within its grace is published at the
 * next look). A live enqueuer renames its stage within microseconds, so stages
 * are seen only after a crash.
 */
import { finishStagedEnqueues, STAGE_GRACE_MS, STAGE_PREFIX } from '../../spool/enqueue-once.js';
import { pruneFlowMarkers } from '../../spool/flows.js';
import type { SpoolLayout } from '../../spool/layout.js';
import { readNames } from '../../spool/read-names.js';
import type { SpoolFolders } from '../folders.js';
import type { Logger } from '../logger.js';

const SCAN_EVERY_MS = 60_000;
const SCAN_STAGES_EVERY_MS = 1000;

export class FlowsSweeper {
  private nextScan = 0;

  constructor(
    private readonly layout: SpoolLayout,
    private readonly folders: SpoolFolders,
    private readonly log: Logger,
  ) {}

  /** `now`: spool time (the files' mtimes). */
  sweep(now: number): void {
    const t = performance.now();
    if (t < this.nextScan) return;
    this.nextScan = t + SCAN_EVERY_MS;
    let names: string[];
    try {
      this.folders.check('flows', 'incoming');
      names = readNames(this.layout.flows);
    } catch (err) {
      return this.log.error('flows/ is not swept (unfinished enqueues of chains are not recovered)', { err: (err as Error).message });
    }
    try {
      for (const fileName of finishStagedEnqueues(this.layout, this.layout.flows, names, now, STAGE_GRACE_MS)) {
        this.log.warn('published the next step (or onError task) of a chain whose enqueuer died after making its marker', { file: fileName });
      }
      if (names.some((n) => n.startsWith(STAGE_PREFIX))) this.nextScan = t + SCAN_STAGES_EVERY_MS;
      const pruned = pruneFlowMarkers(this.layout, now, names);
      if (pruned > 0) this.log.debug('pruned chain markers in flows/', { count: pruned });
    } catch (err) {
      this.log.error('flows/ could not be swept', { err: (err as Error).message });
    }
  }
}
