/**
 * `spool show <id>`, through the real binary (README, "The `spool` command"):
 * one task by id, unique id prefix or file name, as the `ls --json` fields plus
 * its decoded `body`, with bytes as {"$bytes": base64}.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lsJson, spool, tempDir } from './helpers/cli.js';

const MIN = 60_000;
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
  rand?: string;
}

function nameOf(t: TaskSpec): { id: string; file: string } {
  const rand = t.rand ?? (++seq).toString(16).padStart(16, '0');
  const id = String(t.created).padStart(13, '0') + rand;
  const pp = String(t.priority ?? 50).padStart(2, '0');
  return { id, file: `${pp}-${String(t.due).padStart(13, '0')}-${id}-a${t.attempts ?? 0}-${t.name}.${t.ext ?? 'json'}` };
}

function put(root: string, where: string, t: TaskSpec, body: string | Uint8Array): Made {
  const { id, file } = nameOf(t);
  mkdirSync(join(root, where), { recursive: true });
  const path = join(root, where, file);
  writeFileSync(path, body);
  return { id, file, path };
}

function makeSpool(root: string): void {
  for (const d of ['tmp', 'incoming', 'pending', 'active', 'dead', 'quarantine', 'archive']) mkdirSync(join(root, d), { recursive: true });
}

/** A plain MessagePack encoder (no records, no extensions), as a foreign producer would use. */
const packr = new Packr({ useRecords: false });

let dir: string;
let cleanup: () => void;
let root: string;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('spool-show-'));
  root = join(dir, 'spool');
  makeSpool(root);
});
afterEach(() => cleanup());

function show(ref: string) {
  return spool(['show', '--dir', root, ref]);
}

describe('spool show', () => {
  it('prints the ls fields plus the decoded body, found by full id, unique prefix or file name', () => {
    const now = Date.now();
    const created = now - 5 * MIN;
    const body = { version: 1, type: 'fcall', args: ['a@example.com', 42, { nested: [true, null, 1.5] }], timeout: 30000, meta: { by: 'test' } };
    const t = put(root, 'pending', { priority: 12, due: now - MIN, created, attempts: 1, name: 'send_email', ext: 'msgpack', rand: 'ab00000000000001' }, packr.pack(body));
    // A neighbour whose id shares the first 13 + 2 characters, so the prefix below must be long enough to be unique.
    put(root, 'incoming', { due: now - MIN, created, name: 'other', rand: 'ab10000000000002' }, '{"version":1,"type":"fcall","args":[]}');

    const expected = {
      id: t.id, name: 'send_email', state: 'due', priority: 12, due: now - MIN, created, attempts: 1, encoding: 'msgpack',
      location: 'pending', owner: null, file: t.file, path: t.path, reason: null, paused: false,
      body,
      // Its id says when it was enqueued; its name that it failed once and waits for its next try.
      history: [{ event: 'enqueued', at: created }, { event: 'rescheduled', until: now - MIN, attempts: 1 }],
      error: null,
      result: null,
    };
    for (const ref of [t.id, t.id.slice(0, 16), t.file]) {
      const r = show(ref);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const printed = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(Object.keys(printed)).toEqual([...ENTRY_KEYS, 'body', 'history', 'error', 'result']);
      expect(printed).toEqual(expected);
    }

    // The same fields as ls --json gives for that task.
    const listed = lsJson(root).find((e) => e.id === t.id);
    const { body: _body, error: _error, history: _history, result: _result, ...fields } = JSON.parse(show(t.id).stdout) as Record<string, unknown>;
    expect(fields).toEqual(listed);
  });

  it('prints bytes as {"$bytes": base64}, at any depth', () => {
    const now = Date.now();
    const raw = Buffer.from([0x00, 0x01, 0x02, 0xfa, 0xff]);
    const body = { version: 1, type: 'fcall', args: [raw, { inner: Buffer.from('hi') }, [Buffer.alloc(0)]], payload: Buffer.from([0xc3]) };
    const t = put(root, 'incoming', { due: now, created: now, name: 'bytes', ext: 'msgpack' }, packr.pack(body));

    const r = show(t.id);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { body: unknown }).body).toEqual({
      version: 1,
      type: 'fcall',
      args: [{ $bytes: 'AAEC+v8=' }, { inner: { $bytes: 'aGk=' } }, [{ $bytes: '' }]],
      payload: { $bytes: 'ww==' },
    });
  });

  it('shows running, dead and archived tasks with their state and body', () => {
    const now = Date.now();
    const body = '{"version":1,"type":"fcall","args":["x"]}';
    const pending = put(root, 'pending', { due: now - MIN, created: now - MIN, name: 'running' }, body);
    mkdirSync(join(root, 'active', '777'));
    const activePath = join(root, 'active', '777', pending.file);
    renameSync(pending.path, activePath);
    const dead = put(root, 'dead', { due: now - MIN, created: now - MIN, attempts: 4, name: 'died' }, body);
    const archived = put(root, 'archive', { due: now - MIN, created: now - MIN, name: 'done' }, body);

    const a = JSON.parse(show(pending.id).stdout) as Record<string, unknown>;
    expect(a).toEqual(expect.objectContaining({ id: pending.id, state: 'active', location: 'active', owner: '777', path: activePath, reason: null }));
    expect(a.body).toEqual({ version: 1, type: 'fcall', args: ['x'] });

    const d = show(dead.id);
    expect(d.code).toBe(0);
    expect(JSON.parse(d.stdout)).toEqual(expect.objectContaining({ id: dead.id, state: 'dead', location: 'dead', attempts: 4, body: { version: 1, type: 'fcall', args: ['x'] } }));

    const z = show(archived.id);
    expect(z.code).toBe(0);
    expect(JSON.parse(z.stdout)).toEqual(expect.objectContaining({ id: archived.id, state: 'archived', location: 'archive' }));
  });

  it('exits 2 for an id prefix that matches several tasks', () => {
    const now = Date.now();
    const created = now - MIN;
    const body = '{"version":1,"type":"fcall","args":[]}';
    const a = put(root, 'incoming', { due: now, created, name: 'a', rand: 'c0ffee0000000001' }, body);
    const b = put(root, 'pending', { due: now, created, name: 'b', rand: 'c0ffee1000000002' }, body);

    for (const prefix of [a.id.slice(0, 19), a.id.slice(0, 13)]) {
      const r = show(prefix);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(prefix);
    }
    // Enough of the id to tell them apart works.
    expect(JSON.parse(show(a.id.slice(0, 20)).stdout)).toEqual(expect.objectContaining({ id: a.id }));
    expect(JSON.parse(show(b.id.slice(0, 20)).stdout)).toEqual(expect.objectContaining({ id: b.id }));
  });

  it('exits 3 for an id, prefix or file name that no task has', () => {
    const now = Date.now();
    const t = put(root, 'incoming', { due: now, created: now, name: 'a' }, '{"version":1,"type":"fcall","args":[]}');
    for (const ref of ['9999999999999', `${t.id.slice(0, 28)}x`, `x${t.file}`, 'nothing']) {
      const r = show(ref);
      expect(r.code).toBe(3);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(ref);
    }
  });

  it('exits 4 for a file that is not a valid task: the reason on stderr, the JSON (without a body) on stdout', () => {
    const now = Date.now();
    // A valid map, but format version 2.
    const t = put(root, 'incoming', { priority: 33, due: now - MIN, created: now - MIN, name: 'future', ext: 'json' }, '{"version":2,"type":"fcall","args":[]}');

    const r = show(t.id);
    expect(r.code).toBe(4);
    const printed = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(Object.keys(printed)).toEqual([...ENTRY_KEYS, 'body', 'history', 'error', 'result']);
    expect(printed).toEqual({
      id: t.id, name: 'future', state: 'invalid', priority: 33, due: now - MIN, created: now - MIN, attempts: 0, encoding: 'json',
      location: 'incoming', owner: null, file: t.file, path: t.path, reason: expect.stringContaining('format version 2 is not supported'), paused: false,
      body: null,
      history: [{ event: 'enqueued', at: now - MIN }],
      error: null,
      result: null,
    });
    expect(r.stderr).toContain(t.file);
    expect(r.stderr).toContain(printed.reason as string);
  });

  it('exits 4 for a truncated body and for a quarantined file, found by file name', () => {
    const now = Date.now();
    const truncated = put(root, 'pending', { due: now - MIN, created: now - MIN, name: 'cut', ext: 'msgpack' }, packr.pack({ version: 1, type: 'fcall', args: ['long enough'] }).subarray(0, 10));
    const r = show(truncated.file);
    expect(r.code).toBe(4);
    const printed = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(printed).toEqual(expect.objectContaining({ id: truncated.id, state: 'invalid', body: null }));
    expect(printed.reason).toMatch(/MessagePack/);
    expect(r.stderr).toContain(printed.reason as string);

    writeFileSync(join(root, 'quarantine', 'junk.bin'), 'junk');
    writeFileSync(join(root, 'quarantine', 'junk.bin.reason.json'), JSON.stringify({ reason: 'not a task file name', from: 'incoming', at: now }));
    const q = show('junk.bin');
    expect(q.code).toBe(4);
    expect(JSON.parse(q.stdout)).toEqual({
      id: null, name: null, state: 'quarantined', priority: null, due: null, created: null, attempts: null, encoding: null,
      location: 'quarantine', owner: null, file: 'junk.bin', path: join(root, 'quarantine', 'junk.bin'), reason: 'not a task file name', paused: false, body: null, history: [], error: null, result: null,
    });
    expect(q.stderr).toContain('not a task file name');
  });
});
