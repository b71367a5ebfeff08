/**
 * Choosing tasks on one listing: by reference (an id, a unique prefix or suffix
 * of one, or a file name) or by filter (state, task name, age). Bulk commands
 * list the spool once and look every reference up here, instead of listing it
 * again for each: `spool rm` of 20,000 ids costs one listing, not 20,000.
 */
import { lstatSync } from 'node:fs';
import type { SpoolEntry } from './entries.js';
import { LOCATIONS_OF, locationsOf, TASK_LOCATIONS, TASK_STATES, type SpoolLayout, type TaskState } from './layout.js';
import { listSpool } from './listing.js';

/**
 * Whether telling these states apart needs the task bodies: a file in
 * incoming/ or pending/ with a good name is due or scheduled by its name, and
 * invalid only if its body is bad. When all three states or none are wanted,
 * the bodies do not matter.
 */
export function statesNeedBodies(states: ReadonlySet<TaskState>): boolean {
  const n = SHARED_STATES.filter((s) => states.has(s)).length;
  return n > 0 && n < SHARED_STATES.length;
}

/** The states of incoming/ and pending/ (due, scheduled, invalid): the folders that hold more than one (layout.ts). */
const SHARED_STATES = TASK_STATES.filter((s) => LOCATIONS_OF[s].includes('incoming'));

/** A filter: an entry matches when it matches every part given. */
export interface TaskFilter {
  states: ReadonlySet<TaskState>;
  /** Only tasks with these names. */
  names?: ReadonlySet<string>;
  /**
   * Only tasks created at least this long ago (ms), by the creation time in
   * their id; files without a task name by their modification time.
   */
  olderThanMs?: number;
}

export function matchesFilter(e: SpoolEntry, filter: TaskFilter, now: number): boolean {
  if (!filter.states.has(e.state)) return false;
  if (filter.names !== undefined && (e.task === undefined || !filter.names.has(e.task.name))) return false;
  if (filter.olderThanMs !== undefined) {
    const since = e.task?.created ?? modifiedAt(e.path);
    if (since === undefined || now - since < filter.olderThanMs) return false;
  }
  return true;
}

function modifiedAt(path: string): number | undefined {
  try {
    return lstatSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

/**
 * Looks every reference up in one listing of the whole spool (by name: no
 * file is opened). One result per reference, in order.
 */
export function resolveRefs(layout: SpoolLayout, refs: readonly string[]): Resolved[] {
  const index = new TaskIndex(listSpool(layout, { locations: TASK_LOCATIONS, checkBodies: false }));
  return refs.map((ref) => index.resolve(ref));
}

/**
 * The entries that match a filter, in execution order, from one listing of
 * the folders its states live in (bodies opened only where the states need
 * them: statesNeedBodies).
 */
export function listMatching(layout: SpoolLayout, filter: TaskFilter, now = Date.now()): SpoolEntry[] {
  const listed = listSpool(layout, { locations: locationsOf(filter.states), checkBodies: statesNeedBodies(filter.states), now });
  return listed.filter((e) => matchesFilter(e, filter, now));
}

export type Resolved =
  | { ok: true; ref: string; entry: SpoolEntry }
  | { ok: false; ref: string; problem: 'not-found' }
  | { ok: false; ref: string; problem: 'ambiguous'; count: number; examples: string[] };

/**
 * Looks references up in one listing. A reference is, in this order: a file
 * name; a whole id; or the start or the end of exactly one id. Every id starts
 * with its 13-digit creation time, so tasks enqueued in the same period share
 * long prefixes; the end of an id is its random part, and a few characters of
 * it are usually unique (`spool rm 3f09c2`). Each lookup is a binary search.
 */
export class TaskIndex {
  private readonly byFile = new Map<string, SpoolEntry>();
  private readonly byId = new Map<string, SpoolEntry>();
  /** The ids, sorted, for prefixes. */
  private readonly ids: string[];
  /** The ids written backwards, sorted, for suffixes (made at the first suffix lookup). */
  private reversed: string[] | undefined;

  constructor(entries: readonly SpoolEntry[]) {
    for (const e of entries) {
      // One file or id in two places only while a rename is in flight elsewhere; prefer the live copy.
      const seen = this.byFile.get(e.fileName);
      if (seen === undefined || seen.state === 'archived') this.byFile.set(e.fileName, e);
      if (e.task !== undefined) {
        const other = this.byId.get(e.task.id);
        if (other === undefined || other.state === 'archived') this.byId.set(e.task.id, e);
      }
    }
    this.ids = [...this.byId.keys()].sort();
  }

  resolve(ref: string): Resolved {
    if (ref.length === 0) return { ok: false, ref, problem: 'not-found' };
    const byFile = this.byFile.get(ref);
    if (byFile !== undefined) return { ok: true, ref, entry: byFile };
    const exact = this.byId.get(ref);
    if (exact !== undefined) return { ok: true, ref, entry: exact };
    const [pFrom, pTo] = range(this.ids, ref);
    let sFrom = 0;
    let sTo = 0;
    const reversedRef = reverse(ref);
    if (/^[0-9a-f]+$/.test(ref)) {
      this.reversed ??= this.ids.map(reverse).sort();
      [sFrom, sTo] = range(this.reversed, reversedRef);
    }
    // A short reference can be both the start of one id and the end of the same one. Past a few
    // matches the exact count does not matter (it is ambiguous either way): it is not worked out.
    const found = new Set<string>();
    for (let i = pFrom; i < pTo && found.size < 8; i++) found.add(this.ids[i]!);
    for (let i = sFrom; i < sTo && found.size < 16; i++) found.add(reverse(this.reversed![i]!));
    if (found.size === 0) return { ok: false, ref, problem: 'not-found' };
    if (found.size === 1) return { ok: true, ref, entry: this.byId.get([...found][0]!)! };
    const count = Math.max(found.size, pTo - pFrom, sTo - sFrom);
    return { ok: false, ref, problem: 'ambiguous', count, examples: [...found].slice(0, 3) };
  }
}

/** The indices [from, to) of the sorted strings that start with `prefix`. */
function range(sorted: readonly string[], prefix: string): [number, number] {
  const from = lowerBound(sorted, prefix);
  // Ids hold only digits and a-f: every string that starts with prefix sorts before prefix + "g".
  const to = lowerBound(sorted, prefix + '\uffff', from);
  return [from, to];
}

function lowerBound(sorted: readonly string[], key: string, from = 0): number {
  let lo = from;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function reverse(s: string): string {
  let out = '';
  for (let i = s.length - 1; i >= 0; i--) out += s[i];
  return out;
}
