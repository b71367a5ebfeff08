/** The daemon's settings, with their defaults (the CLI documents each in --help). */
import { DEFAULT_MAX_BYTES } from '../spool/safe-read.js';
import { availableParallelism } from 'node:os';
import type { LogFormat, LogLevel, Logger } from './logger.js';

export interface DaemonOptions {
  /** Spool directories to serve. */
  dirs: string[];
  /** Tasks run at once, over all spools. */
  concurrency: number;
  /** Poll instead of using inotify: true always, false never, undefined where the spool is on a network filesystem (fs-kind.ts). */
  poll: boolean | undefined;
  /** The longest polling period (ms), reached while incoming/ is quiet; it polls every POLL_FAST_MS while tasks arrive. */
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
  /** Threads that claim, read and delete task files beside the daemon's main thread (0: the main thread does it). */
  ioThreads: number;
  /** Worker processes that run tasks; 0 runs them in the daemon's own process. */
  processes: number;
  /** Task modules to import in each worker (with processes 0 the CLI imports them in the daemon). */
  modules: string[];
  /** Replace a worker after this many tasks (0: never). */
  maxTasks: number;
  /** Replace a worker whose RSS passes this many MB, once its current tasks are done (0: never). */
  maxMemory: number;
  /** Run-time limit (ms) of tasks that set none (0: none). */
  taskTimeout: number;
  /** After a task's timeout fired its AbortSignal, how long (ms) it may take to stop before its worker is killed. */
  killGrace: number;
  /** The producers' group id: new tmp/ and incoming/ are 3770 with it, other new folders 0750 (spool/trust.ts). Undefined: a private spool (0700). */
  group?: number;
  log: Logger;
  /** For the workers' loggers. */
  logLevel: LogLevel;
  logFormat: LogFormat;
}

export const DEFAULTS = {
  concurrency: 8,
  pollInterval: 250,
  scanInterval: 5000,
  staleAfter: 30_000,
  grace: 30_000,
  settle: 5000,
  maxBytes: DEFAULT_MAX_BYTES,
  ioThreads: 1,
  processes: availableParallelism(),
  maxTasks: 0,
  maxMemory: 0,
  taskTimeout: 0,
  killGrace: 3000,
} as const;

/** The polling period while incoming/ changes (poll-policy.ts), or --poll-interval if that is shorter. */
export const POLL_FAST_MS = 25;
