/**
 * The task side of progress: ctx.progress(fraction, message?) (runtime/context.ts).
 *
 * A task may call progress() in a tight loop; each call only checks its
 * arguments and keeps the latest value in memory. At most one write per
 * PROGRESS_WRITE_EVERY_MS goes to the sink (the runner's: progress/<id>.json,
 * spool/progress.ts): the first call writes at once, later ones within the
 * interval arm one timer that writes whatever is latest when it fires, so the
 * last value reported always lands.
 *
 *   idle --report--> wrote (write now) --report within the interval--> pending (one timer)
 *   pending --timer--> wrote (the latest value)
 *   idle | wrote | pending --end()--> ended (timer cleared; the record removed if one was written)
 *   idle | wrote | pending --stop()--> ended (timer cleared; the record left: a lost claim)
 *
 * A sink that throws (a full disk) costs the task nothing: the failure is told
 * to `onError` once and later writes are still tried.
 */
import { InvalidOptionError } from '../spool/errors.js';
import { PROGRESS_MESSAGE_MAX, PROGRESS_WRITE_EVERY_MS, type Progress } from '../spool/progress.js';

export type { Progress } from '../spool/progress.js';

export interface ProgressSink {
  write(progress: Progress): void;
  remove(): void;
}

/** A clock and a timer, replaceable in tests. */
export interface ProgressClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const REAL_CLOCK: ProgressClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** Checks a progress() call's arguments; returns the message as kept (cut to PROGRESS_MESSAGE_MAX). */
export function checkProgress(fraction: unknown, message: unknown): string | undefined {
  if (typeof fraction !== 'number' || !(fraction >= 0 && fraction <= 1)) {
    throw new InvalidOptionError(`progress(fraction, message?): fraction must be a number from 0 to 1 (0.4 for 40%), got ${typeof fraction === 'number' ? fraction : typeof fraction}`);
  }
  if (message === undefined) return undefined;
  if (typeof message !== 'string') throw new InvalidOptionError(`progress(fraction, message?): message must be a string, got ${typeof message}`);
  return message.length <= PROGRESS_MESSAGE_MAX ? message : message.slice(0, PROGRESS_MESSAGE_MAX - 1) + '…';
}

export class ProgressReporter {
  private state: 'idle' | 'wrote' | 'pending' | 'ended' = 'idle';
  private latest: Progress | undefined;
  private lastWrite = 0;
  private timer: unknown;
  private written = false;
  private told = false;

  constructor(
    private readonly sink: ProgressSink,
    private readonly onError: (err: unknown) => void,
    private readonly clock: ProgressClock = REAL_CLOCK,
    private readonly everyMs = PROGRESS_WRITE_EVERY_MS,
  ) {}

  report(fraction: number, message?: string): void {
    const kept = checkProgress(fraction, message);
    if (this.state === 'ended') return;
    const now = this.clock.now();
    this.latest = kept === undefined ? { fraction, at: now } : { fraction, message: kept, at: now };
    if (this.state === 'pending') return;
    const wait = this.lastWrite + this.everyMs - now;
    if (this.state === 'idle' || wait <= 0) return this.flush();
    this.state = 'pending';
    this.timer = this.clock.setTimeout(() => this.flush(), wait);
  }

  /** No more writes (the record, if any, is left where it is). */
  stop(): void {
    if (this.state === 'pending') this.clock.clearTimeout(this.timer);
    this.state = 'ended';
  }

  /** The run ended: no more writes; its record goes if one was written. */
  end(): void {
    if (this.state === 'ended') return;
    this.stop();
    if (!this.written) return;
    try {
      this.sink.remove();
    } catch (err) {
      this.tell(err);
    }
  }

  private flush(): void {
    if (this.state === 'ended') return;
    this.state = 'wrote';
    this.lastWrite = this.clock.now();
    try {
      this.sink.write(this.latest!);
      this.written = true;
    } catch (err) {
      // Perhaps written before the failure (the rename went through): end() still tries to remove it.
      this.written = true;
      this.tell(err);
    }
  }

  private tell(err: unknown): void {
    if (this.told) return;
    this.told = true;
    this.onError(err);
  }
}
