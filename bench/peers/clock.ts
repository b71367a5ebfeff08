/**
 * The clock every stamp in the peers harness is read from: CLOCK_MONOTONIC,
 * in fractional milliseconds. It is one clock for the whole host, so a stamp
 * taken by the producer (this process) and one taken by a consumer (spoolerd,
 * the BullMQ worker, uwsgi's Python spoolers via time.monotonic()) can be
 * subtracted; and unlike the wall clock it is never stepped. (A first version
 * used the wall clock, calibrated per process: on this VM it was stepped by
 * ~70 ms between two calibrations and pickup latencies came out negative.)
 *
 * Node's process.hrtime and Python's time.monotonic() both read
 * clock_gettime(CLOCK_MONOTONIC) on Linux.
 */
export function monoNow(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
