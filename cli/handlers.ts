/**
 * Which tasks wait for a handler, for `spool ls`: from the status files of
 * the live daemons (spool/status-file.ts), which declare the task names each
 * one claims. A due or scheduled task whose name no live daemon declares is
 * noted "waiting for a handler". Said only when it can be known: at least one
 * daemon is live and every live one declares its names (an older daemon that
 * declares nothing may run anything).
 */
import type { SpoolEntry } from '../spool/entries.js';
import type { SpoolLayout } from '../spool/layout.js';
import { readDaemonStatuses } from './monitor/status-files.js';

export const NO_HANDLER_NOTE = 'waiting for a handler: no live daemon runs this task';

/** A function that notes the entries waiting for a handler, or undefined when that cannot be known now. */
export function handlerNotes(layout: SpoolLayout, now = Date.now()): ((entries: SpoolEntry[]) => void) | undefined {
  const live = readDaemonStatuses(layout, now).filter((s) => !s.stale);
  if (live.length === 0 || live.some((s) => s.tasks === undefined)) return undefined;
  const served = new Set(live.flatMap((s) => s.tasks!));
  return (entries) => {
    for (const e of entries) {
      if ((e.state === 'due' || e.state === 'scheduled') && e.task !== undefined && e.reason === undefined && !served.has(e.task.name)) e.reason = NO_HANDLER_NOTE;
    }
  };
}

/** The notes for tasks a daemon holds back by a limit (SPOOL-FORMAT.md, "Concurrency and rate limits"). */
export const LIMIT_NOTES = {
  slot: 'waits for a concurrency slot of its task',
  key: 'may wait for a slot of its concurrency key',
  rate: 'waits for its rate window',
} as const;

/**
 * A function that notes the due tasks of names that live daemons hold back by
 * a limit (their status files count parked tasks by scope; no task body is
 * read): every due task of a name limited as a whole waits for a slot; of a
 * name limited per key, some do (which ones, only their keys say). Undefined
 * when no live daemon holds any back.
 */
export function limitNotes(layout: SpoolLayout, now = Date.now()): ((entries: SpoolEntry[]) => void) | undefined {
  const byName = new Map<string, string>();
  for (const s of readDaemonStatuses(layout, now)) {
    if (s.stale || s.limits === undefined) continue;
    for (const [scope, n] of Object.entries(s.limits.parked)) {
      if (n === 0) continue;
      const [kind, name] = scope.split('~');
      if (name === undefined) continue;
      const note = kind === 'c' ? LIMIT_NOTES.slot : kind === 'k' ? LIMIT_NOTES.key : kind === 'r' ? LIMIT_NOTES.rate : undefined;
      // A name limited as a whole says most: keep it over the others.
      if (note !== undefined && byName.get(name) !== LIMIT_NOTES.slot) byName.set(name, note);
    }
  }
  if (byName.size === 0) return undefined;
  return (entries) => {
    for (const e of entries) {
      if (e.state !== 'due' || e.task === undefined || e.reason !== undefined) continue;
      const note = byName.get(e.task.name);
      if (note !== undefined) e.reason = note;
    }
  };
}
