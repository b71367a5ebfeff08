/**
 * The per-daemon status file, state/daemon-<owner>.json, in one place for its
 * writer (spooler/status-file.ts) and its readers (`spool top`, the dashboard:
 * cli/monitor/status-files.ts). SPOOL-FORMAT.md, "Daemon status files", is the
 * contract.
 */
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { SpoolLayout } from './layout.js';
import { readRegularFile } from './safe-read.js';

export const STATUS_FILE_PREFIX = 'daemon-';
export const STATUS_FILE_VERSION = 1;
/** Readers treat a file not rewritten for this long (ms) as a daemon that is gone. */
export const STATUS_STALE_MS = 10_000;
/** Running tasks listed at most (the writer lists no more, a reader keeps no more). */
export const STATUS_MAX_RUNNING = 100;

export const TOTAL_KEYS = ['processed', 'skipped', 'rescheduled', 'dead', 'quarantined', 'reclaimed', 'lost'] as const;
export type Totals = Record<(typeof TOTAL_KEYS)[number], number>;
export const BY_TASK_KEYS = ['processed', 'skipped', 'rescheduled', 'dead'] as const;
export type TaskTotals = Record<(typeof BY_TASK_KEYS)[number], number>;

export interface RunningTask {
  id: string;
  name: string;
  attempt: number;
  /** ms since the epoch. */
  startedAt: number;
}

/** The file's content, as written. */
export interface DaemonStatusRecord {
  version: typeof STATUS_FILE_VERSION;
  owner: string;
  host: string;
  pid: number;
  startedAt: number;
  updatedAt: number;
  concurrency: number;
  totals: Totals;
  byTask: Record<string, TaskTotals>;
  running: RunningTask[];
  queue: { ready: number; known: number; nextDueAt: number | null };
  /**
   * The task names this daemon claims (its modules' tasks and types, narrowed
   * by --tasks), sorted. A file without it (an older daemon) declares nothing:
   * readers take it as a daemon that may run any task.
   */
  tasks?: string[];
  /**
   * What this daemon holds paused now (control/pause.json, as it last read
   * it; every task while the file cannot be used, with the reason in
   * `problem`). Absent while nothing is paused (and in files of older daemons).
   */
  paused?: { all: boolean; tasks: string[]; schedules: string[]; problem?: string };
  /**
   * Tasks this daemon holds back by a concurrency or rate limit, by scope
   * (SPOOL-FORMAT.md, "Concurrency and rate limits"): how many wait in each,
   * at most 100 scopes. Absent when no task it runs has a limit.
   */
  limits?: { parked: Record<string, number> };
}

/** Status files are small; a larger one is not read. */
export const STATUS_MAX_BYTES = 1024 * 1024;

/**
 * The task names `owner` declares in its status file, or undefined when it
 * declares none: no file yet (it is starting), a file written before
 * declarations existed, or one that cannot be read as a status file. Never
 * follows a link. Undefined must be read as "it may run any task".
 */
export function readDeclaredTasks(layout: SpoolLayout, owner: string): ReadonlySet<string> | undefined {
  const read = readRegularFile(statusFilePath(layout, owner), STATUS_MAX_BYTES);
  if (!read.ok) return undefined;
  try {
    const value = JSON.parse(read.bytes.toString('utf8')) as { version?: unknown; owner?: unknown; tasks?: unknown };
    if (value.version !== STATUS_FILE_VERSION || value.owner !== owner || !Array.isArray(value.tasks)) return undefined;
    return new Set(value.tasks.filter((t): t is string => typeof t === 'string'));
  } catch {
    return undefined;
  }
}

export function statusFilePath(layout: SpoolLayout, owner: string): string {
  return join(layout.state, `${STATUS_FILE_PREFIX}${owner}.json`);
}

/** Removes an owner's status file; nothing when it is already gone. */
export function removeStatusFile(layout: SpoolLayout, owner: string): void {
  try {
    unlinkSync(statusFilePath(layout, owner));
  } catch {
    // Gone already, or never written.
  }
}
