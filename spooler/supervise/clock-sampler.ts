/**
 * Samples the spool clock (spool/clock.ts) for one spool: a file created in
 * tmp/ and its mtime read back, at start-up and at every liveness refresh
 * (owner.ts calls it before each), and logs the measured offset when it is new
 * or has moved. A failed sample leaves the estimate as it was.
 */
import { sampleClock, type ClockEstimate, type SpoolClock } from '../../spool/clock.js';
import type { SpoolLayout } from '../../spool/layout.js';
import type { SpoolFolders } from '../folders.js';
import type { Logger } from '../logger.js';

/** A host clock off the spool clock by more than this is warned about (the daemon goes by the spool clock either way). */
const CLOCK_WARN_MS = 1000;
/** The measured offset is logged again when it moves by this much. */
const CLOCK_LOG_STEP_MS = 250;

export class ClockSampler {
  private logged: ClockEstimate | undefined;

  constructor(
    private readonly clock: SpoolClock,
    private readonly layout: SpoolLayout,
    private readonly folders: SpoolFolders,
    private readonly log: Logger,
  ) {}

  /** One sample. At start-up, a spool this daemon may not write throws (it cannot be served); later failures are logged once. */
  async sample(atStart = false): Promise<void> {
    let consistent: boolean;
    try {
      this.folders.check('tmp');
      consistent = this.clock.add(await sampleClock(this.layout.tmp));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (atStart && (code === 'EACCES' || code === 'EPERM' || code === 'EROFS')) throw err;
      if (this.logged === undefined) this.log.error("cannot sample the spool clock (a file created in tmp/); going by this host's clock", { err });
      return;
    }
    const e = this.clock.estimate();
    if (this.log.enabled('debug')) this.log.debug('spool clock sample', { offsetMs: e.judgeOffset, betweenMs: [Math.floor(e.lo), Math.ceil(e.hi)], samples: e.samples });
    const last = this.logged;
    if (last !== undefined && consistent && Math.abs(e.judgeOffset - last.judgeOffset) < CLOCK_LOG_STEP_MS) return;
    this.logged = e;
    const fields = {
      offsetMs: e.judgeOffset,
      // Where the true offset lies: the sample's precision (whole seconds on sshfs at first, narrowing with samples).
      betweenMs: [Math.floor(e.lo), Math.ceil(e.hi)],
      ...(e.wholeSeconds && { wholeSeconds: true }),
      ...(!consistent && { stepped: true }),
    };
    const what = last === undefined ? 'spool clock measured' : 'spool clock offset moved';
    if (Math.abs(e.judgeOffset) > CLOCK_WARN_MS) {
      this.log.warn(
        `${what}: this host's clock is off the spool's (the time the filesystem server stamps on files) by more than ${CLOCK_WARN_MS / 1000} s. ` +
          "spoolerd goes by the spool clock for due times and liveness, but fix this host's clock (NTP): producers that do not use spoolerd's runtime go by it",
        fields,
      );
    } else {
      this.log.info(what, fields);
    }
  }
}
