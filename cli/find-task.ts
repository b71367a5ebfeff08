/** Resolving the spool a command works on, and the task an id (or id prefix, or file name) refers to. */
import type { Command } from 'commander';
import { SpoolLayout, SUBDIRS, type TaskLocation } from '../spool/layout.js';
import { assertRealFolders } from '../spool/trust.js';
import { listSpool, type ListOptions, type SpoolEntry } from '../spool/listing.js';
import { CliError, EXIT } from './exit-codes.js';

export interface DirOption {
  dir?: string;
}

/** Adds the --dir option every subcommand takes. */
export function withDirOption(command: Command): Command {
  return command.option('-d, --dir <path>', 'the spool directory (default: $SPOOL_DIR)');
}

/** The spool named by --dir or $SPOOL_DIR; it must exist unless `create`. */
export function spoolFrom(options: DirOption, create = false): SpoolLayout {
  const dir = options.dir ?? process.env.SPOOL_DIR;
  if (!dir) throw new CliError('no spool given: pass --dir <path> or set SPOOL_DIR', EXIT.USAGE);
  const layout = new SpoolLayout(dir);
  if (create) return layout.ensure();
  layout.assertExists();
  // Never through a link: `spool rm` renames into tmp/, and every command reads the task folders.
  assertRealFolders(layout.root, SUBDIRS);
  return layout;
}

const ALL_LOCATIONS: readonly TaskLocation[] = ['incoming', 'pending', 'active', 'dead', 'quarantine', 'archive'];

/**
 * The one entry whose id starts with `ref`, or whose file name is `ref`.
 * Throws CliError NOT_FOUND when none does, USAGE when several ids do.
 */
export function findEntry(layout: SpoolLayout, ref: string, options: ListOptions = {}): SpoolEntry {
  const entries = listSpool(layout, { locations: ALL_LOCATIONS, ...options });
  const byFile = entries.find((e) => e.fileName === ref);
  if (byFile) return byFile;
  const matches = entries.filter((e) => e.task?.id.startsWith(ref));
  const ids = new Set(matches.map((e) => e.task!.id));
  if (matches.length === 0 || ref.length === 0) {
    throw new CliError(`no task with id ${JSON.stringify(ref)} in ${layout.root}; list tasks with "spool ls"`, EXIT.NOT_FOUND);
  }
  if (ids.size > 1) {
    throw new CliError(`id prefix ${JSON.stringify(ref)} matches ${ids.size} tasks (${[...ids].slice(0, 3).join(', ')}…); give more of the id`, EXIT.USAGE);
  }
  // One id in two places only while a rename is in flight elsewhere; prefer the live copy.
  return matches.find((e) => e.state !== 'archived') ?? matches[0]!;
}
