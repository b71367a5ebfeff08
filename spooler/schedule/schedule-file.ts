/**
 * `spoolerd --schedule <file>`: schedules for users who only drop files, in
 * JSON (README, "Periodic tasks"):
 *
 *   {"schedules": [
 *     {"name": "nightly", "task": "reindex", "cron": "0 3 * * *", "tz": "Europe/Berlin",
 *      "catchUp": "last", "args": ["full"], "priority": 20, "retries": 2, "timeout": "10m"},
 *     {"task": "heartbeat", "every": "30s"}
 *   ]}
 *
 * Each entry is checked as spooler.periodic()'s options are (spool/schedule.ts);
 * `retries`, `timeout` and `keepResult` go into each task's body as they would
 * from the task's options. The daemon runs them on every spool it serves.
 */
import { readFileSync } from 'node:fs';
import { toMs } from '../../runtime/duration.js';
import { InvalidOptionError } from '../../spool/errors.js';
import { checkSchedule, type ScheduleSpec, type ScheduleTaskFields } from '../../spool/schedule.js';
import { encodeWire, toWire } from '../../spool/wire.js';

const KNOWN = new Set(['name', 'task', 'every', 'cron', 'tz', 'catchUp', 'catchUpLimit', 'args', 'priority', 'retries', 'timeout', 'keepResult']);

/** Reads and checks a schedule file. Throws InvalidOptionError naming the file, the entry and the fix. */
export function readScheduleFile(path: string): ScheduleSpec[] {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new InvalidOptionError(`--schedule ${path}: ${(err as Error).message}`);
  }
  const list = (value as { schedules?: unknown } | null)?.schedules;
  if (value === null || typeof value !== 'object' || !Array.isArray(list)) {
    throw new InvalidOptionError(`--schedule ${path}: expected {"schedules": [{"task": "...", "every": "10m"}, ...]}`);
  }
  const specs = list.map((entry: unknown, i) => {
    const where = `--schedule ${path}, schedules[${i}]`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new InvalidOptionError(`${where}: each schedule is an object such as {"task": "...", "every": "10m"}`);
    const e = entry as Record<string, unknown>;
    const unknown = Object.keys(e).filter((k) => !KNOWN.has(k));
    if (unknown.length > 0) throw new InvalidOptionError(`${where}: unknown field ${unknown.map((k) => JSON.stringify(k)).join(', ')} (known: ${[...KNOWN].join(', ')})`);
    const spec = checkSchedule(e, where, toMs);
    const fields: ScheduleTaskFields = {};
    if (e.retries !== undefined) {
      if (!Number.isSafeInteger(e.retries) || (e.retries as number) < 0) throw new InvalidOptionError(`${where}: "retries" must be a whole number ≥ 0`);
      fields.retry = { limit: e.retries as number };
    }
    if (e.timeout !== undefined) {
      const ms = toMs(e.timeout as number | string, `${where}: "timeout"`);
      if (ms <= 0) throw new InvalidOptionError(`${where}: "timeout" must be more than 0 ms`);
      fields.timeout = ms;
    }
    if (e.keepResult !== undefined) fields.keepResult = toMs(e.keepResult as number | string, `${where}: "keepResult"`);
    if (Object.keys(fields).length > 0) spec.fields = fields;
    encodeWire(toWire(spec.args, 'msgpack', `${where}: "args"`), 'msgpack');
    return spec;
  });
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.name)) throw new InvalidOptionError(`--schedule ${path}: two schedules are named "${s.name}"; give one a "name"`);
    seen.add(s.name);
  }
  return specs;
}
