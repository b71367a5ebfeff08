/**
 * Tasks a daemon does not run (README, "Unknown tasks"; SPOOL-FORMAT.md, "Tasks
 * no daemon runs"): a daemon claims only the task names its modules register
 * (narrowed by --tasks), so a task it does not know waits in the spool for a
 * daemon that runs it, never spending its attempts; once it has waited
 * --unknown-after past its due time while no live daemon declares it, it is a
 * dead letter whose record names it. Two daemons that run different tasks
 * share one spool, each running only its own.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { spool } from './helpers/cli.js';
import { describeSpool, ls, lsActive, parseName, readRecords, startDaemon, startServing, waitFor } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let root: string;
let records: string;
let dir: string;
const testSpool = useDaemonSpool('spoolerd-unknown-', { bind: (s) => ({ root, records, dir } = s) });

const waiting = () => [...ls(join(root, 'incoming')), ...ls(join(root, 'pending'))];

describe('a task no module registers', () => {
  it('is never claimed: it waits (spool ls says for a handler), then after --unknown-after is a dead letter whose record names it; tasks around it run', { timeout: 60_000 }, async () => {
    const spooler = Spooler.open(root);
    const before = await spooler.enqueue({ name: 'echo', args: ['before'], options: { priority: 10 } });
    const unknown = await spooler.enqueue({ name: 'no_such_task', args: ['x', 1], options: { priority: 20, retries: 2 } });
    const after = await spooler.enqueue({ name: 'echo', args: ['after'], options: { priority: 30 } });
    const args = ['--scan-interval', '200ms', '--processes', '0', '--log-level', 'debug'];
    const first = await startServing({ dir: root, imports: ['basic'], records, args: [...args, '--unknown-after', '1h'] });

    // The task after it in execution order ran: the daemon got past the unknown one without claiming it.
    await first.waitForLog((l) => l.msg === 'task processed' && l.id === after.id);
    expect(first.logsWith('task processed').map((l) => l.id).sort()).toEqual([before.id, after.id].sort());
    expect(waiting().filter((f) => f.includes(unknown.id))).toHaveLength(1);
    expect(parseName(waiting().find((f) => f.includes(unknown.id))!)?.attempts).toBe(0);
    const warned = first.logsWith('tasks in this spool have a name this daemon does not run: they wait for a daemon that runs them (dead letters after --unknown-after if none does)');
    expect(warned).toEqual([expect.objectContaining({ level: 'warn', task: 'no_such_task', registered: expect.arrayContaining(['echo']) })]);

    // The status file declares what it runs; spool ls shows the task as waiting for a handler.
    const status = await testSpool.waitForStatus(first, (s) => Array.isArray(s.tasks));
    expect(status.tasks).toEqual(expect.arrayContaining(['echo', 'note', 'skip_me']));
    expect(status.tasks).not.toContain('no_such_task');
    const listed = spool(['ls', '--dir', root, '--json']);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ id: unknown.id, name: 'no_such_task', state: 'due', reason: 'waiting for a handler: no live daemon runs this task' })]);
    expect(spool(['ls', '--dir', root]).stdout).toMatch(/no_such_task.*waiting for a handler/);
    expect(first.logsWith('task is a dead letter: no daemon runs it')).toEqual([]);
    expect(await first.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    // With no daemon live, spool ls cannot know who runs what: no note.
    expect(JSON.parse(spool(['ls', '--dir', root, '--json']).stdout)[0].reason).toBeNull();

    // --unknown-after past its due time: a dead letter, its attempts unchanged (it never ran), its record naming it.
    const second = await startServing({ dir: root, imports: ['basic'], records, args: [...args, '--unknown-after', '1s'] });
    const deadName = await waitFor(() => ls(join(root, 'dead')).find((f) => f.includes(unknown.id)), {
      timeoutMs: 15_000,
      what: 'the unknown task in dead/',
      explain: () => `${describeSpool(root)}\n${second.describe()}`,
    });
    const deadLine = await second.waitForLog((l) => l.msg === 'task is a dead letter: no daemon runs it' && l.id === unknown.id);
    expect(Date.parse(deadLine.time)).toBeGreaterThanOrEqual(parseName(deadName)!.due + 1000);
    expect(parseName(deadName)).toEqual(expect.objectContaining({ id: unknown.id, name: 'no_such_task', attempts: 0 }));
    const record = JSON.parse(readFileSync(join(root, 'state', `${unknown.id}.json`), 'utf8')) as Record<string, any>;
    expect(record).toEqual(expect.objectContaining({ id: unknown.id, name: 'no_such_task', attempts: 0 }));
    expect(record.error.name).toBe('UnknownTaskError');
    expect(record.error.message).toMatch(/^no daemon serving this spool runs task "no_such_task": it waited 1000 ms \(--unknown-after\)/);
    for (const d of [first, second]) {
      expect(d.logsWith('task rescheduled')).toEqual([]);
      expect(d.logs.some((l) => typeof l.error === 'string' && l.error.includes('no task named'))).toBe(false);
    }
    expect(waiting()).toEqual([]);
  });

  it('take no room in the queue window: 200 of them ahead in execution order, behind them known tasks many windows deep all run', { timeout: 60_000 }, async () => {
    const spooler = Spooler.open(root);
    await spooler.enqueueMany(Array.from({ length: 200 }, (_, i) => ({ name: 'no_such_task', args: [i], options: { priority: 1 } })));
    await spooler.enqueueMany(Array.from({ length: 100 }, (_, i) => ({ name: 'echo', args: [`k${i}`], options: { priority: 60 } })));
    const daemon = await startServing({ dir: root, imports: ['basic'], records, args: ['--processes', '0', '--scan-interval', '1s'], env: { SPOOLERD_TEST_QUEUE_WINDOW: '16' } });
    await waitFor(() => readRecords(records).length === 100, { timeoutMs: 30_000, what: '100 echo runs', explain: () => `${readRecords(records).length} runs\n${daemon.describe(10)}` });
    expect(waiting()).toHaveLength(200);
    expect(waiting().every((f) => parseName(f)?.name === 'no_such_task' && parseName(f)?.attempts === 0)).toBe(true);
  });

  it('--tasks narrows what a daemon claims; a --tasks name nothing registers is a start-up error naming it', async () => {
    const bad = startDaemon({ dir: root, imports: ['basic'], args: ['--tasks', 'echo,nope'] });
    expect((await bad.exited).code).toBe(1);
    expect(bad.logs.at(-1)?.msg).toMatch(/^--tasks names "nope", which no --import module registers \(registered: .*echo/);

    const spooler = Spooler.open(root);
    const other = await spooler.enqueue({ name: 'returns_value', args: ['not-here'], options: { priority: 10 } });
    const echo = await spooler.enqueue({ name: 'echo', args: ['here'], options: { priority: 20 } });
    const daemon = await startServing({ dir: root, imports: ['basic'], records, args: ['--tasks', 'echo', '--scan-interval', '200ms', '--log-level', 'debug'] });
    await daemon.waitForLog((l) => l.msg === 'task processed' && l.id === echo.id);
    const status = await testSpool.waitForStatus(daemon, (s) => Array.isArray(s.tasks));
    expect(status.tasks).toEqual(['echo']);
    expect(readRecords(records).map((r) => r.task)).toEqual(['echo']);
    expect(waiting().filter((f) => f.includes(other.id))).toHaveLength(1);
  });
});

describe('two daemons that run different tasks on one spool', () => {
  it('each runs only its own tasks; none is claimed by the other or dead-lettered', { timeout: 60_000 }, async () => {
    const spooler = Spooler.open(root);
    const args = ['--scan-interval', '200ms', '--processes', '0', '--unknown-after', '2s', '--log-level', 'debug'];
    const a = startDaemon({ dir: root, imports: ['basic'], records, args });
    const b = startDaemon({ dir: root, imports: ['block'], records, args });
    await a.waitUntilServing();
    await b.waitUntilServing();
    const echoes = await spooler.enqueueMany(Array.from({ length: 30 }, (_, i) => ({ name: 'echo', args: [`e${i}`] })));
    const quicks = await spooler.enqueueMany(Array.from({ length: 30 }, (_, i) => ({ name: 'quick', args: [`q${i}`, 1] })));
    await waitFor(() => readRecords(records).filter((r) => r.task === 'echo' || r.phase === 'finished').length === 60 && waiting().length === 0 && lsActive(root).length === 0, {
      timeoutMs: 30_000,
      what: '60 runs',
      explain: () => `${describeSpool(root)}\n${a.describe(10)}\n${b.describe(10)}`,
    });
    const runs = readRecords(records);
    expect(new Set(runs.filter((r) => r.task === 'echo').map((r) => r.pid))).toEqual(new Set([a.pid]));
    expect(new Set(runs.filter((r) => r.task === 'quick').map((r) => r.pid))).toEqual(new Set([b.pid]));
    expect(runs.filter((r) => r.task === 'echo')).toHaveLength(echoes.length);
    expect(runs.filter((r) => r.task === 'quick' && r.phase === 'finished')).toHaveLength(quicks.length);
    expect(ls(join(root, 'dead'))).toEqual([]);
    for (const d of [a, b]) expect(d.logsWith('task rescheduled')).toEqual([]);
  });

  it('a daemon leaves a task past --unknown-after to a live peer that declares it, however long it waits there', { timeout: 60_000 }, async () => {
    const spooler = Spooler.open(root);
    const gate = join(dir, 'gate');
    // b runs one task at a time and is kept busy; a does not run `quick` and would dead-letter it after 300 ms.
    const b = await startServing({ dir: root, imports: ['block'], records, args: ['--scan-interval', '200ms', '--processes', '0', '--concurrency', '1'] });
    await spooler.enqueue({ name: 'wait_for_file', args: ['busy', gate] });
    await waitFor(() => readRecords(records).some((r) => r.task === 'wait_for_file'), { what: 'b busy' });
    const quick = await spooler.enqueue({ name: 'quick', args: ['late', 1] });
    const a = await startServing({ dir: root, imports: ['basic'], records, args: ['--scan-interval', '200ms', '--processes', '0', '--unknown-after', '300ms', '--log-level', 'debug'] });
    // a's sweep ran once the task was past its --unknown-after, and left it to b.
    const swept = await a.waitForLog((l) => l.msg === 'swept tasks no daemon here runs' && (l.leftToPeers as number) >= 1, { timeoutMs: 15_000 });
    expect(swept).toEqual(expect.objectContaining({ buried: 0 }));
    expect(Date.parse(swept.time)).toBeGreaterThanOrEqual(quick.due + 300);
    expect(ls(join(root, 'dead'))).toEqual([]);
    writeFileSync(gate, '');
    await waitFor(() => readRecords(records).some((r) => r.task === 'quick' && r.phase === 'finished'), { what: 'b ran quick', explain: () => `${describeSpool(root)}\n${a.describe(10)}\n${b.describe(10)}` });
    expect(readRecords(records).filter((r) => r.task === 'quick').every((r) => r.pid === b.pid)).toBe(true);
    expect(a.logsWith('task is a dead letter: no daemon runs it')).toEqual([]);
    expect(ls(join(root, 'dead'))).toEqual([]);
  });
});
