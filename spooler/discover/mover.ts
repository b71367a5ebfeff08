/**
 * Moves the tasks not due soon out of a crowded incoming/ to pending/, a
 * slice at a time between dispatches (producers filled incoming/ while no
 * daemon ran, or faster than it drained), so that incoming/ becomes small
 * enough to watch. Due tasks are claimed straight from incoming/ meanwhile.
 *
 *          start()                      every candidate seen, a move failed, or stop()
 *   idle ──────────▶ moving (a slice ────────────────────────────────────────────────▶ idle
 *                    per 20 ms, then 5 ms for dispatching and I/O)
 *
 * start() while moving is a no-op: the slices under way go on through the same candidates.
 */
import { assertState } from './mode.js';

/** One slice's share of the event loop (ms), and the pause between slices for dispatching and I/O. */
const SLICE_MS = 20;
const PAUSE_MS = 5;

export interface MoveOut {
  /** The names in incoming/, from a listing read lazily, a slice at a time (closed when the mover stops). */
  candidates(): Iterator<string>;
  /** The horizon: tasks due after it are moved (the spool clock now + the scan interval). */
  horizon(): number;
  /** Moves one task to pending/ if it is due after `horizon` (spool/claim.ts accept()); throws when a move fails. */
  moveIfLater(fileName: string, horizon: number): void;
  /** Whether discovery has stopped. */
  stopped(): boolean;
  /** A move failed: said once per run of the mover. */
  failed(err: unknown): void;
}

export class FutureMover {
  private state: 'idle' | 'moving' = 'idle';

  constructor(private readonly out: MoveOut) {}

  get moving(): boolean {
    return this.state === 'moving';
  }

  start(): void {
    if (this.state === 'moving' || this.out.stopped()) return;
    assertState('future mover', this.state, ['idle'], 'moving');
    this.state = 'moving';
    const candidates = this.out.candidates();
    const finish = () => {
      // A listing left part-read holds a directory handle: closed now.
      candidates.return?.(undefined);
      this.finish();
    };
    const step = () => {
      if (this.out.stopped()) return finish();
      const until = Date.now() + SLICE_MS;
      const horizon = this.out.horizon();
      try {
        for (let r = candidates.next(); ; r = candidates.next()) {
          if (r.done === true) return finish();
          this.out.moveIfLater(r.value, horizon);
          if (Date.now() >= until) break;
        }
      } catch (err) {
        // A move, or the listing itself, failed.
        this.out.failed(err);
        return finish();
      }
      setTimeout(step, PAUSE_MS);
    };
    step();
  }

  private finish(): void {
    assertState('future mover', this.state, ['moving'], 'idle');
    this.state = 'idle';
  }
}
