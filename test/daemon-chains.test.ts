/**
 * Chains with real daemons (dist/cli/spoolerd.js) on real temp spools, the
 * steps of test/fixtures/tasks/chains.mjs, each run appending one record
 * (O_APPEND) with its id: runs are counted from those records.
 *
 * - a chain of three passes values (chain(), spooler.chain(), fn.then()); last() gives the final value;
 * - onError gets the failure of a step that ends dead; a chain whose value cannot be passed on
 *   stops there, saying why in its result and its log;
 * - a chain written by hand as a JSON file (a producer in another language);
 * - spool show: the place in the chain;
 * - kill -9 of the daemon at each instant between two steps (SPOOLERD_TEST_CHAIN_CRASH kills it
 *   there), then a second daemon: every step ran exactly once (the step that was running had
 *   returned at each of these instants, so it never runs again: SPOOL-FORMAT.md, "Chains").
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chain, Spooler, type ChainHandle } from '../runtime/index.js';
import { derivedId } from '../spool/derived-id.js';
import { nextStepTask } from '../spool/flows.js';
import { readTaskFile } from '../spool/task-file.js';
import type { FlowCrashPoint } from '../spooler/run/flows.js';
import { spool } from './helpers/cli.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';
import { readRecords, waitFor } from './helpers/daemon.js';

let dir: string;
let root: string;
let records: string;
const testSpool = useDaemonSpool('spoolerd-chains-', { bind: (s) => ({ dir, root, records } = s) });
const ARGS = ['--processes', '0', '--stale-after', '1s', '--scan-interval', '200ms'];

/** The test's own wrappers for the fixture's tasks (same names: the daemon runs its module's). */
function tasksOn(spooler: Spooler) {
  const add = spooler.task(function add(previous: number | null, n: number) {
    return (previous ?? 0) + n;
  });
  const explode = spooler.task(function explode(_previous: unknown) {
    return undefined;
  }, { retries: 0 });
  const alert = spooler.task(function alert(_failure: unknown, _channel: string) {
    return undefined;
  });
  const date = spooler.task(function date() {
    return undefined;
  });
  return { add, explode, alert, date };
}

const runsOf = (file: string, id: string) => readRecords(file).filter((r) => r.id === id);

describe('chains with a daemon', () => {
  it('pass values along three steps (chain(), spooler.chain(), fn.then()), onError gets a dead step\'s failure, a foreign JSON chain runs, spool show tells the place', async () => {
    // A runner process (the crash tests below run in the daemon's own thread).
    const daemon = await testSpool.serve({ imports: ['chains'], args: [...ARGS, '--processes', '1'] });
    const spooler = Spooler.open(root);
    const { add, explode, alert, date } = tasksOn(spooler);

    // chain(): 1, +10, +100.
    const a = await chain(add.request(null, 1), add.step(10), add.step(100)).enqueue();
    expect(a.steps).toHaveLength(3);
    expect(a.steps[1]).toBe(derivedId(a.id, 'next'));
    expect(a.steps[2]).toBe(derivedId(a.steps[1]!, 'next'));
    // fn.then(): chainable and callable with the first task's arguments; a bare wrapper as a step.
    const b = await add.then(add.step(20)).then(add.step(300))(null, 2);
    // spooler.chain() with plain requests, and an onError that the chain does not need.
    const c = await spooler.chain({ name: 'add', args: [null, 3] }, { name: 'add', args: [30] }).onError(alert.step('ops')).enqueue();
    expect(await a.last({ timeout: 10_000 })).toBe(111);
    expect(await b.last({ timeout: 10_000 })).toBe(322);
    expect(await c.last({ timeout: 10_000 })).toBe(33);
    // Each step ran once, given the value before it first.
    for (const [h, args] of [[a, [[null, 1], [1, 10], [11, 100]]], [b, [[null, 2], [2, 20], [22, 300]]]] as const) {
      expect((h as ChainHandle).steps.map((id) => runsOf(records, id).map((r) => r.args))).toEqual(args.map((x) => [x]));
    }
    expect(await spooler.wait(a.steps[1]!, { timeout: 1000 })).toBe(11); // every step keeps its result (a day)
    expect(readRecords(records).filter((r) => r.task === 'alert')).toEqual([]);

    // onError: the second step dies (no retry); its failure goes to alert, the third step never runs.
    const d = await chain(add.request(null, 5), explode, add.step(1)).onError(alert.step('pager')).enqueue();
    await expect(d.last({ timeout: 10_000 })).rejects.toThrow(/explode .* is a dead letter after 1 attempt\(s\): RangeError: cannot take 5/);
    const alertId = derivedId(d.steps[1]!, 'error');
    expect(await spooler.wait(alertId, { timeout: 10_000 })).toBe('alerted pager');
    const [alerted] = runsOf(records, alertId);
    expect(alerted!.failure).toEqual({ id: d.steps[1], name: 'explode', attempts: 1, error: { name: 'RangeError', message: 'cannot take 5' } });
    expect(alerted!.channel).toBe('pager');
    expect(runsOf(records, d.steps[2]!)).toEqual([]);
    // The first step, processed, gave its onError to nobody: no alert for it.
    expect(runsOf(records, derivedId(d.steps[0]!, 'error'))).toEqual([]);

    // A value that cannot be passed on: the step is processed, its result says why the chain stops, the log too.
    const e = await date.then(add.step(1))();
    await expect(e.last({ timeout: 10_000 })).rejects.toThrow(/the chain stops there: the next step of the chain \(add\) was not enqueued/);
    // The result is written before the log line reaches us.
    await daemon.waitForLog((l) => l.msg === 'a chain stops: the value a step returned cannot be given to the next step; the task is processed and its result says why');
    expect(daemon.logsWith('a chain stops: the value a step returned cannot be given to the next step; the task is processed and its result says why')).toHaveLength(1);
    expect(runsOf(records, e.steps[1]!)).toEqual([]);

    // A producer in another language writes the chain itself (SPOOL-FORMAT.md, "Chains").
    const id = `${Date.now()}0123456789abcdef`;
    const body = { version: 1, type: 'fcall', args: [null, 40], keepResult: 60_000, chain: [{ name: 'add', args: [2], keepResult: 60_000 }] };
    const file = `50-${id.slice(0, 13)}-${id}-a0-add.json`;
    writeFileSync(join(root, 'tmp', file), JSON.stringify(body));
    renameSync(join(root, 'tmp', file), join(root, 'incoming', file));
    expect(await spooler.wait(derivedId(id, 'next'), { timeout: 10_000 })).toBe(42);

    // spool show: a waiting chain (postponed) shows its place; a finished step shows the step it enqueued.
    const f = await spooler.chain({ name: 'add', args: [null, 1], options: { postpone: '1h' } }, add.step(2), add.step(3)).onError(alert).enqueue();
    const shown = JSON.parse(spool(['show', f.id, '--dir', root]).stdout);
    expect(shown.chain).toMatchObject({ step: 1, of: 3, next: ['add', 'add'], nextId: f.steps[1], nextEnqueued: false, previous: null, onError: 'alert', onErrorId: derivedId(f.id, 'error') });
    expect(shown.chain.text).toBe(`step 1 of 3; next: add, add (${f.steps[1]}); on error: alert (${derivedId(f.id, 'error')})`);
    const finished = JSON.parse(spool(['show', a.steps[0]!, '--dir', root]).stdout);
    expect(finished.chain).toEqual({ nextId: a.steps[1], onErrorId: null, text: `enqueued its next step ${a.steps[1]}` });
  }, 30_000);

  it('a middle step, while it waits, knows the step before it and the steps after', async () => {
    const spooler = Spooler.open(root);
    const { add } = tasksOn(spooler);
    // No daemon: the second step is written as the daemon would write it, by the first step's rules.
    const first = await chain(add.request(null, 1), add.step(2), add.step(3)).enqueue();
    const task = readTaskFile(join(root, 'incoming', first.fileName));
    const next = nextStepTask(task, 1, Date.now() + 3_600_000, 1 << 20);
    writeFileSync(join(root, 'incoming', next.fileName), next.bytes);
    const shown = JSON.parse(spool(['show', first.steps[1]!, '--dir', root]).stdout);
    expect(shown.chain).toMatchObject({ step: null, of: null, next: ['add'], nextId: first.steps[2], previous: first.id });
    expect(shown.body.args).toEqual([1, 2]);
  });
});

describe('kill -9 between two steps', () => {
  const POINTS: FlowCrashPoint[] = ['kept', 'staged', 'linked', 'published', 'before-finish'];
  it(`at each instant (${POINTS.join(', ')}): a second daemon completes the chain, every step ran exactly once`, async () => {
    await Promise.all(
      POINTS.map(async (point) => {
        const caseRoot = join(dir, point);
        const caseRecords = join(dir, `${point}.jsonl`);
        const crashing = testSpool.start({ dir: caseRoot, records: caseRecords, imports: ['chains'], args: ARGS, env: { SPOOLERD_TEST_CHAIN_CRASH: point } });
        await waitFor(() => crashing.logs.some((l) => l.msg === 'serving spool'), { timeoutMs: 15_000, what: `the daemon that dies at "${point}" to serve`, explain: () => crashing.describe() });
        const spooler = Spooler.open(caseRoot);
        const { add } = tasksOn(spooler);
        const h = await chain(add.request(null, 1), add.step(10), add.step(100)).enqueue();
        const crash = await crashing.waitForLog((l) => l.msg === 'test: killing this daemon at a step of a chain', { timeoutMs: 15_000 });
        expect(crash.point).toBe(point);
        expect((await crashing.waitForExit(10_000)).signal).toBe('SIGKILL');
        // The first step had returned (its run is recorded) when its daemon died.
        expect(runsOf(caseRecords, h.steps[0]!)).toHaveLength(1);
        await testSpool.serve({ dir: caseRoot, records: caseRecords, imports: ['chains'], args: ARGS });
        expect(await h.last({ timeout: 15_000 })).toBe(111);
        expect(h.steps.map((id) => runsOf(caseRecords, id).length), point).toEqual([1, 1, 1]);
      }),
    );
  }, 40_000);
});
