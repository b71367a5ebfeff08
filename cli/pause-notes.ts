/**
 * What is paused, for `spool ls` and `spool stats`: read from
 * control/pause.json (spool/pause.ts). A file that cannot be used is not an
 * error here (the listing goes on) but said plainly: daemons then pause every
 * task until it is fixed (spooler/pause-watch.ts).
 */
import type { SpoolEntry } from '../spool/entries.js';
import type { SpoolLayout } from '../spool/layout.js';
import { isTaskPaused, NOTHING_PAUSED, pausesAnything, readPauseStateSync, type PauseState } from '../spool/pause.js';
import { printable } from '../spool/printable.js';

export interface PauseView {
  /** What daemons apply: the file's state, or every task while the file cannot be used. */
  state: PauseState;
  /** Why control/pause.json cannot be used; undefined when it can (or is absent). */
  problem?: string;
}

export function readPauseView(layout: SpoolLayout): PauseView {
  try {
    return { state: readPauseStateSync(layout.root) };
  } catch (err) {
    return { state: { ...NOTHING_PAUSED, all: true }, problem: (err as Error).message };
  }
}

/** The note on a waiting task that is paused. */
export function pausedNote(view: PauseView): string {
  return view.state.all ? 'paused: every task is (spool resume)' : 'paused (spool resume --task NAME)';
}

/** Marks the waiting tasks that are paused (`paused`, and a note unless they have one); undefined when nothing is paused. */
export function pauseNotes(view: PauseView): ((entries: SpoolEntry[]) => void) | undefined {
  if (!view.state.all && view.state.tasks.length === 0) return undefined;
  const note = pausedNote(view);
  return (entries) => {
    for (const e of entries) {
      if ((e.state === 'due' || e.state === 'scheduled') && e.task !== undefined && isTaskPaused(view.state, e.task.name)) {
        e.paused = true;
        e.reason ??= note;
      }
    }
  };
}

/** The header line of `spool ls`, or undefined when nothing is paused. */
export function pauseHeader(view: PauseView): string | undefined {
  if (view.problem !== undefined) return `paused: every task, because ${printable(view.problem)}\n`;
  if (!pausesAnything(view.state)) return undefined;
  const parts: string[] = [];
  if (view.state.all) parts.push('every task (spool resume to go on)');
  else if (view.state.tasks.length > 0) parts.push(`tasks ${view.state.tasks.map(printable).join(', ')} (spool resume --task NAME to go on)`);
  if (view.state.schedules.length > 0) parts.push(`schedules ${view.state.schedules.map(printable).join(', ')}`);
  return `paused: ${parts.join('; ')}\n`;
}
