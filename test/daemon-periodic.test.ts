/**
 * Periodic tasks with real daemons (dist/cli/spoolerd.js) on real temp
 * spools: the schedule "ticker" of test/fixtures/tasks/periodic.mjs enqueues
 * `tick` every second, and each run records its own file name (the due time
 * in it is the slot) and id (one deterministic id per slot). Slots are counted
 * from what the tasks recorded, never from the daemons' logs or wall time.
 *
 * - three daemons (worker processes: the schedule reaches each main thread
 *   through RegisteredTasks) and 10 s of slots: each slot runs exactly once;
 * - kill -9 of a daemon after each step of a slot's enqueue (the test hook
 *   SPOOLERD_TEST_SLOT_CRASH kills it there), beside a daemon that goes on:
 *   no slot lost, none doubled;
 * - catch-up after a time with no daemon: none, last, all (with a limit);
 * - a paused schedule enqueues nothing, shows as paused, and is not caught up on resume;
 * - spoolerd --schedule <file>, and a bad file refused.
 */
import { lstatSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTaskName } from '../spool/name.js';
import { STAGE_PREFIX as SLOT_STAGE_PREFIX } from '../spool/enqueue-once.js';
import { spool } from './helpers/cli.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';
import { readRecords, sleep, startDaemon, waitFor, type DaemonProcess } from './helpers/daemon.js';

let dir: string;
let root: string;
let records: string;
const testSpool = useDaemonSpool('spoolerd-periodic-', { bind: (s) => ({ dir, root, records } = s) });

interface Tick {
  slot: number;
  id: string;
  label: string;
  pid: number;
}
const ticks = (): Tick[] =>
  readRecords(records)
    .filter((r) => r.task === 'tick')
    .map((r) => ({ slot: parseTaskName(r.file as string)!.due, id: r.id as string, label: r.label as string, pid: r.pid }));
const slotsRun = (): number[] => ticks().map((t) => t.slot).sort((a, b) => a - b);
/** The slots from `from` to `to` (inclusive), every second. */
const everySecond = (from: number, to: number): number[] => Array.from({ length: (to - from) / 1000 + 1 }, (_, i) => from + i * 1000);
const ticker = (extra: string[] = [], env: NodeJS.ProcessEnv = {}) => ({ imports: ['periodic'], args: ['--processes', '0', ...extra], env });

describe('exactly one task per slot', () => {
  it('three daemons and a schedule every second for 10 s give exactly 10 runs, one per slot', async () => {
    const daemons = await Promise.all([0, 1, 2].map(() => testSpool.serve({ imports: ['periodic'], args: ['--processes', '1'] })));
    await Promise.all(daemons.map((d) => d.waitForLog((l) => l.msg === 'schedules served')));
    // The first whole second after every scheduler started, with a second's margin.
    const from = Math.ceil(Date.now() / 1000) * 1000 + 1000;
    const to = from + 10_000;
    // The slot after the window has run: every slot of the window has had its chance (and its second).
    await waitFor(() => ticks().some((t) => t.slot >= to + 1000), { timeoutMs: 40_000, what: `the tick of slot ${to + 1000}`, explain: () => JSON.stringify(slotsRun()) });
    const window = ticks().filter((t) => t.slot >= from && t.slot < to);
    expect(window.map((t) => t.slot).sort((a, b) => a - b)).toEqual(everySecond(from, to - 1000));
    expect(window).toHaveLength(10);
    // Nowhere a slot twice, nor a gap from the first slot to the last.
    const all = slotsRun();
    expect(all).toEqual(everySecond(all[0]!, all.at(-1)!));
    expect(new Set(ticks().map((t) => t.id)).size).toBe(all.length);
    // All three schedulers raced for the slots: together they enqueued each one once.
    const enqueued = daemons.flatMap((d) => d.logsWith('enqueued a periodic task').map((l) => l.slot as number)).filter((s) => s >= from && s < to);
    expect(enqueued.sort((a, b) => a - b)).toEqual(everySecond(from, to - 1000));
  }, 60_000);
});

describe('kill -9 at each step of a slot enqueue', () => {
  for (const step of ['staged', 'linked', 'published'] as const) {
    it(`after "${step}": the slot the daemon died in runs once, and no slot is lost or doubled`, async () => {
      // B serves the schedule and runs the ticks; A serves the schedule only (it claims no tick) and dies at the step.
      const b = await testSpool.serve(ticker());
      await b.waitForLog((l) => l.msg === 'schedules served');
      const a = await testSpool.serve(ticker(['--tasks', 'other'], { SPOOLERD_TEST_SLOT_CRASH: step }));
      const crash = await a.waitForLog((l) => l.msg === 'test: killing this daemon after a step of a slot enqueue', { timeoutMs: 40_000 });
      const exit = await a.waitForExit(10_000);
      expect(exit.signal).toBe('SIGKILL');
      const slot = crash.slot as number;
      // Past the stage grace and B's next stage scan: B has run the slots 5 s after.
      await waitFor(() => ticks().some((t) => t.slot >= slot + 5000), { timeoutMs: 30_000, what: `the tick of slot ${slot + 5000}`, explain: () => b.describe() });
      expect(ticks().filter((t) => t.slot === slot)).toHaveLength(1);
      const all = slotsRun();
      expect(all).toEqual(everySecond(all[0]!, all.at(-1)!));
      expect(new Set(ticks().map((t) => t.id)).size).toBe(all.length);
      const stages = readdirSync(join(root, 'schedules')).filter((n) => n.startsWith(SLOT_STAGE_PREFIX));
      if (step === 'linked') {
        // B found A's task staged under the slot's marker and published it.
        expect(b.logsWith('published a periodic task whose enqueuer died after taking its slot').map((l) => parseTaskName(l.file as string)!.due)).toEqual([slot]);
        expect(stages).toEqual([]);
      } else if (step === 'staged') {
        // A's stage never became a marker (one link): debris for the hourly sweep, never published.
        expect(stages).toHaveLength(1);
        expect(lstatSync(join(root, 'schedules', stages[0]!)).nlink).toBe(1);
      } else {
        expect(stages).toEqual([]);
      }
    }, 90_000);
  }
});

describe('catch-up of slots that passed while no daemon ran', () => {
  const cases = [
    { mode: 'none', expected: (missed: number[]) => [] as number[] },
    { mode: 'last', expected: (missed: number[]) => missed.slice(-1) },
    { mode: 'all', expected: (missed: number[]) => missed.slice(-2) }, // catchUpLimit 2
  ];
  for (const { mode, expected } of cases) {
    it(`catchUp '${mode}'`, async () => {
      const env = { PERIODIC_CATCH_UP: mode, PERIODIC_CATCH_UP_LIMIT: '2' };
      const first = await testSpool.serve(ticker([], env));
      await waitFor(() => ticks().length >= 2, { timeoutMs: 20_000, what: 'two ticks' });
      await first.stop();
      const lastRunBefore = Math.max(...slotsRun());
      // At least three slots pass with no daemon running.
      await sleep(Math.max(0, lastRunBefore + 4500 - Date.now()));
      const second = await testSpool.serve(ticker([], env));
      const started = await second.waitForLog((l) => l.msg === 'schedule started from its slot markers');
      const lastTaken = started.lastTaken as number;
      const now = started.now as number;
      const missed = everySecond(lastTaken + 1000, Math.floor(now / 1000) * 1000);
      expect(missed.length).toBeGreaterThanOrEqual(3);
      // The first slot after the start has run: the catch-up (enqueued before it) is over.
      await waitFor(() => ticks().some((t) => t.slot > now), { timeoutMs: 20_000, what: 'a tick after the start' });
      expect(slotsRun().filter((s) => s > lastTaken && s <= now)).toEqual(expected(missed));
      expect(started.missed).toBe(expected(missed).length);
    }, 60_000);
  }
});

describe('pausing a schedule', () => {
  it('a paused schedule enqueues nothing and shows as paused; resumed, it goes on and the paused slots are not caught up', async () => {
    const daemon = await testSpool.serve(ticker([], { PERIODIC_CATCH_UP: 'all' }));
    await waitFor(() => ticks().length >= 1, { timeoutMs: 20_000, what: 'a tick' });
    mkdirSync(join(root, 'control'), { recursive: true });
    const pauseFile = join(root, 'control', 'pause.json');
    writeFileSync(pauseFile, JSON.stringify({ version: 1, all: false, tasks: [], schedules: ['ticker'] }));
    const skips = () => daemon.logsWith('skipped a slot of a paused schedule').map((l) => l.slot as number);
    // Two slots passed paused: the daemon got past them (its log says so).
    await waitFor(() => skips().length >= 2, { timeoutMs: 20_000, what: 'two skipped slots', explain: () => daemon.describe() });
    const firstSkipped = skips()[0]!;
    expect(ticks().filter((t) => t.slot >= firstSkipped)).toEqual([]);
    const listed = JSON.parse(spool(['schedules', '--dir', root, '--json']).stdout) as Array<{ name: string; paused: boolean; last: { slot: number } | null }>;
    expect(listed).toMatchObject([{ name: 'ticker', paused: true }]);
    expect(listed[0]!.last!.slot).toBeLessThan(firstSkipped);
    expect(spool(['schedules', '--dir', root]).stdout).toMatch(/^ticker +tick +every 1s .* paused +paused\n$/m);
    rmSync(pauseFile);
    const resumedAt = Date.now();
    await waitFor(() => ticks().some((t) => t.slot > resumedAt), { timeoutMs: 20_000, what: 'a tick after resume' });
    const skipped = skips();
    expect(ticks().filter((t) => skipped.includes(t.slot))).toEqual([]);
    expect(JSON.parse(spool(['schedules', '--dir', root, '--json']).stdout)).toMatchObject([{ name: 'ticker', paused: false }]);
  }, 60_000);
});

describe('spoolerd --schedule <file>', () => {
  it('runs the schedules of the file beside those of the modules, and spool schedules lists both', async () => {
    const file = join(dir, 'schedules.json');
    writeFileSync(file, JSON.stringify({ schedules: [{ name: 'filed', task: 'tick', cron: '* * * * * *', args: ['from-file'], priority: 10 }] }));
    await testSpool.serve(ticker(['--schedule', file]));
    await waitFor(() => ticks().filter((t) => t.label === 'from-file').length >= 2 && ticks().some((t) => t.label === 'from-module'), { timeoutMs: 20_000, what: 'ticks of both schedules' });
    const fromFile = ticks().filter((t) => t.label === 'from-file');
    // Two schedules of one task: their slots coincide, their ids do not.
    expect(new Set(ticks().map((t) => t.id)).size).toBe(ticks().length);
    expect(fromFile.every((t) => t.slot % 1000 === 0)).toBe(true);
    const listed = JSON.parse(spool(['schedules', '--dir', root, '--json']).stdout) as Array<{ name: string; cron?: string; every?: number }>;
    expect(listed.map((l) => [l.name, l.cron ?? l.every])).toEqual([
      ['filed', '* * * * * *'],
      ['ticker', 1000],
    ]);
  }, 30_000);

  it('refuses a bad schedule file at start, saying what is wrong (exit 2)', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ schedules: [{ task: 'tick', every: '1s', cron: '* * * * *' }] }));
    const daemon: DaemonProcess = startDaemon({ dir: root, imports: ['periodic'], args: ['--processes', '0', '--schedule', file], records });
    const exit = await daemon.waitForExit(20_000);
    expect(exit.code).toBe(2);
    expect(daemon.logs.map((l) => l.msg).join('\n')).toContain(`--schedule ${file}, schedules[0]: give exactly one of "every"`);
  }, 30_000);
});
