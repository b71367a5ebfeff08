/** `spool add <task> [args…]`: enqueue a function call from the command line. */
import { Command, Option } from 'commander';
import { Spooler } from '../../runtime/spooler.js';
import type { Encoding } from '../../spool/name.js';
import { UNIQUE_MODES, type UniqueMode } from '../../runtime/unique-enqueue.js';
import { CliError, EXIT } from '../exit-codes.js';
import { spoolFrom, withDirOption, type DirOption } from '../find-task.js';
import { toJson } from '../output.js';

interface AddOptions extends DirOption {
  priority?: string;
  in?: string;
  at?: string;
  retries?: string;
  timeout?: string;
  encoding: Encoding;
  json?: boolean;
  create?: boolean;
  unique?: string;
  uniqueMode?: UniqueMode;
  uniqueWhileRunning?: boolean;
  expires?: string;
}

export function addCommand(): Command {
  return withDirOption(new Command('add'))
    .description('enqueue a call of task <task>; each argument is one JSON value (quote strings: \'"text"\')')
    .argument('<task>', 'task name')
    .argument('[args...]', 'positional arguments, each as JSON')
    .option('-p, --priority <n>', 'priority, 0 (first) to 99', '50')
    .option('--in <duration>', 'run after this delay, e.g. 10s, 5m, 1h30m')
    .option('--at <time>', 'run at this ISO 8601 time, e.g. 2026-12-01T09:00:00Z')
    .option('--retries <n>', 'retries after a failure (default: the daemon\'s)')
    .option('--timeout <duration>', 'run-time limit, e.g. 30s')
    .option('--unique <key>', 'unique key: while a task of this name with this key waits, add nothing and print its id')
    .addOption(new Option('--unique-mode <mode>', 'when the key is held by a waiting task: keep it, replace it, or replace it keeping its due time').choices([...UNIQUE_MODES]))
    .option('--unique-while-running', 'hold the key until the task has ended, not only while it waits')
    .option('--expires <when>', 'do not run the task if it has not started by then: a delay (10m) or an ISO 8601 time')
    .addOption(new Option('--encoding <encoding>', 'body encoding').choices(['msgpack', 'json']).default('msgpack'))
    .option('--json', 'print the new task as JSON instead of its id')
    .option('--create', 'make the spool directory if it does not exist (without it, a mistyped --dir is an error)')
    .action(async (name: string, rawArgs: string[], options: AddOptions) => {
      const layout = spoolFrom(options, options.create === true);
      const args = rawArgs.map((text, i) => parseJsonArgument(text, i + 1));
      if (options.in !== undefined && options.at !== undefined) throw new CliError('give --in or --at, not both', EXIT.USAGE);
      if ((options.uniqueMode !== undefined || options.uniqueWhileRunning === true) && options.unique === undefined) throw new CliError('--unique-mode and --unique-while-running need --unique <key>', EXIT.USAGE);
      const handle = await Spooler.open(layout.root).enqueue({
        name,
        args,
        options: {
          priority: parseInteger(options.priority ?? '50', '--priority'),
          encoding: options.encoding,
          ...(options.in !== undefined && { postpone: options.in }),
          ...(options.at !== undefined && { postpone: parseTime(options.at) }),
          ...(options.retries !== undefined && { retries: parseInteger(options.retries, '--retries') }),
          ...(options.timeout !== undefined && { timeout: options.timeout }),
          ...(options.unique !== undefined && { unique: options.unique }),
          ...(options.uniqueMode !== undefined && { uniqueMode: options.uniqueMode }),
          ...(options.uniqueWhileRunning === true && { uniqueWhileRunning: true }),
          ...(options.expires !== undefined && { expires: parseWhen(options.expires, '--expires') }),
        },
      });
      if (handle.existing === true && !options.json) process.stderr.write(`spool add: the unique key is held by task ${handle.id}; nothing was added\n`);
      process.stdout.write(options.json ? toJson(handle) + '\n' : `${handle.id}\n`);
    });
}

function parseJsonArgument(text: string, position: number): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new CliError(`argument ${position} (${JSON.stringify(text)}) is not JSON; a string needs quotes, e.g. '"${text}"'`, EXIT.USAGE);
  }
}

function parseInteger(text: string, option: string): number {
  if (!/^-?\d+$/.test(text)) throw new CliError(`${option} must be a whole number, got ${JSON.stringify(text)}`, EXIT.USAGE);
  return Number(text);
}

/** A delay ("10m", ms) or an ISO 8601 time. */
function parseWhen(text: string, option: string): string | Date {
  if (/^\d/.test(text) && !/^\d{4}-/.test(text)) return text;
  try {
    return parseTime(text, option);
  } catch {
    throw new CliError(`${option} ${JSON.stringify(text)} is neither a delay such as 10m or 1h30m nor an ISO 8601 time such as 2026-12-01T09:00:00Z`, EXIT.USAGE);
  }
}

const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,3})?)?)?(Z|[+-]\d{2}:\d{2})?$/;

/**
 * An ISO 8601 time: a date, optionally a time, optionally a zone (without one,
 * a date-time is local time). Date.parse alone accepts "42" and rolls
 * 30 February over into March; both are refused.
 */
function parseTime(text: string, option = '--at'): Date {
  const bad = () => new CliError(`${option} ${JSON.stringify(text)} is not an ISO 8601 time such as 2026-12-01T09:00:00Z`, EXIT.USAGE);
  const m = ISO_TIME.exec(text.trim());
  if (m === null) throw bad();
  const [year, month, day, hour = 0, minute = 0, second = 0] = m.slice(1, 7).map((part) => (part === undefined ? undefined : Number(part))) as number[];
  const daysInMonth = new Date(Date.UTC(year!, month!, 0)).getUTCDate();
  if (month! < 1 || month! > 12 || day! < 1 || day! > daysInMonth || hour > 23 || minute > 59 || second > 59) throw bad();
  const ms = Date.parse(text.trim().replace(' ', 'T'));
  if (Number.isNaN(ms)) throw bad();
  return new Date(ms);
}
