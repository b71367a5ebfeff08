/**
 * A task's life as `spool show` tells it, put together from what the spool
 * already holds, so that the plain path writes nothing for it:
 *
 *   enqueued      the time in its id
 *   started       the owner's status file (state/daemon-<owner>.json), while it runs
 *   claimed       its folder: active/<owner>/
 *   failed        state/<id>.json, one entry per failed attempt (only failing tasks write it)
 *   rescheduled   its name: due time and attempts, while it waits for its next try
 *   dead          dead/ and state/<id>.json
 *   processed, skipped, cancelled, expired: results/<id>.<encoding>, for tasks that keep a result
 */
import type { SpoolEntry } from './entries.js';
import type { LastError } from './failure-record.js';
import type { SpoolLayout } from './layout.js';
import { TASK_ID_PATTERN } from './name.js';
import type { ResultRecord } from './results.js';
import { readRegularFile } from './safe-read.js';
import { statusFilePath, type DaemonStatusRecord } from './status-file.js';

export type HistoryEvent =
  | { event: 'enqueued'; at: number }
  | { event: 'claimed'; owner: string; at?: number }
  | { event: 'failed'; attempt: number; at: number; owner?: string; error: { name?: string; message: string }; retryAt?: number }
  | { event: 'rescheduled'; until: number; attempts: number }
  | { event: 'dead'; at?: number; attempts?: number }
  | { event: 'processed' | 'skipped' | 'cancelled' | 'expired'; at: number; owner?: string; reason?: string; attempts: number };

/** The events of task `id`, oldest first. `entry`: its file, if it still has one; `result`: its record, if one is kept. */
export function taskHistory(layout: SpoolLayout, id: string, entry: SpoolEntry | undefined, lastError: LastError | undefined, result: ResultRecord | undefined): HistoryEvent[] {
  const events: HistoryEvent[] = [];
  // An id starts with its creation time in ms (spool/name.ts).
  if (TASK_ID_PATTERN.test(id)) events.push({ event: 'enqueued', at: Number(id.slice(0, 13)) });
  for (const h of lastError?.history ?? []) events.push({ event: 'failed', ...h });
  if (entry !== undefined && entry.task !== undefined) {
    if (entry.state === 'active' && entry.owner !== undefined) {
      const startedAt = runningSince(layout, entry.owner, id);
      events.push(startedAt === undefined ? { event: 'claimed', owner: entry.owner } : { event: 'claimed', owner: entry.owner, at: startedAt });
    } else if ((entry.state === 'due' || entry.state === 'scheduled') && entry.task.attempts > 0) {
      events.push({ event: 'rescheduled', until: entry.task.due, attempts: entry.task.attempts });
    } else if (entry.state === 'dead' && result?.ending !== 'dead') {
      events.push(lastError?.at === undefined || lastError.at === null ? { event: 'dead', attempts: entry.task.attempts } : { event: 'dead', at: lastError.at, attempts: entry.task.attempts });
    }
  }
  if (result !== undefined) {
    if (result.ending === 'dead') events.push({ event: 'dead', at: result.finishedAt, attempts: result.attempts });
    else events.push({ event: result.ending, at: result.finishedAt, attempts: result.attempts, ...(result.owner !== undefined && { owner: result.owner }), ...(result.reason !== undefined && { reason: result.reason }) });
  }
  return events;
}

/** When the owner's status file says it started task `id` (it lists its running tasks about once a second). */
function runningSince(layout: SpoolLayout, owner: string, id: string): number | undefined {
  const read = readRegularFile(statusFilePath(layout, owner), 1024 * 1024);
  if (!read.ok) return undefined;
  try {
    const status = JSON.parse(read.bytes.toString('utf8')) as DaemonStatusRecord;
    return status.running?.find((r) => r.id === id)?.startedAt;
  } catch {
    return undefined;
  }
}
