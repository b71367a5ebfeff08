/**
 * Interop with a real foreign producer and consumer: Python 3 with Debian's
 * python3-msgpack, through test/fixtures/producer.py and consumer.py, which were
 * written from SPOOL-FORMAT.md alone. What Python enqueues, the real `spool`
 * binary must list and decode exactly; what the TypeScript runtime enqueues,
 * Python must parse (name by the documented regular expression, body by
 * msgpack.unpackb / json.loads) into the same values, integers as integers.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { spool, tempDir } from './helpers/cli.js';
import { requirePythonMsgpack, runPythonJson } from './helpers/python.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const TS = 1763797190000; // a ms timestamp: beyond 2^32
const HOUR = 3_600_000;
const MAX_TIME = 9_999_999_999_999; // the largest 13-digit due time (2286)
const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);
const UNICODE = 'héllo wörld ✓ 日本語 🎉 Ω≈ç√';
const ID_PATTERN = /^\d{13}[0-9a-f]{16}$/;

/** Bytes as the spec (for producer.py) and `spool show` (README) both write them. */
const b64 = (b: Uint8Array): { $bytes: string } => ({ $bytes: Buffer.from(b).toString('base64') });

beforeAll(() => requirePythonMsgpack());

describe('Python producer → spool ls / spool show', () => {
  interface PyTask {
    name: string;
    ext: 'msgpack' | 'json';
    priority: number;
    postpone?: number;
    created?: number;
    due?: number;
    body: Record<string, Json>;
    /** What `spool show` must return as the body, when it differs from what was written. */
    shown?: Record<string, Json>;
  }
  interface Written {
    file: string;
    id: string;
    created: number;
    due: number;
    priority: number;
    name: string;
    ext: string;
  }

  const allBytesArg = b64(ALL_BYTES);
  const everyPlainType: Json[] = [
    null,
    true,
    false,
    0,
    -1,
    127,
    255,
    65_535,
    -129,
    -40_000,
    2 ** 32,
    TS,
    -(2 ** 40),
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
    1.5,
    -0.25,
    1e300,
    '',
    'a\u0000b',
    UNICODE,
    allBytesArg,
    b64(new Uint8Array(0)),
    [],
    {},
    [1, [2, [3, { deep: [{ k: 'v', at: TS }] }]]],
    { nested: { map: { with: [1, 'two', b64(Uint8Array.of(0, 255, 10))] } }, '': 'empty key', 'ключ': 'значение' },
  ];

  const past = Date.now() - 60_000;
  // Keys are the tasks' roles; the expected execution order is written out below.
  const tasks: Record<string, PyTask> = {
    allTypes: {
      name: 'mail.send:v2-x',
      ext: 'msgpack',
      priority: 0,
      body: {
        version: 1,
        type: 'fcall',
        args: everyPlainType,
        payload: { options: { dryRun: false, at: TS }, raw: b64(Uint8Array.of(1, 2, 3)) },
        retry: { limit: 5, backoff: { kind: 'exponential', delay: 2000, factor: 1.5, floor: 100, ceiling: 600_000, jitter: 0.1 } },
        timeout: 30_000,
        parent: '1763797180000a3f09c2d4e5b6f71',
        meta: { trace: 'abc-123', producer: 'python', sentAt: TS },
      },
    },
    jsonUnicode: {
      name: 'send_email',
      ext: 'json',
      priority: 10,
      body: { version: 1, type: 'fcall', args: ['a@example.com', UNICODE, TS, Number.MAX_SAFE_INTEGER, -(2 ** 40), 0.125, { n: [null, true] }] },
    },
    message: {
      name: 'message',
      ext: 'msgpack',
      priority: 20,
      body: { version: 1, type: 'message', message: 'reindex ✓', payload: { table: 'users', since: TS } },
    },
    intKeys: {
      name: 'int_keys',
      ext: 'msgpack',
      priority: 30,
      body: { version: 1, type: 'fcall', args: [{ $intkeys: [[1, 'one'], [2, 'two']] }] },
      // SPOOL-FORMAT.md, "Values": MessagePack maps with integer keys are read with the keys as strings.
      shown: { version: 1, type: 'fcall', args: [{ '1': 'one', '2': 'two' }] },
    },
    duePast: { name: 'late', ext: 'json', priority: 50, created: past - 1000, due: past, body: { version: 1, type: 'fcall', args: [] } },
    dueNow: { name: 'now_task', ext: 'msgpack', priority: 50, body: { version: 1, type: 'fcall' } },
    inOneHour: {
      name: 'cleanup',
      ext: 'json',
      priority: 50,
      postpone: HOUR,
      body: { version: 1, type: 'fcall', args: [{ olderThan: TS }], retry: { limit: 0 } },
    },
    inTwoHours: { name: 'report', ext: 'msgpack', priority: 99, postpone: 2 * HOUR, body: { version: 1, type: 'fcall', args: [b64(ALL_BYTES)] } },
    lastPossible: {
      name: 'far_future',
      ext: 'msgpack',
      priority: 7,
      created: TS,
      due: MAX_TIME,
      body: { version: 1, type: 'fcall', args: ['2286'], unknownFutureField: { carried: true } },
    },
  };
  // Due tasks by priority, then due time; then scheduled tasks by due time whatever their priority.
  const EXECUTION_ORDER = ['allTypes', 'jsonUnicode', 'message', 'intKeys', 'duePast', 'dueNow', 'inOneHour', 'inTwoHours', 'lastPossible'];
  const SCHEDULED = new Set(['inOneHour', 'inTwoHours', 'lastPossible']);

  let dir: string;
  let cleanup: () => void;
  let root: string;
  let before: number;
  let after: number;
  const written = new Map<string, Written>();

  beforeAll(() => {
    ({ dir, cleanup } = tempDir('interop-py-'));
    root = join(dir, 'spool');
    Spooler.open(root); // an existing spool, as a deployment has one; see the last test for a bare directory
    const keys = Object.keys(tasks);
    before = Date.now();
    const out = runPythonJson<Written[]>('producer.py', [root], JSON.stringify({ tasks: keys.map((k) => tasks[k]) }));
    after = Date.now();
    keys.forEach((k, i) => written.set(k, out[i]!));
  });
  afterAll(() => cleanup?.());

  /** The `ls --json` entry a task must have, from the spec and the id Python drew. */
  function expectedEntry(key: string): Record<string, unknown> {
    const t = tasks[key]!;
    const w = written.get(key)!;
    const created = t.created ?? w.created;
    const due = t.due ?? created + (t.postpone ?? 0);
    const file = `${String(t.priority).padStart(2, '0')}-${String(due).padStart(13, '0')}-${w.id}-a0-${t.name}.${t.ext}`;
    return {
      id: w.id,
      name: t.name,
      state: SCHEDULED.has(key) ? 'scheduled' : 'due',
      priority: t.priority,
      due,
      created,
      attempts: 0,
      encoding: t.ext,
      location: 'incoming',
      owner: null,
      file,
      path: join(root, 'incoming', file),
      reason: null,
      paused: false,
    };
  }

  it('Python drew well-formed ids whose first 13 digits are the creation time', () => {
    for (const [key, w] of written) {
      expect(w.id, key).toMatch(ID_PATTERN);
      const created = Number(w.id.slice(0, 13));
      if (tasks[key]!.created !== undefined) expect(created, key).toBe(tasks[key]!.created);
      else {
        expect(created, key).toBeGreaterThanOrEqual(before);
        expect(created, key).toBeLessThanOrEqual(after);
      }
    }
  });

  it('spool ls --json lists exactly the Python tasks, in execution order, with id, name, priority, due, created, attempts and state', () => {
    const r = spool(['ls', '--dir', root, '--json'], { timeoutMs: 20_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const listed = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    expect(listed.map((e) => e.file)).toEqual(EXECUTION_ORDER.map((k) => expectedEntry(k).file));
    listed.forEach((entry, i) => expect(entry, EXECUTION_ORDER[i]).toEqual(expectedEntry(EXECUTION_ORDER[i]!)));
  });

  it('among due tasks the order is the byte order of the file names (SPOOL-FORMAT.md, "File name")', () => {
    const due = EXECUTION_ORDER.filter((k) => !SCHEDULED.has(k)).map((k) => written.get(k)!.file);
    const byBytes = [...due].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect(due).toEqual(byBytes);
  });

  for (const key of EXECUTION_ORDER) {
    it(`spool show <id> returns the body Python wrote (${key}: ${tasks[key]!.ext})`, () => {
      const w = written.get(key)!;
      const r = spool(['show', '--dir', root, w.id], { timeoutMs: 20_000 });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const shown = JSON.parse(r.stdout) as Record<string, unknown>;
      const entry = expectedEntry(key);
      // Not run yet: its history is its enqueueing (its id's time), and it has no result.
      const history = [{ event: 'enqueued', at: Number(w.id.slice(0, 13)) }];
      expect(shown).toEqual({ ...entry, body: tasks[key]!.shown ?? tasks[key]!.body, history, error: null, result: null });
    });
  }

  it('spool show keeps integers beyond 2^32 exact and returns bytes as {"$bytes": base64}', () => {
    const r = spool(['show', '--dir', root, written.get('allTypes')!.id]);
    expect(r.code).toBe(0);
    // Look at the text itself: a float on the way would print as 1763797190000.0 in Python or lose digits.
    expect(r.stdout).toContain(`${TS},`);
    expect(r.stdout).toContain(`${Number.MAX_SAFE_INTEGER},`);
    expect(r.stdout).toContain(`${-(2 ** 40)},`);
    const args = (JSON.parse(r.stdout) as { body: { args: Json[] } }).body.args;
    expect(args[everyPlainType.indexOf(TS)]).toBe(TS);
    expect(Buffer.from((args[everyPlainType.indexOf(allBytesArg)] as { $bytes: string }).$bytes, 'base64')).toEqual(Buffer.from(ALL_BYTES));
  });

  it('a spool a Python producer started in a bare directory (only tmp/ and incoming/, as SPOOL-FORMAT.md allows) can be listed', () => {
    // SPOOL-FORMAT.md, "Layout": missing subdirectories are created by whoever needs them first
    // (the runtime, `spool`, the daemon); a producer in another language may create tmp/ and incoming/ itself.
    const { dir: bare, cleanup: done } = tempDir('interop-py-bare-');
    try {
      const [w] = runPythonJson<Written[]>('producer.py', [bare], JSON.stringify({ tasks: [{ name: 'first', body: { version: 1, type: 'fcall', args: [TS] } }] }));
      const r = spool(['ls', '--dir', bare, '--json'], { timeoutMs: 20_000 });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const listed = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
      expect(listed.map((e) => [e.id, e.state, e.file])).toEqual([[w!.id, 'due', w!.file]]);
    } finally {
      done();
    }
  });
});

describe('TypeScript runtime → Python consumer', () => {
  interface Consumed {
    file: string;
    location: string;
    priority: number;
    due: number;
    id: string;
    created: number;
    attempts: number;
    name: string;
    encoding: string;
    body: Json;
    types: unknown;
    nonStrKeys: string[];
    error?: string;
  }
  interface Sent {
    handle: { id: string; name: string; fileName: string; priority: number; due: number };
    encoding: 'msgpack' | 'json';
    /** The body Python must decode, bytes as {"$bytes": base64}. */
    body: Record<string, Json>;
    /** The same values as the runtime was given, to derive Python's types from. */
    values: unknown;
  }

  /** The Python type name each value must decode to. JavaScript numbers that are integers must be ints. */
  function pyTypes(v: unknown): unknown {
    if (v === null) return 'NoneType';
    if (typeof v === 'boolean') return 'bool';
    if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
    if (typeof v === 'string') return 'str';
    if (v instanceof Uint8Array) return 'bytes';
    if (Array.isArray(v)) return v.map(pyTypes);
    return Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, pyTypes(x)]));
  }
  /** The JSON form of a value, bytes as {"$bytes": base64}. */
  function asJson(v: unknown): Json {
    if (v instanceof Uint8Array) return b64(v);
    if (Array.isArray(v)) return v.map(asJson);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, asJson(x)]));
    return v as Json;
  }

  let dir: string;
  let cleanup: () => void;
  let root: string;
  let before: number;
  let after: number;
  const sent: Record<string, Sent> = {};
  let consumed: Consumed[];

  beforeAll(async () => {
    ({ dir, cleanup } = tempDir('interop-ts-'));
    root = join(dir, 'spool');
    const spooler = Spooler.open(root);
    before = Date.now();

    const sendReport = spooler.task(
      function sendReport(..._args: unknown[]) {
        return undefined;
      },
      { priority: 5, retries: 4, backoff: { kind: 'linear', delay: '2s', ceiling: '1m', jitter: 0.2 }, timeout: '30s' },
    );
    const retryBody = { retry: { limit: 4, backoff: { kind: 'linear', delay: 2000, ceiling: 60_000, jitter: 0.2 } }, timeout: 30_000 };
    const recordEvent = spooler.task(
      function recordEvent(..._args: unknown[]) {
        return undefined;
      },
      { name: 'events.record:v2', encoding: 'json' },
    );

    const nested = { a: { b: [1, 2, { c: Number.MAX_SAFE_INTEGER, at: TS }] }, list: [[[]]], empty: {}, '42': 'numeric-looking key' };
    const args1 = [TS, ALL_BYTES, nested, -(2 ** 40), UNICODE, 0.5, null, true, 2 ** 32, -129, 65_535];
    const h1 = await sendReport(...args1);
    sent.callMsgpack = { handle: h1, encoding: 'msgpack', values: { args: args1 }, body: { version: 1, type: 'fcall', args: asJson(args1), ...retryBody } };

    const args2 = [TS, new Uint8Array(0), {}, Number.MIN_SAFE_INTEGER, '', -1.25, false];
    const meta = { trace: 'abc-123', sentAt: TS, tags: ['x', 'y'] };
    const h2 = await sendReport.with({ postpone: '10m', priority: 0, meta, parent: h1.id })(...args2);
    sent.callPostponed = {
      handle: h2,
      encoding: 'msgpack',
      values: { args: args2, meta },
      body: { version: 1, type: 'fcall', args: asJson(args2), ...retryBody, meta, parent: h1.id },
    };

    const args3 = [TS, { deep: { deeper: [{ deepest: [TS, -(2 ** 40), 3.25] }] } }, [Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 40], UNICODE, 0.1];
    const h3 = await recordEvent(...args3);
    sent.callJson = { handle: h3, encoding: 'json', values: { args: args3 }, body: { version: 1, type: 'fcall', args: asJson(args3) } };

    const args4 = [TS + 1, { at: TS }];
    const later = new Date(Date.now() + HOUR);
    const h4 = await recordEvent.with({ encoding: 'msgpack', postpone: later, priority: 99 })(...args4);
    sent.callJsonTaskAsMsgpack = { handle: h4, encoding: 'msgpack', values: { args: args4 }, body: { version: 1, type: 'fcall', args: asJson(args4) } };

    const payload5 = { table: 'users', since: TS, ids: [1, 2 ** 40, -(2 ** 33)], blob: Uint8Array.of(0, 1, 254, 255), '7': 'seven' };
    const h5 = await spooler.sendMessageRaw('reindex', { payload: payload5, priority: 20 });
    sent.messageMsgpack = { handle: h5, encoding: 'msgpack', values: { payload: payload5 }, body: { version: 1, type: 'message', message: 'reindex', payload: asJson(payload5) } };

    const payload6 = { when: TS, what: ['a', 'b'], ratio: 0.75, none: null, unicode: UNICODE };
    const h6 = await spooler.sendMessageRaw('nightly ✓', { type: 'notify', payload: payload6, encoding: 'json', retries: 0 });
    sent.messageJson = { handle: h6, encoding: 'json', values: { payload: payload6 }, body: { version: 1, type: 'notify', message: 'nightly ✓', payload: asJson(payload6), retry: { limit: 0 } } };

    after = Date.now();
    consumed = runPythonJson<Consumed[]>('consumer.py', [root]);
  });
  afterAll(() => cleanup?.());

  const KEYS = ['callMsgpack', 'callPostponed', 'callJson', 'callJsonTaskAsMsgpack', 'messageMsgpack', 'messageJson'];

  it('Python finds exactly the files the runtime wrote, every name parsed by the documented regular expression', () => {
    expect(consumed.filter((c) => c.error !== undefined)).toEqual([]);
    expect(consumed.map((c) => c.file).sort()).toEqual(KEYS.map((k) => sent[k]!.handle.fileName).sort());
  });

  for (const key of KEYS) {
    it(`Python reads the name fields and body of a runtime task (${key})`, () => {
      const s = sent[key]!;
      const c = consumed.find((x) => x.file === s.handle.fileName);
      expect(c, `consumer.py did not see ${s.handle.fileName}`).toBeDefined();
      expect(c!.location).toBe('incoming');
      expect(c!.encoding).toBe(s.encoding);
      expect(c!.file.endsWith(`.${s.encoding}`)).toBe(true);
      expect(c!.priority).toBe(s.handle.priority);
      expect(c!.due).toBe(s.handle.due);
      expect(c!.id).toBe(s.handle.id);
      expect(c!.id).toMatch(ID_PATTERN);
      expect(c!.created).toBeGreaterThanOrEqual(before);
      expect(c!.created).toBeLessThanOrEqual(after);
      expect(c!.attempts).toBe(0);
      expect(c!.name).toBe(s.handle.name);
      expect(c!.body).toEqual(s.body);
      expect(c!.nonStrKeys).toEqual([]);
    });

    it(`Python decodes every value of a runtime task to its type, integers as int and never float (${key})`, () => {
      const s = sent[key]!;
      const c = consumed.find((x) => x.file === s.handle.fileName)!;
      const types = c.types as Record<string, unknown>;
      const values = s.values as Record<string, unknown>;
      for (const field of Object.keys(values)) expect(types[field], field).toEqual(pyTypes(values[field]));
      expect(types.version).toBe('int');
    });
  }

  it('a ms timestamp written by the runtime arrives in Python as an int, in both encodings', () => {
    for (const key of ['callMsgpack', 'callJson']) {
      const c = consumed.find((x) => x.file === sent[key]!.handle.fileName)!;
      expect((c.body as { args: Json[] }).args[0]).toBe(TS);
      expect((c.types as { args: unknown[] }).args[0]).toBe('int');
    }
  });

  it('postponed runtime tasks carry their due time in the name', () => {
    const c2 = consumed.find((x) => x.file === sent.callPostponed!.handle.fileName)!;
    expect(c2.due).toBe(c2.created + 10 * 60_000);
    const c4 = consumed.find((x) => x.file === sent.callJsonTaskAsMsgpack!.handle.fileName)!;
    expect(c4.due).toBeGreaterThanOrEqual(before + HOUR);
    expect(c4.due).toBeLessThanOrEqual(after + HOUR);
  });
});
