/**
 * Running one task: finding the code for it among what the imported modules
 * registered, calling it, and reading how it ended. Shared by the daemon's
 * runners (spooler/run/run-task.ts) and the inline test mode (runtime/inline/).
 */
import { outcomeOf, type TaskOutcome } from './results.js';
import { Spooler } from './spooler.js';
import { FCALL, type TaskTypeHandler } from './task-types.js';
import type { Behaviour } from './task-behaviour.js';
import type { TaskFile } from '../spool/task-file.js';

/** Raised (as a task failure) for a task no loaded module can run. */
export class UnknownTaskError extends Error {
  override name = 'UnknownTaskError';
}

/**
 * The handler for a task of the spool at `spoolDir`: the spooler opened on that
 * directory first, then any other spooler (a module may have opened the same
 * functions under another path). Undefined when nothing registered it.
 */
export function findHandler(spoolDir: string, task: TaskFile): TaskTypeHandler | undefined {
  const spoolers = Spooler.getSpoolers();
  // The spooler over this directory first, then the others.
  for (const spooler of spoolers) if (spooler.dir === spoolDir) return handlerIn(spooler, task) ?? handlerInOthers(spoolers, spoolDir, task);
  return handlerInOthers(spoolers, spoolDir, task);
}

function handlerInOthers(spoolers: readonly Spooler[], spoolDir: string, task: TaskFile): TaskTypeHandler | undefined {
  for (const spooler of spoolers) {
    if (spooler.dir === spoolDir) continue;
    const handler = handlerIn(spooler, task);
    if (handler) return handler;
  }
  return undefined;
}

function handlerIn(spooler: Spooler, task: TaskFile): TaskTypeHandler | undefined {
  if (task.body.type !== FCALL) return spooler.getTaskTypeHandler(task.body.type);
  return spooler.getTaskHandler(task.name);
}

/**
 * The hooks and retry filter of a task, from the same spooler findHandler()
 * takes its code from; undefined when it has none. Only called while some
 * behaviour is registered in the process (anyBehaviour()).
 */
export function findBehaviour(spoolDir: string, task: TaskFile): Behaviour | undefined {
  const spoolers = Spooler.getSpoolers();
  for (const spooler of spoolers) if (spooler.dir === spoolDir && spooler.runs(task)) return spooler.behaviourOf(task);
  for (const spooler of spoolers) if (spooler.dir !== spoolDir && spooler.runs(task)) return spooler.behaviourOf(task);
  return undefined;
}

/** What a daemon serving `spoolDir` can run, for the error that says so. */
export function describeRegistered(spoolDir: string): string {
  const spoolers = Spooler.getSpoolers();
  const names = [...new Set(spoolers.flatMap((s) => s.taskNames))].sort();
  if (names.length === 0) return `no tasks are registered (did --import load a module that calls spooler.task()? serving ${spoolDir})`;
  return `registered tasks: ${names.slice(0, 20).join(', ')}${names.length > 20 ? ', …' : ''}`;
}

/**
 * Calls the handler; a throw or rejection becomes a rescheduled outcome carrying
 * the error. A handler that returns a plain value (a synchronous function)
 * settles here and now, with no promise made: with AsyncLocalStorage active,
 * every promise costs a hook call, and a drain of short synchronous tasks made
 * several per task. One that returns a promise (or any thenable) settles when it does.
 */
export function invoke(handler: TaskTypeHandler, task: TaskFile): TaskOutcome | Promise<TaskOutcome> {
  let value: unknown;
  let thenable: boolean;
  try {
    value = handler(task);
    // Inside the try: a `then` getter may throw, which `await` would have turned into a rejection.
    thenable = isThenable(value);
  } catch (error) {
    return outcomeOf({ error });
  }
  if (!thenable) return outcomeOf({ value });
  return Promise.resolve(value).then(
    (resolved) => outcomeOf({ value: resolved }),
    (error: unknown) => outcomeOf({ error }),
  );
}

/** Whether `value` would be awaited as a promise: an object or function with a callable `then`. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
