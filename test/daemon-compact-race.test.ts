/**
 * A daemon that starts while another is recreating a drained incoming/
 * (spool/compact-folder.ts) has checked the old folder; once the swap is
 * done, its folder check finds another directory in its place. The marker the
 * recreating daemon leaves in state/ tells it that a daemon made that folder,
 * so it follows it (and watches it) instead of refusing the spool.
 *
 * The window is made deterministic with the test knob
 * SPOOLERD_TEST_COMPACT_GATE: the first daemon stops between marking its
 * replacement and the swap, reading a FIFO, until the second one serves.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';
import { readRecords, waitFor, type DaemonProcess } from './helpers/daemon.js';

let dir: string, root: string, records: string;
const testSpool = useDaemonSpool('spoolerd-compact-race-', { bind: (s) => ({ dir, root, records } = s), open: true });

const TMPFS_MAGIC = 0x01021994;
const RECREATED = 'incoming/ had drained: recreated it empty, so that listing it is cheap again';

/** Grows incoming/ past the size worth recreating, then empties it (ext4 keeps a directory's size). */
function growAndDrainIncoming(): void {
  const incoming = join(root, 'incoming');
  for (let i = 0; i < 4000; i++) writeFileSync(join(incoming, `.grow-${'x'.repeat(80)}-${i}`), '');
  for (const name of readdirSync(incoming)) rmSync(join(incoming, name));
}

const scansOf = (d: DaemonProcess) => d.logs.filter((l) => l.msg === 'reconciliation scan finished').length;

describe('a daemon that starts while another recreates incoming/', () => {
  it('follows the new folder and goes on serving', async () => {
    if (statfsSync(dir).type === TMPFS_MAGIC) return console.log('skipped: the test folder is on tmpfs, which shrinks a drained directory itself');
    growAndDrainIncoming();
    const oldIno = statSync(join(root, 'incoming')).ino;
    const gate = join(dir, 'gate');
    execFileSync('mkfifo', [gate]);

    // A: alone, finds incoming/ drained and large at start-up, and stops at the gate before the swap.
    const a = testSpool.start({ imports: ['basic'], args: ['--scan-interval', '200ms', '--log-level', 'debug'], env: { SPOOLERD_TEST_COMPACT_GATE: gate } });
    const state = join(root, 'state');
    await waitFor(() => existsSync(state) && readdirSync(state).some((n) => n.startsWith('.recreated-incoming-')), {
      what: 'the first daemon to mark its replacement of incoming/',
      explain: () => a.describe(),
    });

    // B starts and checks the old incoming/, which is still in place.
    const b = await testSpool.serve({ imports: ['basic'], args: ['--scan-interval', '200ms', '--log-level', 'debug'] });
    expect(statSync(join(root, 'incoming')).ino).toBe(oldIno);

    // A goes on: the swap.
    writeFileSync(gate, 'go\n');
    await a.waitForLog((l) => l.msg === RECREATED);
    const newIno = statSync(join(root, 'incoming')).ino;
    expect(newIno).not.toBe(oldIno);

    // Two of B's scans after the swap: each checked its folders.
    const scans = scansOf(b);
    await waitFor(() => scansOf(b) >= scans + 2, { what: 'two scans of the second daemon after the swap', explain: () => b.describe() });
    expect(b.logs.filter((l) => l.msg.startsWith('a spool folder was replaced'))).toEqual([]);
    await b.waitForLog((l) => l.msg === 'incoming/ was recreated empty by another daemon; watching the new folder');
    // B watches the new folder, not the old one (the kernel's account of its inotify watches).
    await waitFor(() => watchedInodes(b.pid).has(newIno), { what: 'an inotify watch of the second daemon on the new incoming/', explain: () => `${[...watchedInodes(b.pid)]}` });

    // A goes away; B alone runs what comes next.
    a.child.kill('SIGTERM');
    await a.exited;
    await Spooler.open(root).enqueue({ name: 'echo', args: ['after'] });
    await waitFor(() => readRecords(records).some((r) => r.task === 'echo' && (r.args as unknown[])[0] === 'after'), {
      what: 'a task enqueued after the swap to run in the second daemon',
      explain: () => b.describe(),
    });
    expect(b.logs.filter((l) => l.level === 'error')).toEqual([]);
  }, 60_000);
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
