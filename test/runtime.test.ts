/**
 * The producer API (runtime/spooler.ts): Spooler.open and the registry of
 * spoolers, task() wrappers, handles, per-call options, messages, task types,
 * listing and bulk enqueue. Everything runs on real temporary directories.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  InvalidOptionError,
  SpoolDirectoryError,
  Spooler,
  TaskNameCollisionError,
  UnencodableValueError,
  type TaskHandle,
} from '../runtime/index.js';
import { SUBDIRS } from '../spool/layout.js';
import { parseTaskName } from '../spool/name.js';
import { tempDir } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('spool-runtime-'));
  dir = realpathSync(dir);
});
afterEach(() => cleanup());

let spoolCount = 0;
/** A spooler on a fresh directory of this test. */
function fresh(options: Parameters<typeof Spooler.open>[1] = {}): Spooler {
  return Spooler.open(join(dir, `spool${spoolCount++}`), options);
}

/** Every file in tmp/, incoming/ and pending/. */
function written(s: Spooler): string[] {
  return [s.layout.tmp, s.layout.incoming, s.layout.pending].flatMap((d) => readdirSync(d));
}

const TASK_ID = /^\d{13}[0-9a-f]{16}$/;

describe('Spooler.open', () => {
  it('creates the spool and its whole layout', () => {
    const root = join(dir, 'a', 'b', 'spool');
    const spooler = Spooler.open(root);
    expect(spooler.dir).toBe(root);
    expect(spooler.basename).toBe('spool');
    expect([...SUBDIRS]).toEqual(['tmp', 'incoming', 'pending', 'active', 'dead', 'quarantine', 'archive', 'state', 'results', 'locks', 'cancel', 'schedules', 'unique', 'control', 'limits', 'progress', 'flows']);
    for (const sub of SUBDIRS) expect(statSync(join(root, sub)).isDirectory()).toBe(true);
    expect(readdirSync(root).sort()).toEqual([...SUBDIRS].sort());
  });

  it('gives the same instance for every path to one directory, a symlinked path included', () => {
    const root = join(dir, 'real');
    const spooler = Spooler.open(root);
    symlinkSync(root, join(dir, 'alias'));
    mkdirSync(join(dir, 'other'));
    expect(Spooler.open(root)).toBe(spooler);
    expect(Spooler.open(root + '/')).toBe(spooler);
    expect(Spooler.open(join(dir, 'other', '..', 'real'))).toBe(spooler);
    expect(Spooler.open(`${dir}/./real/.`)).toBe(spooler);
    expect(Spooler.open(relative(process.cwd(), root))).toBe(spooler);
    expect(Spooler.open(join(dir, 'alias'))).toBe(spooler);
    expect(Spooler.open(join(dir, 'alias') + '/')).toBe(spooler);
    expect(spooler.dir).toBe(root);
  });

  it('the same instance when the symlinked path is opened first', () => {
    mkdirSync(join(dir, 'real2'));
    symlinkSync(join(dir, 'real2'), join(dir, 'link2'));
    const viaLink = Spooler.open(join(dir, 'link2'));
    expect(viaLink.dir).toBe(join(dir, 'real2'));
    expect(Spooler.open(join(dir, 'real2'))).toBe(viaLink);
    for (const sub of SUBDIRS) expect(statSync(join(dir, 'real2', sub)).isDirectory()).toBe(true);
  });

  it('different directories give different instances', () => {
    expect(fresh()).not.toBe(fresh());
  });

  it('options apply when the spooler is created; later opens return it unchanged', () => {
    const root = join(dir, 'opts');
    const first = Spooler.open(root, { encoding: 'json', fsync: true, maxBytes: 4096 });
    expect(first.options).toEqual({ encoding: 'json', fsync: true, maxBytes: 4096 });
    const again = Spooler.open(root, { encoding: 'msgpack', maxBytes: 1 });
    expect(again).toBe(first);
    expect(again.options).toEqual({ encoding: 'json', fsync: true, maxBytes: 4096 });
    expect(fresh().options).toEqual({ encoding: 'msgpack', fsync: false, maxBytes: 16 * 1024 * 1024 });
  });

  it('refuses a path that is a file, with SpoolDirectoryError', () => {
    writeFileSync(join(dir, 'file'), 'x');
    expect(() => Spooler.open(join(dir, 'file'))).toThrow(SpoolDirectoryError);
    expect(() => Spooler.open(join(dir, 'file'))).toThrow(`spool directory ${join(dir, 'file')}:`);
  });
});

describe('Spooler.getSpoolers, getByBasename, fromEnv', () => {
  it('getSpoolers lists every spooler once, in the order they were opened', () => {
    const before = Spooler.getSpoolers().length;
    const a = Spooler.open(join(dir, 'first'));
    const b = Spooler.open(join(dir, 'second'));
    Spooler.open(join(dir, 'first'));
    const c = Spooler.open(join(dir, 'third'));
    const all = Spooler.getSpoolers();
    expect(all.length).toBe(before + 3);
    expect(all.slice(before)).toEqual([a, b, c]);
    expect(all[before]).toBe(a);
    expect(all[before + 1]).toBe(b);
    expect(all[before + 2]).toBe(c);
    expect(new Set(all).size).toBe(all.length);
  });

  it('getByBasename finds the first spooler with that directory name', () => {
    const name = `mail${Date.now()}x${spoolCount++}`;
    const first = Spooler.open(join(dir, 'one', name));
    Spooler.open(join(dir, 'two', name));
    expect(Spooler.getByBasename(name)).toBe(first);
    expect(Spooler.getByBasename(`${name}-nope`)).toBeUndefined();
  });

  it('getByBasename uses the real directory name of a spooler opened through a symlink', () => {
    const name = `real${Date.now()}y${spoolCount++}`;
    mkdirSync(join(dir, name));
    symlinkSync(join(dir, name), join(dir, 'linkname'));
    const s = Spooler.open(join(dir, 'linkname'));
    expect(Spooler.getByBasename(name)).toBe(s);
  });

  it('fromEnv opens $SPOOL_DIR', () => {
    const saved = process.env.SPOOL_DIR;
    try {
      process.env.SPOOL_DIR = join(dir, 'from-env');
      const s = Spooler.fromEnv();
      expect(s).toBe(Spooler.open(join(dir, 'from-env')));
      expect(s.dir).toBe(join(dir, 'from-env'));
      expect(existsSync(join(dir, 'from-env', 'incoming'))).toBe(true);
    } finally {
      if (saved === undefined) delete process.env.SPOOL_DIR;
      else process.env.SPOOL_DIR = saved;
    }
  });

  it('fromEnv opens ./spool when SPOOL_DIR is unset or empty, and passes options on creation', () => {
    const saved = process.env.SPOOL_DIR;
    const cwd = process.cwd();
    try {
      mkdirSync(join(dir, 'cwd-unset'));
      process.chdir(join(dir, 'cwd-unset'));
      delete process.env.SPOOL_DIR;
      const s = Spooler.fromEnv({ encoding: 'json' });
      expect(s.dir).toBe(join(dir, 'cwd-unset', 'spool'));
      expect(s.options.encoding).toBe('json');

      mkdirSync(join(dir, 'cwd-empty'));
      process.chdir(join(dir, 'cwd-empty'));
      process.env.SPOOL_DIR = '';
      expect(Spooler.fromEnv().dir).toBe(join(dir, 'cwd-empty', 'spool'));
    } finally {
      process.chdir(cwd);
      if (saved === undefined) delete process.env.SPOOL_DIR;
      else process.env.SPOOL_DIR = saved;
    }
  });
});

describe('spooler.task()', () => {
  it('names the task after the function by default', async () => {
    const s = fresh();
    const sendEmail = s.task(async function sendEmail(_to: string) {});
    expect(sendEmail.taskName).toBe('sendEmail');
    const arrowTask = (_x: number) => 1;
    expect(s.task(arrowTask).taskName).toBe('arrowTask');
    const h = await sendEmail('a@example.com');
    expect(h.name).toBe('sendEmail');
    expect(h.fileName.endsWith('-a0-sendEmail.msgpack')).toBe(true);
    expect(s.taskNames).toEqual(['sendEmail', 'arrowTask']);
  });

  it('takes an explicit name instead', async () => {
    const s = fresh();
    function impl() {}
    const t = s.task(impl, { name: 'mail.send:v2' });
    expect(t.taskName).toBe('mail.send:v2');
    expect(s.getTaskFunction('mail.send:v2')).toBe(impl);
    expect(s.getTaskFunction('impl')).toBeUndefined();
    expect((await t()).fileName.endsWith('-a0-mail.send:v2.msgpack')).toBe(true);
  });

  it('refuses an anonymous function without a name, with a clear error', () => {
    const s = fresh();
    const anonymous = [() => () => undefined][0]!();
    expect(anonymous.name).toBe('');
    expect(() => s.task(anonymous)).toThrow(InvalidOptionError);
    expect(() => s.task(anonymous)).toThrow('the task function has no name; pass one with spooler.task(fn, { name: "..." })');
    expect(s.taskNames).toEqual([]);
    // With a name it is fine.
    expect(s.task(anonymous, { name: 'named_now' }).taskName).toBe('named_now');
  });

  it('refuses invalid names, given or taken from the function', () => {
    const s = fresh();
    for (const name of ['9lives', 'has space', '-dash', 'é', 'a/b', 'a'.repeat(129)]) {
      expect(() => s.task(() => 1, { name })).toThrow(InvalidOptionError);
      expect(() => s.task(() => 1, { name })).toThrow(`task name ${JSON.stringify(name)}: `);
    }
    const weird = { ['bad name']: () => 1 }['bad name'];
    expect(weird.name).toBe('bad name');
    expect(() => s.task(weird)).toThrow('task name "bad name": a task name starts with a letter or "_" and holds only letters, digits, "_", ".", ":" and "-"');
    const $dollar = () => 1;
    expect(() => s.task($dollar)).toThrow(InvalidOptionError);
    expect(() => s.task(() => 1, { name: 'a'.repeat(129) })).toThrow('the task name is longer than 128 characters');
    expect(s.task(() => 1, { name: 'a'.repeat(128) }).taskName).toHaveLength(128);
    expect(s.taskNames).toEqual(['a'.repeat(128)]);
  });

  it('two different functions under one name: TaskNameCollisionError, and the first stays registered', () => {
    const s = fresh();
    const first = function job() {};
    const second = function job() {};
    s.task(first);
    let error: unknown;
    try {
      s.task(second);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TaskNameCollisionError);
    expect((error as TaskNameCollisionError).code).toBe('SPOOL_NAME_COLLISION');
    expect((error as Error).message).toBe(
      `task name "job" is already registered on the spool ${s.dir} by another function; give one of them a distinct name with spooler.task(fn, { name: "..." })`,
    );
    expect(() => s.task(() => 2, { name: 'job' })).toThrow(TaskNameCollisionError);
    expect(s.getTaskFunction('job')).toBe(first);
    expect(s.taskNames).toEqual(['job']);
  });

  it('the same function registered twice is fine', async () => {
    const s = fresh();
    function twice() {}
    const a = s.task(twice);
    const b = s.task(twice, { priority: 5 });
    expect(a.taskName).toBe('twice');
    expect(b.taskName).toBe('twice');
    expect(s.taskNames).toEqual(['twice']);
    expect(s.getTaskFunction('twice')).toBe(twice);
    expect((await b()).priority).toBe(5);
  });

  it('one name on two spoolers is fine', () => {
    function shared() {}
    function other() {}
    const s1 = fresh();
    const s2 = fresh();
    s1.task(shared, { name: 'same' });
    expect(() => s2.task(other, { name: 'same' })).not.toThrow();
    expect(s1.getTaskFunction('same')).toBe(shared);
    expect(s2.getTaskFunction('same')).toBe(other);
  });

  it('the wrapper exposes the name, spooler, function and frozen options', () => {
    const s = fresh();
    const add = (a: number, b: number) => a + b;
    const t = s.task(add, { priority: 7, retries: 2 });
    expect(t.taskName).toBe('add');
    expect(t.spooler).toBe(s);
    expect(t.fn).toBe(add);
    expect(t.fn(2, 3)).toBe(5);
    expect(t.options).toEqual({ priority: 7, retries: 2 });
    expect(Object.isFrozen(t.options)).toBe(true);
    expect(t.request(1, 2)).toEqual({ name: 'add', args: [1, 2], options: { priority: 7, retries: 2 } });
  });
});

describe('task handles', () => {
  it('carry id, name, file name, a path in incoming/ that exists, due time and priority', async () => {
    const s = fresh();
    const t = s.task(function handled(_n: number) {});
    const before = Date.now();
    const h = await t(1);
    const after = Date.now();
    expect(Object.keys(h).sort()).toEqual(['due', 'fileName', 'id', 'name', 'path', 'priority']);
    expect(h.id).toMatch(TASK_ID);
    expect(h.name).toBe('handled');
    expect(h.priority).toBe(50);
    expect(h.path).toBe(join(s.layout.incoming, h.fileName));
    expect(existsSync(h.path)).toBe(true);
    expect(statSync(h.path).isFile()).toBe(true);
    expect(readdirSync(s.layout.incoming)).toEqual([h.fileName]);
    expect(readdirSync(s.layout.tmp)).toEqual([]);
    const created = Number(h.id.slice(0, 13));
    expect(created).toBeGreaterThanOrEqual(before);
    expect(created).toBeLessThanOrEqual(after);
    expect(h.due).toBe(created);
    expect(parseTaskName(h.fileName)).toEqual({ priority: 50, due: h.due, id: h.id, created, attempts: 0, name: 'handled', encoding: 'msgpack' });
  });

  it('ids of successive calls increase', async () => {
    const t = fresh().task(function seq() {});
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) ids.push((await t()).id);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(50);
  });

  it('the spooler encoding and a per-task encoding choose the extension', async () => {
    const s = fresh({ encoding: 'json' });
    const t = s.task(function enc(..._args: unknown[]) {});
    expect((await t()).fileName.endsWith('.json')).toBe(true);
    expect((await t.with({ encoding: 'msgpack' })()).fileName.endsWith('.msgpack')).toBe(true);
    expect(JSON.parse(readFileSync((await t(1, 'x')).path, 'utf8'))).toEqual({ version: 1, type: 'fcall', args: [1, 'x'] });
  });

  it('fsync: true writes the same task', async () => {
    const s = fresh({ fsync: true });
    const h = await s.task(function synced(_x: string) {})('x');
    expect(Spooler.readTaskFile(h.path).body).toEqual({ version: 1, type: 'fcall', args: ['x'] });
  });
});

describe('options: priority and postpone', () => {
  it('.with({ priority, postpone }) overrides per call, without changing the wrapper', async () => {
    const s = fresh();
    const t = s.task(function later(_x: number) {}, { priority: 20 });
    const before = Date.now();
    const h = await t.with({ priority: 3, postpone: 1500 })(1);
    const after = Date.now();
    const created = Number(h.id.slice(0, 13));
    expect(h.priority).toBe(3);
    expect(h.fileName.startsWith(`03-${String(h.due).padStart(13, '0')}-${h.id}-a0-later.`)).toBe(true);
    expect(h.due).toBe(created + 1500);
    expect(created).toBeGreaterThanOrEqual(before);
    expect(created).toBeLessThanOrEqual(after);
    const plain = await t(2);
    expect(plain.priority).toBe(20);
    expect(plain.due).toBe(Number(plain.id.slice(0, 13)));
    expect(plain.fileName.startsWith('20-')).toBe(true);
  });

  it('priority 0 and 99 are the bounds', async () => {
    const t = fresh().task(function bounds() {});
    expect((await t.with({ priority: 0 })()).fileName.startsWith('00-')).toBe(true);
    expect((await t.with({ priority: 99 })()).fileName.startsWith('99-')).toBe(true);
  });

  it('postpone as ms, duration strings and a Date', async () => {
    const t = fresh().task(function postponed() {});
    const cases: Array<[number | string, number]> = [
      [0, 0],
      [250, 250],
      ['250ms', 250],
      ['30s', 30_000],
      ['1h30m', 5_400_000],
      ['2d', 172_800_000],
    ];
    for (const [postpone, delay] of cases) {
      const h = await t.with({ postpone })();
      expect(h.due - Number(h.id.slice(0, 13))).toBe(delay);
    }
    const at = new Date(2_000_000_000_000);
    const h = await t.with({ postpone: at })();
    expect(h.due).toBe(2_000_000_000_000);
    expect(parseTaskName(h.fileName)!.due).toBe(2_000_000_000_000);
    // A Date in the past is allowed: due at once.
    expect((await t.with({ postpone: new Date(1_000_000_000_000) })()).due).toBe(1_000_000_000_000);
  });

  it('a postpone given at definition applies to every call, and .with can replace it', async () => {
    const t = fresh().task(function defLater() {}, { postpone: '1h' });
    const h = await t();
    expect(h.due - Number(h.id.slice(0, 13))).toBe(3_600_000);
    const h2 = await t.with({ postpone: 0 })();
    expect(h2.due).toBe(Number(h2.id.slice(0, 13)));
  });

  for (const priority of [-1, 100, 1.5, NaN]) {
    it(`priority ${priority} is refused at definition time and at call time, and nothing is written`, async () => {
      const s = fresh();
      const message = `priority must be an integer from 0 (runs first) to 99, got ${priority}`;
      expect(() => s.task(function badPrio() {}, { priority })).toThrow(InvalidOptionError);
      expect(() => s.task(function badPrio() {}, { priority })).toThrow(message);
      expect(s.getTaskFunction('badPrio')).toBeUndefined();
      const t = s.task(function goodPrio() {});
      expect(() => t.with({ priority })).toThrow(message);
      await expect(s.enqueue({ name: 'goodPrio', args: [], options: { priority } })).rejects.toThrow(message);
      await expect(s.sendMessageRaw('m', { priority })).rejects.toThrow(message);
      expect(written(s)).toEqual([]);
    });
  }

  for (const postpone of ['soon', '10 minutes', '-5s', '', '1h 30m', '5x']) {
    it(`postpone ${JSON.stringify(postpone)} is refused at definition time and at call time`, async () => {
      const s = fresh();
      const message = `postpone ${JSON.stringify(postpone)} is not a duration`;
      expect(() => s.task(function badLater() {}, { postpone })).toThrow(InvalidOptionError);
      expect(() => s.task(function badLater() {}, { postpone })).toThrow(message);
      const t = s.task(function okLater() {});
      expect(() => t.with({ postpone })).toThrow(message);
      await expect(s.enqueue({ name: 'okLater', options: { postpone } })).rejects.toThrow(message);
      expect(written(s)).toEqual([]);
    });
  }

  it('postpone as a negative number, an invalid Date or one past 2286 is refused', () => {
    const t = fresh().task(function badDates() {});
    expect(() => t.with({ postpone: -1 })).toThrow('postpone must be a non-negative number of ms, got -1');
    expect(() => t.with({ postpone: new Date('nope') })).toThrow('postpone must be whole ms between 1970 and 2286');
    expect(() => t.with({ postpone: new Date(10_000_000_000_000) })).toThrow('postpone must be whole ms between 1970 and 2286');
    expect(() => t.with({ postpone: new Date(-1) })).toThrow(InvalidOptionError);
  });
});

describe('options: retries, backoff and timeout end up in the stored body', () => {
  it('all of them', async () => {
    const s = fresh();
    const t = s.task(function robust(_x: string) {}, {
      retries: 5,
      backoff: { kind: 'exponential', delay: '2s', factor: 3, floor: '1s', ceiling: '10m', jitter: 0.2 },
      timeout: '30s',
    });
    const body = Spooler.readTaskFile((await t('x')).path).body;
    expect(body).toEqual({
      version: 1,
      type: 'fcall',
      args: ['x'],
      retry: { limit: 5, backoff: { kind: 'exponential', delay: 2000, factor: 3, floor: 1000, ceiling: 600_000, jitter: 0.2 } },
      timeout: 30_000,
    });
  });

  it('each on its own, and overridden per call', async () => {
    const s = fresh();
    const read = async (h: Promise<TaskHandle>) => Spooler.readTaskFile((await h).path).body;
    const plain = s.task(function noPolicy() {});
    expect(await read(plain())).toEqual({ version: 1, type: 'fcall', args: [] });
    expect(await read(plain.with({ retries: 0 })())).toEqual({ version: 1, type: 'fcall', args: [], retry: { limit: 0 } });
    expect(await read(plain.with({ backoff: 'linear' })())).toEqual({
      version: 1,
      type: 'fcall',
      args: [],
      retry: { limit: 3, backoff: { kind: 'linear', delay: 1000 } },
    });
    expect(await read(plain.with({ timeout: 1500 })())).toEqual({ version: 1, type: 'fcall', args: [], timeout: 1500 });
    expect(await read(plain.with({ timeout: '1h30m' })())).toEqual({ version: 1, type: 'fcall', args: [], timeout: 5_400_000 });

    const t = s.task(function withPolicy() {}, { retries: 4, backoff: { kind: 'constant', delay: 500 }, timeout: '1m' });
    expect(await read(t.with({ retries: 1, timeout: 10 })())).toEqual({
      version: 1,
      type: 'fcall',
      args: [],
      retry: { limit: 1, backoff: { kind: 'constant', delay: 500 } },
      timeout: 10,
    });
  });

  it('meta and parent are stored too', async () => {
    const s = fresh();
    const t = s.task(function annotated() {}, { meta: { team: 'mail' }, parent: '1763797190000a3f09c2d4e5b6f71' });
    expect(Spooler.readTaskFile((await t()).path).body).toEqual({
      version: 1,
      type: 'fcall',
      args: [],
      parent: '1763797190000a3f09c2d4e5b6f71',
      meta: { team: 'mail' },
    });
  });

  it('bad retry, backoff and timeout options are refused at definition time', () => {
    const s = fresh();
    expect(() => s.task(function r1() {}, { retries: -1 })).toThrow('retries must be a non-negative integer, got -1');
    expect(() => s.task(function r2() {}, { retries: 1.5 })).toThrow(InvalidOptionError);
    expect(() => s.task(function r3() {}, { backoff: 'random' as never })).toThrow('backoff kind "random" is unknown');
    expect(() => s.task(function r4() {}, { backoff: { factor: 0.5 } })).toThrow('backoff.factor must be ≥ 1, got 0.5');
    expect(() => s.task(function r5() {}, { backoff: { jitter: 2 } })).toThrow('backoff.jitter must be from 0 to 1, got 2');
    expect(() => s.task(function r6() {}, { backoff: { delay: 'later' } })).toThrow('backoff.delay "later" is not a duration');
    for (const timeout of [0, '0s', '0ms']) expect(() => s.task(function t1() {}, { timeout })).toThrow('timeout must be more than 0 ms');
    expect(() => s.task(function t2() {}, { timeout: -5 })).toThrow('timeout must be a non-negative number of ms, got -5');
    expect(() => s.task(function t3() {}, { timeout: 'soon' })).toThrow('timeout "soon" is not a duration');
    expect(s.taskNames).toEqual([]);
    const ok = s.task(function okPolicy() {});
    expect(() => ok.with({ timeout: 0 })).toThrow('timeout must be more than 0 ms');
    expect(() => ok.with({ retries: -1 })).toThrow(InvalidOptionError);
  });
});

describe('sendMessageRaw', () => {
  it("type 'message' by default, named after the type", async () => {
    const s = fresh();
    const before = Date.now();
    const h = await s.sendMessageRaw('reindex');
    expect(h.name).toBe('message');
    expect(h.priority).toBe(50);
    expect(h.id).toMatch(TASK_ID);
    expect(h.fileName).toBe(`50-${String(h.due).padStart(13, '0')}-${h.id}-a0-message.msgpack`);
    expect(h.due).toBeGreaterThanOrEqual(before);
    expect(h.path).toBe(join(s.layout.incoming, h.fileName));
    expect(Spooler.readTaskFile(h.path).body).toEqual({ version: 1, type: 'message', message: 'reindex' });
  });

  it('a custom type and a payload', async () => {
    const s = fresh();
    const h = await s.sendMessageRaw('reindex', { type: 'reindex', payload: { table: 'users', ids: [1, 2] }, priority: 10, postpone: '1m' });
    expect(h.name).toBe('reindex');
    expect(h.priority).toBe(10);
    expect(h.due - Number(h.id.slice(0, 13))).toBe(60_000);
    expect(basename(h.path)).toMatch(/^10-\d{13}-\d{13}[0-9a-f]{16}-a0-reindex\.msgpack$/);
    expect(Spooler.readTaskFile(h.path).body).toEqual({ version: 1, type: 'reindex', message: 'reindex', payload: { table: 'users', ids: [1, 2] } });
  });

  it('a payload of null is stored; no payload means no field', async () => {
    const s = fresh();
    expect(Spooler.readTaskFile((await s.sendMessageRaw('m', { payload: null })).path).body).toEqual({
      version: 1,
      type: 'message',
      message: 'm',
      payload: null,
    });
    expect(Spooler.readTaskFile((await s.sendMessageRaw('')).path).body).toEqual({ version: 1, type: 'message', message: '' });
  });

  it('a message that is not a string is refused', async () => {
    const s = fresh();
    for (const message of [undefined, null, 1, { a: 1 }]) {
      await expect(s.sendMessageRaw(message as never)).rejects.toThrow('the message must be a string; put structured data in { payload }');
    }
    expect(written(s)).toEqual([]);
  });

  it('a type that is not a valid task name is refused', async () => {
    const s = fresh();
    await expect(s.sendMessageRaw('m', { type: 'bad type' })).rejects.toThrow(InvalidOptionError);
    expect(written(s)).toEqual([]);
  });

  it('a type that a body cannot carry ([a-z][a-z0-9_-]{0,63}) is refused and nothing is written', async () => {
    const s = fresh();
    for (const type of ['Reindex', '_private', 'a.b', 'x:y', 'a'.repeat(65)]) {
      await expect(s.sendMessageRaw('m', { type })).rejects.toThrow(InvalidOptionError);
    }
    expect(written(s)).toEqual([]);
  });

  it("type 'fcall' is refused: a message is not a function call", async () => {
    const s = fresh();
    await expect(s.sendMessageRaw('m', { type: 'fcall' })).rejects.toThrow(InvalidOptionError);
    expect(written(s)).toEqual([]);
  });
});

describe('registerTaskType', () => {
  it('registers a handler per type', () => {
    const s = fresh();
    const onMessage = () => 'm';
    const onReindex = () => 'r';
    s.registerTaskType('message', onMessage);
    s.registerTaskType('reindex-v2_x', onReindex);
    expect(s.getTaskTypeHandler('message')).toBe(onMessage);
    expect(s.getTaskTypeHandler('reindex-v2_x')).toBe(onReindex);
    expect(s.getTaskTypeHandler('other')).toBeUndefined();
    s.registerTaskType('a'.repeat(64), onMessage);
  });

  it("refuses 'fcall'", () => {
    expect(() => fresh().registerTaskType('fcall', () => 1)).toThrow('"fcall" is built in; register functions with spooler.task()');
  });

  it('refuses types that are not lowercase identifiers', () => {
    const s = fresh();
    for (const type of ['Message', '1x', '', '_x', 'a b', 'a.b', 'a'.repeat(65)]) {
      expect(() => s.registerTaskType(type, () => 1)).toThrow(InvalidOptionError);
      expect(() => s.registerTaskType(type, () => 1)).toThrow(`task type ${JSON.stringify(type)} must be a lowercase identifier`);
    }
  });

  it('refuses a second handler for one type on one spooler; another spooler may have its own', () => {
    const s = fresh();
    const first = () => 1;
    s.registerTaskType('report', first);
    expect(() => s.registerTaskType('report', () => 2)).toThrow(`task type "report" already has a handler on ${s.dir}`);
    expect(() => s.registerTaskType('report', first)).toThrow(InvalidOptionError);
    expect(s.getTaskTypeHandler('report')).toBe(first);
    const other = fresh();
    const second = () => 2;
    other.registerTaskType('report', second);
    expect(other.getTaskTypeHandler('report')).toBe(second);
  });
});

describe('getTasks', () => {
  it('is empty for a new spool', () => {
    expect(fresh().getTasks()).toEqual([]);
  });

  it('lists incoming/ and pending/ in execution order: due by priority then enqueue order, then scheduled', async () => {
    const s = fresh();
    const t = s.task(function listed(_n: string) {});
    const a = await t.with({ priority: 50 })('a');
    const b = await t.with({ priority: 10 })('b');
    const c = await t.with({ priority: 0, postpone: '1h' })('c');
    const d = await t.with({ priority: 10 })('d');
    const e = await s.sendMessageRaw('e', { priority: 99 });
    // A task the daemon accepted into pending/ is still listed.
    renameSync(d.path, join(s.layout.pending, d.fileName));
    // Files beginning with "." are never tasks.
    writeFileSync(join(s.layout.incoming, '.in-progress'), 'x');
    const tasks = s.getTasks();
    expect(tasks.map((x) => x.fileName)).toEqual([b.fileName, d.fileName, a.fileName, e.fileName, c.fileName]);
    expect(tasks.map((x) => x.state)).toEqual(['due', 'due', 'due', 'due', 'scheduled']);
    expect(tasks.map((x) => x.location)).toEqual(['incoming', 'pending', 'incoming', 'incoming', 'incoming']);
    expect(tasks[0]!.task).toEqual(parseTaskName(b.fileName));
    expect(tasks[0]!.path).toBe(b.path);
  });
});

describe('enqueueMany', () => {
  it('writes every request, handles in request order, ids increasing', async () => {
    const s = fresh();
    const one = s.task(function bulkOne(_i: number) {});
    const two = s.task(function bulkTwo(_i: number, _s: string) {}, { priority: 40 });
    const requests = Array.from({ length: 1200 }, (_, i) => (i % 3 === 0 ? two.request(i, `n${i}`) : one.request(i)));
    const handles = await s.enqueueMany(requests);
    expect(handles).toHaveLength(1200);
    const ids = handles.map((h) => h.id);
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
    handles.forEach((h, i) => {
      expect(h.name).toBe(i % 3 === 0 ? 'bulkTwo' : 'bulkOne');
      expect(h.priority).toBe(i % 3 === 0 ? 40 : 50);
      expect(h.path).toBe(join(s.layout.incoming, h.fileName));
      const t = Spooler.readTaskFile(h.path);
      expect(t.body.args).toEqual(i % 3 === 0 ? [i, `n${i}`] : [i]);
      expect(t.priority).toBe(h.priority);
    });
    expect(readdirSync(s.layout.incoming)).toHaveLength(1200);
    expect(readdirSync(s.layout.tmp)).toEqual([]);
    // Same priority: execution order is enqueue order.
    const order = s.getTasks().map((e) => e.fileName);
    expect(order).toEqual([...handles.filter((_, i) => i % 3 === 0), ...handles.filter((_, i) => i % 3 !== 0)].map((h) => h.fileName));
  });

  it('honours per-request options and plain {name, args} requests', async () => {
    const s = fresh();
    const [h1, h2] = await s.enqueueMany([
      { name: 'raw_name', args: ['x'], options: { priority: 1, postpone: '10s', retries: 2 } },
      { name: 'no_args' },
    ]);
    expect(h1!.priority).toBe(1);
    expect(h1!.due - Number(h1!.id.slice(0, 13))).toBe(10_000);
    expect(Spooler.readTaskFile(h1!.path).body).toEqual({ version: 1, type: 'fcall', args: ['x'], retry: { limit: 2 } });
    expect(h2!.priority).toBe(50);
    expect(Spooler.readTaskFile(h2!.path).body).toEqual({ version: 1, type: 'fcall', args: [] });
  });

  it('an empty list enqueues nothing', async () => {
    const s = fresh();
    expect(await s.enqueueMany([])).toEqual([]);
    expect(written(s)).toEqual([]);
  });

  it('a request with an invalid name writes nothing', async () => {
    const s = fresh();
    await expect(s.enqueueMany([{ name: 'ok' }, { name: 'not ok' }])).rejects.toThrow(InvalidOptionError);
    expect(written(s)).toEqual([]);
  });
});

describe('maxBytes', () => {
  it('refuses an argument that makes the file larger than the cap, with a clear message, and writes nothing', async () => {
    const s = fresh({ maxBytes: 1024 });
    const big = s.task(function big(_s: string) {});
    // {version, type, args: [str16]} is 30 bytes plus the string (a fixmap header: the runtime writes maps in their smallest form).
    await expect(big('x'.repeat(2000))).rejects.toThrow(
      "task big encodes to 2.0 KiB, over the spool's 1.0 KiB cap; pass large data by reference (a path or URL) instead of as an argument",
    );
    await expect(big('x'.repeat(995))).rejects.toThrow("task big encodes to 1.0 KiB, over the spool's 1.0 KiB cap");
    expect(written(s)).toEqual([]);
    // Exactly at the cap is accepted.
    const h = await big('x'.repeat(994));
    expect(statSync(h.path).size).toBe(1024);
  });

  it('the default cap is 16 MiB', async () => {
    const s = fresh();
    const huge = s.task(function huge(_b: Uint8Array) {});
    await expect(huge(new Uint8Array(16 * 1024 * 1024 + 1))).rejects.toThrow(
      "task huge encodes to 16.0 MiB, over the spool's 16.0 MiB cap; pass large data by reference (a path or URL) instead of as an argument",
    );
    expect(written(s)).toEqual([]);
  });

  it('a bulk enqueue with one oversized request writes nothing', async () => {
    const s = fresh({ maxBytes: 512 });
    const t = s.task(function capped(_s: string) {});
    await expect(s.enqueueMany([t.request('a'), t.request('b'.repeat(600)), t.request('c')])).rejects.toThrow("over the spool's 512 B cap");
    expect(written(s)).toEqual([]);
  });
});

describe('refusals are typed', () => {
  it('an unencodable argument is UnencodableValueError, an option InvalidOptionError', async () => {
    const s = fresh();
    const t = s.task(function typed(_x: unknown) {});
    await expect(t(new Date())).rejects.toBeInstanceOf(UnencodableValueError);
    expect(() => t.with({ priority: 100 })).toThrow(InvalidOptionError);
    expect(written(s)).toEqual([]);
  });
});
