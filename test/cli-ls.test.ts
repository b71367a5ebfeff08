/**
 * `spool ls`, through the real binary on real directories (README, "The `spool`
 * command"; SPOOL-FORMAT.md for the layout, the file names and the state changes).
 * Task files are written here by hand, as a producer in another language would,
 * so the tests do not lean on the product's own encoder.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lsJson, spool, tempDir } from './helpers/cli.js';

const BODY = '{"version":1,"type":"fcall","args":[]}';
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

/** The keys README documents for `ls --json`, in its order. */
const ENTRY_KEYS = ['id', 'name', 'state', 'priority', 'due', 'created', 'attempts', 'encoding', 'location', 'owner', 'file', 'path', 'reason', 'paused'];

let seq = 0;
interface Made {
  id: string;
  file: string;
  path: string;
}
interface TaskSpec {
  priority?: number;
  due: number;
  created: number;
  attempts?: number;
  name: string;
  ext?: 'json' | 'msgpack';
  /** 16 hex digits; default a fresh, increasing one. */
  rand?: string;
}

/** A task file name per SPOOL-FORMAT.md, "File name" (built here, not by the product's code). */
function nameOf(t: TaskSpec): { id: string; file: string } {
  const rand = t.rand ?? (++seq).toString(16).padStart(16, '0');
  const id = String(t.created).padStart(13, '0') + rand;
  const pp = String(t.priority ?? 50).padStart(2, '0');
  const file = `${pp}-${String(t.due).padStart(13, '0')}-${id}-a${t.attempts ?? 0}-${t.name}.${t.ext ?? 'json'}`;
  return { id, file };
}

/** Writes a task file into `<root>/<where>/` (where may be e.g. "active/w1"). */
function put(root: string, where: string, t: TaskSpec, body: string | Buffer = BODY): Made {
  const { id, file } = nameOf(t);
  mkdirSync(join(root, where), { recursive: true });
  const path = join(root, where, file);
  writeFileSync(path, body);
  return { id, file, path };
}

/** Any file under any name. */
function putRaw(root: string, where: string, file: string, content = 'junk'): string {
  mkdirSync(join(root, where), { recursive: true });
  const path = join(root, where, file);
  writeFileSync(path, content);
  return path;
}

/** A quarantined file with its `<name>.reason.json` (SPOOL-FORMAT.md, "Quarantine"). */
function quarantine(root: string, file: string, reason: string, content = 'junk'): string {
  const path = putRaw(root, 'quarantine', file, content);
  writeFileSync(path + '.reason.json', JSON.stringify({ reason, from: 'incoming', at: Date.now() }));
  return path;
}

function makeSpool(root: string): void {
  for (const d of ['tmp', 'incoming', 'pending', 'active', 'dead', 'quarantine', 'archive', 'state', 'locks']) {
    mkdirSync(join(root, d), { recursive: true });
  }
}

/** The claim a daemon makes (SPOOL-FORMAT.md, "State changes"): one rename into active/<owner>/. */
function claim(root: string, made: Made, owner: string): Made {
  mkdirSync(join(root, 'active', owner), { recursive: true });
  const path = join(root, 'active', owner, made.file);
  renameSync(made.path, path);
  return { ...made, path };
}

/** "2026-11-22 08:00:00Z". */
function utc(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
}

/** Output lines without trailing blanks (trailing spaces are not part of the contract). */
function lines(text: string): string[] {
  return text.split('\n').map((l) => l.trimEnd());
}

let dir: string;
let cleanup: () => void;
let root: string;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('spool-ls-'));
  root = join(dir, 'spool');
  makeSpool(root);
});
afterEach(() => cleanup());

describe('spool ls: execution order', () => {
  it('lists running tasks, then due ones by priority, due time and id, then scheduled ones by due time, then invalid, dead and quarantined', () => {
    const now = Date.now();
    const created = now - 3 * HOUR;
    // Due tasks, written out of order and split over incoming/ and pending/.
    const dueP50Old = put(root, 'pending', { priority: 50, due: now - 2 * HOUR, created, name: 'b' });
    const dueP99 = put(root, 'incoming', { priority: 99, due: now - 2 * HOUR - 5 * MIN, created, name: 'a' });
    const dueP50IdB = put(root, 'pending', { priority: 50, due: now - MIN, created, name: 'c', rand: '00000000000000bb' });
    const dueP10 = put(root, 'incoming', { priority: 10, due: now - MIN, created, name: 'd' });
    const dueP50IdA = put(root, 'incoming', { priority: 50, due: now - MIN, created, name: 'e', rand: '00000000000000aa' });
    // Scheduled: by due time, whatever the priority.
    const schedP10Late = put(root, 'incoming', { priority: 10, due: now + 2 * HOUR, created, name: 'f' });
    const schedP90Soon = put(root, 'pending', { priority: 90, due: now + 10 * MIN, created, name: 'g' });
    const schedP50Mid = put(root, 'incoming', { priority: 50, due: now + HOUR, created, name: 'h' });
    // Running: claimed by hand the way a daemon claims.
    const active1 = claim(root, put(root, 'pending', { priority: 99, due: now - MIN, created, name: 'run1' }), 'worker-1');
    const active2 = claim(root, put(root, 'incoming', { priority: 0, due: now + DAY, created, name: 'run2' }), 'worker-2');
    // Not runnable: a truncated body, a name that is not a task name, a dead letter, a quarantined file.
    const corrupt = put(root, 'incoming', { priority: 0, due: now - HOUR, created, name: 'corrupt', ext: 'msgpack' }, Buffer.from([0x83, 0xa7]));
    putRaw(root, 'pending', 'not-a-task.txt');
    const dead = put(root, 'dead', { priority: 0, due: now - HOUR, created, attempts: 4, name: 'died' });
    quarantine(root, 'bad-file.bin', 'the body is not valid MessagePack');
    // Archived tasks are not listed by default.
    put(root, 'archive', { priority: 0, due: now - HOUR, created, name: 'done' });

    const entries = lsJson(root);
    const files = entries.map((e) => e.file);
    expect(entries.map((e) => e.state)).toEqual([
      'active', 'active',
      'due', 'due', 'due', 'due', 'due',
      'scheduled', 'scheduled', 'scheduled',
      'invalid', 'invalid',
      'dead',
      'quarantined',
    ]);
    // The order among running tasks is not specified; that they come first is.
    expect(new Set(files.slice(0, 2))).toEqual(new Set([active1.file, active2.file]));
    expect(entries.slice(0, 2).map((e) => [e.file, e.owner])).toEqual(
      expect.arrayContaining([
        [active1.file, 'worker-1'],
        [active2.file, 'worker-2'],
      ]),
    );
    expect(files.slice(2, 10)).toEqual([
      dueP10.file,
      dueP50Old.file,
      dueP50IdA.file,
      dueP50IdB.file,
      dueP99.file,
      schedP90Soon.file,
      schedP50Mid.file,
      schedP10Late.file,
    ]);
    expect(new Set(files.slice(10, 12))).toEqual(new Set([corrupt.file, 'not-a-task.txt']));
    expect(files.slice(12)).toEqual([dead.file, 'bad-file.bin']);
  });
});

describe('spool ls: output', () => {
  it('prints aligned columns under a header, with the due time both absolute and relative', () => {
    const now = Date.now();
    // Every relative time has tens of seconds of margin, so the listing's own clock cannot change the text.
    const a = put(root, 'incoming', { priority: 10, due: now - 3 * HOUR - 30 * MIN, created: now - 5 * HOUR - 30 * MIN, attempts: 2, name: 'send_email' });
    const b = put(root, 'pending', { priority: 50, due: now - 90_000, created: now - 90_000, name: 'x' });
    const c = put(root, 'incoming', { priority: 5, due: now + 5 * MIN + 30_000, created: now - 2 * DAY - HOUR, name: 'cleanup' });

    const r = spool(['ls', '--dir', root]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // Columns: ID, TASK, PRI (right-aligned), DUE (absolute, then relative), ATT (right-aligned), STATE, AGE.
    const row = (id: string, task: string, pri: string, due: string, rel: string, att: string, state: string, age: string) =>
      [id.padEnd(29), task.padEnd(10), pri.padStart(3), due.padEnd(20), rel.padEnd(6), att.padStart(3), state.padEnd(9), age].join('  ').trimEnd();
    expect(lines(r.stdout)).toEqual([
      row('ID', 'TASK', 'PRI', 'DUE', '', 'ATT', 'STATE', 'AGE'),
      row(a.id, 'send_email', '10', utc(now - 3 * HOUR - 30 * MIN), '3h ago', '2', 'due', '5h'),
      row(b.id, 'x', '50', utc(now - 90_000), '1m ago', '0', 'due', '1m'),
      row(c.id, 'cleanup', '5', utc(now + 5 * MIN + 30_000), 'in 5m', '0', 'scheduled', '2d'),
      '',
    ]);
  });

  it('shows dead letters and quarantined files with their state, and the reason in a NOTE column', () => {
    const now = Date.now();
    const dead = put(root, 'dead', { priority: 20, due: now - 2 * HOUR - 30 * MIN, created: now - 4 * HOUR - 30 * MIN, attempts: 4, name: 'flaky' });
    quarantine(root, 'junk.bin', 'format version 7 is not supported');
    const qTask = nameOf({ priority: 30, due: now - HOUR - 30 * MIN, created: now - HOUR - 30 * MIN, name: 'evil' });
    quarantine(root, qTask.file, 'the body must be a map (a JSON object)');

    const json = lsJson(root);
    expect(json).toEqual([
      {
        id: dead.id, name: 'flaky', state: 'dead', priority: 20, due: now - 2 * HOUR - 30 * MIN, created: now - 4 * HOUR - 30 * MIN,
        attempts: 4, encoding: 'json', location: 'dead', owner: null, file: dead.file, path: dead.path, reason: null, paused: false,
      },
      {
        id: qTask.id, name: 'evil', state: 'quarantined', priority: 30, due: now - HOUR - 30 * MIN, created: now - HOUR - 30 * MIN,
        attempts: 0, encoding: 'json', location: 'quarantine', owner: null, file: qTask.file, path: join(root, 'quarantine', qTask.file),
        reason: 'the body must be a map (a JSON object)', paused: false,
      },
      {
        id: null, name: null, state: 'quarantined', priority: null, due: null, created: null, attempts: null, encoding: null,
        location: 'quarantine', owner: null, file: 'junk.bin', path: join(root, 'quarantine', 'junk.bin'), reason: 'format version 7 is not supported', paused: false,
      },
    ]);

    const r = spool(['ls', '--dir', root]);
    expect(r.code).toBe(0);
    const row = (id: string, task: string, pri: string, due: string, rel: string, att: string, state: string, age: string, note: string) =>
      [id.padEnd(29), task.padEnd(8), pri.padStart(3), due.padEnd(20), rel.padEnd(6), att.padStart(3), state.padEnd(11), age.padEnd(3), note].join('  ').trimEnd();
    expect(lines(r.stdout)).toEqual([
      row('ID', 'TASK', 'PRI', 'DUE', '', 'ATT', 'STATE', 'AGE', 'NOTE'),
      row(dead.id, 'flaky', '20', utc(now - 2 * HOUR - 30 * MIN), '2h ago', '4', 'dead', '4h', ''),
      row(qTask.id, 'evil', '30', utc(now - HOUR - 30 * MIN), '1h ago', '0', 'quarantined', '1h', 'the body must be a map (a JSON object)'),
      row('-', 'junk.bin', '-', '-', '', '-', 'quarantined', '-', 'format version 7 is not supported'),
      '',
    ]);
  });

  it('prints "no tasks" for an empty spool, and for a filter that matches nothing', () => {
    const empty = spool(['ls', '--dir', root]);
    expect(empty).toEqual({ code: 0, stdout: 'no tasks\n', stderr: '' });
    expect(lsJson(root)).toEqual([]);

    put(root, 'incoming', { due: Date.now() - MIN, created: Date.now() - MIN, name: 'only' });
    const filtered = spool(['ls', '--dir', root, '--state', 'dead']);
    expect(filtered).toEqual({ code: 0, stdout: 'no tasks\n', stderr: '' });
  });

  it('--json prints exactly the fields README documents, with null for what a file cannot supply', () => {
    const now = Date.now();
    const t = put(root, 'pending', { priority: 7, due: now - MIN, created: now - 2 * MIN, attempts: 3, name: 'mail.send:v2-x', ext: 'json' });
    const badName = putRaw(root, 'incoming', '50-oops.json');

    const r = spool(['ls', '--dir', root, '--json']);
    expect(r.code).toBe(0);
    const parsed = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    expect(parsed).toHaveLength(2);
    for (const e of parsed) expect(Object.keys(e)).toEqual(ENTRY_KEYS);
    expect(parsed[0]).toEqual({
      id: t.id, name: 'mail.send:v2-x', state: 'due', priority: 7, due: now - MIN, created: now - 2 * MIN, attempts: 3,
      encoding: 'json', location: 'pending', owner: null, file: t.file, path: t.path, reason: null, paused: false,
    });
    expect(parsed[1]).toEqual({
      id: null, name: null, state: 'invalid', priority: null, due: null, created: null, attempts: null, encoding: null,
      location: 'incoming', owner: null, file: '50-oops.json', path: badName, reason: expect.stringMatching(/^bad file name: /), paused: false,
    });
  });

  it('--json gives a running task its owner and location', () => {
    const now = Date.now();
    const t = claim(root, put(root, 'pending', { priority: 40, due: now - MIN, created: now - MIN, name: 'work', ext: 'json' }), '4242');
    expect(lsJson(root)).toEqual([
      {
        id: t.id, name: 'work', state: 'active', priority: 40, due: now - MIN, created: now - MIN, attempts: 0,
        encoding: 'json', location: 'active', owner: '4242', file: t.file, path: join(root, 'active', '4242', t.file), reason: null, paused: false,
      },
    ]);
  });
});

describe('spool ls: filters', () => {
  function mixedSpool() {
    const now = Date.now();
    const created = now - HOUR;
    return {
      active: claim(root, put(root, 'pending', { due: now - MIN, created, name: 'mail' }), 'w1'),
      due1: put(root, 'incoming', { priority: 10, due: now - MIN, created, name: 'mail' }),
      due2: put(root, 'pending', { priority: 20, due: now - MIN, created, name: 'resize' }),
      due3: put(root, 'pending', { priority: 30, due: now - MIN, created, name: 'report' }),
      scheduled: put(root, 'incoming', { due: now + HOUR, created, name: 'mail' }),
      invalid: put(root, 'incoming', { due: now - MIN, created, name: 'mail', ext: 'json' }, '{"version":1,'),
      dead: put(root, 'dead', { due: now - MIN, created, name: 'resize' }),
      quarantined: quarantine(root, 'evil.bin', 'not a task'),
      archived: put(root, 'archive', { due: now - MIN, created, name: 'mail' }),
    };
  }

  it('--state keeps one state', () => {
    const s = mixedSpool();
    expect(lsJson(root, ['--state', 'due']).map((e) => e.file)).toEqual([s.due1.file, s.due2.file, s.due3.file]);
    expect(lsJson(root, ['--state', 'dead']).map((e) => e.file)).toEqual([s.dead.file]);
    expect(lsJson(root, ['--state', 'active']).map((e) => e.file)).toEqual([s.active.file]);
    expect(lsJson(root, ['--state', 'scheduled']).map((e) => e.file)).toEqual([s.scheduled.file]);
    expect(lsJson(root, ['--state', 'invalid']).map((e) => [e.file, e.state])).toEqual([[s.invalid.file, 'invalid']]);
    expect(lsJson(root, ['--state', 'quarantined']).map((e) => [e.file, e.reason])).toEqual([['evil.bin', 'not a task']]);
  });

  it('--state keeps several states, in execution order', () => {
    const s = mixedSpool();
    expect(lsJson(root, ['--state', 'dead', 'scheduled']).map((e) => e.file)).toEqual([s.scheduled.file, s.dead.file]);
    expect(lsJson(root, ['--state', 'quarantined', '--state', 'active', '--state', 'invalid']).map((e) => e.file)).toEqual([
      s.active.file,
      s.invalid.file,
      'evil.bin',
    ]);
  });

  it('lists archived tasks only with --state archived', () => {
    const s = mixedSpool();
    const all = lsJson(root).map((e) => e.file);
    expect(all).toHaveLength(8);
    expect(all).not.toContain(s.archived.file);
    expect(lsJson(root, ['--state', 'archived'])).toEqual([
      expect.objectContaining({ id: s.archived.id, file: s.archived.file, state: 'archived', location: 'archive', path: s.archived.path, reason: null }),
    ]);
    expect(lsJson(root, ['--state', 'archived', 'dead']).map((e) => e.file)).toEqual([s.dead.file, s.archived.file]);
  });

  it('--task keeps the tasks of one or several names', () => {
    const s = mixedSpool();
    expect(lsJson(root, ['--task', 'resize']).map((e) => e.file)).toEqual([s.due2.file, s.dead.file]);
    expect(lsJson(root, ['--task', 'mail']).map((e) => e.file)).toEqual([s.active.file, s.due1.file, s.scheduled.file, s.invalid.file]);
    expect(lsJson(root, ['--task', 'report', 'resize']).map((e) => e.file)).toEqual([s.due2.file, s.due3.file, s.dead.file]);
    expect(lsJson(root, ['--task', 'mail', '--state', 'due', 'scheduled']).map((e) => e.file)).toEqual([s.due1.file, s.scheduled.file]);
    expect(lsJson(root, ['--task', 'nobody'])).toEqual([]);
  });

  it('--limit prints the first n tasks of the filtered execution order', () => {
    const s = mixedSpool();
    expect(lsJson(root, ['--limit', '3']).map((e) => e.file)).toEqual([s.active.file, s.due1.file, s.due2.file]);
    expect(lsJson(root, ['--limit', '2', '--state', 'due', 'dead']).map((e) => e.file)).toEqual([s.due1.file, s.due2.file]);
    // 0 is refused: "no tasks" (or []) about a spool that has tasks misleads (issue 14).
    const zero = spool(['ls', '--dir', root, '--limit', '0']);
    expect(zero.code).toBe(2);
    expect(zero.stdout).toBe('');
    expect(zero.stderr).toContain('--limit must be a whole number ≥ 1');
    expect(lsJson(root, ['--limit', '100'])).toHaveLength(8);
    const bad = spool(['ls', '--dir', root, '--limit', 'many']);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toContain('--limit');
  });

  it('--no-check lists by name only: a corrupt body goes unnoticed, a bad name is still invalid', () => {
    const now = Date.now();
    const corrupt = put(root, 'incoming', { priority: 50, due: now - MIN, created: now - MIN, name: 'broken', ext: 'msgpack' }, Buffer.from([0xde, 0x00]));
    const later = put(root, 'pending', { priority: 50, due: now + HOUR, created: now - MIN, name: 'broken_later', ext: 'json' }, 'not json at all');
    putRaw(root, 'incoming', 'README.txt');

    const checked = lsJson(root);
    expect(checked.map((e) => [e.file, e.state])).toEqual([
      [corrupt.file, 'invalid'],
      [later.file, 'invalid'],
      ['README.txt', 'invalid'],
    ]);
    expect(checked[0]!.reason).toMatch(/MessagePack/);
    expect(checked[1]!.reason).toMatch(/JSON/);

    const unchecked = lsJson(root, ['--no-check']);
    expect(unchecked.map((e) => [e.file, e.state, e.reason])).toEqual([
      [corrupt.file, 'due', null],
      [later.file, 'scheduled', null],
      ['README.txt', 'invalid', expect.stringMatching(/^bad file name: /)],
    ]);
    expect(unchecked[0]).toEqual(expect.objectContaining({ id: corrupt.id, name: 'broken', priority: 50, encoding: 'msgpack', location: 'incoming' }));
  });
});

describe('spool ls: which spool', () => {
  it('reads SPOOL_DIR when --dir is not given, and --dir wins over SPOOL_DIR', () => {
    const other = join(dir, 'other');
    makeSpool(other);
    const mine = put(root, 'incoming', { due: Date.now() - MIN, created: Date.now() - MIN, name: 'in_root' });
    const theirs = put(other, 'incoming', { due: Date.now() - MIN, created: Date.now() - MIN, name: 'in_other' });

    const fromEnv = spool(['ls', '--json'], { env: { SPOOL_DIR: root } });
    expect(fromEnv.code).toBe(0);
    expect((JSON.parse(fromEnv.stdout) as Array<{ file: string }>).map((e) => e.file)).toEqual([mine.file]);

    const both = spool(['ls', '--json', '--dir', other], { env: { SPOOL_DIR: root } });
    expect(both.code).toBe(0);
    expect((JSON.parse(both.stdout) as Array<{ file: string }>).map((e) => e.file)).toEqual([theirs.file]);
  });

  it('exits 2 naming --dir and SPOOL_DIR when neither is given', () => {
    const r = spool(['ls']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('--dir');
    expect(r.stderr).toContain('SPOOL_DIR');
  });

  it('exits 1 naming the path when the spool does not exist', () => {
    const missing = join(dir, 'no', 'such', 'spool');
    const r = spool(['ls', '--dir', missing]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(resolve(missing));
    const viaEnv = spool(['ls'], { env: { SPOOL_DIR: missing } });
    expect(viaEnv.code).toBe(1);
    expect(viaEnv.stderr).toContain(resolve(missing));
  });

  it('lists a spool made by a foreign producer that created only tmp/ and incoming/ (SPOOL-FORMAT.md, "Enqueueing")', () => {
    // SPOOL-FORMAT.md: "a producer in another language may create tmp/ and incoming/ itself with mkdir -p";
    // its shell example does exactly that, then renames the task from tmp/ into incoming/.
    const foreign = join(dir, 'foreign');
    mkdirSync(join(foreign, 'tmp'), { recursive: true });
    mkdirSync(join(foreign, 'incoming'), { recursive: true });
    const now = Date.now();
    const { id, file } = nameOf({ due: now, created: now, name: 'send_email' });
    writeFileSync(join(foreign, 'tmp', file), '{"version":1,"type":"fcall","args":["a@example.com","hi"]}');
    renameSync(join(foreign, 'tmp', file), join(foreign, 'incoming', file));

    const r = spool(['ls', '--dir', foreign, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as Array<Record<string, unknown>>).map((e) => [e.id, e.state, e.location])).toEqual([[id, 'due', 'incoming']]);
  });
});

describe('spool ls: large spools', () => {
  it('checks every body of a spool large enough to be checked on several threads, and reports the bad ones with their reasons', () => {
    const now = Date.now();
    const good: string[] = [];
    for (let i = 0; i < 6000; i++) good.push(put(root, i % 2 ? 'incoming' : 'pending', { due: now - MIN, created: now - MIN, name: 'bulk' }).file);
    const truncated = put(root, 'pending', { due: now - MIN, created: now - MIN, name: 'bad_truncated', ext: 'msgpack' }, Buffer.from([0x83, 0xa7]));
    const notJson = put(root, 'incoming', { due: now - MIN, created: now - MIN, name: 'bad_json' }, '{"version":1,');
    const version = put(root, 'pending', { due: now - MIN, created: now - MIN, name: 'bad_version' }, '{"version":99,"type":"fcall","args":[]}');
    const args = put(root, 'incoming', { due: now - MIN, created: now - MIN, name: 'bad_args' }, '{"version":1,"type":"fcall","args":"x"}');

    const entries = lsJson(root);
    expect(entries).toHaveLength(6004);
    const invalid = entries.filter((e) => e.state === 'invalid');
    expect(invalid.map((e) => e.file).sort()).toEqual([truncated.file, notJson.file, version.file, args.file].sort());
    const reasonOf = (file: string) => invalid.find((e) => e.file === file)!.reason;
    expect(reasonOf(truncated.file)).toMatch(/MessagePack/);
    expect(reasonOf(notJson.file)).toMatch(/JSON/);
    expect(reasonOf(version.file)).toMatch(/version/);
    expect(reasonOf(args.file)).toMatch(/args/);
    expect(new Set(entries.filter((e) => e.state === 'due').map((e) => e.file))).toEqual(new Set(good));

    const table = spool(['ls', '--dir', root]);
    expect(table.code).toBe(0);
    expect(lines(table.stdout).filter((l) => l !== '')).toHaveLength(6005);
  });

  it('prints, on a spool large enough to be checked on several threads, what --no-check prints when every body is valid', () => {
    const now = Date.now();
    // Due 90 s ago ("1m ago") or in about 90 min ("in 1h"): the same text in both listings, with 30 s of margin.
    for (let i = 0; i < 5000; i++) {
      put(root, i % 3 ? 'pending' : 'incoming', { priority: i % 7, due: i % 2 ? now - 90_000 : now + 90 * MIN + (i % 60) * 1000, created: now - 90_000, name: i % 5 ? 'bulk' : 'other_task', ext: i % 4 ? 'json' : 'msgpack' }, i % 4 ? BODY : Buffer.from([0x83, 0xa7, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x01, 0xa4, 0x74, 0x79, 0x70, 0x65, 0xa5, 0x66, 0x63, 0x61, 0x6c, 0x6c, 0xa4, 0x61, 0x72, 0x67, 0x73, 0x91, 0x2a]));
    }
    for (const args of [[], ['--json'], ['--state', 'scheduled', '--limit', '700']]) {
      const checked = spool(['ls', '--dir', root, ...args]);
      const unchecked = spool(['ls', '--dir', root, '--no-check', ...args]);
      expect(checked.code).toBe(0);
      expect(checked.stderr).toBe('');
      expect(checked.stdout).toBe(unchecked.stdout);
    }
    expect(lsJson(root)).toHaveLength(5000);
  });

  it('ends quietly with status 0 when its reader stops reading (spool ls | head -1)', async () => {
    const now = Date.now();
    for (let i = 0; i < 3000; i++) put(root, 'pending', { due: now - MIN, created: now - MIN, name: 'bulk' });
    const { spawn } = await import('node:child_process');
    const { SPOOL_BIN } = await import('./helpers/cli.js');
    const child = spawn(process.execPath, [SPOOL_BIN, 'ls', '--dir', root], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const first = await new Promise<string>((done) => child.stdout.once('data', (d: Buffer) => done(d.toString('utf8'))));
    child.stdout.destroy();
    const code = await new Promise<number | null>((done) => child.on('close', done));
    expect(first.startsWith('ID ')).toBe(true);
    expect(code).toBe(0);
    expect(stderr).toBe('');
  });
});
