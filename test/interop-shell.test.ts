/**
 * A shell producer, as SPOOL-FORMAT.md ("Enqueueing") shows one: the name from
 * POSIX `date +%s` (whole seconds, as ms) and /dev/urandom, the JSON body printf'd
 * into tmp/ under `set -C` (O_EXCL), then mv'd
 * into incoming/. The real `spool` binary must see a valid task with the fields
 * the name carries and decode its body.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spool, tempDir } from './helpers/cli.js';

/**
 * The documented snippet, with the spool, priority, delay, task name and body
 * as parameters, run by dash (a POSIX shell without bash's extensions): sh -c PRODUCER producer <spool> <priority> <delay ms> <name> <json body>.
 * Prints the file name it enqueued.
 */
const PRODUCER = String.raw`
set -eu
set -C
spool=$1 priority=$2 delay=$3 task=$4 body=$5
now=$(date +%s)000
due=$(printf '%013d' $((now + delay)))
name="$priority-$due-$now$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')-a0-$task.json"
mkdir -p "$spool/tmp" "$spool/incoming"
printf '%s' "$body" > "$spool/tmp/$name"
mv "$spool/tmp/$name" "$spool/incoming/$name"
printf '%s' "$name"
`;

const FILE_NAME = /^(\d{2})-(\d{13})-(\d{13}[0-9a-f]{16})-a(0|[1-9]\d{0,5})-([A-Za-z_][A-Za-z0-9_.:-]{0,127})\.(msgpack|json)$/;

function produce(root: string, priority: string, delayMs: number, task: string, body: string): string {
  const r = spawnSync('dash', ['-c', PRODUCER, 'producer', root, priority, String(delayMs), task, body], { encoding: 'utf8', timeout: 20_000 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`the shell producer failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

function lsJson(root: string): Array<Record<string, unknown>> {
  const r = spool(['ls', '--dir', root, '--json'], { timeoutMs: 20_000 });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Array<Record<string, unknown>>;
}

let dir: string;
let cleanup: () => void;
let root: string;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('interop-sh-'));
  root = join(dir, 'spool');
});
afterEach(() => cleanup());

/** A spool as a daemon (or `spool add`) leaves it: every directory of SPOOL-FORMAT.md, "Layout". */
function makeSpool(): void {
  for (const d of ['tmp', 'incoming', 'pending', 'active', 'dead', 'quarantine', 'archive', 'state', 'locks']) mkdirSync(join(root, d), { recursive: true });
}

describe('shell producer', () => {
  it('a task enqueued with date, /dev/urandom, printf and mv is listed as a valid due task with the fields of its name', () => {
    makeSpool();
    const before = Date.now();
    const file = produce(root, '50', 0, 'sendEmail', '{"version":1,"type":"fcall","args":["a@example.com","hi"]}');
    const after = Date.now();

    const m = FILE_NAME.exec(file);
    expect(m, `the shell made a name that does not parse: ${file}`).not.toBeNull();
    const id = m![3]!;
    const created = Number(id.slice(0, 13));
    // Whole seconds: POSIX date has no milliseconds.
    expect(created % 1000).toBe(0);
    expect(created).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(created).toBeLessThanOrEqual(after);

    expect(lsJson(root)).toEqual([
      {
        id,
        name: 'sendEmail',
        state: 'due',
        priority: 50,
        due: created,
        created,
        attempts: 0,
        encoding: 'json',
        location: 'incoming',
        owner: null,
        file,
        path: join(root, 'incoming', file),
        reason: null,
        paused: false,
      },
    ]);
  });

  it('spool show decodes the body the shell printf-ed', () => {
    makeSpool();
    const file = produce(root, '50', 0, 'sendEmail', '{"version":1,"type":"fcall","args":["a@example.com","hi"]}');
    const id = FILE_NAME.exec(file)![3]!;
    const r = spool(['show', '--dir', root, id], { timeoutMs: 20_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const shown = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(shown.file).toBe(file);
    expect(shown.state).toBe('due');
    expect(shown.reason).toBeNull();
    expect(shown.body).toEqual({ version: 1, type: 'fcall', args: ['a@example.com', 'hi'] });
  });

  it('a postponed shell task with a ms timestamp argument is scheduled, after the due ones, and its integer survives', () => {
    makeSpool();
    const later = produce(root, '10', 600_000, 'cleanup', '{"version":1,"type":"fcall","args":[1763797190000,{"olderThan":"30d"}],"retry":{"limit":0}}');
    const now = produce(root, '90', 0, 'sendEmail', '{"version":1,"type":"fcall","args":["b@example.com","unicode ✓ 日本語"]}');
    const listed = lsJson(root);
    expect(listed.map((e) => [e.file, e.state, e.reason])).toEqual([
      [now, 'due', null],
      [later, 'scheduled', null],
    ]);
    const laterEntry = listed[1]!;
    expect(laterEntry.due).toBe((laterEntry.created as number) + 600_000);
    expect(laterEntry.priority).toBe(10);

    const r = spool(['show', '--dir', root, later], { timeoutMs: 20_000 });
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { body: unknown }).body).toEqual({
      version: 1,
      type: 'fcall',
      args: [1763797190000, { olderThan: '30d' }],
      retry: { limit: 0 },
    });
    const r2 = spool(['show', '--dir', root, now], { timeoutMs: 20_000 });
    expect(r2.code).toBe(0);
    expect((JSON.parse(r2.stdout) as { body: { args: unknown[] } }).body.args).toEqual(['b@example.com', 'unicode ✓ 日本語']);
  });

  it('the documented snippet works on a brand-new directory: it makes only tmp/ and incoming/, and spool ls lists its task', () => {
    // SPOOL-FORMAT.md, "Layout": a producer in another language may create tmp/ and incoming/ itself
    // with mkdir -p; missing subdirectories are created by whoever needs them first (…, `spool`, …).
    const file = produce(root, '50', 0, 'sendEmail', '{"version":1,"type":"fcall","args":["a@example.com","hi"]}');
    const listed = lsJson(root);
    expect(listed.map((e) => [e.file, e.state, e.reason])).toEqual([[file, 'due', null]]);
  });
});
