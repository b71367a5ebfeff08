/** The daemon's settings, with their defaults (the CLI documents each in --help). */
import { DEFAULT_MAX_BYTES } from '../spool/safe-read.js';
import type { Logger } from './logger.js';

export interface DaemonOptions {
  /** Spool directories to serve. */
  dirs: string[];
  /** Tasks run at once, over all spools. */
  concurrency: number;
  /** Poll instead of using inotify (network filesystems). */
  poll: boolean;
  /** Polling period in ms. */
  pollInterval: number;
  /** Reconciliation scan period in ms: missed events, dead owners' claims, held files. */
  scanInterval: number;
  /** A claim whose owner has not refreshed its lock for this long (ms) is reclaimed. */
  staleAfter: number;
  /** Keep processed and skipped tasks in archive/ instead of deleting them. */
  archive: boolean;
  /** On SIGTERM/SIGINT, how long (ms) running tasks may take to finish. */
  grace: number;
  /** A file that does not decode is left alone until its mtime is this old (ms): it may still be being written. */
  settle: number;
  /** Files larger than this are quarantined unread. */
  maxBytes: number;
  log: Logger;
}

export const DEFAULTS = {
  concurrency: 8,
  pollInterval: 1000,
  scanInterval: 5000,
  staleAfter: 30_000,
  grace: 30_000,
  settle: 5000,
  maxBytes: DEFAULT_MAX_BYTES,
} as const;
