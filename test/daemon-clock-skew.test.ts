/**
 * Two daemons on one host's disk, one of them with its clock shifted by
 * Debian's libfaketime (SPOOL-FORMAT.md, "Clocks"): the spool clock is the
 * time the disk stamps on files, so the shifted daemon measures its offset,
 * starts no postponed task early, runs due tasks at once, and neither daemon
 * takes the other's live lock for stale. The same over sshfs between hosts is
 * test/multihost-faults.test.ts; this one needs no root.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { startDaemon, waitFor, type DaemonProcess, type TaskRecord } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';
import { LIBFAKETIME, skewedClockEnv } from './helpers/multihost-scenarios.js';

const ARGS = ['--stale-after', '3s', '--scan-interval', '1s', '--processes', '0', '--concurrency', '4'];

let dir: string;
useDaemonSpool('spoolerd-skew-', { bind: (s) => ({ dir } = s) });

/** Every record in `file`, stamped with the real time this process first saw it (polled every 20 ms). */
function watchRecords(files: Record<string, string>): { seen: Array<TaskRecord & { daemon: string; seenAt: number }>; stop: () => void } {
  const seen: Array<TaskRecord & { daemon: string; seenAt: number }> = [];
  const offsets = new Map<string, number>();
  const poll = () => {
    const now = Date.now();
    for (const [daemon, file] of Object.entries(files)) {
      if (!existsSync(file)) continue;
      const text = readFileSync(file, 'utf8');
      const from = offsets.get(daemon) ?? 0;
      const end = text.lastIndexOf('\n') + 1;
      if (end <= from) continue;
      for (const line of text.slice(from, end).split('\n')) if (line) seen.push({ ...(JSON.parse(line) as TaskRecord), daemon, seenAt: now });
      offsets.set(daemon, end);
    }
  };
  const timer = setInterval(poll, 20);
  return { seen, stop: () => (clearInterval(timer), poll()) };
}

describe('a daemon whose clock is off the spool disk’s by 30 s, beside one whose clock is right', () => {
  for (const [offset, expectedMs] of [
    ['+30s', -30_000],
    ['-30s', 30_000],
  ] as const) {
    it(`${offset}: measures the offset, runs due tasks, starts no postponed task early, and neither daemon takes the other for dead`, { timeout: 60_000 }, async () => {
      expect(existsSync(LIBFAKETIME), `${LIBFAKETIME} (apt-get install -y faketime)`).toBe(true);
      const spool = join(dir, 'spool');
      const records = { right: join(dir, 'right.jsonl'), skewed: join(dir, 'skewed.jsonl') };
      const right = startDaemon({ dir: spool, imports: ['multihost'], args: ARGS, records: records.right });
      const skewed = startDaemon({ dir: spool, imports: ['multihost'], args: ARGS, records: records.skewed, env: skewedClockEnv(offset) });
      const daemons: DaemonProcess[] = [right, skewed];
      for (const d of daemons) await d.waitUntilServing(1, 30_000);
      const watch = watchRecords(records);
      try {
        const spooler = Spooler.open(spool);
        // Busy tasks keep claims held on both daemons across several stale windows' worth of scans.
        const busy = Array.from({ length: 32 }, (_, i) => `busy${i}`);
        await spooler.enqueueMany(busy.map((k) => ({ name: 'work', args: [k, 1000] })));
        const due = Date.now() + 5000;
        const later = Array.from({ length: 20 }, (_, i) => `later${i}`);
        await spooler.enqueueMany(later.map((k) => ({ name: 'mark', args: [k], options: { postpone: new Date(due) } })));
        const ran = (k: string) => watch.seen.some((r) => r.key === k && (r.task === 'mark' || r.phase === 'finished'));
        await waitFor(() => [...busy, ...later].every(ran), {
          timeoutMs: 40_000,
          intervalMs: 50,
          what: 'every task to run',
          explain: () => daemons.map((d) => d.describe(10)).join('\n'),
        });
        watch.stop();
        const explain = () => daemons.map((d) => d.describe(10)).join('\n');

        const early = watch.seen.filter((r) => r.task === 'mark' && r.seenAt < due - 50).map((r) => `${r.key} on ${r.daemon}, ${due - r.seenAt} ms early`);
        expect(early, explain()).toEqual([]);
        const starts = watch.seen.filter((r) => r.phase !== 'finished');
        const keys = starts.map((r) => r.key);
        expect(keys.length, 'runs (none twice)').toBe(new Set(keys).size);
        // The shifted daemon ran due tasks (a daemon 30 s slow used to find nothing due for 30 s).
        expect(starts.filter((r) => r.daemon === 'skewed' && r.task === 'work').length, explain()).toBeGreaterThan(0);
        // Nobody was taken for dead.
        for (const d of daemons) {
          expect(d.logs.filter((l) => l.msg.startsWith('reclaimed tasks') || l.msg.startsWith('this daemon lost its claims')), explain()).toEqual([]);
        }
        // The offset measured against the disk's clock: within a few ms of the shift on a local disk, and warned about.
        const measured = skewed.logs.find((l) => l.msg.startsWith('spool clock measured'));
        expect(measured, explain()).toEqual(expect.objectContaining({ level: 'warn' }));
        expect(Math.abs((measured!.offsetMs as number) - expectedMs), explain()).toBeLessThan(100);
        expect(right.logs.find((l) => l.msg.startsWith('spool clock measured')), explain()).toEqual(expect.objectContaining({ level: 'info', offsetMs: 0 }));
      } finally {
        watch.stop();
      }
    });
  }
});
