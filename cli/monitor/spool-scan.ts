/**
 * Counting and paging a spool's tasks by their file names alone: a task's
 * name carries its state's inputs (priority, due time, attempts, task name),
 * so nothing is opened or decoded. On a spool of 100,000 tasks that is a
 * listing of names, about as costly as `ls`, where `spool stats` reads every
 * body. A scan is cached for SCAN_TTL_MS so that many viewers (browser tabs,
 * `spool top`) refreshing every second cost one listing a second.
 */
import { SpoolDirectoryError } from '../../spool/errors.js';
import type { SpoolLayout } from '../../spool/layout.js';
import { parseName, QUARANTINE_REASON_SUFFIX } from '../../spool/listing.js';
import type { TaskName } from '../../spool/name.js';
import { readNames } from '../../spool/read-names.js';
import { assertRealFolder } from '../../spool/trust.js';

export const SCAN_TTL_MS = 1000;

/** The states a scan counts: those of `spool ls` but archived (archive/ may grow without end and is not watched). */
export const SCAN_STATES = ['active', 'due', 'scheduled', 'invalid', 'dead', 'quarantined'] as const;
export type ScanState = (typeof SCAN_STATES)[number];
export type Counts = Record<ScanState, number>;

/** One task as a page of a listing shows it. */
export interface ScanRow {
  fileName: string;
  state: ScanState;
  /** The parsed name; absent for a name that is not a task name. */
  task?: TaskName;
  /** The daemon holding the claim, for active tasks. */
  owner?: string;
}

export interface Page {
  rows: ScanRow[];
  total: number;
  /** Pass as `cursor` for the next page; null on the last. */
  next: string | null;
}

export interface SpoolScan {
  at: number;
  counts: Counts;
  rows: Record<ScanState, ScanRow[]>;
}

export const emptyCounts = (): Counts => ({ active: 0, due: 0, scheduled: 0, invalid: 0, dead: 0, quarantined: 0 });

/** Scans one spool (cached for SCAN_TTL_MS) and pages through its tasks by state. */
export class SpoolScanner {
  private cached: SpoolScan | undefined;
  private sorted = new Set<ScanState>();

  constructor(readonly layout: SpoolLayout) {}

  scan(now = Date.now()): SpoolScan {
    if (this.cached !== undefined && now - this.cached.at < SCAN_TTL_MS && now >= this.cached.at) return this.cached;
    this.cached = scanSpool(this.layout, now);
    this.sorted = new Set();
    return this.cached;
  }

  /** Forgets the cached scan (after a retry or remove, so the next view shows it). */
  invalidate(): void {
    this.cached = undefined;
  }

  /**
   * Up to `limit` tasks in `state` after `cursor` (a key a previous page gave
   * as `next`), in execution order: due tasks by name (priority, then due
   * time), scheduled ones by due time, the others by name.
   */
  page(state: ScanState, cursor: string | undefined, limit: number, now = Date.now()): Page {
    const scan = this.scan(now);
    const rows = scan.rows[state];
    if (!this.sorted.has(state)) {
      rows.sort(state === 'scheduled' ? byDueThenKey : byKey);
      this.sorted.add(state);
    }
    let start = 0;
    if (cursor !== undefined) {
      // The first row after the cursor; a cursor row that has gone meanwhile still places the page.
      const after = cursorRow(state, cursor);
      const compare = state === 'scheduled' ? byDueThenKey : byKey;
      let lo = 0;
      let hi = rows.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compare(rows[mid]!, after) <= 0) lo = mid + 1;
        else hi = mid;
      }
      start = lo;
    }
    const slice = rows.slice(start, start + limit);
    const next = start + limit < rows.length && slice.length > 0 ? rowKey(slice[slice.length - 1]!) : null;
    return { rows: slice, total: rows.length, next };
  }
}

/** A row's place in its listing: the file name, after the owner for a claimed task. */
export const rowKey = (r: ScanRow): string => (r.owner !== undefined ? `${r.owner}/${r.fileName}` : r.fileName);

function cursorRow(state: ScanState, cursor: string): ScanRow {
  const slash = state === 'active' ? cursor.indexOf('/') : -1;
  const fileName = slash >= 0 ? cursor.slice(slash + 1) : cursor;
  const task = parseName(fileName);
  return { fileName, state, ...(slash >= 0 && { owner: cursor.slice(0, slash) }), ...(task !== undefined && { task }) };
}

function byKey(a: ScanRow, b: ScanRow): number {
  const x = rowKey(a);
  const y = rowKey(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function byDueThenKey(a: ScanRow, b: ScanRow): number {
  if (a.task && b.task && a.task.due !== b.task.due) return a.task.due - b.task.due;
  return byKey(a, b);
}

/** One listing of each task folder. A folder that is missing counts as empty; one that is a link is refused (never followed). */
export function scanSpool(layout: SpoolLayout, now: number): SpoolScan {
  const rows: Record<ScanState, ScanRow[]> = { active: [], due: [], scheduled: [], invalid: [], dead: [], quarantined: [] };
  for (const dir of [layout.incoming, layout.pending]) {
    for (const fileName of names(dir)) {
      if (fileName.startsWith('.')) continue;
      const task = parseName(fileName);
      if (task === undefined) rows.invalid.push({ fileName, state: 'invalid' });
      else if (task.due > now) rows.scheduled.push({ fileName, state: 'scheduled', task });
      else rows.due.push({ fileName, state: 'due', task });
    }
  }
  for (const owner of names(layout.active)) {
    if (owner.startsWith('.')) continue;
    // Claim directories only: a file here is nobody's claim, and a link is not followed (names() refuses it).
    for (const fileName of names(`${layout.active}/${owner}`)) {
      if (fileName.startsWith('.')) continue;
      const task = parseName(fileName);
      rows.active.push({ fileName, state: 'active', owner, ...(task !== undefined && { task }) });
    }
  }
  for (const fileName of names(layout.dead)) {
    if (fileName.startsWith('.')) continue;
    const task = parseName(fileName);
    rows.dead.push({ fileName, state: 'dead', ...(task !== undefined && { task }) });
  }
  for (const fileName of names(layout.quarantine)) {
    if (fileName.startsWith('.') || fileName.endsWith(QUARANTINE_REASON_SUFFIX)) continue;
    const task = parseName(fileName);
    rows.quarantined.push({ fileName, state: 'quarantined', ...(task !== undefined && { task }) });
  }
  const counts = emptyCounts();
  for (const s of SCAN_STATES) counts[s] = rows[s].length;
  return { at: now, counts, rows };
}

/** The names in a real folder; none when it is missing, not a folder or a link. */
function names(dir: string): string[] {
  try {
    const st = assertRealFolder(dir);
    if (st === undefined) return [];
    return readNames(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    // A link or a file where a folder belongs (refused by assertRealFolder), or a folder we may not read: shown as empty.
    if (err instanceof SpoolDirectoryError || code === 'EACCES') return [];
    throw err;
  }
}
