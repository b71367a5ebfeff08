/**
 * The directories of a spool. Producers only ever touch tmp/ and incoming/;
 * everything else belongs to spoolerd and the `spool` command.
 *
 *   tmp/          staging: producers write here, then rename into incoming/
 *   incoming/     the drop box, watched by the daemon and kept small by it
 *   pending/      accepted tasks waiting for their due time or a free slot; never
 *                 watched, so it may hold millions of files
 *   active/<owner>/  tasks claimed by one daemon process (owner = its id)
 *   dead/         dead letters: tasks that used up their retries
 *   quarantine/   files that are not valid tasks, each with a .reason.json beside it
 *   archive/      processed tasks, when the daemon is told to keep them
 *   state/        per-task records (each failed attempt's error, while a task fails)
 *   results/      how finished tasks ended (value, reason or final error), for tasks that keep a result
 *   locks/        daemon liveness and, later, per-task locks
 *   cancel/       requests to cancel a running task: an empty file named by its id
 *                 (spool/cancel.ts); producers write here, daemons read and remove
 *   schedules/    periodic tasks: <schedule>.json (its spec, last and next slot) and
 *                 <schedule>/<slot> markers that make each slot enqueue once (spool/schedules.ts)
 *   unique/       one file per unique key held by a task (spool/unique.ts); producers
 *                 and daemons write here
 *   control/      pause.json: the tasks and schedules paused (spool/pause.ts); written by
 *                 `spool pause`/`spool resume` (an administrator), read by daemons
 *   limits/       concurrency slots and rate-limit tokens (spool/limits.ts); daemons only
 *   progress/     <id>.json: the last progress a running task reported (spool/progress.ts);
 *                 written by the runner running it, removed when its run ends; readable like results/
 *   flows/        markers that make the next step of a chain, an onError task and a
 *                 continuation enqueue once (spool/enqueue-once.ts, spool/flows.ts); daemons only
 */
import { mkdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { SpoolDirectoryError } from './errors.js';
import { assertRealFolder, makeFolder, policyFromEnv, type FolderPolicy } from './trust.js';

export const SUBDIRS = ['tmp', 'incoming', 'pending', 'active', 'dead', 'quarantine', 'archive', 'state', 'results', 'locks', 'cancel', 'schedules', 'unique', 'control', 'limits', 'progress', 'flows'] as const;
export type Subdir = (typeof SUBDIRS)[number];

/**
 * The states of a task file, in the order `spool ls` lists them (execution
 * order): active: claimed by a daemon; due: waiting to run now; scheduled: due
 * later; invalid: in incoming/ or pending/ but not a usable task; dead: out of
 * retries; quarantined: moved aside by a daemon; archived: processed and kept.
 */
export const TASK_STATES = ['active', 'due', 'scheduled', 'invalid', 'dead', 'quarantined', 'archived'] as const;
export type TaskState = (typeof TASK_STATES)[number];

/** The folders that hold task files (active/ through its claim folders, active/<owner>/). */
export const TASK_LOCATIONS = ['incoming', 'pending', 'active', 'dead', 'quarantine', 'archive'] as const;
export type TaskLocation = (typeof TASK_LOCATIONS)[number];

/**
 * The one table of which folder holds which state. incoming/ and pending/
 * hold three: a file there is due or scheduled by the due time in its name,
 * invalid if its name or body is not a task's. Every other folder holds one.
 */
export const LOCATIONS_OF: Readonly<Record<TaskState, readonly TaskLocation[]>> = {
  active: ['active'],
  due: ['incoming', 'pending'],
  scheduled: ['incoming', 'pending'],
  invalid: ['incoming', 'pending'],
  dead: ['dead'],
  quarantined: ['quarantine'],
  archived: ['archive'],
};

/** The folders to read for files in `states`, in TASK_LOCATIONS order. */
export function locationsOf(states: Iterable<TaskState>): TaskLocation[] {
  const wanted = new Set<TaskLocation>();
  for (const s of states) for (const l of LOCATIONS_OF[s]) wanted.add(l);
  return TASK_LOCATIONS.filter((l) => wanted.has(l));
}

/** The state of the folders that hold one (from LOCATIONS_OF); undefined for incoming/ and pending/. */
const ONLY_STATE: Readonly<Partial<Record<TaskLocation, TaskState>>> = Object.fromEntries(
  TASK_LOCATIONS.flatMap((l) => {
    const states = TASK_STATES.filter((s) => LOCATIONS_OF[s].includes(l));
    return states.length === 1 ? [[l, states[0]!]] : [];
  }),
);

/**
 * The state of a task file in `location`: in incoming/ and pending/, due or
 * scheduled by `due` (the due time in its name) against `now`; elsewhere its
 * folder's one state.
 */
export function stateAt(location: TaskLocation, due: number, now: number): TaskState {
  return ONLY_STATE[location] ?? (due > now ? 'scheduled' : 'due');
}

/**
 * The state of a file in `location` that is not a valid task (a bad name or
 * body, a link): dead/, quarantine/ and archive/ keep what failed or was kept,
 * whatever it is, so it has their state; in the other folders it is invalid.
 */
export function invalidStateAt(location: TaskLocation): TaskState {
  return location === 'dead' || location === 'quarantine' || location === 'archive' ? ONLY_STATE[location]! : 'invalid';
}

/** Beside each file in quarantine/, the reason it is there, in a file named as it with this added (SPOOL-FORMAT.md, "quarantine/"). */
export const QUARANTINE_REASON_SUFFIX = '.reason.json';

export class SpoolLayout {
  readonly root: string;
  readonly tmp: string;
  readonly incoming: string;
  readonly pending: string;
  readonly active: string;
  readonly dead: string;
  readonly quarantine: string;
  readonly archive: string;
  readonly state: string;
  readonly results: string;
  readonly locks: string;
  readonly cancel: string;
  readonly schedules: string;
  readonly unique: string;
  readonly control: string;
  /** Concurrency slots and rate-limit tokens (spool/limits.ts); daemons only. */
  readonly limits: string;
  /** The last progress of running tasks (spool/progress.ts); written by daemons' runners. */
  readonly progress: string;
  /** Enqueue-once markers of chains, onError tasks and continuations (spool/flows.ts); daemons only. */
  readonly flows: string;

  constructor(dir: string) {
    this.root = resolve(dir);
    this.tmp = join(this.root, 'tmp');
    this.incoming = join(this.root, 'incoming');
    this.pending = join(this.root, 'pending');
    this.active = join(this.root, 'active');
    this.dead = join(this.root, 'dead');
    this.quarantine = join(this.root, 'quarantine');
    this.archive = join(this.root, 'archive');
    this.state = join(this.root, 'state');
    this.results = join(this.root, 'results');
    this.locks = join(this.root, 'locks');
    this.cancel = join(this.root, 'cancel');
    this.schedules = join(this.root, 'schedules');
    this.unique = join(this.root, 'unique');
    this.control = join(this.root, 'control');
    this.limits = join(this.root, 'limits');
    this.progress = join(this.root, 'progress');
    this.flows = join(this.root, 'flows');
  }

  get basename(): string {
    return basename(this.root);
  }

  /**
   * Creates any missing directories, with the modes of `policy` (spool/trust.ts;
   * by default from $SPOOL_GROUP: without it the spool is private to its owner).
   * Folders that exist keep their modes. Throws SpoolDirectoryError if the root is
   * unusable or a subfolder is a symbolic link or not a directory (never followed).
   */
  ensure(policy?: FolderPolicy): this {
    const getPolicy = (): FolderPolicy => (policy ??= policyFromEnv());
    try {
      try {
        makeFolder(this.root, 'root', getPolicy);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        // Its parents are made as mkdir -p makes them; the spool folder itself gets the policy's mode.
        mkdirSync(dirname(this.root), { recursive: true });
        makeFolder(this.root, 'root', getPolicy);
      }
    } catch (err) {
      throw new SpoolDirectoryError(this.root, `cannot be created (${(err as Error).message}); choose a writable path with --dir or SPOOL_DIR`, { cause: err });
    }
    if (!statSync(this.root).isDirectory()) {
      throw new SpoolDirectoryError(this.root, 'exists but is not a directory; choose another path with --dir or SPOOL_DIR');
    }
    for (const sub of SUBDIRS) {
      const path = join(this.root, sub);
      try {
        makeFolder(path, sub, getPolicy);
      } catch (err) {
        // A producer in a spool made by an older daemon may lack a folder this version added (schedules/, limits/, …)
        // and the right to make it: that is the daemon's to make, and only tmp/ and incoming/ are needed to enqueue.
        const code = (err as NodeJS.ErrnoException).code;
        if ((code === 'EACCES' || code === 'EPERM') && sub !== 'tmp' && sub !== 'incoming') continue;
        throw new SpoolDirectoryError(this.root, `cannot create ${sub}/ (${(err as Error).message}); check its permissions`, { cause: err });
      }
      assertRealFolder(path);
    }
    return this;
  }

  /**
   * Throws SpoolDirectoryError unless the spool directory exists. Its
   * subdirectories may be missing (a foreign producer may have made only tmp/
   * and incoming/): readers treat a missing one as empty.
   */
  assertExists(): this {
    let isDir = false;
    try {
      isDir = statSync(this.root).isDirectory();
    } catch {
      // reported below
    }
    if (!isDir) {
      throw new SpoolDirectoryError(this.root, 'does not exist or is not a directory; pass the right path with --dir or SPOOL_DIR (to make a new spool: spool add --create, spoolerd --create, or Spooler.open() in code)');
    }
    return this;
  }
}
