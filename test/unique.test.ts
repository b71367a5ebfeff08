/**
 * Unique keys and expiry in-process: the key files of spool/unique.ts (hash,
 * record, the hostile reads, removeKey's checks), the producer's modes
 * (runtime/unique-enqueue.ts through Spooler), and the runner's part
 * (spooler/run/task-path.ts with a fake clock: a key released at the claim or
 * at the end, an expired task settled without running). The same with real
 * processes: daemon-unique.test.ts, daemon-expiry.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { SpoolLayout } from '../spool/layout.js';
import { parseTaskName } from '../spool/name.js';
import { encodeKeyHolder, keyFileName, KEY_FILE_MAX_BYTES, parseKeyHolder, readKeyFile, removeKey, type KeyHolder } from '../spool/unique.js';
import { createLogger } from '../spooler/logger.js';
import { Code, TaskPath, type Report } from '../spooler/run/task-path.js';
import { tempDir } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
let layout: SpoolLayout;
let spooler: Spooler;

beforeEach(() => {
  ({ dir, cleanup } = tempDir('spoolerd-unique-unit-'));
  spooler = Spooler.open(join(dir, 'spool'));
  layout = new SpoolLayout(join(dir, 'spool'));
});
afterEach(() => cleanup());

const ID = '1763797190000a3f09c2d4e5b6f71';
const FILE = `50-1763797200000-${ID}-a0-echo.msgpack`;
const holder = (over: Partial<KeyHolder> = {}): KeyHolder => ({ version: 1, id: ID, file: FILE, key: 'k', while: 'pending', ...over });

describe('key files (spool/unique.ts)', () => {
  it('are named by the SHA-256 of the task name, a newline and the key, as SPOOL-FORMAT.md says', () => {
    expect(keyFileName('sendEmail', 'a@example.com')).toBe(createHash('sha256').update('sendEmail\na@example.com').digest('hex'));
    // A task name has no newline, so the newline separates name and key unambiguously.
    expect(keyFileName('sendEmail', 'k')).not.toBe(keyFileName('sendEmai', 'lk'));
    // The shell's way gives the same.
    expect(execFileSync('sh', ['-c', `printf '%s\\n%s' sendEmail a@example.com | sha256sum | cut -c1-64`], { encoding: 'utf8' }).trim()).toBe(keyFileName('sendEmail', 'a@example.com'));
  });

  it('hold a record naming the task by id and file name; anything else is refused with the reason', () => {
    expect(parseKeyHolder(encodeKeyHolder(holder()))).toEqual(holder());
    expect(parseKeyHolder(Buffer.from('nope'))).toBe('not JSON');
    expect(parseKeyHolder(Buffer.from('[]'))).toBe('not a JSON object');
    expect(parseKeyHolder(Buffer.from(JSON.stringify({ ...holder(), version: 2 })))).toBe('"version" is not 1');
    expect(parseKeyHolder(Buffer.from(JSON.stringify({ ...holder(), id: 'x' })))).toBe('"id" is not a task id');
    expect(parseKeyHolder(Buffer.from(JSON.stringify({ ...holder(), file: FILE.replace('a3f0', 'b3f0') })))).toBe('"file" is not the file name of task "id"');
    expect(parseKeyHolder(Buffer.from(JSON.stringify({ ...holder(), key: '' })))).toBe('"key" is not a key');
    // 1 to 1024 characters, counted as the body's "unique" counts them (code points): 1024 emoji are 2048 UTF-16 units.
    expect(parseKeyHolder(encodeKeyHolder({ ...holder(), key: '😀'.repeat(1024) }))).toEqual({ ...holder(), key: '😀'.repeat(1024) });
    expect(parseKeyHolder(Buffer.from(JSON.stringify({ ...holder(), key: '😀'.repeat(1025) })))).toBe('"key" is not a key');
    expect(parseKeyHolder(Buffer.from(JSON.stringify({ ...holder(), while: 'always' })))).toBe('"while" is not one of pending, running');
  });

  it('are read without following a link or blocking on a FIFO, and only when small regular files', () => {
    const u = layout.unique;
    writeFileSync(join(dir, 'target'), encodeKeyHolder(holder()));
    symlinkSync(join(dir, 'target'), join(u, 'link'));
    mkdirSync(join(u, 'dir'));
    execFileSync('mkfifo', [join(u, 'fifo')]);
    writeFileSync(join(u, 'big'), Buffer.alloc(KEY_FILE_MAX_BYTES + 1, 0x20));
    writeFileSync(join(u, 'good'), encodeKeyHolder(holder()));
    expect(readKeyFile(join(u, 'link'))).toEqual({ ok: false, missing: false, reason: 'a symbolic link' });
    expect(readKeyFile(join(u, 'dir'))).toEqual({ ok: false, missing: false, reason: 'not a regular file' });
    expect(readKeyFile(join(u, 'fifo'))).toEqual({ ok: false, missing: false, reason: 'not a regular file' });
    expect(readKeyFile(join(u, 'big'))).toEqual({ ok: false, missing: false, reason: `over ${KEY_FILE_MAX_BYTES} bytes` });
    expect(readKeyFile(join(u, 'none'))).toEqual(expect.objectContaining({ ok: false, missing: true }));
    expect(readKeyFile(join(u, 'good'))).toEqual({ ok: true, holder: holder(), mtimeMs: expect.any(Number) });
  });

  it('removeKey removes only a key naming the given id, and leaves no debris', () => {
    const h = keyFileName('echo', 'k');
    writeFileSync(join(layout.unique, h), encodeKeyHolder(holder()));
    expect(removeKey(layout, h, '1763797190000ffffffffffffffff')).toBe('not-ours');
    expect(existsSync(join(layout.unique, h))).toBe(true);
    expect(removeKey(layout, h, ID)).toBe('removed');
    expect(readdirSync(layout.unique)).toEqual([]);
    expect(removeKey(layout, h, ID)).toBe('absent');
    expect(readdirSync(layout.tmp)).toEqual([]);
  });
});

describe('the modes (runtime)', () => {
  const waiting = () => [...readdirSync(layout.incoming), ...readdirSync(layout.pending)];

  it('keep returns the holder\'s handle; a key function of the arguments; enqueueMany refuses keys', async () => {
    const reindex = spooler.task(function reindex(_table: string) {}, { unique: (table: string) => `t:${table}` });
    const a = await reindex('users');
    const b = await reindex('users');
    const c = await reindex('orders');
    expect(a.existing).toBeUndefined();
    expect(b).toEqual(expect.objectContaining({ id: a.id, fileName: a.fileName, due: a.due, existing: true }));
    expect(c.id).not.toBe(a.id);
    expect(waiting().sort()).toEqual([a.fileName, c.fileName].sort());
    expect(readFileSync(join(layout.unique, keyFileName('reindex', 't:users')), 'utf8')).toContain(a.id);
    await expect(spooler.enqueueMany([reindex.request('x')])).rejects.toThrow(/enqueueMany\(\) cannot take unique keys/);
    expect(readdirSync(layout.tmp)).toEqual([]);
  });

  it('replace and preserve-due revoke the waiting holder; preserve-due keeps its due time', async () => {
    const t = spooler.task(function job(_n: number) {});
    const first = await t.with({ unique: 'k', postpone: '1h' })(1);
    const second = await t.with({ unique: 'k', uniqueMode: 'replace' })(2);
    expect(waiting()).toEqual([second.fileName]);
    expect(second.due).toBeLessThan(first.due);
    const third = await t.with({ unique: 'k', uniqueMode: 'preserve-due', postpone: '2h' })(3);
    expect(waiting()).toEqual([third.fileName]);
    expect(third.due).toBe(second.due);
    expect(JSON.parse(readFileSync(join(layout.unique, keyFileName('job', 'k')), 'utf8')).id).toBe(third.id);
    expect(readdirSync(layout.tmp)).toEqual([]);
  });

  it('replace of a holder that has started: a while-running holder is returned; a while-pending one whose key stays (a runner that never releases) ends in SPOOL_UNIQUE_BUSY', async () => {
    const t = spooler.task(function job2(_n: number) {});
    const running = await t.with({ unique: 'r', uniqueWhileRunning: true })(1);
    mkdirSync(join(layout.active, 'o'));
    renameSync(join(layout.incoming, running.fileName), join(layout.active, 'o', running.fileName));
    expect(await t.with({ unique: 'r', uniqueWhileRunning: true, uniqueMode: 'replace' })(2)).toEqual(expect.objectContaining({ id: running.id, existing: true }));
    const pending = await t.with({ unique: 'p' })(3);
    renameSync(join(layout.incoming, pending.fileName), join(layout.active, 'o', pending.fileName));
    await expect(t.with({ unique: 'p', uniqueMode: 'replace' })(4)).rejects.toMatchObject({ code: 'SPOOL_UNIQUE_BUSY' });
    expect(readdirSync(layout.incoming)).toEqual([]);
  });

  it('a bad option is refused before anything is written', async () => {
    const t = spooler.task(function job3() {});
    expect(() => t.with({ unique: '' })).toThrow(/unique must give a key/);
    expect(() => t.with({ uniqueMode: 'replace' })).toThrow(/uniqueMode needs a unique key/);
    expect(() => t.with({ unique: 'k', uniqueMode: 'newest' as never })).toThrow(/uniqueMode must be one of keep, replace, preserve-due/);
    expect(() => t.with({ expires: 'soon' })).toThrow(/not a duration/);
    expect(waiting()).toEqual([]);
  });
});

describe('the runner (task-path.ts, fake clock)', () => {
  let now: number;
  let reports: Report[];
  let ran: string[];
  let claimDir: string;

  beforeEach(() => {
    now = Date.now();
    reports = [];
    ran = [];
    claimDir = join(layout.active, 'host-1-abcdef');
    mkdirSync(claimDir, { recursive: true });
  });
  const path = () =>
    new TaskPath(
      {
        layout,
        root: layout.root,
        sources: layout,
        claimDir,
        claimDirPath: claimDir,
        maxBytes: 1 << 20,
        settle: 5000,
        archive: false,
        keepResults: 0,
        taskTimeout: 0,
        clock: { now: () => now, stampNow: () => now },
        check: () => undefined,
        log: createLogger({ level: 'error', format: 'json', write: () => undefined }),
      },
      { report: (r) => void reports.push(r) },
    );
  const runTask = () =>
    spooler.task(function unit_run(label: string) {
      ran.push(label);
    });
  const keyOf = (key: string) => join(layout.unique, keyFileName('unit_run', key));

  it('releases a while-pending key at the claim (before the function runs)', async () => {
    let keyAtRun: boolean | undefined;
    const t = spooler.task(function unit_sees_key() {
      keyAtRun = existsSync(join(layout.unique, keyFileName('unit_sees_key', 'k')));
    });
    const h = await t.with({ unique: 'k' })();
    path().start({ name: h.fileName, dir: 'incoming' });
    expect(reports.map((r) => r.code)).toEqual([Code.Processed]);
    expect(keyAtRun).toBe(false);
  });

  it('holds a while-running key through a retry and releases it at the end', async () => {
    let calls = 0;
    const t = spooler.task(function unit_flaky() {
      if (++calls === 1) throw new Error('once');
    }, { retries: 2, backoff: { kind: 'constant', delay: 0 } });
    const h = await t.with({ unique: 'k', uniqueWhileRunning: true })();
    const key = join(layout.unique, keyFileName('unit_flaky', 'k'));
    path().start({ name: h.fileName, dir: 'incoming' });
    expect(reports[0]!.code).toBe(Code.Rescheduled);
    expect(existsSync(key)).toBe(true);
    path().start({ name: reports[0]!.next!, dir: 'pending' });
    expect(reports[1]!.code).toBe(Code.Processed);
    expect(existsSync(key)).toBe(false);
  });

  it('settles a task claimed after its expires time as Expired without running it, and releases its key', async () => {
    const run = runTask();
    const h = await run.with({ expires: 1000, unique: 'e', uniqueWhileRunning: true })('late');
    const fresh = await run.with({ expires: 60_000 })('in time');
    now += 5000;
    path().start({ name: h.fileName, dir: 'incoming' });
    path().start({ name: fresh.fileName, dir: 'incoming' });
    expect(reports.map((r) => [r.name, r.code])).toEqual([
      [h.fileName, Code.Expired],
      [fresh.fileName, Code.Processed],
    ]);
    expect(ran).toEqual(['in time']);
    expect(existsSync(keyOf('e'))).toBe(false);
    expect(readdirSync(claimDir)).toEqual([]);
    expect(parseTaskName(h.fileName)!.id).toBe(h.id);
  });
});
