/**
 * `spool pause [--task NAME]… [--schedule NAME]…` and `spool resume […]`:
 * write control/pause.json (spool/pause.ts), which every daemon on the spool
 * looks at four times a second. A paused task is kept (it stays where it is,
 * listed as paused) and not started; tasks already running finish. A paused
 * schedule enqueues nothing; its slots that pass meanwhile are skipped.
 *
 *   spool pause                    every task (schedules go on enqueuing: their tasks wait)
 *   spool pause --task reindex     the tasks named reindex
 *   spool pause --schedule nightly the schedule nightly
 *   spool resume                   everything (also replaces a pause file that cannot be read)
 *   spool resume --task reindex    reindex only
 */
import { chmodSync, chownSync, lstatSync, mkdirSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import type { SpoolLayout } from '../../spool/layout.js';
import { TASK_NAME_PATTERN } from '../../spool/name.js';
import { NOTHING_PAUSED, readPauseStateSync, writePauseState, type PauseState } from '../../spool/pause.js';
import { printable } from '../../spool/printable.js';
import { CliError, EXIT } from '../exit-codes.js';
import { spoolFrom, withDirOption, type DirOption } from '../find-task.js';

interface PauseOptions extends DirOption {
  task?: string[];
  schedule?: string[];
}

function collectName(what: string) {
  return (value: string, previous: string[] | undefined): string[] => {
    if (!TASK_NAME_PATTERN.test(value)) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a ${what} name (letters, digits, _ . : -, starting with a letter or _, at most 128)`);
    return [...(previous ?? []), value];
  };
}

function withNameOptions(command: Command, verb: string): Command {
  return withDirOption(command)
    .option('-t, --task <name>', `${verb} the tasks of this name (repeat for more)`, collectName('task'))
    .option('--schedule <name>', `${verb} this schedule (repeat for more)`, collectName('schedule'));
}

export function pauseCommand(): Command {
  return withNameOptions(
    new Command('pause').description('stop every daemon from starting tasks (all, or by --task name) or a --schedule from enqueuing, within a second; running tasks finish'),
    'pause',
  ).action((options: PauseOptions) => {
    const layout = spoolFrom(options);
    const before = current(layout);
    const byName = (options.task?.length ?? 0) > 0 || (options.schedule?.length ?? 0) > 0;
    const next: PauseState = {
      all: before.all || !byName,
      tasks: [...before.tasks, ...(options.task ?? [])],
      schedules: [...before.schedules, ...(options.schedule ?? [])],
    };
    write(layout, next);
    process.stdout.write(`${describePause(readPauseStateSync(layout.root))}\ndaemons stop starting paused tasks within a second; tasks already running finish (spool resume to go on)\n`);
  });
}

export function resumeCommand(): Command {
  return withNameOptions(
    new Command('resume').description('let daemons start paused tasks again (all, or by --task name) and paused --schedule enqueue; without options, resume everything'),
    'resume',
  ).action((options: PauseOptions) => {
    const layout = spoolFrom(options);
    const tasks = options.task ?? [];
    const schedules = options.schedule ?? [];
    if (tasks.length === 0 && schedules.length === 0) {
      // Everything: the old file is not read, so this also replaces one that cannot be read.
      write(layout, NOTHING_PAUSED);
      process.stdout.write('nothing is paused now\n');
      return;
    }
    const before = current(layout);
    if (before.all && tasks.length > 0) {
      throw new CliError(`every task is paused (spool pause without --task), so ${tasks.map((t) => printable(t)).join(', ')} cannot be resumed alone; spool resume resumes everything, then spool pause --task NAME pauses the others`, EXIT.WRONG_STATE);
    }
    const notPaused = [...tasks.filter((t) => !before.tasks.includes(t)), ...schedules.filter((s) => !before.schedules.includes(s))];
    const next: PauseState = { all: before.all, tasks: before.tasks.filter((t) => !tasks.includes(t)), schedules: before.schedules.filter((s) => !schedules.includes(s)) };
    write(layout, next);
    for (const n of notPaused) process.stderr.write(`spool resume: ${printable(n)} was not paused\n`);
    process.stdout.write(`${describePause(next)}\n`);
  });
}

/** What is paused, in one line. */
export function describePause(state: PauseState): string {
  const parts: string[] = [];
  if (state.all) parts.push('every task');
  else if (state.tasks.length > 0) parts.push(`tasks ${state.tasks.map(printable).join(', ')}`);
  if (state.schedules.length > 0) parts.push(`schedules ${state.schedules.map(printable).join(', ')}`);
  return parts.length === 0 ? 'nothing is paused now' : `paused: ${parts.join('; ')}`;
}

/** The state now; a file that cannot be read is an error that says how to replace it (spool resume). */
function current(layout: SpoolLayout): PauseState {
  return readPauseStateSync(layout.root);
}

function write(layout: SpoolLayout, state: PauseState): void {
  ensureControlFolder(layout);
  writePauseState(layout.root, state);
}

/**
 * control/ for a spool no daemon of this version has served yet (the daemon
 * makes it at start): owned and moded like the spool folder's daemon-only
 * folders, so the daemon can read it.
 */
function ensureControlFolder(layout: SpoolLayout): void {
  let root;
  try {
    lstatSync(layout.control);
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    root = lstatSync(layout.root);
  }
  try {
    mkdirSync(layout.control, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw err;
  }
  if (process.geteuid?.() === 0) chownSync(layout.control, root.uid, root.gid);
  chmodSync(layout.control, (root.mode & 0o070) !== 0 ? 0o2750 : 0o700);
}
