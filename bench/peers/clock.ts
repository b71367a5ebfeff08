/**
 * A wall clock with sub-millisecond resolution that agrees with other
 * processes' (Python's time.time(), a fresh Node process's
 * performance.timeOrigin + now()).
 *
 * performance.timeOrigin + now() is the realtime clock read once at start-up
 * plus monotonic time since: in a harness that runs for many minutes it can
 * drift from CLOCK_REALTIME as NTP slews it. So each workload calibrates: spin
 * until Date.now() ticks to the next millisecond, when realtime is that whole
 * millisecond to within a few µs, and keep the offset to performance.now().
 */
let offset = performance.timeOrigin;

export function calibrateClock(): void {
  const first = Date.now();
  let tick = first;
  let at = performance.now();
  while (tick === first) {
    at = performance.now();
    tick = Date.now();
  }
  offset = tick - at;
}

/** Milliseconds since the epoch, fractional. */
export function wallNow(): number {
  return offset + performance.now();
}
