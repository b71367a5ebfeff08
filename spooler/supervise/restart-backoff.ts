/**
 * When to start a replacement for a runner process that died: at once after a
 * healthy life, after a growing delay (100 ms, doubling, at most 10 s) when it
 * died within RESTART_HEALTHY_MS of starting, so that one that cannot start
 * does not spin. A runner killed for a timeout did nothing wrong at start-up:
 * it is replaced at once and does not count.
 */

/** A runner that lived this long before dying is replaced at once, and resets the restart delay. */
export const RESTART_HEALTHY_MS = 5000;
const RESTART_DELAY_MIN = 100;
const RESTART_DELAY_MAX = 10_000;

export class RestartBackoff {
  private failures = 0;

  /** The delay (ms) before replacing a runner that lived `livedMs`; `killed`: by the daemon; `starting`: it died before it was ready. */
  delayAfter(death: { killed: boolean; starting: boolean; livedMs: number }): number {
    if (death.killed) return 0;
    if (death.starting || death.livedMs < RESTART_HEALTHY_MS) {
      this.failures++;
      return Math.min(RESTART_DELAY_MIN * 2 ** (this.failures - 1), RESTART_DELAY_MAX);
    }
    this.failures = 0;
    return 0;
  }

  /** A runner finished tasks: it is healthy, so the next crash restarts at once. */
  healthy(): void {
    this.failures = 0;
  }
}
