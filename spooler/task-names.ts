/**
 * What the imported task modules registered, which of those names this daemon
 * serves (--tasks narrows them), and the warning for tasks in a spool that it
 * does not run. A task's name is in its file name, so the checks read no file:
 * a slice and a set lookup per task file the daemon discovers, and one warning
 * per unknown name.
 */
import { isTaskName } from '../spool/name.js';
import { Spooler } from '../runtime/spooler.js';
import { UnregisteredTasksError } from '../spool/errors.js';
import type { Logger } from './logger.js';
import type { ScheduleSpec } from '../spool/schedule.js';
import type { LimitSpec, TaskLimits } from '../runtime/limits.js';

/** What the task modules registered, over every spooler they opened. */
export interface RegisteredTasks {
  /** Names of the functions registered with spooler.task() (fcall tasks), sorted. */
  tasks: string[];
  /** Task types other than fcall with a handler (registerTaskType()), sorted. */
  types: string[];
  /** Schedules defined with spooler.periodic(), each with the spool it was defined on (its real path). */
  schedules?: Array<ScheduleSpec & { spool: string }>;
  /** Concurrency and rate limits by task name (plain JSON: the main thread parks held-back tasks by them); absent when no task has any. */
  limits?: Record<string, LimitSpec>;
}

/** What the modules imported into this process registered. */
export function registeredInThisProcess(): RegisteredTasks {
  const spoolers = Spooler.getSpoolers();
  const limits = limitsInThisProcess();
  return {
    tasks: [...new Set(spoolers.flatMap((s) => s.taskNames))].sort(),
    types: [...new Set(spoolers.flatMap((s) => s.taskTypes))].sort(),
    schedules: spoolers.flatMap((s) => s.schedules.map((spec) => ({ ...spec, spool: s.dir }))),
    ...(limits.size > 0 && { limits: Object.fromEntries([...limits].map(([name, l]) => [name, l.spec])) }),
  };
}

/** The limits of every task registered in this process that has any (the first spooler that registered a name wins, as for running it). */
export function limitsInThisProcess(): Map<string, TaskLimits> {
  const out = new Map<string, TaskLimits>();
  for (const s of Spooler.getSpoolers()) for (const [name, l] of s.taskLimits()) if (!out.has(name)) out.set(name, l);
  return out;
}

/**
 * The task names this daemon claims: what its modules registered (fcall
 * functions and task types alike: a typed task's NAME is its type), narrowed
 * by --tasks. A task file with another name is never queued, so it is never
 * claimed here: it waits in the spool for a daemon that runs it
 * (SPOOL-FORMAT.md, "Tasks no daemon runs").
 */
export class ServedTasks {
  readonly names: ReadonlySet<string>;

  constructor(names: Iterable<string>) {
    this.names = new Set(names);
  }

  /**
   * What `registered` holds, or its part named by `only` (--tasks). Throws
   * UnregisteredTasksError for a --tasks name nothing registered: a daemon that would
   * claim nothing is a typo, not a deployment.
   */
  static of(registered: RegisteredTasks, only?: readonly string[]): ServedTasks {
    const all = new Set([...registered.tasks, ...registered.types]);
    if (only === undefined || only.length === 0) return new ServedTasks(all);
    const missing = only.filter((n) => !all.has(n));
    if (missing.length > 0) {
      throw new UnregisteredTasksError(`--tasks names ${missing.map((n) => JSON.stringify(n)).join(', ')}, which no --import module registers (registered: ${[...all].sort().join(', ') || 'none'})`);
    }
    return new ServedTasks(only);
  }

  /**
   * Whether this daemon claims the task in `fileName`. A name that is not a
   * task name counts as served: the checks that quarantine bad names deal with
   * it. Costs one slice and one set lookup for a served task; the full name
   * check runs only for the others.
   */
  serves(fileName: string): boolean {
    if (this.names.has(taskNameOfFileName(fileName))) return true;
    return !isTaskName(fileName);
  }

  /** The names, sorted (the status file declares them: spool/status-file.ts). */
  sorted(): string[] {
    return [...this.names].sort();
  }
}

/** Distinct unknown names warned about per spool; past it, one last warning says the rest are not listed. */
const MAX_WARNED = 100;

/**
 * Warns once per task name this daemon does not serve, the first time a task
 * file with it is seen. Such a task is not claimed here: it waits for a
 * daemon that runs it, and is a dead letter after --unknown-after if none
 * does (unknown-tasks.ts). A task of another type than fcall has its type as
 * its name (SPOOL-FORMAT.md, "NAME"), so a registered type counts as a name.
 */
export class UnmatchedNames {
  /** The registered names, and the unknown names warned about already. */
  private readonly seen: Set<string>;
  private warned = 0;

  constructor(
    private readonly registered: RegisteredTasks,
    private readonly log: Logger,
    served: ServedTasks = ServedTasks.of(registered),
  ) {
    this.seen = new Set(served.names);
  }

  /** `fileName` must be a valid task file name (spool/name.ts). */
  check(fileName: string): void {
    if (this.warned > MAX_WARNED) return;
    const name = taskNameOfFileName(fileName);
    if (this.seen.has(name)) return;
    this.seen.add(name);
    if (++this.warned > MAX_WARNED) {
      this.log.warn(`more than ${MAX_WARNED} task names match no registered task; the rest are not listed`);
      return;
    }
    this.log.warn('tasks in this spool have a name this daemon does not run: they wait for a daemon that runs them (dead letters after --unknown-after if none does)', {
      task: name,
      file: fileName,
      registered: this.registered.tasks,
      ...(this.registered.types.length > 0 && { types: this.registered.types }),
    });
  }

  checkAll(fileNames: Iterable<string>): void {
    for (const f of fileNames) this.check(f);
  }
}

/**
 * The task name in a valid task file name: after "PP-DUE-ID-aN-" (the attempts
 * field starts at index 47) and before the extension. Allocates only the name.
 */
export function taskNameOfFileName(fileName: string): string {
  return fileName.slice(fileName.indexOf('-', 48) + 1, fileName.lastIndexOf('.'));
}
