/**
 * Pause and resume (README, "Pausing tasks"), with real daemons and `spool`:
 * `spool pause --task NAME` stops every daemon from starting that task within
 * a second (judged by the start times the tasks record themselves), tasks
 * running finish, the paused ones are kept (waiting, listed as paused), other
 * names go on, and `spool resume` brings them back at once; names a runner
 * holds ahead unstarted are given back, not started after the pause; a
 * control/pause.json that cannot be used (bad JSON, a symbolic link) pauses
 * every task, logged, until `spool resume` replaces it.
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { spool, spoolAsync } from './helpers/cli.js';
import { describeSpool, ls, readRecords, waitFor, type DaemonProcess, type TaskRecord } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let root: string;
let records: string;
let dir: string;
const testSpool = useDaemonSpool('spoolerd-pause-', { bind: (s) => ({ root, records, dir } = s) });

const runs = (task: string, phase = 'started'): TaskRecord[] => readRecords(records).filter((r) => r.task === task && r.phase === phase);
const keysOf = (rs: TaskRecord[]): string[] => rs.map((r) => String((r.args as unknown[])[0]));
const waitingFiles = (task: string): string[] => [...ls(join(root, 'incoming')), ...ls(join(root, 'pending'))].filter((f) => f.endsWith(`-${task}.msgpack`));
const explain = (...daemons: DaemonProcess[]) => () => `${describeSpool(root)}\n${daemons.map((d) => d.describe(20)).join('\n')}`;

interface LsEntry {
  name: string;
  state: string;
  paused: boolean;
  reason: string | null;
}

describe('spool pause --task', () => {
  it('stops two daemons from starting that task within a second; running ones finish, the rest wait (listed as paused), other tasks go on; resume brings them back at once', async () => {
    const spooler = Spooler.open(root);
    // 8 at a time over both daemons, 250 ms each: without the pause they would go on starting for about 6 s.
    const total = 200;
    await spooler.enqueueMany(Array.from({ length: total }, (_, i) => ({ name: 'paced', args: [`p${i}`, 250] })));
    const daemons = [
      await testSpool.serve({ imports: ['pause', 'basic'], args: ['--concurrency', '4'] }),
      await testSpool.serve({ imports: ['pause', 'basic'], args: ['--concurrency', '4'] }),
    ];
    await waitFor(() => runs('paced').length >= 8 || undefined, { what: 'paced tasks to start', explain: explain(...daemons) });

    const paused = await spoolAsync(['pause', '--dir', root, '--task', 'paced']);
    const pausedAt = Date.now();
    expect(paused, explain(...daemons)()).toEqual({ code: 0, stdout: expect.stringContaining('paused: tasks paced'), stderr: '' });

    // Each daemon applied it, then went on: its status file written after says so, and another task runs.
    for (const d of daemons) {
      await d.waitForLog((l) => l.msg === 'pause applied' && Array.isArray(l.tasks) && (l.tasks as string[]).includes('paced'));
      await testSpool.waitForStatus(d, (s) => s.paused?.tasks.includes('paced') === true, { what: 'a status file that says paced is paused' });
    }
    await spooler.enqueue({ name: 'other', args: ['o1'] });
    await waitFor(() => runs('other', 'ended').length === 1 || undefined, { what: 'the task of another name to run', explain: explain(...daemons) });
    // Tasks that had started finish.
    await waitFor(() => runs('paced', 'ended').length === runs('paced').length || undefined, { what: 'the running paced tasks to end', explain: explain(...daemons) });
    await testSpool.runMarker(daemons[0]!, 0);

    const started = runs('paced');
    const late = started.filter((r) => r.time > pausedAt + 1000);
    expect(late, `paused at ${pausedAt}`).toEqual([]);
    const waiting = total - started.length;
    expect(waiting).toBeGreaterThan(0);
    expect(waitingFiles('paced')).toHaveLength(waiting);

    // Listed as paused: a field in --json, a note and a header line for people; counted in stats.
    const listed = JSON.parse(spool(['ls', '--dir', root, '--json', '--task', 'paced']).stdout) as LsEntry[];
    expect(listed).toHaveLength(waiting);
    for (const e of listed) expect(e).toEqual(expect.objectContaining({ state: 'due', paused: true, reason: expect.stringContaining('paused') }));
    const human = spool(['ls', '--dir', root]).stdout.split('\n');
    expect(human[0]).toBe('paused: tasks paced (spool resume --task NAME to go on)');
    const stats = JSON.parse(spool(['stats', '--dir', root, '--json']).stdout) as { paused: unknown };
    expect(stats.paused).toEqual({ all: false, tasks: ['paced'], schedules: [], waiting, problem: null });
    expect(spool(['stats', '--dir', root]).stdout).toContain(`paused: tasks paced (spool resume --task NAME to go on); ${waiting} waiting task(s) held back`);

    const resumed = await spoolAsync(['resume', '--dir', root, '--task', 'paced']);
    const resumedAt = Date.now();
    expect(resumed.code, resumed.stderr).toBe(0);
    await waitFor(() => runs('paced').length >= total || undefined, { what: 'every paced task to run after the resume', explain: explain(...daemons) });
    const after = runs('paced').filter((r) => r.time >= resumedAt - 5);
    // At once: the first start after the resume within about the poll interval and a listing, not a scan interval.
    expect(Math.min(...after.map((r) => r.time)) - resumedAt).toBeLessThan(2000);
    // Each ran once: none lost, none doubled by being given back and queued again.
    expect(keysOf(runs('paced')).sort()).toEqual(Array.from({ length: total }, (_, i) => `p${i}`).sort());
    for (const d of daemons) await d.waitForLog((l) => l.msg === 'pause applied' && Array.isArray(l.tasks) && (l.tasks as string[]).length === 0);
  });

  it('gives back the names a runner holds ahead and has not started: none of them starts after the pause', async () => {
    const spooler = Spooler.open(root);
    const gate = join(dir, 'gate');
    // Short tasks first, so that the daemon gives its runner names ahead of its one slot; then one that holds the
    // slot while the runner holds the quick names behind it, unstarted.
    await spooler.enqueueMany(Array.from({ length: 300 }, (_, i) => ({ name: 'quick', args: [`a${i}`], options: { priority: 10 } })));
    await spooler.enqueue({ name: 'gated', args: ['g', gate], options: { priority: 20 } });
    await spooler.enqueueMany(Array.from({ length: 300 }, (_, i) => ({ name: 'quick', args: [`b${i}`], options: { priority: 30 } })));
    const daemon = await testSpool.serve({ imports: ['pause', 'basic'], args: ['--concurrency', '1', '--processes', '1'] });
    await waitFor(() => runs('gated').length === 1 || undefined, { what: 'the gated task to start', explain: explain(daemon) });
    const gatedAt = runs('gated')[0]!.time;

    expect((await spoolAsync(['pause', '--dir', root, '--task', 'quick'])).code).toBe(0);
    await daemon.waitForLog((l) => l.msg === 'pause applied' && (l.tasks as string[]).includes('quick'));
    await testSpool.waitForStatus(daemon, (s) => s.paused?.tasks.includes('quick') === true);
    writeFileSync(gate, '');
    await waitFor(() => runs('gated', 'ended').length === 1 || undefined, { what: 'the gated task to end', explain: explain(daemon) });
    // The one slot's next task: after the names the runner held, had it kept them.
    await testSpool.runMarker(daemon, 0);

    expect(runs('quick').filter((r) => r.time > gatedAt).map((r) => (r.args as unknown[])[0])).toEqual([]);
    const waiting = waitingFiles('quick').length;
    expect(waiting).toBe(600 - runs('quick').length);
    expect(waiting).toBeGreaterThan(0);

    expect((await spoolAsync(['resume', '--dir', root])).code).toBe(0);
    await waitFor(() => runs('quick').length >= 600 || undefined, { what: 'every quick task to run after the resume', explain: explain(daemon) });
    const keys = keysOf(runs('quick'));
    expect(new Set(keys).size).toBe(600);
    expect(keys).toHaveLength(600);
  });
});

describe('spool pause (every task)', () => {
  it.each([['--processes', '0'], ['--processes', '1']])('with %s %s, nothing starts until spool resume; a task that was running finishes', async (...processes) => {
    const spooler = Spooler.open(root);
    const gate = join(dir, 'gate');
    await spooler.enqueue({ name: 'gated', args: ['g', gate] });
    const daemon = await testSpool.serve({ imports: ['pause', 'basic'], args: ['--concurrency', '2', ...processes] });
    await waitFor(() => runs('gated').length === 1 || undefined, { what: 'the gated task to start', explain: explain(daemon) });

    const r = spool(['pause', '--dir', root]);
    expect(r).toEqual({ code: 0, stdout: expect.stringContaining('paused: every task'), stderr: '' });
    const pausedAt = Date.now();
    await daemon.waitForLog((l) => l.msg === 'pause applied' && l.all === true);
    await spooler.enqueueMany([{ name: 'other', args: ['o1'] }, { name: 'quick', args: ['q1'] }]);
    // The daemon has both queued, due, and gives neither out.
    await testSpool.waitForStatus(daemon, (s) => s.paused?.all === true && s.queue.ready === 2, { what: 'a status file with both tasks waiting, paused' });
    writeFileSync(gate, '');
    await waitFor(() => runs('gated', 'ended').length === 1 || undefined, { what: 'the running task to finish', explain: explain(daemon) });
    await testSpool.waitForStatus(daemon, (s) => s.paused?.all === true && s.queue.ready === 2 && s.running.length === 0);
    expect(runs('other')).toEqual([]);
    expect(runs('quick')).toEqual([]);
    expect(spool(['ls', '--dir', root]).stdout.split('\n')[0]).toBe('paused: every task (spool resume to go on)');

    expect(spool(['resume', '--dir', root]).stdout).toBe('nothing is paused now\n');
    await waitFor(() => (runs('other').length === 1 && runs('quick').length === 1) || undefined, { what: 'both tasks to run after the resume', explain: explain(daemon) });
    expect(Math.min(runs('other')[0]!.time, runs('quick')[0]!.time)).toBeGreaterThan(pausedAt);
  });
});

describe('pauses that change', () => {
  it('a task paused by name, then with everything, starts at once when everything is resumed (not at the next scan)', async () => {
    const spooler = Spooler.open(root);
    expect(spool(['pause', '--dir', root, '--task', 'quick']).code).toBe(0);
    await spooler.enqueueMany(Array.from({ length: 5 }, (_, i) => ({ name: 'quick', args: [`q${i}`] })));
    const daemon = await testSpool.serve({ imports: ['pause', 'basic'], args: ['--processes', '0', '--scan-interval', '60s'] });
    await daemon.waitForLog((l) => l.msg === 'pause applied' && (l.tasks as string[]).includes('quick'));
    await testSpool.runMarker(daemon, 0);
    expect(runs('quick')).toEqual([]);

    expect(spool(['pause', '--dir', root]).code).toBe(0);
    await daemon.waitForLog((l) => l.msg === 'pause applied' && l.all === true);
    await testSpool.waitForStatus(daemon, (s) => s.paused?.all === true);
    expect(spool(['resume', '--dir', root]).code).toBe(0);
    const resumedAt = Date.now();
    await waitFor(() => runs('quick').length === 5 || undefined, { what: 'the quick tasks to run after the resume', explain: explain(daemon) });
    expect(Math.max(...runs('quick').map((r) => r.time)) - resumedAt).toBeLessThan(2000);
  });
});

describe('a control/pause.json that cannot be used', () => {
  it.each([
    ['not JSON', (path: string) => writeFileSync(path, '{"version":1,"all":fals'), 'is not JSON'],
    [
      'a symbolic link (to a file that pauses nothing)',
      (path: string) => {
        const target = join(dir, 'nothing-paused.json');
        writeFileSync(target, '{"version":1,"all":false,"tasks":[],"schedules":[]}');
        symlinkSync(target, path);
      },
      'is a symbolic link',
    ],
  ])('(%s) pauses every task, logged, until spool resume replaces it; spool pause refuses it, spool ls says so', async (_what, make, problem) => {
    mkdirSync(root, { recursive: true });
    const spooler = Spooler.open(root);
    make(join(root, 'control', 'pause.json'));
    await spooler.enqueue({ name: 'other', args: ['o1'] });
    const daemon = await testSpool.serve({ imports: ['pause', 'basic'], args: ['--processes', '0'] });
    const error = await daemon.waitForLog((l) => l.msg === 'cannot use control/pause.json; every task stays paused until it is fixed (schedules go on)');
    expect(error).toEqual(expect.objectContaining({ level: 'error', err: expect.stringContaining(problem) }));
    expect(error.err).toContain('spool resume');
    await daemon.waitForLog((l) => l.msg === 'pause applied' && l.all === true);
    await testSpool.waitForStatus(daemon, (s) => s.paused?.all === true && s.paused.problem !== undefined && s.queue.ready === 1, { what: 'a status file with the task waiting, paused' });
    expect(runs('other')).toEqual([]);

    // spool: a clear error where it must read the file, a plain statement where it lists.
    const refused = spool(['pause', '--dir', root, '--task', 'other']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`^spool: .*control/pause\\.json ${problem}.*spool resume`));
    expect(spool(['ls', '--dir', root]).stdout.split('\n')[0]).toMatch(new RegExp(`^paused: every task, because .*${problem}`));
    const stats = JSON.parse(spool(['stats', '--dir', root, '--json']).stdout) as { paused: { all: boolean; problem: string } };
    expect(stats.paused).toEqual(expect.objectContaining({ all: true, waiting: 1, problem: expect.stringContaining(problem) }));

    expect(spool(['resume', '--dir', root])).toEqual({ code: 0, stdout: 'nothing is paused now\n', stderr: '' });
    await waitFor(() => runs('other').length === 1 || undefined, { what: 'the task to run once the file is replaced', explain: explain(daemon) });
    // Logged before the task ran, but read from the daemon's stderr pipe, which may lag the task's own record.
    await daemon.waitForLog((l) => l.msg === 'control/pause.json can be used again');
    expect(daemon.logsWith('control/pause.json can be used again')).toHaveLength(1);
  });
});
