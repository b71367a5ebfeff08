/**
 * `spool add <task> [args as JSON…]`, through the real binary (README, "The
 * `spool` command"). What it wrote is read back with `spool show` and from disk.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lsJson, spool, tempDir } from './helpers/cli.js';

const FILE_NAME = /^(\d{2})-(\d{13})-(\d{13}[0-9a-f]{16})-a(0|[1-9]\d{0,5})-([A-Za-z_][A-Za-z0-9_.:-]{0,127})\.(msgpack|json)$/;

let dir: string;
let cleanup: () => void;
let root: string;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('spool-add-'));
  root = join(dir, 'spool');
  mkdirSync(root);
});
afterEach(() => cleanup());

function add(args: string[]) {
  return spool(['add', '--dir', root, ...args]);
}

/** Adds, expecting success; returns the printed id. */
function addOk(args: string[]): string {
  const r = add(args);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^\d{13}[0-9a-f]{16}\n$/);
  return r.stdout.trim();
}

function show(id: string): Record<string, unknown> & { body: Record<string, unknown> } {
  const r = spool(['show', '--dir', root, id]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown> & { body: Record<string, unknown> };
}

/** Every task file in incoming/ and pending/. */
function queued(): string[] {
  return ['incoming', 'pending'].flatMap((d) => (existsSync(join(root, d)) ? readdirSync(join(root, d)) : []));
}

describe('spool add: arguments', () => {
  it('parses each argument as one JSON value: strings, numbers, booleans, null, objects, arrays', () => {
    const id = addOk(['send_email', '"a@example.com"', '42', '-0.5', 'true', 'null', '{"to":{"name":"Ann","tags":["x",1]}}', '[1,[2,[3]],"four"]', '""']);
    const t = show(id);
    expect(t.body).toEqual({
      version: 1,
      type: 'fcall',
      args: ['a@example.com', 42, -0.5, true, null, { to: { name: 'Ann', tags: ['x', 1] } }, [1, [2, [3]], 'four'], ''],
    });
    expect(t).toEqual(
      expect.objectContaining({ id, name: 'send_email', state: 'due', priority: 50, attempts: 0, encoding: 'msgpack', location: 'incoming', reason: null }),
    );
  });

  it('enqueues a call without arguments as args []', () => {
    const id = addOk(['tick']);
    expect(show(id).body).toEqual({ version: 1, type: 'fcall', args: [] });
  });

  it('refuses an argument that is not JSON with exit 2 and a hint to quote strings, and writes nothing', () => {
    const r = add(['send_email', '"ok"', 'hello']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('argument 2');
    expect(r.stderr).toContain(`'"hello"'`);
    expect(queued()).toEqual([]);
  });
});

describe('spool add: options', () => {
  it('--priority sets the priority in the file name', () => {
    const id = addOk(['urgent', '--priority', '3']);
    const t = show(id);
    expect(t.priority).toBe(3);
    expect(String(t.file).startsWith('03-')).toBe(true);
    addOk(['first', '-p', '0']);
    expect(lsJson(root).map((e) => e.priority)).toEqual([0, 3]);
    expect(show(addOk(['last', '--priority', '99'])).priority).toBe(99);
  });

  it('refuses a priority out of 0–99, or not a whole number, with exit 2 and writes nothing', () => {
    for (const p of ['100', '-1', '7.5', 'high']) {
      const r = add(['t', '--priority', p]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/priority/);
    }
    expect(queued()).toEqual([]);
  });

  it('--in 10s makes the task due 10 s after it was created', () => {
    const before = Date.now();
    const id = addOk(['later', '--in', '10s']);
    const after = Date.now();
    const t = show(id);
    expect(t.due).toBe((t.created as number) + 10_000);
    expect(t.created).toBeGreaterThanOrEqual(before);
    expect(t.created).toBeLessThanOrEqual(after);
    expect(t.state).toBe('scheduled');
    // And composite durations.
    const t2 = show(addOk(['later', '--in', '1h30m']));
    expect(t2.due).toBe((t2.created as number) + 5_400_000);
  });

  it('--at makes the task due at that instant, time zone offsets included', () => {
    const t = show(addOk(['at_task', '--at', '2030-06-01T12:34:56.789Z']));
    expect(t.due).toBe(Date.UTC(2030, 5, 1, 12, 34, 56, 789));
    expect(t.state).toBe('scheduled');
    const t2 = show(addOk(['at_task', '--at', '2030-06-01T14:34:56+02:00']));
    expect(t2.due).toBe(Date.UTC(2030, 5, 1, 12, 34, 56));
    // A time in the past is allowed: due at once.
    const t3 = show(addOk(['at_task', '--at', '2020-01-01T00:00:00Z']));
    expect(t3.due).toBe(Date.UTC(2020, 0, 1));
    expect(t3.state).toBe('due');
  });

  it('without --in or --at the task is due when it was created', () => {
    const t = show(addOk(['now_task']));
    expect(t.due).toBe(t.created);
    expect(t.state).toBe('due');
  });

  it('refuses --in together with --at with exit 2 and writes nothing', () => {
    const r = add(['t', '--in', '10s', '--at', '2030-06-01T12:00:00Z']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('--in');
    expect(r.stderr).toContain('--at');
    expect(queued()).toEqual([]);
  });

  it('refuses a duration that is not one with exit 2 and writes nothing', () => {
    for (const d of ['soon', '10 parsecs', '-5s']) {
      const r = add(['t', '--in', d]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
    }
    expect(queued()).toEqual([]);
  });

  it('refuses an --at that is not an ISO 8601 time with exit 2 and writes nothing', () => {
    const r = add(['t', '--at', 'tomorrow']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('tomorrow');
    expect(queued()).toEqual([]);
  });

  it('refuses an --at naming a day that does not exist (30 February) instead of moving it to March', () => {
    const r = add(['t', '--at', '2030-02-30T09:00:00Z']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('2030-02-30T09:00:00Z');
    expect(queued()).toEqual([]);
  });

  it('refuses a bare number as --at instead of reading it as a year', () => {
    const r = add(['t', '--at', '42']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(queued()).toEqual([]);
  });

  it('--retries and --timeout end up in the body', () => {
    const t = show(addOk(['careful', '"x"', '--retries', '4', '--timeout', '30s']));
    expect(t.body).toEqual({ version: 1, type: 'fcall', args: ['x'], retry: { limit: 4 }, timeout: 30_000 });
    const t0 = show(addOk(['no_retry', '--retries', '0', '--timeout', '1m30s']));
    expect(t0.body).toEqual({ version: 1, type: 'fcall', args: [], retry: { limit: 0 }, timeout: 90_000 });
  });

  it('refuses bad --retries and --timeout with exit 2 and writes nothing', () => {
    for (const args of [['--retries', 'many'], ['--retries', '-1'], ['--timeout', 'forever'], ['--timeout', '0s']]) {
      const r = add(['t', ...args]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).not.toBe('');
    }
    expect(queued()).toEqual([]);
  });

  it('--encoding json writes a .json file holding the JSON body', () => {
    const id = addOk(['as_json', '"text"', '{"n":1}', '--encoding', 'json', '--retries', '2']);
    const t = show(id);
    expect(t.encoding).toBe('json');
    expect(String(t.file).endsWith('.json')).toBe(true);
    expect(JSON.parse(readFileSync(t.path as string, 'utf8'))).toEqual({ version: 1, type: 'fcall', args: ['text', { n: 1 }], retry: { limit: 2 } });
    // The default is MessagePack.
    const m = show(addOk(['as_msgpack']));
    expect(m.encoding).toBe('msgpack');
    expect(String(m.file).endsWith('.msgpack')).toBe(true);
  });

  it('refuses an unknown --encoding with exit 2', () => {
    const r = add(['t', '--encoding', 'xml']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(queued()).toEqual([]);
  });

  it('--json prints the handle of the new task', () => {
    const r = add(['handle', '"a"', '--priority', '20', '--at', '2031-01-02T03:04:05Z', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const handle = JSON.parse(r.stdout) as Record<string, unknown>;
    const files = readdirSync(join(root, 'incoming'));
    expect(files).toHaveLength(1);
    const fileName = files[0]!;
    const m = FILE_NAME.exec(fileName);
    expect(m).not.toBeNull();
    expect(handle).toEqual({
      id: m![3],
      name: 'handle',
      fileName,
      path: join(root, 'incoming', fileName),
      priority: 20,
      due: Date.UTC(2031, 0, 2, 3, 4, 5),
    });
    expect(fileName).toBe(`20-${Date.UTC(2031, 0, 2, 3, 4, 5)}-${m![3]}-a0-handle.msgpack`);
  });

  it('refuses a task name that is not one with exit 2', () => {
    for (const name of ['bad name', '9lives', 'a/b']) {
      const r = add([name]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
    }
    expect(queued()).toEqual([]);
  });
});

describe('spool add: the spool', () => {
  it('refuses a spool directory that does not exist (a mistyped --dir), exit 1, and creates nothing', () => {
    const typo = join(dir, 'spoool');
    const r = spool(['add', '--dir', typo, 'first', '1']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`spool directory ${typo}: does not exist`);
    expect(r.stderr).toContain('--create');
    expect(existsSync(typo)).toBe(false);
  });

  it('with --create, creates a missing spool, with its directories, and enqueues through tmp/ into incoming/', () => {
    const deep = join(dir, 'a', 'b', 'new-spool');
    expect(existsSync(deep)).toBe(false);
    const r = spool(['add', '--dir', deep, '--create', 'first', '1']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const id = r.stdout.trim();
    for (const sub of ['tmp', 'incoming', 'pending']) expect(statSync(join(deep, sub)).isDirectory()).toBe(true);
    const files = readdirSync(join(deep, 'incoming'));
    expect(files).toHaveLength(1);
    expect(FILE_NAME.exec(files[0]!)?.[3]).toBe(id);
    expect(readdirSync(join(deep, 'tmp'))).toEqual([]);
    expect(lsJson(deep).map((e) => [e.id, e.name, e.state])).toEqual([[id, 'first', 'due']]);
  });

  it('uses SPOOL_DIR, and exits 2 naming --dir and SPOOL_DIR with neither', () => {
    const r = spool(['add', 'env_task'], { env: { SPOOL_DIR: root } });
    expect(r.code).toBe(0);
    expect(lsJson(root).map((e) => e.id)).toEqual([r.stdout.trim()]);

    const none = spool(['add', 'lost_task']);
    expect(none.code).toBe(2);
    expect(none.stdout).toBe('');
    expect(none.stderr).toContain('--dir');
    expect(none.stderr).toContain('SPOOL_DIR');
  });
});
