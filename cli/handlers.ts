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
