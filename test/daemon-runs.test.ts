/**
 * The real spoolerd runs tasks with the arguments they were enqueued with, and
 * ends them as the task says: processed (a plain return, undefined included)
 * and skipped tasks leave the spool, or go to archive/ with --archive
 * (README, "Running tasks"; SPOOL-FORMAT.md, "Results a task can return").
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { spool } from './helpers/cli.js';
import { describeSpool, ls, lsRecords, lsActive, readRecords, waitFor, type DaemonProcess, type TaskRecord } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let root: string;
let records: string;
const testSpool = useDaemonSpool('spoolerd-runs-', { bind: (s) => ({ root, records } = s) });

const serve = (args: string[] = []) => testSpool.serve({ imports: ['basic'], args: ['--log-level', 'debug', ...args] });

/** Waits until `n` runs are recorded and nothing is left to run or running. */
async function waitForRuns(n: number, daemon: DaemonProcess): Promise<TaskRecord[]> {
  return waitFor(
    () => {
      const r = readRecords(records);
      return r.length >= n && ls(join(root, 'incoming')).length === 0 && ls(join(root, 'pending')).length === 0 && lsActive(root).length === 0 && r;
    },
    { what: `${n} task runs and an empty spool`, explain: () => `${describeSpool(root)}\nrecords: ${JSON.stringify(readRecords(records))}\n${daemon.describe()}` },
  );
}

/** Bytes come back as { $bytes, ctor }; the constructor (Buffer or Uint8Array) is not part of the promise. */
function withoutCtor(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutCtor);
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if ('$bytes' in o) return { $bytes: o.$bytes };
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, withoutCtor(v)]));
  }
  return value;
}

const PLAIN_ARGS = [
  null,
  true,
  false,
  0,
  42,
  -7,
  1.5,
  -0.25,
  2 ** 31,
  2 ** 32 + 5,
  Number.MAX_SAFE_INTEGER,
  Number.MIN_SAFE_INTEGER,
  '',
  'héllo ✓ 日本 🚀 "quoted" \\ \n newline',
  [1, [2, [3]], 'x', []],
  { a: 1, nested: { b: [true, null] }, 'key with space': 's', empty: {} },
];
const PLAIN_TYPES = ['null', 'boolean', 'boolean', 'number', 'number', 'number', 'number', 'number', 'number', 'number', 'number', 'number', 'string', 'string', 'array', 'object'];

describe('spoolerd runs tasks with their arguments', () => {
  it('passes every plain argument type from the TypeScript runtime, in MessagePack and JSON, prefilled and enqueued while running', async () => {
    const spooler = Spooler.open(root);
    const bytes = new Uint8Array([0, 1, 2, 127, 128, 255]);
    await spooler.enqueue({ name: 'echo', args: ['msgpack-prefilled', ...PLAIN_ARGS, bytes] });
    await spooler.enqueue({ name: 'echo', args: ['json-prefilled', ...PLAIN_ARGS], options: { encoding: 'json' } });
    const daemon = await serve();
    await spooler.enqueue({ name: 'echo', args: ['msgpack-live', ...PLAIN_ARGS, bytes] });
    await spooler.enqueue({ name: 'echo', args: ['json-live', ...PLAIN_ARGS], options: { encoding: 'json' } });
    await spooler.enqueue({ name: 'echo', args: ['no-args-but-this'] });
    await spooler.enqueue({ name: 'echo', args: [] });
    // The usual producer API: the wrapper spooler.task() returns (the function body only runs in the daemon).
    const echo = spooler.task(function echo(..._args: unknown[]) {
      throw new Error('runs in the daemon, not here');
    });
    await echo('via-wrapper', ...PLAIN_ARGS, bytes);
    await echo.with({ encoding: 'json', priority: 10 })('via-wrapper-json', ...PLAIN_ARGS);

    const runs = await waitForRuns(8, daemon);
    expect(runs).toHaveLength(8);
    const byKey = new Map(runs.map((r) => [(r.args as unknown[])[0] ?? '(none)', r]));
    const asBytes = { $bytes: Buffer.from(bytes).toString('base64') };
    for (const key of ['msgpack-prefilled', 'msgpack-live', 'via-wrapper']) {
      expect(withoutCtor(byKey.get(key)!.args)).toEqual([key, ...PLAIN_ARGS, asBytes]);
      expect(byKey.get(key)!.types).toEqual(['string', ...PLAIN_TYPES, 'bytes']);
    }
    for (const key of ['json-prefilled', 'json-live', 'via-wrapper-json']) {
      expect(byKey.get(key)!.args).toEqual([key, ...PLAIN_ARGS]);
      expect(byKey.get(key)!.types).toEqual(['string', ...PLAIN_TYPES]);
    }
    expect(byKey.get('no-args-but-this')!.args).toEqual(['no-args-but-this']);
    expect(byKey.get('(none)')!.args).toEqual([]);
    // Each ran once, in the daemon's process.
    expect(new Set(runs.map((r) => JSON.stringify(r.args))).size).toBe(8);
    expect(runs.every((r) => r.pid === daemon.pid)).toBe(true);
  });

  it('passes the JSON arguments of `spool add`, prefilled and enqueued while running, in both encodings', async () => {
    const args = ['"a@example.com"', '42', '-0.5', 'true', 'false', 'null', '{"to":{"name":"Ann","tags":["x",1]}}', '[1,[2,[3]],"four"]', '""', '9007199254740991'];
    const expected = ['a@example.com', 42, -0.5, true, false, null, { to: { name: 'Ann', tags: ['x', 1] } }, [1, [2, [3]], 'four'], '', 9007199254740991];
    const add = (key: string, extra: string[] = []) => {
      const r = spool(['add', '--dir', root, '--create', 'echo', JSON.stringify(key), ...args, ...extra]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    };
    add('add-prefilled');
    add('add-prefilled-json', ['--encoding', 'json']);
    const daemon = await serve();
    add('add-live');
    add('add-live-json', ['--encoding', 'json']);

    const runs = await waitForRuns(4, daemon);
    expect(runs).toHaveLength(4);
    expect(runs.map((r) => (r.args as unknown[])[0]).sort()).toEqual(['add-live', 'add-live-json', 'add-prefilled', 'add-prefilled-json']);
    for (const r of runs) expect((r.args as unknown[]).slice(1)).toEqual(expected);
  });

  it('hands a task of a registered type (sendMessageRaw) to its handler with the message and payload', async () => {
    const spooler = Spooler.open(root);
    const handle = await spooler.sendMessageRaw('reindex', { type: 'note', payload: { table: 'users', ids: [1, 2, 3] } });
    const daemon = await serve();
    const [run] = await waitForRuns(1, daemon);
    expect(run).toEqual(expect.objectContaining({ task: 'note', message: 'reindex', payload: { table: 'users', ids: [1, 2, 3] }, id: handle.id, attempt: 0, name: 'note' }));
  });
});

describe('spoolerd removes tasks that are done', () => {
  it('deletes processed tasks: a plain return of undefined, processed(value), a returned value and an async undefined', async () => {
    const spooler = Spooler.open(root);
    const handles = [
      await spooler.enqueue({ name: 'echo', args: ['undefined-return'] }),
      await spooler.enqueue({ name: 'done_explicitly', args: ['processed-value'] }),
      await spooler.enqueue({ name: 'returns_value', args: ['plain-value'] }),
      await spooler.enqueue({ name: 'async_echo', args: ['async-undefined'] }),
    ];
    const daemon = await serve();
    const runs = await waitForRuns(4, daemon);
    expect(runs.map((r) => r.task).sort()).toEqual(['async_echo', 'done_explicitly', 'echo', 'returns_value']);

    // Each was processed once (debug log), never skipped, retried or made a dead letter.
    for (const h of handles) await daemon.waitForLog((l) => l.msg === 'task processed' && l.id === h.id);
    const processedIds = daemon.logsWith('task processed').map((l) => l.id);
    expect(processedIds.sort()).toEqual(handles.map((h) => h.id).sort());
    expect(daemon.logsWith('task skipped')).toEqual([]);
    expect(daemon.logsWith('task rescheduled')).toEqual([]);
    expect(daemon.logsWith('task is a dead letter: out of retries')).toEqual([]);
    for (const sub of ['incoming', 'pending', 'dead', 'archive', 'state', 'quarantine']) expect(lsRecords(join(root, sub)), sub).toEqual([]);
    expect(lsActive(root)).toEqual([]);

    // The totals the daemon logs when it stops say the same.
    expect(await daemon.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(daemon.logsWith('stopped').at(-1)).toEqual(
      expect.objectContaining({ processed: 4, skipped: 0, rescheduled: 0, dead: 0, quarantined: 0, running: 0 }),
    );
  });

  it('deletes a skipped task and logs the reason', async () => {
    const spooler = Spooler.open(root);
    const handle = await spooler.enqueue({ name: 'skip_me', args: ['k1', 'no recipient given'] });
    const daemon = await serve();
    const runs = await waitForRuns(1, daemon);
    expect(runs).toHaveLength(1);
    const line = await daemon.waitForLog((l) => l.msg === 'task skipped');
    expect(line).toEqual(expect.objectContaining({ level: 'info', task: 'skip_me', id: handle.id, attempt: 0, reason: 'no recipient given' }));
    expect(daemon.logsWith('task processed')).toEqual([]);
    for (const sub of ['incoming', 'pending', 'dead', 'archive', 'state', 'quarantine']) expect(lsRecords(join(root, sub)), sub).toEqual([]);
    expect(await daemon.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(daemon.logsWith('stopped').at(-1)).toEqual(expect.objectContaining({ processed: 0, skipped: 1, rescheduled: 0, dead: 0 }));
  });

  it('with --archive keeps processed and skipped tasks in archive/ under their file names', async () => {
    const spooler = Spooler.open(root);
    const done = await spooler.enqueue({ name: 'echo', args: ['archived-processed'] });
    const skipped = await spooler.enqueue({ name: 'skip_me', args: ['archived-skipped', 'not today'] });
    const daemon = await serve(['--archive']);
    await waitForRuns(2, daemon);
    await waitFor(() => ls(join(root, 'archive')).length === 2, { what: 'two archived tasks', explain: () => describeSpool(root) });
    expect(ls(join(root, 'archive'))).toEqual([done.fileName, skipped.fileName].sort());
    // The archived files are still valid tasks: `spool ls --state archived` lists them.
    const r = spool(['ls', '--dir', root, '--state', 'archived', '--json']);
    expect(r.code).toBe(0);
    const listed = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    expect(listed.map((e) => [e.id, e.state, e.reason]).sort()).toEqual([
      [done.id, 'archived', null],
      [skipped.id, 'archived', null],
    ].sort());
    await daemon.waitForLog((l) => l.msg === 'task skipped');
    expect(daemon.logsWith('task skipped')).toEqual([expect.objectContaining({ id: skipped.id, reason: 'not today' })]);
    for (const sub of ['incoming', 'pending', 'dead', 'state', 'quarantine']) expect(lsRecords(join(root, sub)), sub).toEqual([]);
  });
});
