/** Importing the task modules named by --import, in the daemon (--processes 0) or in each worker. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * A task module failed to import. The message names the module, the cause and,
 * when known, where (file:line:column); `stack` is the cause's stack, led by
 * the offending source line for a syntax error.
 */
export class TaskModuleError extends Error {
  override name = 'TaskModuleError';
  constructor(
    message: string,
    readonly location: string | undefined,
    readonly detail: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Imports a module by path (relative to the working directory) or package specifier. */
export async function importTaskModule(specifier: string): Promise<void> {
  const isPath = specifier.startsWith('.') || isAbsolute(specifier) || existsSync(specifier);
  const url = isPath ? pathToFileURL(resolve(specifier)).href : specifier;
  try {
    await import(url);
  } catch (err) {
    const where = err instanceof SyntaxError ? locateSyntaxError(url) : locateThrow(err);
    const cause = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    const hint = /Cannot find package 'spoolerd'/.test(String((err as Error)?.message))
      ? '; install spoolerd in the project the module belongs to (README.md, "Use it in your project")'
      : '';
    const message = `cannot import task module ${specifier}: ${err instanceof Error ? err.message : String(err)}${where?.location ? ` (at ${where.location})` : ''}${hint}`;
    const stack = err instanceof Error ? (err.stack ?? cause) : cause;
    throw new TaskModuleError(message, where?.location, where?.excerpt ? `${where.excerpt}\n\n${stack}` : stack, { cause: err });
  }
}

interface Location {
  /** path:line:column */
  location: string;
  /** The source line and a caret under the column, as Node prints them. */
  excerpt?: string;
}

/** Where an error thrown while a module was evaluated came from: the first frame in a file of the user's. */
function locateThrow(err: unknown): Location | undefined {
  const stack = err instanceof Error ? err.stack : undefined;
  const frame = stack?.split('\n').find((l) => /^\s+at .*file:\/\//.test(l) && !l.includes('node:'));
  const m = frame && /(file:\/\/[^\s)]+):(\d+):(\d+)/.exec(frame);
  if (!m) return undefined;
  return { location: `${fileURLToPath(m[1]!)}:${m[2]}:${m[3]}` };
}

/** Prepended to every ES module's source in the child below: parsing sees all of it, evaluation stops at once. */
const GUARD = 'throw 0;';
/**
 * Module hooks for the child below (see module.register). The guard goes on
 * the first line (a hashbang becomes a comment after it), so line numbers stay
 * those of the file.
 */
const GUARD_HOOKS = `export async function load(url, context, next) {
  const r = await next(url, context);
  if (r.format !== 'module' || r.source == null) return r;
  const s = typeof r.source === 'string' ? r.source : new TextDecoder().decode(r.source);
  return { ...r, source: ${JSON.stringify(GUARD)} + (s.startsWith('#!') ? '//' + s.slice(2) : s) };
}`;
const CHILD = `import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(GUARD_HOOKS)}));
await import(process.argv[1]);`;

/**
 * Finds the file, line and column of a syntax error in a module graph. For an
 * ES module, Node keeps them out of the error (message and stack name neither)
 * and prints them only for an uncaught error: so a child process imports the
 * same module with every module's evaluation stopped before its first
 * statement (no task code runs there), and its report is read. A syntax error
 * in a module imported only dynamically is not reached there: no location.
 */
function locateSyntaxError(url: string): Location | undefined {
  const child = spawnSync(process.execPath, ['--no-warnings', '--input-type=module', '-e', CHILD, url], {
    encoding: 'utf8',
    timeout: 10_000,
    cwd: process.cwd(),
    env: process.env,
  });
  // "file:///path/to/mod.mjs:3", then the source line, then a caret under the column.
  const m = /^(file:\/\/\S+|\/\S*):(\d+)\n(.*)\n( *)\^/m.exec(child.stderr ?? '');
  if (!m) return undefined;
  const path = m[1]!.startsWith('file:') ? fileURLToPath(m[1]!) : m[1]!;
  const line = Number(m[2]);
  let source = m[3]!;
  let column = m[4]!.length + 1;
  if (line === 1 && source.startsWith(GUARD)) {
    source = source.slice(GUARD.length);
    column -= GUARD.length;
  }
  return { location: `${path}:${line}:${column}`, excerpt: `${source}\n${' '.repeat(column - 1)}^` };
}
