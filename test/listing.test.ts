/**
 * The shortcuts the listing takes for large spools, each held against the code
 * it stands in for: the name parser against parseTaskName (spool/name.ts), the
 * quick MessagePack body check against isValidBody (the full decode), and the
 * listing that checks bodies while it sorts against the one that reads every
 * body in turn (keepBodies).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpoolLayout } from '../spool/layout.js';
import type { SpoolEntry } from '../spool/entries.js';
import { executionOrder } from '../spool/execution-order.js';
import { listSpool } from '../spool/listing.js';
import { formatTaskName, parseTaskName } from '../spool/name.js';
import { isCommonMsgpackBody, isValidBody } from '../spool/parallel-check.js';
import { encodeTask } from '../spool/task-file.js';
import { tempDir } from './helpers/cli.js';
import { random } from './helpers/random.js';


describe('isCommonMsgpackBody: says valid only where isValidBody does', () => {
  const packr = new Packr({ useRecords: false });
  const task = (body: Record<string, unknown>) => encodeTask({ name: 't', priority: 50, body: body as never }).bytes;

  it('accepts the bodies the runtime writes', () => {
    const bodies = [
      task({ type: 'fcall', args: [] }),
      task({ type: 'fcall', args: ['user-1@example.com', 1] }),
      task({ type: 'fcall', args: [null, true, false, -1, -200, 70000, -70000, 4294967295, -2147483648, 1.5, -0.25, 3.5e-5, 'x'.repeat(300), new Uint8Array(3)] }),
      task({ type: 'fcall', args: [{ a: 1, b: [1, 2, { c: 'd' }], e: {} }, [[[[]]]]] }),
      task({ type: 'fcall', args: [1], retry: { limit: 3 } }),
      task({ type: 'fcall', args: [1], retry: { limit: 0, backoff: { kind: 'exponential', delay: 1000, factor: 2, floor: 10, ceiling: 60000, jitter: 0.5 } } }),
      task({ type: 'fcall', args: [1], retry: { limit: 5, backoff: { kind: 'linear', delay: 0, factor: 1.5, jitter: 1 } } }),
      task({ type: 'fcall', args: [1], retry: { limit: 5, backoff: { kind: 'constant', delay: 5 } }, timeout: 30_000, parent: '1763797190000a3f09c2d4e5b6f71', meta: { who: 'me', n: 1 } }),
      task({ type: 'message', message: 'hello' }),
      task({ type: 'raw-handler_2', payload: { anything: [1, 'two', null] } }),
      task({ type: 'x'.repeat(64), args: [] }),
    ];
    for (const bytes of bodies) {
      expect(isValidBody(bytes, 'msgpack')).toBe(true);
      expect(isCommonMsgpackBody(bytes)).toBe(true);
    }
  });

  it('refuses what the full check refuses, and leaves the unusual to it', () => {
    const cases: Array<[unknown, boolean]> = [
      // [body, whether isValidBody accepts it]
      [{ version: 1, type: 'fcall', args: [], message: 'm' }, false],
      [{ version: 2, type: 'fcall', args: [] }, false],
      [{ version: 1.0001, type: 'fcall', args: [] }, false],
      [{ type: 'fcall', args: [] }, false],
      [{ version: 1, args: [] }, false],
      [{ version: 1, type: 'Fcall', args: [] }, false],
      [{ version: 1, type: 'x'.repeat(65), args: [] }, false],
      [{ version: 1, type: 'fcall', args: 'x' }, false],
      [{ version: 1, type: 'fcall', args: null }, false],
      [{ version: 1, type: 'fcall', args: [NaN] }, false],
      [{ version: 1, type: 'fcall', args: [Infinity] }, false],
      [{ version: 1, type: 'fcall', args: [], timeout: 0 }, false],
      [{ version: 1, type: 'fcall', args: [], timeout: -5 }, false],
      [{ version: 1, type: 'fcall', args: [], timeout: 1.5 }, false],
      [{ version: 1, type: 'fcall', args: [], parent: '' }, false],
      [{ version: 1, type: 'fcall', args: [], parent: 5 }, false],
      [{ version: 1, type: 'fcall', args: [], meta: [] }, false],
      [{ version: 1, type: 'fcall', args: [], retry: { limit: -1 } }, false],
      [{ version: 1, type: 'fcall', args: [], retry: {} }, false],
      [{ version: 1, type: 'fcall', args: [], retry: { limit: 1, backoff: { kind: 'fast', delay: 1 } } }, false],
      [{ version: 1, type: 'fcall', args: [], retry: { limit: 1, backoff: { kind: 'linear' } } }, false],
      [{ version: 1, type: 'fcall', args: [], retry: { limit: 1, backoff: { kind: 'linear', delay: 1, factor: 0.5 } } }, false],
      [{ version: 1, type: 'fcall', args: [], retry: { limit: 1, backoff: { kind: 'linear', delay: 1, factor: Infinity } } }, false],
      [{ version: 1, type: 'fcall', args: [], retry: { limit: 1, backoff: { kind: 'linear', delay: 1, jitter: 2 } } }, false],
      [{ version: 1, type: 'message', message: 7 }, false],
      [{ version: 1, type: 'fcall', args: [], unique: true }, false],
      // Valid, but left to the full check (the quick one may say either).
      [{ version: 1, type: 'fcall', args: ['é', '日本'] }, true],
      [{ version: 1, type: 'fcall', args: [], extra: 1 }, true],
      [{ version: 1, type: 'fcall', args: [JSON.parse('{"__proto__":1}')] }, true],
      [{ version: 1, type: 'fcall', args: [2 ** 40, -(2 ** 40)] }, true],
      [{ version: 1, type: 'fcall', args: [], retry: { limit: 1, backoff: { kind: 'linear', delay: 1, other: 3 } } }, true],
      [{ version: 1, type: 'message', message: 'hi', args: [] }, true],
    ];
    for (const [body, valid] of cases) {
      // Built with a plain encoder, as a foreign producer would, including what the runtime refuses.
      const bytes = packr.pack(body);
      expect(isValidBody(bytes, 'msgpack'), JSON.stringify(body)).toBe(valid);
      if (!valid) expect(isCommonMsgpackBody(bytes), JSON.stringify(body)).toBe(false);
    }
  });

  it('never says valid where the full check does not, on mutated, cut, extended and random bytes', () => {
    const rand = random(0xb0d1e5);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const leaf = (): unknown =>
      pick([
        () => null,
        () => rand() < 0.5,
        () => Math.floor(rand() * 256) - 128,
        () => Math.floor(rand() * 2 ** 33) - 2 ** 32,
        () => rand() * 1e6,
        () => Math.fround(rand()),
        () => 'abcdefgh'.slice(0, Math.floor(rand() * 8)),
        () => 'x'.repeat(Math.floor(rand() * 40)),
        () => new Uint8Array(Math.floor(rand() * 5)),
        () => 2 ** 53,
        () => NaN,
      ])();
    const value = (depth: number): unknown => {
      const r = rand();
      if (depth > 3 || r < 0.5) return leaf();
      if (r < 0.75) return Array.from({ length: Math.floor(rand() * 4) }, () => value(depth + 1));
      return Object.fromEntries(Array.from({ length: Math.floor(rand() * 4) }, (_, i) => [pick(['a', 'b', 'key', String(i)]), value(depth + 1)]));
    };
    const body = (): Record<string, unknown> => {
      const b: Record<string, unknown> = { version: 1, type: pick(['fcall', 'fcall', 'message', 'x']) };
      if (rand() < 0.9) b.args = Array.from({ length: Math.floor(rand() * 4) }, () => value(1));
      if (rand() < 0.2) b.message = pick(['hi', 3]);
      if (rand() < 0.2) b.timeout = pick([1, 30_000, 0, 2 ** 31]);
      if (rand() < 0.2) b.parent = pick(['p', '']);
      if (rand() < 0.2) b.meta = value(1);
      if (rand() < 0.2) b.payload = value(1);
      if (rand() < 0.3) {
        b.retry = { limit: pick([0, 3, -1, 300]) };
        if (rand() < 0.7) {
          (b.retry as Record<string, unknown>).backoff = {
            kind: pick(['constant', 'linear', 'exponential', 'other']),
            delay: pick([0, 1000, 70000, -1]),
            ...(rand() < 0.5 && { factor: pick([1, 2, 1.5, 0.5]) }),
            ...(rand() < 0.3 && { floor: pick([0, 5]) }),
            ...(rand() < 0.3 && { ceiling: pick([0, 100000]) }),
            ...(rand() < 0.3 && { jitter: pick([0, 0.5, 1, 1.5]) }),
          };
        }
      }
      if (rand() < 0.05) b.version = pick([2, 1.5, '1']);
      return b;
    };
    let quick = 0;
    let tried = 0;
    const check = (bytes: Uint8Array) => {
      tried++;
      if (!isCommonMsgpackBody(bytes)) return;
      quick++;
      if (!isValidBody(bytes, 'msgpack')) throw new Error(`the quick check accepted bytes the full check refuses: ${Buffer.from(bytes).toString('hex')}`);
    };
    for (let i = 0; i < 3000; i++) {
      const bytes = packr.pack(body());
      check(bytes);
      for (let k = 0; k < 8; k++) {
        const changed = Buffer.from(bytes);
        const at = Math.floor(rand() * changed.length);
        changed[at] = rand() < 0.5 ? Math.floor(rand() * 256) : changed[at]! ^ (1 << Math.floor(rand() * 8));
        check(changed);
      }
      check(bytes.subarray(0, Math.floor(rand() * bytes.length)));
      check(Buffer.concat([bytes, Buffer.of(Math.floor(rand() * 256))]));
    }
    for (let i = 0; i < 3000; i++) check(Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 40) }, () => Math.floor(rand() * 256))));
    expect(tried).toBeGreaterThan(30_000);
    // It must also take the common path often enough to be worth having.
    expect(quick).toBeGreaterThan(1000);
  });
});

describe('listSpool', () => {
  let dir: string;
  let cleanup: () => void;
  beforeEach(() => ({ dir, cleanup } = tempDir('listing-')));
  afterEach(() => cleanup());

  const BODY = '{"version":1,"type":"fcall","args":[]}';
  const withoutBodies = (entries: SpoolEntry[]) => entries.map(({ body: _body, ...rest }) => rest);


  it('gives the listing that reads each body in turn, with invalid bodies among many valid ones', () => {
    const root = join(dir, 'spool');
    const layout = new SpoolLayout(root);
    for (const d of ['incoming', 'pending', 'active/w1', 'dead', 'archive']) mkdirSync(join(root, d), { recursive: true });
    const now = Date.now();
    const rand = random(7);
    let seq = 0;
    const name = (due: number, task: string, ext: 'json' | 'msgpack' = 'json', priority = Math.floor(rand() * 100)) =>
      formatTaskName({ priority, due, id: String(now - 1000).padStart(13, '0') + (++seq).toString(16).padStart(16, '0'), attempts: 0, name: task, encoding: ext });
    const packr = new Packr({ useRecords: false });
    for (let i = 0; i < 5000; i++) {
      const due = rand() < 0.6 ? now - Math.floor(rand() * 3_600_000) : now + 60_000 + Math.floor(rand() * 86_400_000);
      const where = rand() < 0.5 ? 'incoming' : 'pending';
      const kind = rand();
      if (kind < 0.01) writeFileSync(join(root, where, name(due, 'bad_json')), '{"version":1,');
      else if (kind < 0.02) writeFileSync(join(root, where, name(due, 'bad_pack', 'msgpack')), Buffer.of(0x83, 0xa7));
      else if (kind < 0.5) writeFileSync(join(root, where, name(due, 'pack', 'msgpack')), packr.pack({ version: 1, type: 'fcall', args: [i] }));
      else writeFileSync(join(root, where, name(due, 'json')), BODY);
    }
    // The same name in two directories, a bad name, and bad bodies where invalid files keep another state.
    const twice = name(now - 5000, 'twice', 'json', 50);
    writeFileSync(join(root, 'incoming', twice), BODY);
    writeFileSync(join(root, 'pending', twice), 'nope');
    writeFileSync(join(root, 'incoming', 'zz-not-a-task'), BODY);
    writeFileSync(join(root, 'active/w1', name(now, 'running')), BODY);
    writeFileSync(join(root, 'active/w1', name(now, 'running_bad')), '[');
    writeFileSync(join(root, 'dead', name(now, 'dead_bad')), '[');
    writeFileSync(join(root, 'dead', name(now, 'dead_ok')), BODY);
    writeFileSync(join(root, 'archive', name(now, 'archived_bad')), '[');

    const locations = ['incoming', 'pending', 'active', 'dead', 'archive'] as const;
    const checked = listSpool(layout, { locations, now });
    const reference = listSpool(layout, { locations, now, keepBodies: true });
    expect(checked).toHaveLength(5008);
    expect(checked.filter((e) => e.state === 'invalid').length).toBeGreaterThan(50);
    expect(checked.map((e) => e.reason !== undefined && e.state !== 'invalid')).toContain(true);
    expect(checked.every((e) => e.mtimeMs !== undefined || e.reason !== undefined)).toBe(true);
    // Compared too: the owner of an invalid file in active/, kept when its body is read again.
    expect(withoutBodies(checked)).toEqual(withoutBodies(reference));
  });

  it('is in execution order, with many tasks of the same priority and due time', () => {
    const root = join(dir, 'spool');
    const layout = new SpoolLayout(root);
    for (const d of ['incoming', 'pending']) mkdirSync(join(root, d), { recursive: true });
    const now = Date.now();
    const rand = random(11);
    for (let i = 0; i < 3000; i++) {
      // Few distinct priorities and due times, in the past and ahead, so that most tasks share both with others.
      const due = now + (rand() < 0.5 ? -1 : 1) * (60_000 + 1000 * Math.floor(rand() * 5));
      const id = String(now - Math.floor(rand() * 3) * 1000).padStart(13, '0') + Math.floor(rand() * 2 ** 32).toString(16).padStart(16, '0');
      const file = formatTaskName({ priority: Math.floor(rand() * 3), due, id, attempts: Math.floor(rand() * 3), name: rand() < 0.5 ? 'a' : 'b', encoding: 'json' });
      writeFileSync(join(root, rand() < 0.5 ? 'incoming' : 'pending', file), BODY);
    }
    const listed = listSpool(layout, { locations: ['incoming', 'pending'], checkBodies: false, now });
    expect(listed).toHaveLength(3000);
    // executionOrder is the order's definition; a stable sort by it leaves a sorted listing as it is.
    expect([...listed].sort(executionOrder).map((e) => e.path)).toEqual(listed.map((e) => e.path));
  });
});
