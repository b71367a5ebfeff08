/**
 * What `spool rm` and `spool retry` share: choosing tasks (ids as arguments or
 * on standard input, or filters), one listing for all of them, a progress bar
 * on a terminal, and the report. The moves themselves are spool/bulk.ts.
 */
import { readFileSync } from 'node:fs';
import { SingleBar } from 'cli-progress';
import { Command, Option } from 'commander';
import { toMs } from '../runtime/duration.js';
import type { Outcome } from '../spool/bulk.js';
import type { SpoolLayout } from '../spool/layout.js';
import type { SpoolEntry } from '../spool/entries.js';
import type { TaskState } from '../spool/layout.js';
import { printable } from '../spool/printable.js';
import { listMatching, resolveRefs, type TaskFilter } from '../spool/select.js';
import { CliError, EXIT } from './exit-codes.js';
import { withDirOption, type DirOption } from './find-task.js';
import { CHUNK_CHARS, writeStdout } from './output.js';

export interface BulkOptions extends DirOption {
  state?: TaskState[];
  task?: string[];
  olderThan?: string;
  all?: boolean;
  quiet?: boolean;
}

/** The tasks a bulk command acts on, and how it was told. */
export interface Selection {
  entries: SpoolEntry[];
  /** By reference (each one reported) or by filter (a count reported). */
  byRef: boolean;
  /** References that matched nothing or several tasks, already reported. */
  failure?: CliError;
}

/** A bulk command: `<name> [id...]` with the options every bulk command takes. */
export function bulkCommand(name: string, states: readonly TaskState[], statesHelp: string): Command {
  return withDirOption(new Command(name))
    .argument('[id...]', 'task ids, the start or end of one (unique), or file names; "-" reads them from standard input, one a line')
    .addOption(new Option('-s, --state <state...>', statesHelp).choices([...states]))
    .option('-t, --task <name...>', 'only tasks with these names')
    .option('--older-than <duration>', 'only tasks created longer ago than this, e.g. 1h, 7d (files without a task name: by modification time)')
    .option('-a, --all', 'every task the other filters (if any) allow')
    .option('-q, --quiet', 'print nothing on success, and no progress bar');
}

/**
 * Lists the spool once and picks the tasks: by the references given (each
 * looked up in that one listing), or by the filters. Unknown and ambiguous
 * references are reported on stderr as they are found.
 */
export function selectTasks(
  layout: SpoolLayout,
  command: string,
  refArgs: string[],
  options: BulkOptions,
  defaultStates: readonly TaskState[],
): Selection {
  const filtered = options.state !== undefined || options.task !== undefined || options.olderThan !== undefined || options.all === true;
  if (refArgs.length > 0 && filtered) {
    throw new CliError('give task ids, or filters (--state, --task, --older-than, --all), not both', EXIT.USAGE);
  }
  if (refArgs.length === 0 && !filtered) {
    throw new CliError(`say which tasks: give ids (or "-" to read them from standard input), or filters (--state, --task, --older-than), or --all`, EXIT.USAGE);
  }
  if (!filtered) {
    const refs = readRefs(refArgs);
    const resolved = resolveRefs(layout, refs);
    const entries: SpoolEntry[] = [];
    const chosen = new Set<SpoolEntry>();
    let failure: CliError | undefined;
    for (const found of resolved) {
      const ref = found.ref;
      if (found.ok) {
        // The same task named twice (by id and by file name) is acted on once.
        if (!chosen.has(found.entry)) entries.push(found.entry);
        chosen.add(found.entry);
        continue;
      }
      const err =
        found.problem === 'not-found'
          ? new CliError(`no task with id ${JSON.stringify(ref)} in ${layout.root}; list tasks with "spool ls"`, EXIT.NOT_FOUND)
          : new CliError(`id ${JSON.stringify(ref)} matches ${found.count} tasks (${found.examples.join(', ')}…); give more of the id`, EXIT.USAGE);
      process.stderr.write(`spool ${command}: ${printable(err.message)}\n`);
      failure ??= err;
    }
    return { entries, byRef: true, ...(failure && { failure }) };
  }
  const states = new Set<TaskState>(options.state?.length ? options.state : defaultStates);
  const filter: TaskFilter = {
    states,
    ...(options.task && { names: new Set(options.task) }),
    ...(options.olderThan !== undefined && { olderThanMs: parseDuration(options.olderThan, '--older-than') }),
  };
  return { entries: listMatching(layout, filter), byRef: false };
}

/** The references given, with "-" replaced by the lines of standard input (blank lines skipped). */
function readRefs(args: string[]): string[] {
  const refs: string[] = [];
  let stdinRead = false;
  for (const arg of args) {
    if (arg !== '-') {
      refs.push(arg);
      continue;
    }
    if (stdinRead) throw new CliError('"-" (read ids from standard input) may be given once', EXIT.USAGE);
    stdinRead = true;
    for (const line of readFileSync(0, 'utf8').split('\n')) {
      const ref = line.trim();
      if (ref !== '') refs.push(ref);
    }
  }
  return refs;
}

function parseDuration(text: string, option: string): number {
  try {
    return toMs(text);
  } catch (err) {
    throw new CliError(`${option}: ${(err as Error).message}`, EXIT.USAGE);
  }
}

/** Fewer tasks than this are done too fast for a progress bar to be worth drawing. */
export const PROGRESS_MIN_TASKS = 200;

/**
 * Runs `work` over the entries with a progress bar on stderr when stderr is a
 * terminal, the work is long enough, and not --quiet. Lines for stdout and
 * stderr are held while the bar is drawn (they would tear it) and written after.
 */
export function runWithProgress(
  command: string,
  entries: readonly SpoolEntry[],
  quiet: boolean,
  work: (onProgress: (done: number, total: number, outcome: Outcome) => void) => Outcome[],
  report: (outcome: Outcome, out: Output) => void,
): Outcome[] {
  const bar =
    !quiet && process.stderr.isTTY === true && entries.length >= PROGRESS_MIN_TASKS
      ? new SingleBar({
          format: `spool ${command} [{bar}] {value}/{total} tasks | {eta_formatted} left`,
          stream: process.stderr,
          hideCursor: true,
          clearOnComplete: true,
          barsize: 30,
        })
      : undefined;
  const out = new Output(bar !== undefined);
  bar?.start(entries.length, 0);
  try {
    return work((done, _total, outcome) => {
      report(outcome, out);
      bar?.update(done);
    });
  } finally {
    bar?.stop();
    out.flush();
  }
}

/** Report lines: stdout batched into large writes; both held back while a progress bar is drawn. */
export class Output {
  private stdout = '';
  private readonly stderr: string[] = [];

  constructor(private readonly hold: boolean) {}

  line(text: string): void {
    this.stdout += text + '\n';
    if (!this.hold && this.stdout.length >= CHUNK_CHARS) this.flushStdout();
  }

  error(text: string): void {
    if (this.hold) this.stderr.push(text);
    else {
      this.flushStdout();
      process.stderr.write(text + '\n');
    }
  }

  flush(): void {
    this.flushStdout();
    for (const text of this.stderr.splice(0)) process.stderr.write(text + '\n');
  }

  private flushStdout(): void {
    if (this.stdout === '') return;
    writeStdout(this.stdout);
    this.stdout = '';
  }
}

/** "1 task", "2 tasks". */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
