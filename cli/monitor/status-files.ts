/**
 * Reading the per-daemon status files, `state/daemon-<owner>.json`, that each
 * serving daemon rewrites about once a second (its schema: spool/status-file.ts,
 * SPOOL-FORMAT.md). Whoever can write state/ wrote them: every
 * field is checked for its type and anything malformed is left out.
 */
import { join } from 'node:path';
import type { SpoolLayout } from '../../spool/layout.js';
import { readNames } from '../../spool/read-names.js';
import { readRegularFile } from '../../spool/safe-read.js';
import {
  BY_TASK_KEYS,
  STATUS_FILE_VERSION,
  STATUS_MAX_BYTES,
  STATUS_MAX_RUNNING,
  STATUS_STALE_MS,
  statusFilePath,
  TOTAL_KEYS,
  type DaemonStatusRecord,
  type RunningTask,
  type TaskTotals,
  type Totals,
} from '../../spool/status-file.js';
import { assertRealFolder } from '../../spool/trust.js';


export interface DaemonStatus extends Omit<DaemonStatusRecord, 'version'> {
  /** Not rewritten for STATUS_STALE_MS: the daemon is gone; its running tasks are not counted. */
  stale: boolean;
}

/**
 * The status files of the daemons that have a claim directory in active/
 * (each daemon makes active/<owner>/ when it starts): one lookup per owner
 * rather than a listing of state/, which holds a record per failed task and
 * may be large. Files that are missing, irregular (a link is never followed)
 * or malformed are left out.
 */
export function readDaemonStatuses(layout: SpoolLayout, now = Date.now()): DaemonStatus[] {
  let owners: string[];
  try {
    if (assertRealFolder(layout.active) === undefined || assertRealFolder(layout.state) === undefined) return [];
    owners = readNames(layout.active);
  } catch {
    return [];
  }
  const statuses: DaemonStatus[] = [];
  for (const owner of owners.sort()) {
    if (owner.startsWith('.') || owner.includes('/')) continue;
    const read = readRegularFile(statusFilePath(layout, owner), STATUS_MAX_BYTES);
    if (!read.ok) continue;
    let value: unknown;
    try {
      value = JSON.parse(read.bytes.toString('utf8'));
    } catch {
      continue;
    }
    const status = parseDaemonStatus(value, now);
    if (status !== undefined && status.owner === owner) statuses.push(status);
  }
  return statuses;
}

/** A status file's parsed JSON checked against the schema; undefined when it does not match. */
export function parseDaemonStatus(value: unknown, now = Date.now()): DaemonStatus | undefined {
  if (!isObject(value) || value.version !== STATUS_FILE_VERSION) return undefined;
  const { owner, host, pid, startedAt, updatedAt, concurrency } = value;
  if (typeof owner !== 'string' || owner.length === 0 || typeof host !== 'string') return undefined;
  if (!isCount(pid) || !isTime(startedAt) || !isTime(updatedAt) || !isCount(concurrency)) return undefined;
  const totals = counters(value.totals, TOTAL_KEYS);
  if (totals === undefined) return undefined;
  const byTask: Record<string, TaskTotals> = Object.create(null) as Record<string, TaskTotals>;
  if (isObject(value.byTask)) {
    for (const [name, counts] of Object.entries(value.byTask)) {
      const checked = counters(counts, BY_TASK_KEYS);
      if (checked !== undefined) byTask[name] = checked;
    }
  }
  const running: RunningTask[] = [];
  if (Array.isArray(value.running)) {
    for (const r of value.running.slice(0, STATUS_MAX_RUNNING)) {
      if (isObject(r) && typeof r.id === 'string' && typeof r.name === 'string' && isCount(r.attempt) && isTime(r.startedAt)) {
        running.push({ id: r.id, name: r.name, attempt: r.attempt, startedAt: r.startedAt });
      }
    }
  }
  const q = isObject(value.queue) ? value.queue : {};
  const queue = {
    ready: isCount(q.ready) ? q.ready : 0,
    known: isCount(q.known) ? q.known : 0,
    nextDueAt: isTime(q.nextDueAt) ? q.nextDueAt : null,
  };
  const tasks = Array.isArray(value.tasks) ? value.tasks.filter((t): t is string => typeof t === 'string') : undefined;
  const limits = parkedScopes(value.limits);
  return { owner, host, pid, startedAt, updatedAt, concurrency, totals, byTask, running, queue, ...(tasks !== undefined && { tasks }), ...(limits !== undefined && { limits }), stale: now - updatedAt > STATUS_STALE_MS };
}

/** `limits.parked` (tasks held back by a concurrency or rate limit, by scope), or undefined. */
function parkedScopes(value: unknown): { parked: Record<string, number> } | undefined {
  if (!isObject(value) || !isObject(value.parked)) return undefined;
  const parked: Record<string, number> = Object.create(null) as Record<string, number>;
  for (const [scope, n] of Object.entries(value.parked)) if (isCount(n)) parked[scope] = n;
  return { parked };
}

/** Tasks done (processed or skipped) by one daemon since it started: what throughput is measured by. */
export const doneCount = (s: DaemonStatus): number => s.totals.processed + s.totals.skipped;

function counters<K extends string>(value: unknown, keys: readonly K[]): Record<K, number> | undefined {
  if (!isObject(value)) return undefined;
  const out = {} as Record<K, number>;
  for (const k of keys) {
    const n = value[k];
    // A counter a newer writer leaves out reads as 0; one of the wrong type spoils the file.
    if (n === undefined) out[k] = 0;
    else if (isCount(n)) out[k] = n;
    else return undefined;
  }
  return out;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isTime = (v: unknown): v is number => isCount(v);
