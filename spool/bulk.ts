/**
 * Removing and retrying tasks, one or many, safely while daemons run. Used by
 * `spool rm` and `spool retry` (which parse the command line and report), and
 * meant for anything else that acts on tasks a person chose (a dashboard).
 *
 * The moves are spool/protocol.ts's revoke and revive (its table says what a
 * crash after each leaves); this module chooses what to act on, follows a
 * task that moved since it was listed, and reports an outcome per task.
 * A task that is running (in active/) is never touched.
 */
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { TASK_LOCATIONS, type SpoolLayout } from './layout.js';
import type { SpoolEntry } from './entries.js';
import { listSpool } from './listing.js';
import { existsNoFollow, revive, revoke } from './protocol.js';
import { assertRealFolder } from './trust.js';
import { releaseKeyOfRevoked } from './unique.js';

/** What became of one task. `label` is its id, or its file name when it has none. */
export type Outcome =
  | { kind: 'removed' | 'retried'; label: string; entry: SpoolEntry }
  /** Claimed by a daemon (before or while we acted): left alone. */
  | { kind: 'running'; label: string; entry: SpoolEntry; owner: string }
  /** Not in a state the operation acts on (retry of a task that is not a dead letter). */
  | { kind: 'wrong-state'; label: string; entry: SpoolEntry }
  /** No longer in the spool: processed, removed or retried by someone else meanwhile. */
  | { kind: 'gone'; label: string; entry: SpoolEntry }
  /** Taken out of the spool (so it will never run) but its file could not be deleted. */
  | { kind: 'stranded'; label: string; entry: SpoolEntry; path: string; error: Error };

export interface BulkOptions {
  /** Called after each task, with how many are done. */
  onProgress?: (done: number, total: number, outcome: Outcome) => void;
}

const labelOf = (e: SpoolEntry): string => e.task?.id ?? e.fileName;

/** Removes each entry (see the file comment); never a running one. One outcome per entry, in order. */
export function removeTasks(layout: SpoolLayout, entries: readonly SpoolEntry[], options: BulkOptions = {}): Outcome[] {
  // tmp/ may not exist yet in a spool a foreign producer started (SPOOL-FORMAT.md, "Layout").
  if (entries.length > 0) mkdirSync(layout.tmp, { recursive: true });
  const outcomes: Outcome[] = [];
  for (const entry of entries) {
    const outcome = removeOne(layout, entry);
    outcomes.push(outcome);
    options.onProgress?.(outcomes.length, entries.length, outcome);
  }
  return outcomes;
}

/** Puts each dead letter back into incoming/, due now, with its attempts at 0 (a fresh retry budget). */
export function retryTasks(layout: SpoolLayout, entries: readonly SpoolEntry[], options: BulkOptions = {}): Outcome[] {
  // A dead letter renamed into a missing incoming/ would fail as if it were gone: say what is wrong instead.
  if (assertRealFolder(layout.incoming) === undefined) {
    throw new NotASpoolError(`${layout.root} has no incoming/ folder, so nothing can be put back; is it a spool?`);
  }
  const outcomes: Outcome[] = [];
  const now = Date.now();
  for (const entry of entries) {
    const outcome = retryOne(layout, entry, now);
    outcomes.push(outcome);
    options.onProgress?.(outcomes.length, entries.length, outcome);
  }
  return outcomes;
}

/** The spool lacks a folder an operation needs. */
export class NotASpoolError extends Error {}

function retryOne(layout: SpoolLayout, entry: SpoolEntry, now: number): Outcome {
  const label = labelOf(entry);
  if (entry.state === 'active') return { kind: 'running', label, entry, owner: entry.owner ?? '?' };
  // A file with a bad name in dead/ cannot be scheduled (spool rm removes it).
  if (entry.state !== 'dead' || entry.task === undefined) return { kind: 'wrong-state', label, entry };
  return revive(layout, entry.path, entry.task, now) ? { kind: 'retried', label, entry } : { kind: 'gone', label, entry };
}

/**
 * Revokes the entry. If it has moved since it was listed: a daemon accepting it
 * moves it from incoming/ to pending/ under the same name; a daemon that claimed
 * it has it in active/<owner>/ (then it is running and left alone); otherwise it
 * is looked up afresh, once.
 */
function removeOne(layout: SpoolLayout, listed: SpoolEntry): Outcome {
  let entry = listed;
  for (let attempt = 0; ; attempt++) {
    const label = labelOf(entry);
    if (entry.state === 'active') return { kind: 'running', label, entry, owner: entry.owner ?? '?' };
    const paths = entry.location === 'incoming' ? [entry.path, join(layout.pending, entry.fileName)] : [entry.path];
    const task = entry.location === 'quarantine' ? undefined : entry.task;
    const revoked = revoke(layout, {
      paths,
      quarantined: entry.location === 'quarantine',
      ...(entry.task !== undefined && { id: entry.task.id }),
      // A unique key the task held is released now, not by the sweep a minute later.
      ...(task !== undefined && { beforeDelete: (path: string, fileName: string) => releaseKeyOfRevoked(layout, path, fileName, task.id) }),
    });
    if (revoked.kind === 'revoked') return { kind: 'removed', label, entry };
    if (revoked.kind === 'stranded') return { kind: 'stranded', label, entry, path: revoked.path, error: revoked.error };
    const owner = claimedBy(layout, entry.fileName);
    if (owner !== undefined) return { kind: 'running', label, entry, owner };
    if (attempt === 1 || entry.task === undefined) return { kind: 'gone', label, entry };
    // Renamed (retried by a daemon, dead-lettered, put back): find it under its new name.
    const id = entry.task.id;
    const now = listSpool(layout, { locations: TASK_LOCATIONS, checkBodies: false }).filter((e) => e.task?.id === id);
    const live = now.find((e) => e.state !== 'archived');
    if (live === undefined) return { kind: 'gone', label, entry };
    entry = live;
  }
}

/** The daemon holding a claim on `fileName`, if one does. */
function claimedBy(layout: SpoolLayout, fileName: string): string | undefined {
  let owners;
  try {
    owners = readdirSync(layout.active, { withFileTypes: true });
  } catch {
    return undefined;
  }
  for (const owner of owners) {
    if (owner.isDirectory() && existsNoFollow(join(layout.active, owner.name, fileName))) return owner.name;
  }
  return undefined;
}

