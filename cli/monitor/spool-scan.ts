/**
 * Counting and paging a spool's tasks by their file names alone: a task's
 * name carries its state's inputs (priority, due time, attempts, task name),
 * so nothing is opened or decoded. On a spool of 100,000 tasks that is a
 * listing of names, about as costly as `ls`, where `spool stats` reads every
 * body. A folder whose mtime has not changed is not read again, and a scan is
 * reused for SCAN_TTL_MS (longer when it was costly), so that many viewers
 * (browser tabs, `spool top`) refreshing every second cost one scan between them.
 */
import { SpoolDirectoryError } from '../../spool/errors.js';
import { QUARANTINE_REASON_SUFFIX, stateAt, TASK_STATES, type SpoolLayout, type TaskState } from '../../spool/layout.js';
import { parseTaskName, type TaskName } from '../../spool/name.js';
import { readNames } from '../../spool/read-names.js';
import { assertRealFolder } from '../../spool/trust.js';

export const SCAN_TTL_MS = 1000;
/**
 * A scan that took long (a changing folder of 100,000 names: a few hundred ms
 * on a loaded machine) is reused for this many times its cost, so that
 * watching a large busy spool costs at most about a fifth of a core.
 */
export const SCAN_COST_FACTOR = 5;

/** The states a scan counts: those of `spool ls` but archived (archive/ may grow without end and is not watched). */
export type ScanState = Exclude<TaskState, 'archived'>;
export const SCAN_STATES: readonly ScanState[] = TASK_STATES.filter((s): s is ScanState => s !== 'archived');
export type Counts = Record<ScanState, number>;

/** One task as a page of a listing shows it. */
export interface ScanRow {
  fileName: string;
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

/** Scans one spool (cached for SCAN_TTL_MS, longer when a scan is costly) and pages through its tasks by state. */
export class SpoolScanner {
  private cached: SpoolScan | undefined;
  private sorted = new Set<ScanState>();
  private readonly reader = new FolderReader();
  /** How long the last scan took: a scan is reused for SCAN_COST_FACTOR times that, if longer than SCAN_TTL_MS. */
  private costMs = 0;

  constructor(readonly layout: SpoolLayout) {}

  scan(now = Date.now()): SpoolScan {
    const ttl = Math.max(SCAN_TTL_MS, SCAN_COST_FACTOR * this.costMs);
    if (this.cached !== undefined && now - this.cached.at < ttl && now >= this.cached.at) return this.cached;
    const started = performance.now();
    this.cached = scanSpool(this.layout, now, this.reader);
    this.costMs = performance.now() - started;
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
  const task = parseTaskName(fileName);
  return { fileName, ...(slash >= 0 && { owner: cursor.slice(0, slash) }), ...(task !== undefined && { task }) };
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

/**
 * What one folder held when last read: its entries with their parsed names,
 * and the folder's identity and mtime then, to tell whether it has changed.
 */
interface FolderRead {
  ino: number;
  mtimeMs: number;
  readAt: number;
  entries: ScanRow[];
}

/**
 * A folder's mtime can lag a change made in the same clock tick as the read
 * that saw the folder before it: a read is reused only when the folder's mtime
 * is this much older than the read (the "racily clean" case of git's index).
 */
const MTIME_SLACK_MS = 1000;

/**
 * Reads folders into rows, reusing the rows of a folder whose mtime has not
 * changed since it was read (a folder's mtime changes with every name added,
 * removed or renamed in it): an idle spool of 100,000 tasks costs a few stats.
 */
export class FolderReader {
  private readonly reads = new Map<string, FolderRead>();

  /** The rows of `dir` (names starting with "." and those `skip` says left out); none when it is missing or not a real folder. */
  rows(dir: string, owner?: string, skip?: (name: string) => boolean): ScanRow[] {
    let st;
    try {
      st = assertRealFolder(dir);
    } catch (err) {
      // A link or a file where a folder belongs: shown as empty (never followed).
      if (err instanceof SpoolDirectoryError) return [];
      throw err;
    }
    if (st === undefined) {
      this.reads.delete(dir);
      return [];
    }
    const known = this.reads.get(dir);
    if (known !== undefined && known.ino === st.ino && known.mtimeMs === st.mtimeMs && known.readAt - st.mtimeMs > MTIME_SLACK_MS) return known.entries;
    const readAt = Date.now();
    const entries: ScanRow[] = [];
    for (const fileName of names(dir)) {
      if (fileName.startsWith('.') || skip?.(fileName)) continue;
      const task = parseTaskName(fileName);
      entries.push(owner !== undefined ? { fileName, owner, ...(task !== undefined && { task }) } : task !== undefined ? { fileName, task } : { fileName });
    }
    this.reads.set(dir, { ino: st.ino, mtimeMs: st.mtimeMs, readAt, entries });
    return entries;
  }

  /** Forgets folders not read by the last scan (claim directories of daemons that are gone). */
  keepOnly(dirs: Set<string>): void {
    for (const dir of this.reads.keys()) if (!dirs.has(dir)) this.reads.delete(dir);
  }
}

/** One look at each task folder (reusing what has not changed, see FolderReader). */
export function scanSpool(layout: SpoolLayout, now: number, reader = new FolderReader()): SpoolScan {
  const rows: Record<ScanState, ScanRow[]> = { active: [], due: [], scheduled: [], invalid: [], dead: [], quarantined: [] };
  const seen = new Set<string>([layout.incoming, layout.pending, layout.dead, layout.quarantine]);
  for (const location of ['incoming', 'pending'] as const) {
    for (const row of reader.rows(layout[location])) {
      if (row.task === undefined) rows.invalid.push(row);
      else rows[stateAt(location, row.task.due, now) as 'due' | 'scheduled'].push(row);
    }
  }
  for (const owner of names(layout.active)) {
    if (owner.startsWith('.')) continue;
    // Claim directories only: a link is not followed, a file is nobody's claim (both read as empty).
    const dir = `${layout.active}/${owner}`;
    seen.add(dir);
    for (const row of reader.rows(dir, owner)) rows.active.push(row);
  }
  for (const row of reader.rows(layout.dead)) rows.dead.push(row);
  for (const row of reader.rows(layout.quarantine, undefined, (name) => name.endsWith(QUARANTINE_REASON_SUFFIX))) rows.quarantined.push(row);
  reader.keepOnly(seen);
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
