/**
 * Concurrency and rate limits across real daemons (README, "Concurrency and
 * rate limits"; SPOOL-FORMAT.md, "Concurrency and rate limits"). The tasks
 * (test/fixtures/tasks/limits.mjs) measure their own concurrency: each counts
 * the runs of its scope under way, in any daemon, when it starts.
 */
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { describeSpool, readRecords, waitFor, type DaemonProcess, type TaskRecord } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';
import { spool as runSpool } from './helpers/cli.js';

const spool = useDaemonSpool('spoolerd-limits-');
const env = () => ({ LIMITS_TEST_RUNNING: join(spool.dir, 'running') });
const records = (task: string, phase = 'started'): TaskRecord[] => readRecords(spool.records).filter((r) => r.task === task && r.phase === phase);
const explain = (daemons: DaemonProcess[]) => () => `${describeSpool(spool.root)}\n${daemons.map((d) => d.describe(15)).join('\n')}`;

describe('concurrency per key', () => {
  it('never runs more than 2 of a key at once over three daemons, while 1,000 tasks over 10 keys run', async () => {
    const spooler = Spooler.open(spool.root);
    const keys = Array.from({ length: 10 }, (_, i) => `customer-${i}`);
    await spooler.enqueueMany(Array.from({ length: 1000 }, (_, i) => ({ name: 'keyed', args: [keys[i % 10]!, i, 2] })));
    const daemons = await Promise.all([0, 1, 2].map(() => spool.serve({ imports: ['limits'], env: env(), args: ['--processes', '1', '--concurrency', '16'] })));
    await waitFor(() => records('keyed', 'finished').length >= 1000, { timeoutMs: 120_000, what: 'all 1,000 keyed tasks to finish', explain: explain(daemons) });

    const started = records('keyed');
    expect(new Set(started.map((r) => r.id)).size).toBe(1000);
    const most = new Map<string, number>();
    for (const r of started) {
      const key = (r.args as unknown[])[0] as string;
      most.set(key, Math.max(most.get(key) ?? 0, r.running as number));
    }
    // Never more than 2 of one key at once, as the tasks themselves saw it...
    expect([...most.values()].every((n) => n <= 2)).toBe(true);
    // ...and the limit is 2, not 1: some key did run two at once.
    expect([...most.values()].some((n) => n === 2)).toBe(true);
    // Each daemon ran some of them.
    expect(new Set(started.map((r) => r.pid)).size).toBe(3);
    // Nothing left behind: no slot is held once everything ran (each runner's hold file stays while it serves).
    await waitFor(() => readdirSync(join(spool.root, 'limits')).every((n) => n.startsWith('hold~')), { what: 'no slot left in limits/', explain: () => readdirSync(join(spool.root, 'limits')).join('\n') });
  }, 150_000);
});

describe('concurrency per task name', () => {
  it('overlap: false runs one at a time, concurrency: 3 at most three, over two daemons', async () => {
    const spooler = Spooler.open(spool.root);
    await spooler.enqueueMany([
      ...Array.from({ length: 30 }, (_, i) => ({ name: 'solo', args: [i, 5] })),
      ...Array.from({ length: 60 }, (_, i) => ({ name: 'trio', args: [i, 5] })),
    ]);
    const daemons = await Promise.all([0, 1].map(() => spool.serve({ imports: ['limits'], env: env(), args: ['--concurrency', '8'] })));
    await waitFor(() => records('solo', 'finished').length >= 30 && records('trio', 'finished').length >= 60, { timeoutMs: 60_000, what: 'every solo and trio task to finish', explain: explain(daemons) });
    const solo = records('solo').map((r) => r.running as number);
    const trio = records('trio').map((r) => r.running as number);
    expect(Math.max(...solo)).toBe(1);
    expect(Math.max(...trio)).toBeLessThanOrEqual(3);
    expect(Math.max(...trio)).toBeGreaterThan(1);
  }, 90_000);

  it('a task held back by its limit does not block a different task behind it', async () => {
    const spooler = Spooler.open(spool.root);
    const gate = join(spool.dir, 'let-solo-go');
    // Three solo tasks first (priority 0): the first waits for the gate file, the others wait for it.
    await spooler.enqueueMany(Array.from({ length: 3 }, (_, i) => ({ name: 'solo', args: [i, 0, gate], options: { priority: 0 } })));
    const daemon = await spool.serve({ imports: ['limits'], env: env(), args: ['--concurrency', '2', '--log-level', 'debug'] });
    await waitFor(() => records('solo').length === 1, { what: 'the first solo task to start', explain: explain([daemon]) });
    await daemon.waitForLog((l) => l.msg === 'task waits for a concurrency slot');
    // Its status file says how many wait, by scope.
    await spool.waitForStatus(daemon, (st) => st.limits?.parked['c~solo'] === 2, { what: 'the status file to show 2 solo tasks parked' });
    // spool ls notes them (from the status files; no body read for it).
    const listed = runSpool(['ls', '--dir', spool.root, '--state', 'due']);
    expect(listed.code).toBe(0);
    expect(listed.stdout.split('\n').filter((l) => l.includes('solo') && l.includes('waits for a concurrency slot of its task'))).toHaveLength(2);
    // Behind the held-back solo tasks (worse priority): runs while the first solo task still runs.
    await spooler.enqueue({ name: 'unlimited', args: ['behind'], options: { priority: 90 } });
    await waitFor(() => records('unlimited').length === 1, { what: 'the unlimited task behind the held-back ones to run', explain: explain([daemon]) });
    expect(records('solo', 'finished')).toHaveLength(0);
    expect(records('solo')).toHaveLength(1);
    writeFileSync(gate, '');
    await waitFor(() => records('solo', 'finished').length === 3, { what: 'the solo tasks to run one by one', explain: explain([daemon]) });
    expect(Math.max(...records('solo').map((r) => r.running as number))).toBe(1);
  }, 60_000);
});

describe('a daemon that dies holding slots', () => {
  it('kill -9: its slots are freed by the reclaim after the stale window, and the next task of that key runs then', async () => {
    const spooler = Spooler.open(spool.root);
    const never = join(spool.dir, 'never');
    const first = await spooler.enqueue({ name: 'hold_key', args: ['acme', 1, never], options: { priority: 0 } });
    const a = await spool.serve({ imports: ['limits'], env: env(), args: ['--processes', '1', '--stale-after', '2s'] });
    await waitFor(() => records('hold_key').length === 1, { what: 'A to start the first task of key acme', explain: explain([a]) });
    const b = await spool.serve({ imports: ['limits'], env: env(), args: ['--stale-after', '2s', '--scan-interval', '500ms', '--log-level', 'debug'] });
    const second = await spooler.enqueue({ name: 'hold_key', args: ['acme', 2, ''], options: { priority: 10 } });
    // B holds the second task back: the key's one slot is A's.
    await b.waitForLog((l) => l.msg === 'task waits for a concurrency slot' && typeof l.scope === 'string' && (l.scope as string).startsWith('k~hold_key~'));
    const aOwner = a.owner;
    await a.kill9();
    const lockRefreshedAt = statSync(join(spool.root, 'locks', `owner-${aOwner}.lock`)).mtimeMs;
    const freed = await b.waitForLog((l) => l.msg === 'freed the concurrency slots of a daemon that died', { timeoutMs: 20_000 });
    expect(freed).toEqual(expect.objectContaining({ owner: aOwner, slots: 1 }));
    await waitFor(() => records('hold_key', 'finished').length === 2, { timeoutMs: 20_000, what: 'B to run both tasks of key acme', explain: explain([b]) });
    const runs = records('hold_key');
    const secondRun = runs.find((r) => r.id === second.id)!;
    expect(secondRun.pid).toBe(b.pid);
    // Not before A's slot could be taken for dead.
    expect(secondRun.time).toBeGreaterThanOrEqual(lockRefreshedAt + 2000);
    // The first task ran again in B (reclaimed, attempt counted); never two of the key at once.
    expect(runs.filter((r) => r.id === first.id).map((r) => r.attempt)).toEqual([0, 1]);
    expect(Math.max(...runs.filter((r) => r.pid === b.pid).map((r) => r.running as number))).toBe(1);
    // Nothing of A is left in limits/.
    expect(readdirSync(join(spool.root, 'limits')).filter((n) => n.includes(aOwner))).toEqual([]);
  }, 60_000);
});

describe('a daemon that stalls holding slots', () => {
  it('SIGSTOP past the stale window: the reclaim frees its slot, and once it resumes it does not free the slot another daemon took', async () => {
    const spooler = Spooler.open(spool.root);
    const gate1 = join(spool.dir, 'gate1');
    const gate2 = join(spool.dir, 'gate2');
    const first = await spooler.enqueue({ name: 'hold_key', args: ['acme', 1, gate1], options: { priority: 0 } });
    // Tasks on A's own thread: SIGSTOP freezes them with it.
    const a = await spool.serve({ imports: ['limits'], env: env(), args: ['--stale-after', '2s', '--processes', '0'] });
    await waitFor(() => records('hold_key').length === 1, { what: 'A to start the first task of key acme', explain: explain([a]) });
    const aOwner = a.owner;
    a.signal('SIGSTOP');
    let b: DaemonProcess | undefined;
    try {
      b = await spool.serve({ imports: ['limits'], env: env(), args: ['--stale-after', '2s', '--scan-interval', '500ms'] });
      // B takes A for dead: A's slot is freed and its task comes back (attempt 1, which does not wait).
      await b.waitForLog((l) => l.msg === 'freed the concurrency slots of a daemon that died' && l.owner === aOwner, { timeoutMs: 20_000 });
      await waitFor(() => records('hold_key', 'finished').some((r) => r.id === first.id && r.pid === b!.pid), { what: 'B to run the reclaimed first task', explain: explain([b]) });
      // B's second task of key acme holds the key's one slot until gate2 exists.
      await spooler.enqueue({ name: 'hold_key', args: ['acme', 2, gate2], options: { priority: 0 } });
      await waitFor(() => records('hold_key').some((r) => (r.args as unknown[])[1] === 2), { what: 'B to start the second task', explain: explain([b]) });
    } finally {
      a.signal('SIGCONT');
    }
    const slots = () => readdirSync(join(spool.root, 'limits')).filter((n) => n.startsWith('k~hold_key~'));
    // B's runners' hold files (one per worker process): its slots are links to one of them.
    const bHolds = () => readdirSync(join(spool.root, 'limits')).filter((n) => n.startsWith(`hold~${b!.owner}~`)).map((n) => statSync(join(spool.root, 'limits', n)).ino);
    // A resumes and its frozen run ends (gate1): its claimed file is gone (reclaimed), so its outcome is ignored, and it frees nothing.
    writeFileSync(gate1, '');
    // Whichever A notices first: the file gone when it settles, or its claim directory gone (then it rejoins and ignores the outcome).
    const endedUnowned = (m: string) => m.startsWith('the claim was taken over before the task finished') || m.startsWith('a task whose claim was lost has ended; its outcome is ignored');
    await a.waitForLog((l) => endedUnowned(l.msg), { timeoutMs: 20_000 });
    expect(slots()).toHaveLength(1);
    expect(bHolds()).toContain(statSync(join(spool.root, 'limits', slots()[0]!)).ino);
    // A third task of the key waits for the second to end.
    await spooler.enqueue({ name: 'hold_key', args: ['acme', 3, ''], options: { priority: 0 } });
    writeFileSync(gate2, '');
    await waitFor(() => records('hold_key', 'finished').some((r) => (r.args as unknown[])[1] === 3), { what: 'the third task to run', explain: explain([a, b!]) });
    const secondEnd = records('hold_key', 'finished').find((r) => (r.args as unknown[])[1] === 2)!.time;
    const thirdStart = records('hold_key').find((r) => (r.args as unknown[])[1] === 3)!.time;
    expect(thirdStart).toBeGreaterThanOrEqual(secondEnd);
  }, 60_000);
});

describe('rate limits', () => {
  it('holds a rate of 5 per second across two daemons', async () => {
    const spooler = Spooler.open(spool.root);
    await spooler.enqueueMany(Array.from({ length: 30 }, (_, i) => ({ name: 'rated', args: [i] })));
    const daemons = await Promise.all([0, 1].map(() => spool.serve({ imports: ['limits'], env: env(), args: ['--concurrency', '8'] })));
    await waitFor(() => records('rated').length >= 30, { timeoutMs: 30_000, what: 'the 30 rated tasks to run', explain: explain(daemons) });
    const times = records('rated').map((r) => r.time).sort((x, y) => x - y);
    expect(times).toHaveLength(30);
    // Both daemons took tokens.
    expect(new Set(records('rated').map((r) => r.pid)).size).toBe(2);
    // 30 starts at 5 a window need 6 windows: at least 5 window edges between the first start and the last.
    expect(times[29]! - times[0]!).toBeGreaterThan(4000);
    // Fixed windows allow a burst of 2 × max across an edge, never more in any second.
    for (let i = 0; i < times.length; i++) {
      const inSecond = times.filter((t) => t >= times[i]! && t < times[i]! + 1000).length;
      expect(inSecond).toBeLessThanOrEqual(10);
    }
  }, 60_000);
});
