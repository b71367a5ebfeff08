/**
 * Task types. A task's body names its type; the daemon hands the task to the
 * handler registered for that type. `fcall` (a call of a registered function) is
 * built in; user code registers others with `spooler.registerTaskType()`, as
 * uwsgiconf's SpoolerTask subclasses do.
 */
import type { TaskFile } from '../spool/task-file.js';

/** Runs one task; its return value or thrown error is read by outcomeOf() (results.ts). */
export type TaskTypeHandler = (task: TaskFile) => unknown;

export const FCALL = 'fcall';
export const MESSAGE = 'message';
