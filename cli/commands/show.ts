/** `spool show <id>`: one task, decoded, as JSON, with its last error if it failed. */
import { Command } from 'commander';
import { readLastError } from '../../spool/failure-record.js';
import { entryJson } from '../entry-json.js';
import { CliError, EXIT } from '../exit-codes.js';
import { findEntry, spoolFrom, withDirOption, type DirOption } from '../find-task.js';
import { toJson } from '../output.js';

export function showCommand(): Command {
  return withDirOption(new Command('show'))
    .description(
      'print one task (by id, the start or end of one, or file name) as JSON: its decoded body and, if it failed, ' +
        'its last error with the stack ("error"; null if it never failed); exit 4 if the file is not a valid task',
    )
    .argument('<id>', 'task id, a unique start or end of one (e.g. the last 6 characters), or a file name')
    .action((ref: string, options: DirOption) => {
      const layout = spoolFrom(options);
      const entry = findEntry(layout, ref, { keepBodies: true });
      // state/<id>.json holds the last failure, kept while the task is retried and once it is dead.
      const error = entry.task === undefined ? undefined : readLastError(layout, entry.task.id);
      process.stdout.write(toJson({ ...entryJson(entry), body: entry.body ?? null, error: error ?? null }, 2) + '\n');
      if (entry.reason !== undefined) {
        throw new CliError(`${entry.fileName} is not a valid task: ${entry.reason}`, EXIT.INVALID);
      }
    });
}
