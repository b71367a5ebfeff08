/**
 * Typed errors for everything that touches the spool format. Every message says
 * what was wrong and what to do about it; `code` is stable for programs.
 */
export class SpoolError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A value given to a task cannot be stored without being changed or lost. */
export class UnencodableValueError extends SpoolError {
  readonly path: string;
  constructor(path: string, problem: string) {
    super('SPOOL_UNENCODABLE', `${path}: ${problem}`);
    this.path = path;
  }
}

/** A file name that is not a task name (see SPOOL-FORMAT.md, "File name"). */
export class InvalidTaskNameError extends SpoolError {
  constructor(fileName: string, problem: string) {
    super('SPOOL_BAD_NAME', `${JSON.stringify(fileName)} is not a task file name: ${problem}`);
  }
}

/** A task file whose body cannot be used (unreadable, undecodable, wrong fields). */
export class InvalidTaskFileError extends SpoolError {
  readonly file: string;
  readonly reason: string;
  constructor(file: string, reason: string, options?: { cause?: unknown }) {
    super('SPOOL_BAD_FILE', `${file}: ${reason}`, options);
    this.file = file;
    this.reason = reason;
  }
}

/** An option given by the caller is out of range or of the wrong kind. */
export class InvalidOptionError extends SpoolError {
  constructor(message: string) {
    super('SPOOL_BAD_OPTION', message);
  }
}

/** Two different functions were registered under one task name. */
export class TaskNameCollisionError extends SpoolError {
  constructor(name: string, spoolDir: string) {
    super(
      'SPOOL_NAME_COLLISION',
      `task name "${name}" is already registered on the spool ${spoolDir} by another function; ` +
        `give one of them a distinct name with spooler.task(fn, { name: "..." })`,
    );
  }
}

/** The spool directory is missing, not a directory, or not usable. */
export class SpoolDirectoryError extends SpoolError {
  constructor(dir: string, problem: string, options?: { cause?: unknown }) {
    super('SPOOL_BAD_DIR', `spool directory ${dir}: ${problem}`, options);
  }
}

/** No task with the given id (or id prefix) is in the spool. */
export class TaskNotFoundError extends SpoolError {
  constructor(id: string, where: string) {
    super('SPOOL_NOT_FOUND', `no task with id ${JSON.stringify(id)} in ${where}; list tasks with "spool ls"`);
  }
}

/**
 * enqueueMany() could not write the whole batch (a full disk, usually). The
 * batch is withdrawn: `enqueued` is 0 unless daemons had already claimed some
 * of its tasks, whose ids are in `enqueuedIds` (those may run).
 */
export class BatchNotEnqueuedError extends SpoolError {
  readonly enqueued: number;
  readonly enqueuedIds: readonly string[];
  readonly total: number;
  constructor(total: number, enqueuedIds: readonly string[], cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    const n = enqueuedIds.length;
    super(
      'SPOOL_BATCH_NOT_ENQUEUED',
      n === 0
        ? `none of the ${total} tasks were enqueued (${why}); nothing of the batch is in the spool: free space and enqueue it again`
        : `only ${n} of the ${total} tasks were enqueued (${why}): daemons took them before the batch could be withdrawn, and they may run (ids in err.enqueuedIds); the other ${total - n} were not`,
      { cause },
    );
    this.total = total;
    this.enqueued = n;
    this.enqueuedIds = enqueuedIds;
  }
}

/** --tasks names a task that no imported module registers (the daemon would never claim it). */
export class UnregisteredTasksError extends SpoolError {
  constructor(message: string) {
    super('SPOOL_UNREGISTERED_TASKS', message);
  }
}

/** A unique key could not be taken or replaced in time: its holder was being started by a daemon all along. */
export class UniqueKeyBusyError extends SpoolError {
  constructor(key: string, waitedMs: number) {
    super('SPOOL_UNIQUE_BUSY', `unique key ${JSON.stringify(key)}: its holding task was being started for ${waitedMs} ms and could not be replaced; try again (or use uniqueMode "keep")`);
  }
}

/** The file of a unique key in unique/ is not a key file (a producer wrote something else there). */
export class BadKeyFileError extends SpoolError {
  constructor(path: string, reason: string) {
    super('SPOOL_BAD_KEY_FILE', `${path} holds the unique key but is not a valid key file (${reason}); a daemon's minute sweep removes it once it is a minute old, or remove it yourself`);
  }
}
