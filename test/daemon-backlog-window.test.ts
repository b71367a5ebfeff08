/**
 * A backlog many times larger than the daemon's queue window
 * (spooler/order/task-queue.ts) is drained completely and in order: the
 * window is made small through the test knob SPOOLERD_TEST_QUEUE_WINDOW, so
 * a few thousand tasks need dozens of refills from the listings. Due tasks run
 * in file-name order (priority, due time, enqueue order) across refills and
 * across incoming/ and pending/, a better priority enqueued mid-drain still
 * overtakes what was queued before it, and postponed tasks left on disk run,
 * never early.
 */
import { readdirSync, readFileSync, readlinkSync, renameSync, statSync, statfsSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spooler, type TaskRequest } from '../runtime/index.js';
import { tempDir } from './helpers/cli.js';
import { describeSpool, killLeftoverDaemons, lsActive, readRecords, startServing, waitFor, type DaemonProcess } from './helpers/daemon.js';

let dir: string;
let cleanup: () => void;
let root: string;
let records: string;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('spoolerd-window-'));
  root = join(dir, 'spool');
  records = join(dir, 'records.jsonl');
});
afterEach(async () => {
  await killLeftoverDaemons();
  cleanup();
});

const WINDOW = 40;
const TMPFS_MAGIC = 0x01021994;
const echoes = () => readRecords(records).filter((r) => r.task === 'echo');
const labels = () => echoes().map((r) => (r.args as unknown[])[0] as string);

async function waitForRuns(n: number, daemon: DaemonProcess, timeoutMs = 60_000): Promise<string[]> {
  return waitFor(() => labels().length >= n && labels(), {
    timeoutMs,
    what: `${n} runs`,
    explain: () => `${labels().length} runs\n${describeSpool(root)}\n${daemon.describe()}`,
  });
}

describe('a backlog larger than the queue window', () => {
  it('is drained completely, due tasks in order across refills, postponed ones on time', async () => {
    const spooler = Spooler.open(root);
    const now = Date.now();
    const requests: TaskRequest[] = [];
    // 1,500 due tasks over nine priorities and three due times, enqueued in a scrambled order.
    for (let i = 0; i < 1500; i++) {
      const priority = 10 + ((i * 7) % 9) * 10;
      const due = new Date(now - 3000 + ((i * 13) % 3) * 1000);
      requests.push({ name: 'echo', args: [`due-${i}`], options: { priority, postpone: due } });
    }
    // 100 postponed ones, due after the drain of the due ones has begun.
    const postponedBy = 2500;
    for (let i = 0; i < 100; i++) requests.push({ name: 'echo', args: [`later-${i}`], options: { priority: 5, postpone: new Date(now + postponedBy + i * 10) } });
    const handles = await spooler.enqueueMany(requests);
    // A third of the due ones wait in pending/, as a daemon leaves retried tasks: the window merges both folders.
    for (let i = 0; i < 1500; i += 3) renameSync(handles[i]!.path, join(root, 'pending', handles[i]!.fileName));
    const order = new Map(handles.map((h, i) => [String((requests[i]!.args as unknown[])[0]), h.fileName]));

    const daemon = await startServing({ dir: root, imports: ['basic'], records, args: ['--concurrency', '1'], env: { SPOOLERD_TEST_QUEUE_WINDOW: String(WINDOW) } });
    const ran = await waitForRuns(1600, daemon);
    await waitFor(() => lsActive(root).length === 0, { what: 'the last task to finish' });
    expect(labels()).toHaveLength(1600);
    expect(new Set(ran).size).toBe(1600);

    // The due tasks ran in file-name order exactly, window after window (the postponed ones, of a better
    // priority, cut in between once due).
    const names = ran.filter((l) => l.startsWith('due-')).map((l) => order.get(l)!);
    expect(names).toHaveLength(1500);
    expect(names).toEqual([...names].sort());
    // Postponed tasks: every one ran, none before its due time.
    for (const r of echoes()) {
      const label = String((r.args as unknown[])[0]);
      if (!label.startsWith('later-')) continue;
      const due = now + postponedBy + Number(label.slice(6)) * 10;
      expect(r.time as number).toBeGreaterThanOrEqual(due);
    }
  }, 90_000);

  it('runs a task of better priority enqueued mid-drain before the rest of the backlog', async () => {
    const spooler = Spooler.open(root);
    // Tasks of 5 ms each, one at a time: ~5 s of backlog, many windows deep.
    const requests = Array.from({ length: 1000 }, (_, i) => ({ name: 'async_echo', args: [`p50-${i}`], options: { priority: 50 } }));
    await spooler.enqueueMany(requests);
    const daemon = await startServing({ dir: root, imports: ['basic'], records, args: ['--concurrency', '1'], env: { SPOOLERD_TEST_QUEUE_WINDOW: String(WINDOW) } });
    const runs = () => readRecords(records).filter((r) => r.task === 'async_echo').map((r) => (r.args as unknown[])[0] as string);
    await waitFor(() => runs().length >= 100, { what: '100 runs', explain: () => daemon.describe() });
    await spooler.enqueue({ name: 'async_echo', args: ['urgent'], options: { priority: 0 } });
    const ran = await waitFor(() => runs().length >= 1001 && runs(), { timeoutMs: 60_000, what: '1001 runs', explain: () => `${runs().length}\n${daemon.describe()}` });
    expect(new Set(ran).size).toBe(1001);
    // It overtook what still waited when it came: far from last, whatever the window held then.
    const after = ran.length - ran.indexOf('urgent') - 1;
    expect(after).toBeGreaterThan(300);
  }, 90_000);
});

describe('a drained incoming/', () => {
  /** 4,000 due tasks: incoming/ grows past the size worth recreating (ext4; tmpfs shrinks its own). */
  async function drainBig(args: string[]): Promise<{ daemon: DaemonProcess; grownIno: number }> {
    const spooler = Spooler.open(root);
    await spooler.enqueueMany(Array.from({ length: 4000 }, (_, i) => ({ name: 'echo', args: [`t-${i}`] })));
    const grownIno = statSync(join(root, 'incoming')).ino;
    const daemon = await startServing({ dir: root, imports: ['basic'], records, args });
    await waitForRuns(4000, daemon);
    return { daemon, grownIno };
  }

  it('is recreated empty, and the watch follows the new folder', async () => {
    if (statfsSync(dir).type === TMPFS_MAGIC) return console.log('skipped: the test folder is on tmpfs, which shrinks a drained directory itself');
    const { daemon, grownIno } = await drainBig(['--scan-interval', '1s']);
    await daemon.waitForLog((l) => l.msg === 'incoming/ had drained: recreated it empty, so that listing it is cheap again', { timeoutMs: 20_000 });
    const now = statSync(join(root, 'incoming'));
    expect(now.ino).not.toBe(grownIno);
    expect(now.size).toBeLessThan(64 * 1024);
    // The daemon's inotify watch is on the new folder, no longer on the old one (the kernel's own account of it).
    await waitFor(() => watchedInodes(daemon.pid).has(now.ino), { what: 'an inotify watch on the new incoming/', explain: () => `${[...watchedInodes(daemon.pid)]}` });
    expect(watchedInodes(daemon.pid).has(grownIno)).toBe(false);
    await Spooler.open(root).enqueue({ name: 'echo', args: ['after'] });
    await waitFor(() => labels().includes('after'), { what: 'the task enqueued after the swap to run' });
    expect(daemon.logs.filter((l) => l.level === 'error')).toEqual([]);
  }, 90_000);

  it('is taken by the next folder check as the daemon\'s own folder: it goes on serving', async () => {
    if (statfsSync(dir).type === TMPFS_MAGIC) return console.log('skipped: the test folder is on tmpfs, which shrinks a drained directory itself');
    const { daemon } = await drainBig(['--scan-interval', '200ms']);
    await daemon.waitForLog((l) => l.msg === 'incoming/ had drained: recreated it empty, so that listing it is cheap again', { timeoutMs: 20_000 });
    // A claim directory that is a link: the scan reports it only after it has checked every folder, the new incoming/ too.
    symlinkSync(dir, join(root, 'active', 'evil-1-abcdef'));
    await daemon.waitForLog((l) => l.msg === 'not a claim directory spoolerd can trust; its files are not reclaimed');
    await Spooler.open(root).enqueue({ name: 'echo', args: ['after'] });
    await waitFor(() => labels().includes('after'), { what: 'the task enqueued after the swap to run' });
    expect(daemon.logs.some((l) => l.msg.startsWith('a spool folder was replaced'))).toBe(false);
  }, 90_000);
});

/** The inodes a process watches through inotify (from /proc/<pid>/fdinfo: "inotify wd:1 ino:<hex> …"). */
function watchedInodes(pid: number): Set<number> {
  const out = new Set<number>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    if (target !== 'anon_inode:inotify') continue;
    for (const m of readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').matchAll(/^inotify wd:\S+ ino:([0-9a-f]+)/gm)) out.add(parseInt(m[1]!, 16));
  }
  return out;
}
