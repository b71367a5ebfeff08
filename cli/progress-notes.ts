/**
 * The progress of running tasks, for `spool ls` and `spool show`: from
 * progress/<id>.json (spool/progress.ts), which a task's runner writes while it
 * runs. `spool ls` lists progress/ once (empty for most spools) and reads only
 * the records of the running tasks it prints.
 */
import { readdirSync } from 'node:fs';
import type { SpoolEntry } from '../spool/entries.js';
import type { SpoolLayout } from '../spool/layout.js';
import { progressIdOf, readProgress, type Progress } from '../spool/progress.js';

/** How a progress reads in the NOTE column: "40% resized 40 of 100 (3s ago)". */
export function progressText(p: Progress, now = Date.now()): string {
  const pct = `${Math.floor(p.fraction * 1000) / 10}%`;
  const age = Math.max(0, Math.round((now - p.at) / 1000));
  return `${pct}${p.message === undefined ? '' : ` ${p.message}`} (${age}s ago)`;
}

/** A function that gives running entries their progress (and a note), or undefined when no task reported any. */
export function progressNotes(layout: SpoolLayout, now = Date.now()): ((entries: SpoolEntry[]) => void) | undefined {
  let ids: Set<string>;
  try {
    ids = new Set(readdirSync(layout.progress).map(progressIdOf).filter((id): id is string => id !== undefined));
  } catch {
    return undefined; // no progress/ (an older spool), or not ours to read
  }
  if (ids.size === 0) return undefined;
  return (entries) => {
    for (const e of entries) {
      if (e.state !== 'active' || e.task === undefined || !ids.has(e.task.id)) continue;
      const p = readProgress(layout, e.task.id);
      if (p === undefined) continue;
      e.progress = p;
      if (e.reason === undefined) e.reason = `progress ${progressText(p, now)}`;
    }
  };
}
