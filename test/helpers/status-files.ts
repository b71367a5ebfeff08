/** Per-daemon status files (state/daemon-<owner>.json) written by hand to the schema in SPOOL-FORMAT.md, for the readers' tests. */

/** A fixed "now" for tests that pass the time in. */
export const NOW = 1_800_000_000_000;

/** A status file as the daemon writes it (the contract's example), with `over` merged in. */
export function statusFile(owner: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 1,
    owner,
    host: 'h1',
    pid: 4242,
    startedAt: NOW - 60_000,
    updatedAt: NOW - 500,
    concurrency: 8,
    totals: { processed: 100, skipped: 2, rescheduled: 3, dead: 1, quarantined: 0, reclaimed: 0, lost: 0 },
    byTask: { send_email: { processed: 100, skipped: 2, rescheduled: 3, dead: 1 } },
    running: [{ id: '1800000000000aaaaaaaaaaaaaaaa', name: 'send_email', attempt: 0, startedAt: NOW - 2000 }],
    queue: { ready: 5, known: 50, nextDueAt: null },
    ...over,
  };
}

