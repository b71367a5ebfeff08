/**
 * When to list an unwatched incoming/ again (mode `listing`, mode.ts): the
 * only way to see arrivals then, so at least every second, but under 2% of
 * the time (a million names take ~0.5 s to list); and soon after the last
 * listing when that one found new tasks and the daemon is running out of due
 * ones, or it idles while tasks wait.
 *
 *        start()            the timer fires
 *   off ─────────▶ armed ───────────────────▶ listing ──list() done, still in mode listing──▶ armed
 *    ▲               │ ▲                        │
 *    │   stop()      │ └── hurry(): re-armed    │ list() left mode listing (stop() from inside it)
 *    └───────────────┴──── sooner ──────────────┘
 */
import { assertState } from './mode.js';

/** Below this many due tasks queued, a listing that found new tasks is followed quickly by the next. */
export const QUICK_SCAN_BELOW = 1000;
export const QUICK_SCAN_MIN_MS = 10;

type PaceState = 'off' | 'armed' | 'listing';

export interface ListingCosts {
  /** How long the last listing of incoming/ took (ms), listing included. */
  lastListingMs(): number;
  /** How many new tasks the last listing queued. */
  lastListingAdded(): number;
  /** How many due tasks are queued now. */
  readyCount(): number;
}

export class ListingPace {
  private state: PaceState = 'off';
  private timer: NodeJS.Timeout | undefined;
  private dueAt = Infinity;

  constructor(
    private readonly scanIntervalMs: number,
    private readonly costs: ListingCosts,
    /** Lists incoming/ (synchronously); it may leave mode `listing`, which calls stop(). */
    private readonly list: () => void,
  ) {}

  get current(): PaceState {
    return this.state;
  }

  start(): void {
    assertState('listing pace', this.state, ['off'], 'armed');
    this.arm(this.nextDelay());
  }

  stop(): void {
    assertState('listing pace', this.state, ['armed', 'listing'], 'off');
    clearTimeout(this.timer);
    this.state = 'off';
    this.dueAt = Infinity;
  }

  /**
   * The daemon is running low on due tasks between listings: bring the next
   * one forward. The delay is chosen when a listing ends; one that found
   * 400,000 new tasks schedules the next ~20 s later, and once those were done
   * the daemon sat idle (seconds at a time in a sustained flood) with incoming/ full.
   */
  hurry(): void {
    if (this.state !== 'armed' || !this.starved()) return;
    const delay = this.quickDelay();
    if (this.dueAt > Date.now() + delay) this.arm(delay);
  }

  /** Producers are filling incoming/ (the last listing found new tasks) and few due tasks are left. */
  private starved(): boolean {
    return this.costs.lastListingAdded() > 0 && this.costs.readyCount() < QUICK_SCAN_BELOW;
  }

  private quickDelay(): number {
    return Math.max(QUICK_SCAN_MIN_MS, 2 * this.costs.lastListingMs());
  }

  private nextDelay(): number {
    if (this.starved()) return this.quickDelay();
    return Math.max(Math.min(1000, this.scanIntervalMs), 50 * this.costs.lastListingMs());
  }

  private arm(delay: number): void {
    clearTimeout(this.timer);
    this.state = 'armed';
    this.dueAt = Date.now() + delay;
    this.timer = setTimeout(() => this.fire(), delay);
  }

  private fire(): void {
    assertState('listing pace', this.state, ['armed'], 'listing');
    this.state = 'listing';
    this.dueAt = Infinity;
    try {
      this.list();
    } finally {
      // Still listing unless list() stopped the pace (incoming/ small again, or discovery stopped).
      if (this.state === 'listing') this.arm(this.nextDelay());
    }
  }
}
