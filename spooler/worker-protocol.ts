/**
 * Messages between the daemon and its worker processes (JSON over the
 * child_process IPC channel: measured faster than `serialization: 'advanced'`,
 * see BENCHMARKS.md, "issue 4"). Tasks and results travel in batches: every
 * task the daemon dispatches in one turn of its event loop goes to a worker in
 * one message, and a worker reports every task that ended in one turn together.
 *
 *   daemon -> worker   init     the daemon's options a worker needs (options.ts, workerOptions: modules to import,
 *                               whether processed tasks are archived, log settings)
 *                      run      tasks: sequence number, spool, claim directory, file name, file bytes (base64)
 *                      abort    a task's timeout expired: fire its AbortSignal
 *                      revoke   the daemon lost its claim on a task: fire its AbortSignal (a ClaimLostError)
 *                      retire   no more tasks will come (the worker is idle): exit
 *   worker -> daemon   ready (with the task names and types the modules registered) | import-failed
 *                      done     outcomes by sequence number, and sometimes the worker's RSS. A processed
 *                               or skipped outcome says what the worker did with the claimed file
 *                               (it removes or archives it itself before it reports; see executor.ts)
 *                      rss      the worker's RSS (reported every second while it changes)
 */
import type { TaskOutcome } from '../runtime/results.js';
import type { Execution } from './executor.js';
import type { WorkerOptions } from './options.js';
import type { RegisteredTasks } from './task-names.js';

export interface WireJob {
  n: number;
  spool: string;
  /** The daemon's claim directory (active/<owner>), which holds `file`. */
  dir: string;
  file: string;
  /** The task file's bytes, base64. */
  body: string;
}

export type WireError = { name: string; message: string; stack?: string } | string;

/**
 * What a worker did with the claimed file of a processed or skipped task:
 * 1 removed (or archived), 2 found it gone (the claim was taken over).
 * Absent: it could not (an error it logged), and the daemon does it as usual.
 */
export type WireFile = 1 | 2;

export type WireOutcome = { k: 'p'; f?: WireFile } | { k: 's'; reason?: string; f?: WireFile } | { k: 'r'; delay?: number; reason?: string; error?: WireError };

export type ToWorker =
  | { t: 'init'; options: WorkerOptions }
  | { t: 'run'; jobs: WireJob[] }
  | { t: 'abort'; n: number; timeoutMs: number }
  | { t: 'revoke'; n: number; message: string }
  | { t: 'retire' };

export type FromWorker =
  | { t: 'ready'; registered: RegisteredTasks }
  | { t: 'import-failed'; message: string; stack?: string | undefined }
  | { t: 'done'; results: Array<[n: number, outcome: WireOutcome]>; rss?: number }
  | { t: 'rss'; rss: number };

/** Set in a worker's environment (to its slot number); task code can tell it runs in a worker. */
export const WORKER_ENV = 'SPOOLERD_WORKER';

export function outcomeToWire(outcome: TaskOutcome): WireOutcome {
  switch (outcome.kind) {
    case 'processed':
      return { k: 'p' };
    case 'skipped':
      return outcome.reason === undefined ? { k: 's' } : { k: 's', reason: String(outcome.reason) };
    case 'rescheduled': {
      const wire: WireOutcome = { k: 'r' };
      if (outcome.delay !== undefined) wire.delay = outcome.delay;
      if (outcome.reason !== undefined) wire.reason = String(outcome.reason);
      if (outcome.error !== undefined) wire.error = errorToWire(outcome.error);
      return wire;
    }
  }
}

/** The outcome as the daemon applies it: settled by the worker when it dealt with the file itself. */
export function executionFromWire(wire: WireOutcome): Execution {
  const outcome = outcomeFromWire(wire);
  if (wire.k === 'r' || wire.f === undefined || outcome.kind === 'rescheduled') return outcome;
  return { kind: 'settled-by-runner', outcome, file: wire.f === 1 ? 'removed' : 'missing' };
}

export function outcomeFromWire(wire: WireOutcome): TaskOutcome {
  switch (wire.k) {
    case 'p':
      return { kind: 'processed' };
    case 's':
      return wire.reason === undefined ? { kind: 'skipped' } : { kind: 'skipped', reason: wire.reason };
    case 'r': {
      const outcome: TaskOutcome = { kind: 'rescheduled' };
      if (wire.delay !== undefined) outcome.delay = wire.delay;
      if (wire.reason !== undefined) outcome.reason = wire.reason;
      if (wire.error !== undefined) outcome.error = errorFromWire(wire.error);
      return outcome;
    }
  }
}

function errorToWire(error: unknown): WireError {
  if (error instanceof Error) return { name: error.name, message: error.message, ...(error.stack !== undefined && { stack: error.stack }) };
  if (typeof error === 'string') return error;
  try {
    return `non-Error thrown: ${JSON.stringify(error) ?? String(error)}`;
  } catch {
    return `non-Error thrown: ${String(error)}`;
  }
}

function errorFromWire(wire: WireError): unknown {
  if (typeof wire === 'string') return wire;
  const error = new Error(wire.message);
  error.name = wire.name;
  if (wire.stack !== undefined) error.stack = wire.stack;
  return error;
}
