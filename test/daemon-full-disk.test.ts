/**
 * A full disk (issue 12, point 4; SPOOL-FORMAT.md, "Failed moves"): a move the
 * daemon cannot make (a dead letter whose failure record cannot be written, a
 * quarantine whose reason cannot be written, an archive or claim into a
 * directory that needs a block the filesystem does not have) is tried again
 * with a backoff, and goes through once space is back, without a restart.
 * No staged record file is left behind. Real filesystems: a 2 MiB tmpfs and a loop-mounted
 * ext4 image (root only; skipped with the reason printed elsewhere).
 */
import { closeSync, openSync, statSync, unlinkSync, readdirSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BatchNotEnqueuedError, Spooler } from '../runtime/index.js';
import { lsRecords, readRecords, sleep, startServing, waitFor, type DaemonProcess } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';
import { fillDisk, mountExt4, mountSkipReason, mountTmpfs, type Mounted } from './helpers/mounts.js';

let records: string;
let mounted: Mounted | undefined;
useDaemonSpool('spoolerd-full-', {
  bind: (s) => ({ records } = s),
  // The tests' spools live on a filesystem mounted for the test: off once its daemons are gone.
  afterDaemons: () => {
    mounted?.unmount();
    mounted = undefined;
  },
});

const ARGS = ['--archive', '--settle', '200ms', '--scan-interval', '500ms', '--log-level', 'debug'];
/** Tasks are due this long after they are enqueued: time to fill the disk first. */
const DUE_IN_MS = 3000;

const ls = (path: string): string[] => readdirSync(path).sort();
/** Staged record files left behind (records are staged beside their target, or in tmp/). */
const recordLeftovers = (root: string): string[] =>
  ['tmp', 'state', 'quarantine'].flatMap((d) => ls(join(root, d)).filter((n) => n.startsWith('.record-')).map((n) => `${d}/${n}`));
/**
 * No staged record stays behind. A running daemon stages its status file in
 * state/ the same way (.record-*, renamed within microseconds), so a staged name
 * seen once may be that one: it must be gone soon after. A leftover of a failed
 * write would stay for the sweep's hour.
 */
const noRecordLeftovers = (root: string): Promise<boolean> =>
  waitFor(() => recordLeftovers(root).length === 0, { what: 'no staged .record-* file left behind', timeoutMs: 5_000, explain: () => recordLeftovers(root).join('\n') });

/** A task file with a valid name (due in DUE_IN_MS) whose body is not MessagePack, written long ago. */
function dropMalformedTask(root: string): string {
  const now = Date.now();
  const due = String(now + DUE_IN_MS);
  const name = `50-${due}-${String(now)}0123456789abcdef-a0-echo.msgpack`;
  const staged = join(root, 'tmp', name);
  writeFileSync(staged, Buffer.from([0xc1, 0xc1, 0xc1]));
  utimesSync(staged, new Date(now - 60_000), new Date(now - 60_000));
  renameSync(staged, join(root, 'incoming', name));
  return name;
}

/** An empty file with a bad name, in incoming/, settled long ago (an empty file needs no data block). */
function dropBadName(root: string, name: string): void {
  const path = join(root, 'incoming', name);
  closeSync(openSync(path, 'wx'));
  const past = new Date(Date.now() - 60_000);
  utimesSync(path, past, past);
}

function errorsMatching(d: DaemonProcess, re: RegExp): number {
  return d.logs.filter((l) => l.level === 'error' && re.test(l.msg)).length;
}

describe.skipIf(mountSkipReason !== undefined)('a full disk: failed moves are retried until they succeed, without a restart', () => {
  it('tmpfs (2 MiB): dead letters and quarantines wait for space, then go through; no staged .record-* file left', async () => {
    mounted = mountTmpfs(2);
    const root = join(mounted.path, 'spool');
    const spooler = Spooler.open(root);
    const d = await startServing({ dir: root, imports: ['retry', 'basic'], records, args: ARGS });

    const enqueuedAt = Date.now();
    const dying = await spooler.enqueueMany(['d1', 'd2', 'd3'].map((k) => ({ name: 'always_fails', args: [k], options: { retries: 0, postpone: DUE_IN_MS } })));
    const malformed = dropMalformedTask(root);
    const disk = fillDisk(mounted.path);
    const badNames = ['not-a-task.txt', 'x'.repeat(255)];
    for (const n of badNames) dropBadName(root, n);
    // The tasks must fall due on a full disk for this test to mean anything.
    expect(Date.now() - enqueuedAt, 'filling the disk took longer than the tasks had before they were due').toBeLessThan(DUE_IN_MS);

    // Every dead letter and every quarantine fails while the disk is full.
    await waitFor(() => errorsMatching(d, /dead\//) >= 3 && errorsMatching(d, /quarantine/) >= 3, {
      what: '3 failed dead letters and 3 failed quarantines',
      explain: () => d.describe(10),
    });
    await noRecordLeftovers(root);
    // The dead letters stay claimed meanwhile (nothing runs them again), the malformed file too.
    expect(ls(join(root, 'active', d.owner))).toHaveLength(4);
    expect(ls(join(root, 'dead'))).toEqual([]);
    expect(ls(join(root, 'quarantine'))).toEqual([]);
    // Let the retries fail at least once more before space comes back.
    const failuresBefore = d.logs.filter((l) => /^still cannot/.test(l.msg)).length;
    await d.waitForLog((l) => /^still cannot/.test(l.msg), { from: d.logs.length, what: 'a retry that failed again' });
    await noRecordLeftovers(root);
    expect(failuresBefore).toBeGreaterThanOrEqual(0);

    disk.free();
    await waitFor(() => d.logsWith('task is a dead letter: out of retries').length === 3 && d.logsWith('quarantined a file that is not a valid task').length === 3, {
      what: 'the 3 dead letters and 3 quarantines to go through once space is back',
      timeoutMs: 40_000,
      explain: () => d.describe(10),
    });
    expect(d.logsWith('serving spool')).toHaveLength(1);
    expect(d.exit).toBeUndefined();
    expect(ls(join(root, 'dead'))).toHaveLength(3);
    expect(lsRecords(join(root, 'state')).sort()).toEqual(dying.map((h) => `${h.id}.json`).sort());
    const quarantined = ls(join(root, 'quarantine'));
    expect(quarantined.filter((n) => !n.endsWith('.reason.json'))).toHaveLength(3);
    expect(quarantined.filter((n) => n.endsWith('.reason.json'))).toHaveLength(3);
    expect(quarantined).toContain(malformed);
    expect(ls(join(root, 'active', d.owner))).toEqual([]);
    expect(ls(join(root, 'incoming'))).toEqual([]);
    await noRecordLeftovers(root);
    // Each failing task ran once: a task whose function returned never runs again.
    expect(readRecords(records).filter((r) => r.task === 'always_fails')).toHaveLength(3);
  }, 60_000);

  it('a graceful stop leaves a stuck dead letter claimed; the next daemon buries it without running it again', async () => {
    mounted = mountTmpfs(2);
    const root = join(mounted.path, 'spool');
    const spooler = Spooler.open(root);
    const d1 = await startServing({ dir: root, imports: ['retry'], records, args: ARGS });
    const enqueuedAt = Date.now();
    const [dying] = await spooler.enqueueMany([{ name: 'always_fails', args: ['once'], options: { retries: 0, postpone: DUE_IN_MS } }]);
    const disk = fillDisk(mounted.path);
    expect(Date.now() - enqueuedAt, 'filling the disk took longer than the task had before it was due').toBeLessThan(DUE_IN_MS);
    await waitFor(() => errorsMatching(d1, /dead\//) >= 1, { what: 'a failed dead letter', explain: () => d1.describe(10) });
    const owner1 = d1.owner;

    expect(await d1.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(d1.logs.some((l) => l.level === 'error' && /stays claimed/.test(l.msg) && l.file === dying!.fileName)).toBe(true);
    expect(ls(join(root, 'active', owner1))).toEqual([dying!.fileName]);
    await noRecordLeftovers(root);

    disk.free();
    const d2 = await startServing({ dir: root, imports: ['retry'], records, args: ARGS });
    await d2.waitForLog((l) => l.msg === 'task is a dead letter: out of retries' && l.id === dying!.id, { what: 'the dead letter buried by the next daemon' });
    expect(ls(join(root, 'dead'))).toHaveLength(1);
    expect(lsRecords(join(root, 'state'))).toEqual([`${dying!.id}.json`]);
    // Its function returned once (it threw); it did not run again.
    expect(readRecords(records).filter((r) => r.task === 'always_fails')).toHaveLength(1);
  }, 60_000);

  it('ext4 (loop image): claims and archives into directories that need a new block, and dead letters, go through once space is back', async () => {
    mounted = mountExt4(8);
    const root = join(mounted.path, 'spool');
    const spooler = Spooler.open(root);
    const d = await startServing({ dir: root, imports: ['retry', 'basic'], records, args: [...ARGS.slice(0, -2), '--log-level', 'info'] });

    const enqueuedAt = Date.now();
    // More than one 4 KiB directory block of names (~56): claims into active/<owner>/ and moves into archive/ run out.
    const echoes = await spooler.enqueueMany(Array.from({ length: 150 }, (_, i) => ({ name: 'echo', args: [i], options: { postpone: DUE_IN_MS } })));
    const dying = await spooler.enqueueMany(['d1', 'd2'].map((k) => ({ name: 'always_fails', args: [k], options: { retries: 0, postpone: DUE_IN_MS } })));
    const disk = fillDisk(mounted.path);
    expect(Date.now() - enqueuedAt, 'filling the disk took longer than the tasks had before they were due').toBeLessThan(DUE_IN_MS);

    // Stuck archives fill the claim directory's only block, so claims fail too (and the dead letters wait their turn).
    await waitFor(() => errorsMatching(d, /archive\//) >= 1 && errorsMatching(d, /cannot claim/) >= 1, {
      what: 'a failed move to archive/ and a failed claim',
      explain: () => d.describe(10),
    });
    await noRecordLeftovers(root);
    const archivedWhileFull = ls(join(root, 'archive')).length;
    expect(archivedWhileFull).toBeLessThan(150);

    disk.free();
    await waitFor(() => ls(join(root, 'archive')).length === 150 && d.logsWith('task is a dead letter: out of retries').length === 2, {
      what: 'all 150 tasks archived and 2 dead letters once space is back',
      timeoutMs: 45_000,
      explain: () => `${d.describe(10)}\narchive: ${ls(join(root, 'archive')).length}`,
    });
    expect(d.logsWith('serving spool')).toHaveLength(1);
    expect(ls(join(root, 'archive')).sort()).toEqual(echoes.map((h) => h.fileName).sort());
    expect(lsRecords(join(root, 'state')).sort()).toEqual(dying.map((h) => `${h.id}.json`).sort());
    expect(ls(join(root, 'dead'))).toHaveLength(2);
    expect(ls(join(root, 'active', d.owner))).toEqual([]);
    await noRecordLeftovers(root);
    // Every task ran exactly once.
    const runs = readRecords(records).filter((r) => r.task === 'echo');
    expect(runs).toHaveLength(150);
    expect(new Set(runs.map((r) => JSON.stringify(r.args))).size).toBe(150);
  }, 90_000);
});

describe.skipIf(mountSkipReason !== undefined)('enqueueMany on a full ext4: all or nothing', () => {
  /** Makes `dir` hold `n` entries' worth of 4 KiB directory blocks (ext4 never shrinks a directory). */
  function growDirectory(path: string, n: number): void {
    const names = Array.from({ length: n }, (_, i) => join(path, `${String(i).padStart(6, '0')}-${'g'.repeat(60)}`));
    for (const p of names) closeSync(openSync(p, 'wx'));
    for (const p of names) unlinkSync(p);
  }

  async function failedBatch(spooler: Spooler, requests: Parameters<Spooler['enqueueMany']>[0]): Promise<BatchNotEnqueuedError> {
    const err = await spooler.enqueueMany(requests).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BatchNotEnqueuedError);
    return err as BatchNotEnqueuedError;
  }

  it('the disk fills while the batch is written: nothing visible, the error says so, nothing left in tmp/', async () => {
    // inline_data: the small task files fit in their inodes, so the batch writes some before the big one fails.
    mounted = mountExt4(8, 'inline_data');
    const root = join(mounted.path, 'spool');
    const spooler = Spooler.open(root);
    growDirectory(join(root, 'tmp'), 100);
    fillDisk(mounted.path);
    const small = Array.from({ length: 30 }, (_, i) => ({ name: 'echo', args: [i] }));
    const err = await failedBatch(spooler, [...small, { name: 'echo', args: ['x'.repeat(20_000)] }, ...small]);
    expect(err.message).toMatch(/^none of the 61 tasks were enqueued \(ENOSPC/);
    expect(err.enqueued).toBe(0);
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOSPC');
    expect(ls(join(root, 'incoming'))).toEqual([]);
    expect(ls(join(root, 'tmp'))).toEqual([]);
  });

  it('incoming/ cannot grow halfway through the renames: the published part is withdrawn, nothing visible, nothing left in tmp/', async () => {
    mounted = mountExt4(8, 'inline_data');
    const root = join(mounted.path, 'spool');
    const spooler = Spooler.open(root);
    // tmp/ has room for the whole batch; incoming/ one block (~56 names), then it needs a block there is none of.
    growDirectory(join(root, 'tmp'), 200);
    growDirectory(join(root, 'incoming'), 1);
    fillDisk(mounted.path);
    const incomingChanged = statSync(join(root, 'incoming')).mtimeMs;
    await sleep(50);
    const err = await failedBatch(
      spooler,
      Array.from({ length: 80 }, (_, i) => ({ name: 'echo', args: [i] })),
    );
    expect(err.message).toMatch(/^none of the 80 tasks were enqueued \(ENOSPC: no space left on device, rename/);
    expect(err.enqueued).toBe(0);
    expect((err.cause as NodeJS.ErrnoException).syscall).toBe('rename');
    // Tasks were in incoming/ meanwhile (its first block's worth) and were taken back out.
    expect(statSync(join(root, 'incoming')).mtimeMs).toBeGreaterThan(incomingChanged);
    expect(ls(join(root, 'incoming'))).toEqual([]);
    expect(ls(join(root, 'tmp'))).toEqual([]);
  });
});
