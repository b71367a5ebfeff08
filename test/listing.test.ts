/**
 * listSpool: the listing that checks bodies on other threads while it sorts
 * gives what the one that reads every body in turn (keepBodies) gives, and the
 * listing is in execution order.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpoolLayout } from '../spool/layout.js';
import type { SpoolEntry } from '../spool/entries.js';
import { executionOrder } from '../spool/execution-order.js';
import { listSpool } from '../spool/listing.js';
import { formatTaskName } from '../spool/name.js';
import { tempDir } from './helpers/cli.js';
import { random } from './helpers/random.js';


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
