/** `spool show <id>`: one task, decoded, as JSON. */
import { Command } from 'commander';
import { entryJson } from '../entry-json.js';
import { CliError, EXIT } from '../exit-codes.js';
import { findEntry, spoolFrom, withDirOption, type DirOption } from '../find-task.js';
import { toJson } from '../output.js';

export function showCommand(): Command {
  return withDirOption(new Command('show'))
    .description('print one task (by id, id prefix or file name) with its decoded body as JSON; exit 4 if the file is not a valid task')
    .argument('<id>', 'task id, a unique prefix of one, or a file name')
    .action((ref: string, options: DirOption) => {
      const layout = spoolFrom(options);
      const entry = findEntry(layout, ref, { keepBodies: true });
      process.stdout.write(toJson({ ...entryJson(entry), body: entry.body ?? null }, 2) + '\n');
      if (entry.reason !== undefined) {
        throw new CliError(`${entry.fileName} is not a valid task: ${entry.reason}`, EXIT.INVALID);
      }
    });
}
