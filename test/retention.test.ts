/**
 * The daemon's retention sweeps as units, on real folders with fake times
 * (`now` and the local clock are passed in): --keep-dead / --keep-archive
 * (spooler/retention.ts) and the dead-lettering of tasks no daemon runs
 * (spooler/unknown-tasks.ts), and discovery's refusal of names it does not
 * serve (discover/feed.ts). End to end: daemon-unknown-task.test.ts, daemon-retention.test.ts.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SpoolLayout } from '../spool/layout.js';
import { formatTaskName, parseTaskName } from '../spool/name.js';
import { statusFilePath } from '../spool/status-file.js';
import { QueueFeed } from '../spooler/discover/feed.js';
import { createLogger } from '../spooler/logger.js';
import { TaskQueue } from '../spooler/order/task-queue.js';
import { RetentionSweep } from '../spooler/retention.js';
import { ServedTasks } from '../spooler/task-names.js';
import { UnknownTasks } from '../spooler/unknown-tasks.js';
import { tempDir } from './helpers/cli.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const log = createLogger({ level: 'error', format: 'json', write: () => undefined });

let layout: SpoolLayout;
let cleanup: () => void;
let seq = 0;
beforeEach(() => {
  const t = tempDir('spoolerd-retention-');
  cleanup = t.cleanup;
  layout = new SpoolLayout(join(t.dir, 'spool'));
  for (const d of ['tmp', 'incoming', 'pending', 'active', 'dead', 'archive', 'state']) mkdirSync(join(layout.root, d), { recursive: true });
});
afterEach(() => cleanup());

/** A task file in `where`, due `due`, with a failure record when asked. */
function put(where: 'incoming' | 'pending' | 'dead' | 'archive', name: string, due: number, withRecord = false): { file: string; id: string } {
  const id = String(due).padStart(13, '0') + (++seq).toString(16).padStart(16, '0');
  const file = formatTaskName({ priority: 50, due, id, attempts: where === 'dead' ? 3 : 0, name, encoding: 'json' });
  writeFileSync(join(layout.root, where, file), JSON.stringify({ version: 1, type: 'fcall', args: [] }));
  if (withRecord) writeFileSync(join(layout.state, `${id}.json`), JSON.stringify({ id, name, attempts: 3, at: due, error: { message: 'boom' } }));
  return { file, id };
}
const files = (where: string) => readdirSync(join(layout.root, where)).filter((f) => !f.startsWith('.')).sort();

describe('--keep-dead and --keep-archive', () => {
  const sweeper = (keep: { dead: number; archive: number }) => new RetentionSweep({ layout, log, keepMs: keep, scanIntervalMs: 1000, check: () => undefined });

  it('delete a dead letter with its failure record once it has been in dead/ longer than --keep-dead, and nothing younger', () => {
    const real = Date.now();
    const old = put('dead', 'job', real - 10 * DAY, true);
    // Due in two days: its name alone says it cannot have died over 7 days ago (no stat needed).
    const young = put('dead', 'job', real + 2 * DAY, true);
    const archived = put('archive', 'job', real - 10 * DAY);
    const s = sweeper({ dead: 7 * DAY, archive: 0 });
    // Renamed into dead/ just now (ctime): not yet 7 days there.
    expect(s.sweep(real, 0)).toEqual({ dead: 0, archive: 0 });
    expect(files('dead')).toEqual([old.file, young.file].sort());
    // Eight days on.
    expect(s.sweep(real + 8 * DAY, 0)).toEqual({ dead: 0, archive: 0 }); // not yet: swept at most every tenth of the retention
    expect(s.sweep(real + 8 * DAY, Date.now() + 0.7 * DAY + 1)).toEqual({ dead: 1, archive: 0 });
    expect(files('dead')).toEqual([young.file]);
    expect(files('state')).toEqual([`${young.id}.json`]);
    // --keep-archive 0: archive/ is kept.
    expect(files('archive')).toEqual([archived.file]);
  });

  it('delete archived tasks past --keep-archive; a directory in archive/ is left to spool purge', () => {
    const real = Date.now();
    const a = put('archive', 'job', real - 3 * DAY);
    mkdirSync(join(layout.archive, 'not-a-task-dir'));
    const s = sweeper({ dead: 0, archive: DAY });
    expect(s.sweep(real + 2 * DAY, 0)).toEqual({ dead: 0, archive: 1 });
    expect(files('archive')).toEqual(['not-a-task-dir']);
    expect(existsSync(join(layout.archive, a.file))).toBe(false);
  });
});

describe('tasks no daemon runs', () => {
  const served = new ServedTasks(['echo']);
  const setup = (liveOwners: string[] = ['me']) => {
    mkdirSync(join(layout.active, 'me'), { recursive: true });
    const buried = vi.fn();
    const unknown = new UnknownTasks({
      layout,
      log,
      unknownAfterMs: HOUR,
      scanIntervalMs: 1000,
      served: () => served,
      ownerId: () => 'me',
      liveOwners: () => liveOwners,
      check: () => undefined,
      buried,
    });
    return { unknown, buried };
  };

  it('are dead-lettered once --unknown-after past their due time, attempts unchanged, with a record naming them; younger ones and served ones wait', () => {
    const now = Date.now();
    const ghost = put('incoming', 'ghost', now - 2 * HOUR);
    const young = put('pending', 'ghost', now - HOUR / 2);
    const echo = put('incoming', 'echo', now - 2 * HOUR);
    const { unknown, buried } = setup();
    // Nothing noted and swept recently: no listing at all.
    expect(unknown.sweep(now, Date.now())).toBeUndefined();
    unknown.noted(young.file);
    expect(unknown.sweep(now, Date.now())).toBeUndefined(); // the oldest noted is not due for a dead letter yet
    unknown.noted(ghost.file);
    expect(unknown.sweep(now, Date.now())).toEqual({ buried: 1, waiting: 1, leftToPeers: 0 });
    expect(buried).toHaveBeenCalledWith('ghost');
    expect(files('dead')).toEqual([ghost.file]); // a0: it never ran
    expect(parseTaskName(files('dead')[0]!)?.attempts).toBe(0);
    const record = JSON.parse(readFileSync(join(layout.state, `${ghost.id}.json`), 'utf8'));
    expect(record).toEqual(expect.objectContaining({ id: ghost.id, name: 'ghost', attempts: 0, error: expect.objectContaining({ name: 'UnknownTaskError' }) }));
    expect(record.error.message).toContain('no daemon serving this spool runs task "ghost"');
    expect(files('incoming')).toEqual([echo.file]);
    expect(files('pending')).toEqual([young.file]);
    expect(readdirSync(join(layout.active, 'me'))).toEqual([]);
  });

  it('are left to a live peer that declares them, or to one that declares nothing (it may run anything)', () => {
    const now = Date.now();
    const ghost = put('incoming', 'ghost', now - 2 * HOUR);
    writeFileSync(statusFilePath(layout, 'peer'), JSON.stringify({ version: 1, owner: 'peer', tasks: ['ghost'] }));
    const declared = setup(['me', 'peer']);
    declared.unknown.noted(ghost.file);
    expect(declared.unknown.sweep(now, Date.now())).toEqual({ buried: 0, waiting: 0, leftToPeers: 1 });

    writeFileSync(statusFilePath(layout, 'peer'), JSON.stringify({ version: 1, owner: 'peer' }));
    const silent = setup(['me', 'peer']);
    silent.unknown.noted(ghost.file);
    expect(silent.unknown.sweep(now, Date.now())).toEqual({ buried: 0, waiting: 0, leftToPeers: 1 });
    // A peer that declares other names: ours to dead-letter.
    writeFileSync(statusFilePath(layout, 'peer'), JSON.stringify({ version: 1, owner: 'peer', tasks: ['other'] }));
    const other = setup(['me', 'peer']);
    other.unknown.noted(ghost.file);
    expect(other.unknown.sweep(now, Date.now())).toEqual({ buried: 1, waiting: 0, leftToPeers: 0 });
    expect(files('incoming')).toEqual([]);
  });
});

describe('discovery of tasks a daemon does not serve', () => {
  it('never queues them (arrivals and refills alike), notes each one, and still hands back bad names for quarantine', () => {
    const now = Date.now();
    const queue = new TaskQueue(() => undefined, () => now, { window: 16 });
    const feed = new QueueFeed(queue, () => undefined);
    const noted: string[] = [];
    const served = new ServedTasks(['echo']);
    feed.serveOnly((f) => served.serves(f), (f) => noted.push(f));
    const echo = formatTaskName({ priority: 50, due: now - 1, id: `${now}0000000000000001`, attempts: 0, name: 'echo', encoding: 'json' });
    const ghost = formatTaskName({ priority: 10, due: now - 1, id: `${now}0000000000000002`, attempts: 0, name: 'ghost', encoding: 'json' });
    expect(feed.add(ghost, 'incoming', now)).toBe(false);
    expect(feed.add(echo, 'incoming', now)).toBe(true);
    expect(queue.size).toBe(1);
    const ghost2 = formatTaskName({ priority: 10, due: now - 1, id: `${now}0000000000000003`, attempts: 0, name: 'ghost', encoding: 'json' });
    const rejected = feed.refill([ghost2, 'not-a-task'], [], now);
    expect(rejected).toEqual([['not-a-task', 'pending']]);
    expect(queue.size).toBe(1);
    expect(noted).toEqual([ghost, ghost2]);
    expect(queue.take(now)?.fileName).toBe(echo);
  });
});
