/** Importing the task modules named by --import, in the daemon (--processes 0) or in each worker. */
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** A task module failed to import. The message names the module and the cause, for the start-up error line. */
export class TaskModuleError extends Error {
  override name = 'TaskModuleError';
}

/** Imports a module by path (relative to the working directory) or package specifier. */
export async function importTaskModule(specifier: string): Promise<void> {
  const isPath = specifier.startsWith('.') || isAbsolute(specifier) || existsSync(specifier);
  const url = isPath ? pathToFileURL(resolve(specifier)).href : specifier;
  try {
    await import(url);
  } catch (err) {
    throw new TaskModuleError(`cannot import task module ${specifier}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
}
