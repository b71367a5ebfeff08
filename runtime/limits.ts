/**
 * Concurrency and rate limits of a task, as declared with spooler.task():
 *
 *   spooler.task(reindex, { overlap: false });                        // never two reindex at once
 *   spooler.task(importFeed, { concurrency: 4 });                     // at most 4 at once
 *   spooler.task(syncCustomer, { concurrencyKey: (id) => id, keyConcurrency: 1 });  // one per customer
 *   spooler.task(callApi, { rateLimit: { max: 100, per: '1m' } });    // at most 100 starts a minute
 *
 * Limits hold across every daemon on the spool (spool/limits.ts has the files).
 * The daemon's main thread needs the plain part (LimitSpec: numbers and flags)
 * to park held-back tasks; it travels in RegisteredTasks. The key functions
 * run only where the module is loaded: in the runner that reads the body.
 */
import { InvalidOptionError } from '../spool/errors.js';
import { toMs, type Duration } from './duration.js';

export interface LimitOptions {
  /** At most this many of this task run at once, over every daemon on the spool. */
  concurrency?: number;
  /** false: never two of this task at once (concurrency 1). */
  overlap?: boolean;
  /** The key a run counts against (e.g. a customer id): at most `keyConcurrency` runs per key at once. */
  concurrencyKey?: (...args: never[]) => string;
  /** Runs at once per key of concurrencyKey (default 1). */
  keyConcurrency?: number;
  /** At most `max` starts per `per` (a fixed window of spool time), per task name or, with `key`, per key. */
  rateLimit?: { max: number; per: Duration; key?: (...args: never[]) => string };
}

/** The plain-JSON part of a task's limits, for the daemon's main thread. */
export interface LimitSpec {
  /** Runs of the task name at once. */
  concurrency?: number;
  /** Runs per key at once (the task has a concurrencyKey). */
  keyConcurrency?: number;
  rate?: { max: number; perMs: number; keyed: boolean };
}

/** A task's limits where the task runs: the spec and its key functions. */
export interface TaskLimits {
  spec: LimitSpec;
  key?: (...args: unknown[]) => string;
  rateKey?: (...args: unknown[]) => string;
}

const LIMIT_OPTIONS = ['concurrency', 'overlap', 'concurrencyKey', 'keyConcurrency', 'rateLimit'] as const;

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 1;

/** Checks a task's limit options (at definition time) and returns what a runner needs, or undefined when the task has none. */
export function toTaskLimits(options: LimitOptions, where: string): TaskLimits | undefined {
  if (!LIMIT_OPTIONS.some((k) => options[k] !== undefined)) return undefined;
  const spec: LimitSpec = {};
  if (options.concurrency !== undefined) {
    if (!isCount(options.concurrency)) throw new InvalidOptionError(`${where}: concurrency must be a whole number of at least 1, got ${String(options.concurrency)}`);
    spec.concurrency = options.concurrency;
  }
  if (options.overlap !== undefined) {
    if (typeof options.overlap !== 'boolean') throw new InvalidOptionError(`${where}: overlap must be true or false`);
    if (!options.overlap) {
      if (spec.concurrency !== undefined && spec.concurrency !== 1) throw new InvalidOptionError(`${where}: overlap: false means concurrency 1; drop one of them`);
      spec.concurrency = 1;
    }
  }
  const out: TaskLimits = { spec };
  if (options.concurrencyKey !== undefined) {
    if (typeof options.concurrencyKey !== 'function') throw new InvalidOptionError(`${where}: concurrencyKey must be a function of the task's arguments that returns a string`);
    const n = options.keyConcurrency ?? 1;
    if (!isCount(n)) throw new InvalidOptionError(`${where}: keyConcurrency must be a whole number of at least 1, got ${String(n)}`);
    spec.keyConcurrency = n;
    out.key = options.concurrencyKey as TaskLimits['key'];
  } else if (options.keyConcurrency !== undefined) {
    throw new InvalidOptionError(`${where}: keyConcurrency needs concurrencyKey (a function of the task's arguments that returns the key)`);
  }
  const rate = options.rateLimit;
  if (rate !== undefined) {
    if (typeof rate !== 'object' || rate === null) throw new InvalidOptionError(`${where}: rateLimit must be an object such as { max: 100, per: '1m' }`);
    if (!isCount(rate.max)) throw new InvalidOptionError(`${where}: rateLimit.max must be a whole number of at least 1, got ${String(rate.max)}`);
    const perMs = toMs(rate.per, `${where}: rateLimit.per`);
    if (perMs < 1) throw new InvalidOptionError(`${where}: rateLimit.per must be at least 1 ms`);
    if (rate.key !== undefined && typeof rate.key !== 'function') throw new InvalidOptionError(`${where}: rateLimit.key must be a function of the task's arguments that returns a string`);
    spec.rate = { max: rate.max, perMs, keyed: rate.key !== undefined };
    if (rate.key !== undefined) out.rateKey = rate.key as TaskLimits['rateKey'];
  }
  if (spec.concurrency === undefined && spec.keyConcurrency === undefined && spec.rate === undefined) return undefined;
  return out;
}
