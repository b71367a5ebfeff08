/**
 * Messages between the daemon and its runner processes (JSON over the
 * child_process IPC channel: measured faster than `serialization: 'advanced'`,
 * see BENCHMARKS.md, "issue 4"). Names and reports travel in batches; no task
 * body ever does (the runner claims and reads each file itself: task-path.ts).
 *
 *   daemon -> runner   init     modules to import, log settings
 *                      site     a spool as served by one owner: its folders, claim directory, settings, checked folder ids
 *                      give     names to claim and run, joined by "/", with where the queue last saw each
 *                               ("i" incoming/, "p" pending/); the runner's run slots; the spool clock's offsets
 *                      revoke   the daemon lost the claims of a site: fire the running tasks' signals (ClaimLostError)
 *                      cancel   cancel one task given: fire its signal (TaskCancelledError), or if not started yet,
 *                               claim it and settle it as cancelled without running it
 *                      pause    what of a site is paused now (every task, or these names): give back the names of
 *                               paused tasks not started (reported Unclaimed), start none of them
 *                      drain    a stop: give back the names not started (reported Unclaimed), start nothing more
 *                      retire   no more names will come (the runner is idle): exit
 *   runner -> daemon   ready (with the task names and types the modules registered) | import-failed
 *                      timed    a task with a run-time limit starts now (sent before it runs, so a task that
 *                               blocks the runner's event loop cannot keep it from leaving)
 *                      done     reports, a batch at a time, and sometimes the runner's RSS
 *                      rss      the runner's RSS (reported every second while it changes)
 */
import type { Subdir } from '../../spool/layout.js';
import type { WorkerOptions } from '../options.js';
import type { RegisteredTasks } from '../task-names.js';
import { Code, type Report } from './task-path.js';
import type { PendingDir } from '../order/task-queue.js';

/** A site: one spool served by one owner (a new owner after a lost one is a new site). */
export interface WireSite {
  key: number;
  root: string;
  /** Where claims take tasks from (real paths: a directory handle's /proc/self/fd path is the daemon's own). */
  incoming: string;
  pending: string;
  claimDir: string;
  /** The claim directory's (dev, ino) as the daemon checked it. */
  claimDirId: [dev: number, ino: number];
  /** The checked folders' (dev, ino) the daemon saw at start-up: the runner checks them before rare moves into them. */
  checked: Array<[sub: Subdir, dev: number, ino: number]>;
}

/** One report: name, code, then (when known) the task's name, run time in whole µs, 1 if it failed, and the new name / hold-until time / reason. */
export type WireReport = [name: string, code: Code, task?: string, us?: number, failed?: 0 | 1, extra?: string | number, limits?: string];

export type ToRunner =
  | { t: 'init'; options: WorkerOptions }
  | { t: 'site'; site: WireSite }
  | { t: 'give'; key: number; names: string; dirs: string; slots: number; judge: number; stamp: number }
  | { t: 'revoke'; key: number; message: string }
  | { t: 'cancel'; key: number; name: string }
  | { t: 'pause'; key: number; all: boolean; tasks: string[] }
  | { t: 'drain' }
  | { t: 'retire' };

export type FromRunner =
  | { t: 'ready'; registered: RegisteredTasks }
  | { t: 'import-failed'; message: string; stack?: string | undefined }
  | { t: 'timed'; key: number; name: string; timeoutMs: number }
  | { t: 'done'; key: number; reports: WireReport[]; rss?: number }
  | { t: 'rss'; rss: number };

/** Set in a runner's environment (to its slot number); task code can tell it runs in a worker process. */
export const WORKER_ENV = 'SPOOLERD_WORKER';

/** Names travel joined by "/", the one character no file name can hold: one string is cheaper to send than an array. */
export const NAME_SEPARATOR = '/';

/** A report as the daemon uses it, from its wire form. */
export function fromWire(w: WireReport): Report {
  const [name, code, task, us, failed, extra, limits] = w;
  const r: Report = { name, code };
  if (task !== undefined && task !== null) r.task = task;
  if (us !== undefined && us !== null) r.ms = us / 1000;
  if (failed === 1) r.failed = true;
  if (extra !== undefined && extra !== null) {
    if (code === Code.Rescheduled) r.next = extra as string;
    else if (code === Code.Held || code === Code.Limited) r.until = extra as number;
    else if (code === Code.Unclaimed) r.from = extra as PendingDir;
    else r.reason = String(extra);
  }
  if (limits !== undefined && limits !== null) r.limits = limits;
  return r;
}
