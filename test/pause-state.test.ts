/**
 * control/pause.json (spool/pause.ts) and the daemon's watch of it
 * (spooler/pause-watch.ts) with a fake daemon: the format, what is refused
 * (links, FIFOs, oversized files, bad fields) and what a watch applies.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpoolLayout } from '../spool/layout.js';
import { formatTaskName } from '../spool/name.js';
import { QueueFeed } from '../spooler/discover/feed.js';
import { TaskQueue } from '../spooler/order/task-queue.js';
import { taskNameOfFileName } from '../spooler/task-names.js';
import {
  isSchedulePaused,
  isTaskPaused,
  NOTHING_PAUSED,
  PAUSE_MAX_BYTES,
  PauseFileError,
  readPauseState,
  readPauseStateSync,
  writePauseState,
  type PauseState,
} from '../spool/pause.js';
import { createLogger } from '../spooler/logger.js';
import { PauseWatch } from '../spooler/pause-watch.js';
import { tempDir } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
let layout: SpoolLayout;
let file: string;

beforeEach(() => {
  ({ dir, cleanup } = tempDir('spoolerd-pause-unit-'));
  layout = new SpoolLayout(join(dir, 'spool')).ensure();
  file = join(layout.control, 'pause.json');
});
afterEach(() => cleanup());

describe('control/pause.json', () => {
  it('is nothing paused while absent, and reads back what was written (names sorted, once each)', async () => {
    expect(await readPauseState(layout.root)).toEqual(NOTHING_PAUSED);
    writePauseState(layout.root, { all: false, tasks: ['reindex', 'a.b:c-d', 'reindex'], schedules: ['nightly'] });
    const state = { all: false, tasks: ['a.b:c-d', 'reindex'], schedules: ['nightly'] };
    expect(await readPauseState(layout.root)).toEqual(state);
    expect(readPauseStateSync(layout.root)).toEqual(state);
    expect(JSON.parse(execFileSync('cat', [file], { encoding: 'utf8' }))).toEqual({ version: 1, ...state });
    // Staged beside it and renamed: nothing else is left in control/.
    expect(readdirSync(layout.control)).toEqual(['pause.json']);
  });

  it('pauses tasks by name or all of them, and schedules only by name', () => {
    const some: PauseState = { all: false, tasks: ['reindex'], schedules: ['nightly'] };
    expect([isTaskPaused(some, 'reindex'), isTaskPaused(some, 'send'), isSchedulePaused(some, 'nightly'), isSchedulePaused(some, 'hourly')]).toEqual([true, false, true, false]);
    const all: PauseState = { all: true, tasks: [], schedules: [] };
    expect([isTaskPaused(all, 'anything'), isSchedulePaused(all, 'nightly')]).toEqual([true, false]);
  });

  it('accepts a file without the optional fields and ignores fields it does not know', () => {
    writeFileSync(file, '{"version":1,"tasks":["x"],"later":{"a":1}}');
    expect(readPauseStateSync(layout.root)).toEqual({ all: false, tasks: ['x'], schedules: [] });
  });

  it.each([
    ['not JSON', '{"version":1,', /is not JSON/],
    ['not an object', '[1]', /is not a JSON object/],
    ['another version', '{"version":2}', /has version 2; this spoolerd reads version 1/],
    ['all not a boolean', '{"version":1,"all":"yes"}', /"all": "yes", not true or false/],
    ['tasks not an array', '{"version":1,"tasks":"reindex"}', /"tasks" that is not an array of names/],
    ['a bad task name', '{"version":1,"tasks":["a/b"]}', /"a\/b" in "tasks", which is not a valid name/],
    ['a bad schedule name', '{"version":1,"schedules":[""]}', /"" in "schedules", which is not a valid name/],
  ])('refuses %s with a PauseFileError that says how to fix it', async (_what, text, problem) => {
    writeFileSync(file, text);
    expect(() => readPauseStateSync(layout.root)).toThrow(problem);
    await expect(readPauseState(layout.root)).rejects.toThrow(problem);
    expect(() => readPauseStateSync(layout.root)).toThrow(/spool resume/);
    expect(() => readPauseStateSync(layout.root)).toThrow(PauseFileError);
  });

  it('never follows a symbolic link, never opens a FIFO to block on it, and reads no oversized file', async () => {
    const target = join(dir, 'target.json');
    writeFileSync(target, '{"version":1}');
    symlinkSync(target, file);
    expect(() => readPauseStateSync(layout.root)).toThrow(/is a symbolic link; it is never followed/);
    await expect(readPauseState(layout.root)).rejects.toThrow(/is a symbolic link/);
    // `spool resume` replaces the link itself (rename), leaving its target alone.
    writePauseState(layout.root, NOTHING_PAUSED);
    expect(readPauseStateSync(layout.root)).toEqual(NOTHING_PAUSED);
    expect(execFileSync('cat', [target], { encoding: 'utf8' })).toBe('{"version":1}');

    execFileSync('rm', [file]);
    execFileSync('mkfifo', [file]);
    expect(() => readPauseStateSync(layout.root)).toThrow(/is not a regular file/);
    execFileSync('rm', [file]);
    writeFileSync(file, ' '.repeat(PAUSE_MAX_BYTES + 1));
    expect(() => readPauseStateSync(layout.root)).toThrow(/over the 65536-byte cap/);
  });

  it('removes staged copies a `spool pause` that died left behind, once they are an hour old', () => {
    const old = join(layout.control, '.pause-1-dead');
    const young = join(layout.control, '.pause-2-live');
    writeFileSync(old, '{}');
    writeFileSync(young, '{}');
    const hourAgo = (Date.now() - 3_700_000) / 1000;
    utimesSync(old, hourAgo, hourAgo);
    writePauseState(layout.root, NOTHING_PAUSED);
    expect(readdirSync(layout.control).sort()).toEqual(['.pause-2-live', 'pause.json']);
  });
});

describe('the daemon\'s watch of control/pause.json', () => {
  function watch(): { w: PauseWatch; applied: PauseState[]; lines: Array<Record<string, unknown>> } {
    const applied: PauseState[] = [];
    const lines: Array<Record<string, unknown>> = [];
    const w = new PauseWatch({
      layout,
      log: createLogger({ level: 'debug', format: 'json', write: (l) => void lines.push(JSON.parse(l) as Record<string, unknown>) }),
      check: () => undefined,
      apply: (state) => void applied.push(state),
    });
    return { w, applied, lines };
  }

  it('applies a change once, and nothing while the file stays the same', () => {
    const { w, applied, lines } = watch();
    w.load();
    try {
      expect(applied).toEqual([]);
      writePauseState(layout.root, { all: false, tasks: ['reindex'], schedules: [] });
      w.check();
      w.check();
      expect(applied).toEqual([{ all: false, tasks: ['reindex'], schedules: [] }]);
      // Rewritten with the same state: read again (it changed on disk), nothing to apply.
      writePauseState(layout.root, { all: false, tasks: ['reindex'], schedules: [] });
      w.check();
      expect(applied).toHaveLength(1);
      execFileSync('rm', [file]);
      w.check();
      expect(applied).toEqual([{ all: false, tasks: ['reindex'], schedules: [] }, NOTHING_PAUSED]);
      expect(lines.filter((l) => l.msg === 'pause applied').map((l) => l.tasks)).toEqual([['reindex'], []]);
    } finally {
      w.stop();
    }
  });

  it('takes a file it cannot use as every task paused, logs it once, and says when it can be used again', () => {
    const { w, applied, lines } = watch();
    writeFileSync(file, 'nonsense');
    w.load();
    try {
      w.check();
      expect(applied).toEqual([{ all: true, tasks: [], schedules: [] }]);
      expect(w.problem).toMatch(/is not JSON/);
      expect(lines.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual(['cannot use control/pause.json; every task stays paused until it is fixed (schedules go on)']);
      writePauseState(layout.root, { all: false, tasks: ['x'], schedules: [] });
      w.check();
      expect(applied).toEqual([{ all: true, tasks: [], schedules: [] }, { all: false, tasks: ['x'], schedules: [] }]);
      expect(w.problem).toBeUndefined();
      expect(lines.filter((l) => l.msg === 'control/pause.json can be used again')).toHaveLength(1);
    } finally {
      w.stop();
    }
  });
});

describe('the queue feed while tasks are paused by name', () => {
  const NOW = 1_796_000_000_000;
  const nameOf = (task: string, i: number) =>
    formatTaskName({ priority: 50, due: NOW - 1000, id: `${NOW - 1000}${i.toString(16).padStart(16, '0')}`, attempts: 0, name: task, encoding: 'msgpack' });

  it('keeps their names out of the queue (not counted as tasks no daemon runs), and takes them again once resumed', () => {
    const queue = new TaskQueue(() => undefined, () => NOW);
    const feed = new QueueFeed(queue, () => undefined);
    const unserved: string[] = [];
    feed.serveOnly((f) => !f.endsWith('-unknown.msgpack'), (f) => void unserved.push(f));
    const paused = new Set(['reindex']);
    feed.holdBack((f) => paused.has(taskNameOfFileName(f)));

    expect(feed.add(nameOf('reindex', 1), 'incoming', NOW)).toBe(false);
    expect(feed.add(nameOf('send', 2), 'incoming', NOW)).toBe(true);
    expect(feed.add(nameOf('unknown', 3), 'incoming', NOW)).toBe(false);
    feed.refill([nameOf('reindex', 4)], [nameOf('send', 5)], NOW);
    expect([...feed.inDir('incoming'), ...feed.inDir('pending')].sort()).toEqual([nameOf('send', 2), nameOf('send', 5)].sort());
    expect(unserved).toEqual([nameOf('unknown', 3)]);

    feed.holdBack(undefined);
    feed.refill([nameOf('reindex', 4)], [nameOf('reindex', 1)], NOW);
    expect(queue.has(nameOf('reindex', 1)) && queue.has(nameOf('reindex', 4))).toBe(true);
  });
});
