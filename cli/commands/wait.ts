/**
 * `spool wait <id>...`: waits until each task has a result record
 * (results/<id>.<encoding>, SPOOL-FORMAT.md "Results") and prints how it
 * ended, one line per task as it ends. The exit code says how: that of the
 * first task, in the order given, that did not end processed (EXIT: 10
 * skipped, 11 dead, 12 cancelled, 13 expired, 14 no result within --timeout),
 * else 0. All waits share one watch on results/ (runtime/wait.ts).
 */
import { Command } from 'commander';
import { TASK_ID_PATTERN } from '../../spool/name.js';
import { printable } from '../../spool/printable.js';
import type { ResultRecord, TaskEnding } from '../../spool/results.js';
import { toMs } from '../../runtime/duration.js';
import { ResultTimeoutError, resultWatch } from '../../runtime/wait.js';
import { CliError, EXIT } from '../exit-codes.js';
import { spoolFrom, withDirOption, type DirOption } from '../find-task.js';
import { toJson, writeStdout } from '../output.js';

interface WaitOptions extends DirOption {
  timeout?: string;
  json?: boolean;
}

/** The exit code of each ending. */
export const WAIT_EXIT: Readonly<Record<TaskEnding | 'timeout', number>> = {
  processed: EXIT.OK,
  skipped: EXIT.SKIPPED,
  dead: EXIT.DEAD,
  cancelled: EXIT.CANCELLED,
  expired: EXIT.EXPIRED,
  timeout: EXIT.TIMEOUT,
};

export function waitCommand(): Command {
  return withDirOption(new Command('wait'))
    .description(
      'wait until each task has ended and print how (processed with its value, skipped with its reason, dead with its error, cancelled, expired); ' +
        'needs tasks that keep a result (keepResult, or spoolerd --keep-results). Exit code: that of the first task, in the order given, ' +
        'that did not end processed: 10 skipped, 11 dead, 12 cancelled, 13 expired, 14 no result within --timeout; else 0',
    )
    .argument('<id...>', 'task ids (whole: a finished task has no file left to match a part of an id against)')
    .option('--timeout <duration>', 'give up after this long (e.g. 30s, 5m); default: wait as long as it takes')
    .option('--json', 'print one JSON object per task (its result record, or {"id", "ending": "timeout"})')
    .action(async (ids: string[], options: WaitOptions) => {
      const layout = spoolFrom(options);
      for (const id of ids) {
        if (!TASK_ID_PATTERN.test(id)) throw new CliError(`${JSON.stringify(id)} is not a whole task id (13 digits, then 16 hex digits; spool ls shows them)`, EXIT.USAGE);
      }
      let timeout: number | undefined;
      try {
        timeout = options.timeout === undefined ? undefined : toMs(options.timeout, '--timeout');
      } catch (err) {
        throw new CliError((err as Error).message, EXIT.USAGE);
      }
      const watch = resultWatch(layout);
      const codes = await Promise.all(
        ids.map(async (id) => {
          try {
            const record = await watch.record(id, timeout === undefined ? {} : { timeout });
            writeStdout(options.json ? toJson(record) + '\n' : lineOf(record));
            return WAIT_EXIT[record.ending];
          } catch (err) {
            if (!(err instanceof ResultTimeoutError)) throw err;
            writeStdout(options.json ? toJson({ id, ending: 'timeout', timeoutMs: err.timeoutMs }) + '\n' : `${id}  timeout  no result within ${err.timeoutMs} ms\n`);
            return WAIT_EXIT.timeout;
          }
        }),
      );
      process.exitCode = codes.find((c) => c !== EXIT.OK) ?? EXIT.OK;
    });
}

/** One line: id, ending, then the value (JSON), the reason or the error. */
function lineOf(r: ResultRecord): string {
  let detail = '';
  if (r.ending === 'processed') detail = r.valueError !== undefined ? `(value not kept: ${printable(r.valueError)})` : r.value === undefined ? '' : toJson(r.value);
  else if (r.error !== undefined) detail = printable(`${r.error.name ?? 'Error'}: ${r.error.message.split('\n', 1)[0]}`);
  else if (r.reason !== undefined) detail = printable(r.reason);
  return `${r.id}  ${r.ending}${detail === '' ? '' : '  ' + detail}\n`;
}
