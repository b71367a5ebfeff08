/**
 * The children/ sweep (spool/children.ts; SPOOL-FORMAT.md, "Children and
 * continuations"), run by the reconciliation scan through the debris sweeper,
 * every ten minutes (and at the first scan):
 *
 *   - a parent's folder that nothing was added to for FLOW_KEEP_MS (its mtime:
 *     every entry, .done, .then or .cancelled made in it sets it) and that is
 *     settled (cancelled, its continuation enqueued: flows/<P>.then exists, or
 *     no continuation and every child done) is removed; so is one untouched
 *     for FLOW_ABANDON_MS whatever its state (a child removed by hand never
 *     gets its .done);
 *   - .gone- folders (a removal cut short by a crash) are removed.
 *
 * Cost: a listing of children/ and an lstat per parent each ten minutes; a
 * parent's folder is listed only once it is a day old.
 */
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { FLOW_ABANDON_MS, FLOW_KEEP_MS, flowSettled, listFlows, readFlow, removeFlow, removeGone } from '../../spool/children.js';
import { flowMarkerName } from '../../spool/flows.js';
import type { SpoolLayout } from '../../spool/layout.js';
import type { SpoolFolders } from '../folders.js';
import type { Logger } from '../logger.js';

const SCAN_EVERY_MS = 10 * 60_000;

export class ChildrenSweeper {
  private nextScan = 0;

  constructor(
    private readonly layout: SpoolLayout,
    private readonly folders: SpoolFolders,
    private readonly log: Logger,
  ) {}

  /** `now`: spool time (the folders' mtimes). */
  sweep(now: number): void {
    const t = performance.now();
    if (t < this.nextScan) return;
    this.nextScan = t + SCAN_EVERY_MS;
    let removed = 0;
    try {
      this.folders.check('children', 'flows');
      const { parents, gone } = listFlows(this.layout);
      for (const name of gone) removeGone(this.layout, name);
      for (const parent of parents) if (this.removable(parent, now)) (removeFlow(this.layout, parent), removed++);
    } catch (err) {
      return this.log.error('children/ could not be swept', { err: (err as Error).message });
    }
    if (removed > 0) this.log.info("removed the children/ folders of flows that are settled and over a day old", { count: removed });
  }

  private removable(parent: string, now: number): boolean {
    let mtime: number;
    try {
      const st = lstatSync(join(this.layout.children, parent));
      if (!st.isDirectory()) return false;
      mtime = st.mtimeMs;
    } catch {
      return false;
    }
    if (now - mtime <= FLOW_KEEP_MS) return false;
    if (now - mtime > FLOW_ABANDON_MS) return true;
    const listing = readFlow(this.layout, parent);
    if (listing === undefined) return false;
    let enqueued = false;
    try {
      lstatSync(join(this.layout.flows, flowMarkerName(parent, 'then')));
      enqueued = true;
    } catch {
      // not enqueued (or its marker pruned: then the folder is a day older than that and past the abandon age soon)
    }
    return flowSettled(listing, enqueued);
  }
}
