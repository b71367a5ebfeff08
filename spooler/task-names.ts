/**
 * What the imported task modules registered, and the warning for tasks in a
 * spool that none of it can run. A task's name is in its file name, so the
 * check reads no file: a slice and a set lookup per task file the daemon
 * discovers, and one warning per unknown name.
 */
import { Spooler } from '../runtime/spooler.js';
import type { Logger } from './logger.js';

/** What the task modules registered, over every spooler they opened. */
export interface RegisteredTasks {
  /** Names of the functions registered with spooler.task() (fcall tasks), sorted. */
  tasks: string[];
  /** Task types other than fcall with a handler (registerTaskType()), sorted. */
  types: string[];
}

/** What the modules imported into this process registered. */
export function registeredInThisProcess(): RegisteredTasks {
  const spoolers = Spooler.getSpoolers();
  return {
    tasks: [...new Set(spoolers.flatMap((s) => s.taskNames))].sort(),
    types: [...new Set(spoolers.flatMap((s) => s.taskTypes))].sort(),
  };
}

/** Distinct unknown names warned about per spool; past it, one last warning says the rest are not listed. */
const MAX_WARNED = 100;

/**
 * Warns once per task name that nothing registered, the first time a task
 * file with it is seen. Such a task fails with UnknownTaskError on every
 * attempt and ends as a dead letter, which otherwise shows only when its
 * retries are spent. A task of another type than fcall has its type as its
 * name (SPOOL-FORMAT.md, "NAME"), so a registered type counts as a name.
 */
export class UnmatchedNames {
  /** The registered names, and the unknown names warned about already. */
  private readonly seen: Set<string>;
  private warned = 0;

  constructor(
    private readonly registered: RegisteredTasks,
    private readonly log: Logger,
  ) {
    this.seen = new Set([...registered.tasks, ...registered.types]);
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
    this.log.warn('tasks in this spool have a name nothing registered: they will fail with UnknownTaskError and end as dead letters', {
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
