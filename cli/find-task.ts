/** Resolving the spool a command works on, and the task an id (or part of one, or file name) refers to. */
import type { Command } from 'commander';
import { SpoolLayout, SUBDIRS, TASK_LOCATIONS } from '../spool/layout.js';
import { assertRealFolders } from '../spool/trust.js';
import type { SpoolEntry } from '../spool/entries.js';
import { listSpool, readEntry, type ListOptions } from '../spool/listing.js';
import { TaskIndex } from '../spool/select.js';
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

/**
 * The one entry that `ref` names: its file name, its id, or the start or end
 * of exactly one id (spool/select.ts). The spool is listed by name; only the
 * entry found is read (with options.keepBodies, decoded).
 * Throws CliError NOT_FOUND when none matches, USAGE when several ids do.
 */
export function findEntry(layout: SpoolLayout, ref: string, options: Pick<ListOptions, 'keepBodies' | 'checkBodies'> = {}): SpoolEntry {
  for (let attempt = 0; ; attempt++) {
    const found = new TaskIndex(listSpool(layout, { locations: TASK_LOCATIONS, checkBodies: false })).resolve(ref);
    if (!found.ok && found.problem === 'ambiguous') {
      throw new CliError(`id ${JSON.stringify(ref)} matches ${found.count} tasks (${found.examples.join(', ')}…); give more of the id`, EXIT.USAGE);
    }
    if (!found.ok) throw new CliError(`no task with id ${JSON.stringify(ref)} in ${layout.root}; list tasks with "spool ls"`, EXIT.NOT_FOUND);
    if (options.checkBodies === false && !options.keepBodies) return found.entry;
    const entry = readEntry(found.entry, { keepBodies: options.keepBodies === true });
    if (entry !== undefined) return entry;
    // Moved (claimed, retried) between the listing and the read: look again, once.
    if (attempt === 1) throw new CliError(`task ${JSON.stringify(ref)} keeps moving; try again`, EXIT.NOT_FOUND);
  }
}
