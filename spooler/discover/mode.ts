/**
 * How the daemon learns of arrivals in incoming/: one mode at a time, changed
 * only by the transition methods of IncomingDiscovery (incoming.ts), each of
 * which asserts the mode it leaves.
 *
 *                  incoming/ small                    the watch is in place
 *     starting ───────────────────────▶ arming ─────────────────────────────▶ watching
 *        │                              ▲    │                      (inotify, or polling
 *        │ incoming/ crowded            │    │ the watch               on a network filesystem:
 *        │ (> WATCH_MAX_BACKLOG)        │    │ cannot be set up        a setting of this mode)
 *        ▼                              │    ▼                                 │
 *     listing ──────────────────────────┘  listing ◀──────────────────────────┘
 *       incoming/ is listed on a          a listing found       more than WATCH_MAX_BACKLOG
 *       timer (listing-pace.ts);          it small again        tasks queued from incoming/
 *       future tasks move out of it
 *       (mover.ts)
 *
 *     watching ──incoming/ listed empty and recreated (spool/compact-folder.ts)──▶ arming
 *       the watch was on the old folder, which is gone: it is closed and set up on the new one
 *
 *     starting | arming | watching | listing ──stop / a folder replaced──▶ stopped (final)
 *
 *   starting  before start(): nothing is watched or listed.
 *   arming    the watch is being set up; incoming/ is listed once it is in place. Arrivals
 *             meanwhile are queued, but not moved out (only a watched incoming/ needs that).
 *             Also re-arming: a drained incoming/ that had grown large was recreated empty
 *             (listing it is cheap again), and the watch follows the new folder.
 *   watching  every arrival is reported by the watch; a task not due soon moves to pending/
 *             at once, so that the watched folder stays small.
 *   listing   incoming/ is too crowded to watch (a watcher re-reads the whole folder on
 *             every burst); it is listed on a timer instead, and its tasks not due soon
 *             are moved to pending/ in the background until it is small again.
 *   stopped   nothing more is discovered; a watch that comes into place now is closed.
 *
 * The reconciliation scan (reconcile.ts) runs beside every mode but `stopped`,
 * on its own timer.
 */

export type IncomingMode = 'starting' | 'arming' | 'watching' | 'listing' | 'stopped';

/** A transition the diagram does not have: a bug in the daemon, not a condition to handle. */
export class ImpossibleTransitionError extends Error {
  constructor(
    readonly machine: string,
    readonly from: string,
    readonly to: string,
  ) {
    super(`${machine}: no transition from "${from}" to "${to}" (a bug in spoolerd: please report it with the log)`);
    this.name = 'ImpossibleTransitionError';
  }
}

/** The edges of the diagram above: the modes each mode may be entered from. */
const ENTERED_FROM: Readonly<Record<IncomingMode, readonly IncomingMode[]>> = {
  starting: [],
  arming: ['starting', 'listing', 'watching'],
  watching: ['arming'],
  listing: ['starting', 'arming', 'watching'],
  stopped: ['starting', 'arming', 'watching', 'listing'],
};

/** Throws unless the diagram has an edge `from` → `to`. */
export function assertIncomingTransition(from: IncomingMode, to: IncomingMode): void {
  if (!ENTERED_FROM[to].includes(from)) throw new ImpossibleTransitionError('incoming/ discovery', from, to);
}

/** Throws unless `state` is one of `allowed` (for the small machines beside the mode: mover.ts, listing-pace.ts). */
export function assertState<S extends string>(machine: string, state: S, allowed: readonly S[], to: S): void {
  if (!allowed.includes(state)) throw new ImpossibleTransitionError(machine, state, to);
}
