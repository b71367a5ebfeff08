/**
 * The one directory reader of a spool's task folders (read-names.ts,
 * readTaskFolders), the one state<->location table (layout.ts), and the
 * producer API's listing by name (entries.ts), which must not pull in the
 * `spool ls` machinery (listing.ts).
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listByName } from '../spool/entries.js';
import { SpoolDirectoryError } from '../spool/errors.js';
import { invalidStateAt, LOCATIONS_OF, locationsOf, SpoolLayout, stateAt, TASK_LOCATIONS, TASK_STATES, type TaskLocation } from '../spool/layout.js';
import { listFirst, listSpool } from '../spool/listing.js';
import { readTaskFolders } from '../spool/read-names.js';
import { Spooler } from '../runtime/index.js';
import { tempDir } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('spoolerd-folders-'));
});
afterEach(() => cleanup());

/** What readTaskFolders visits: [location, owner or '-', name], in its order. */
function walk(layout: SpoolLayout, locations: readonly TaskLocation[]): string[][] {
  const seen: string[][] = [];
  readTaskFolders(layout, locations, (entry, folder) => {
    expect(folder.prefix).toBe(folder.path + '/');
    seen.push([folder.location, folder.owner ?? '-', entry.name]);
  });
  return seen;
}

describe('readTaskFolders', () => {
  it('visits the folders in the order asked, active/ claim folder by claim folder with its owner, and passes over what is nobody’s claim', () => {
    const layout = new SpoolLayout(join(dir, 'spool')).ensure();
    writeFileSync(join(layout.pending, 'p1'), '');
    writeFileSync(join(layout.incoming, 'i1'), '');
    writeFileSync(join(layout.dead, 'd1'), '');
    mkdirSync(join(layout.active, 'owner-a'));
    writeFileSync(join(layout.active, 'owner-a', 'a1'), '');
    // A file in active/ is no claim folder; a link there is not followed.
    writeFileSync(join(layout.active, 'stray'), '');
    mkdirSync(join(dir, 'elsewhere'));
    writeFileSync(join(dir, 'elsewhere', 'secret'), '');
    symlinkSync(join(dir, 'elsewhere'), join(layout.active, 'owner-link'));
    expect(walk(layout, ['incoming', 'pending', 'active', 'dead'])).toEqual([
      ['incoming', '-', 'i1'],
      ['pending', '-', 'p1'],
      ['active', 'owner-a', 'a1'],
      ['dead', '-', 'd1'],
    ]);
    expect(walk(layout, ['dead', 'incoming'])).toEqual([
      ['dead', '-', 'd1'],
      ['incoming', '-', 'i1'],
    ]);
  });

  it('reads a missing folder as empty, and refuses a task folder that is a symbolic link', () => {
    const root = join(dir, 'foreign');
    mkdirSync(join(root, 'incoming'), { recursive: true });
    writeFileSync(join(root, 'incoming', 'i1'), '');
    const layout = new SpoolLayout(root);
    expect(walk(layout, TASK_LOCATIONS)).toEqual([['incoming', '-', 'i1']]);
    mkdirSync(join(dir, 'elsewhere'));
    writeFileSync(join(dir, 'elsewhere', 'secret'), '');
    symlinkSync(join(dir, 'elsewhere'), join(root, 'pending'));
    expect(() => walk(layout, ['pending'])).toThrow(SpoolDirectoryError);
  });
});

describe('the state<->location table', () => {
  it('says which folders hold each state, and gives each file the state of its folder', () => {
    for (const state of TASK_STATES) expect(locationsOf([state])).toEqual(LOCATIONS_OF[state]);
    expect(locationsOf(TASK_STATES)).toEqual([...TASK_LOCATIONS]);
    expect(locationsOf(['dead', 'due'])).toEqual(['incoming', 'pending', 'dead']);
    const now = 1_000;
    for (const location of TASK_LOCATIONS) {
      // A task file's state is one its folder holds, by the table.
      for (const due of [now - 1, now, now + 1]) expect(LOCATIONS_OF[stateAt(location, due, now)]).toContain(location);
    }
    expect([stateAt('incoming', now, now), stateAt('pending', now + 1, now), stateAt('active', now + 1, now), stateAt('archive', 0, now)]).toEqual([
      'due',
      'scheduled',
      'active',
      'archived',
    ]);
    expect(TASK_LOCATIONS.map(invalidStateAt)).toEqual(['invalid', 'invalid', 'invalid', 'dead', 'quarantined', 'archived']);
  });

  it('is the table SPOOL-FORMAT.md gives', () => {
    const doc = readFileSync(fileURLToPath(new URL('../SPOOL-FORMAT.md', import.meta.url)), 'utf8');
    const start = doc.indexOf('| state | folder | when |');
    const table = doc.slice(start, doc.indexOf('\n\n', start));
    const rows = new Map<string, string[]>();
    for (const m of table.matchAll(/^\| `([a-z]+)` \| ([^|]+) \|/gm)) {
      // The folders named before any parenthesis: `active/<owner>/` is active/.
      const folders = [...m[2]!.split('(')[0]!.matchAll(/`([a-z]+)\/[^`]*`/g)].map((f) => f[1]!);
      rows.set(m[1]!, folders);
    }
    expect(Object.fromEntries(rows)).toEqual(LOCATIONS_OF);
  });
});

describe('getTasks (listByName)', () => {
  it('gives the names-only listing of incoming/ and pending/ that spool ls gives, in execution order', async () => {
    const root = join(dir, 'spool');
    const spooler = Spooler.open(root);
    for (let i = 0; i < 30; i++) await spooler.enqueue({ name: `t${i % 4}`, args: [i], options: { priority: (i * 7) % 3 ? 50 : 10, ...(i % 5 === 0 && { postpone: '1h' }) } });
    const layout = new SpoolLayout(root);
    writeFileSync(join(layout.incoming, 'junk.bin'), 'x');
    writeFileSync(join(layout.incoming, '.in-progress'), 'x');
    const some = readdirSync(layout.incoming).find((n) => n.endsWith('.msgpack'))!;
    writeFileSync(join(layout.pending, some), readFileSync(join(layout.incoming, some)));
    const now = Date.now();
    const expected = listSpool(layout, { locations: ['incoming', 'pending'], checkBodies: false, now });
    expect(expected).toHaveLength(32);
    expect(listByName(layout, ['incoming', 'pending'], now)).toEqual(expected);
    expect(spooler.getTasks().map((e) => e.path)).toEqual(expected.map((e) => e.path));
  });
});

describe('listFirst (spool ls --limit)', () => {
  it('gives the first entries of the whole listing when a claim folder holds a file that is not a task (it is invalid, after the due ones)', async () => {
    const root = join(dir, 'spool');
    const spooler = Spooler.open(root);
    const claimed = await spooler.enqueue({ name: 'claimed', args: [] });
    await spooler.enqueue({ name: 'due', args: [] });
    const layout = new SpoolLayout(root);
    mkdirSync(join(layout.active, 'owner-a'));
    const name = readdirSync(layout.incoming).find((n) => n.includes(claimed.id))!;
    renameSync(join(layout.incoming, name), join(layout.active, 'owner-a', name));
    writeFileSync(join(layout.active, 'owner-a', 'junk'), 'x');
    const all = listSpool(layout);
    expect(all.map((e) => [e.state, e.task?.name ?? e.fileName])).toEqual([
      ['active', 'claimed'],
      ['due', 'due'],
      ['invalid', 'junk'],
    ]);
    for (const limit of [1, 2, 3]) expect(listFirst(layout, limit, () => true)).toEqual(all.slice(0, limit));
  });
});

describe('layering', () => {
  it('nothing in spooler/ or runtime/ imports the `spool ls` machinery (spool/listing.ts), directly or through another module', () => {
    const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
    const listing = join(repo, 'spool/listing.ts');
    const importsOf = (file: string): string[] =>
      [...readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)\.js'/g)].map((m) => resolve(dirname(file), m[1]! + '.ts'));
    const sources = (folder: string): string[] =>
      readdirSync(join(repo, folder), { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.ts'))
        .map((f) => join(repo, folder, f))
        .filter((f) => statSync(f).isFile());
    const offenders: string[] = [];
    for (const start of [...sources('spooler'), ...sources('runtime')]) {
      const path = new Map<string, string | undefined>([[start, undefined]]);
      const queue = [start];
      while (queue.length > 0) {
        const file = queue.shift()!;
        if (file === listing) {
          const chain: string[] = [];
          for (let f: string | undefined = file; f !== undefined; f = path.get(f)) chain.unshift(relative(repo, f));
          offenders.push(chain.join(' -> '));
          break;
        }
        for (const next of importsOf(file)) {
          if (path.has(next)) continue;
          path.set(next, file);
          queue.push(next);
        }
      }
    }
    expect(offenders).toEqual([]);
  });
});
