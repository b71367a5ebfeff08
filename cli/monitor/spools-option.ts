/** The `--dir` option of the commands that watch several spools at once (`spool top`, `spool dashboard`). */
import type { Command } from 'commander';
import type { SpoolLayout } from '../../spool/layout.js';
import { spoolFrom } from '../find-task.js';

export interface DirsOption {
  dir?: string[];
}

/** Adds a --dir that may be given more than once. */
export function withDirsOption(command: Command): Command {
  return command.option('-d, --dir <path>', 'a spool directory; repeat for several (default: $SPOOL_DIR)', (value: string, previous: string[] = []) => [...previous, value]);
}

/** The spools named by --dir (or $SPOOL_DIR), each of which must exist. */
export function spoolsFrom(options: DirsOption): SpoolLayout[] {
  const dirs = options.dir ?? [];
  if (dirs.length === 0) return [spoolFrom({})];
  return dirs.map((dir) => spoolFrom({ dir }));
}
