/**
 * Full disks and missing permissions (README, "Exit codes"): the `spool`
 * command says which operation on which path failed and what to do, exits 6
 * (no space, read-only or failing filesystem) or 7 (permission denied), and
 * prints no stack trace; `spoolerd` says it in one log line at start-up.
 *
 * The real conditions, not mocks: a 1 MiB tmpfs filled to the last block, and a
 * throwaway user (useradd) running the real binaries through setpriv. Both need
 * root; CI runs as root, so these skip (with the reason printed) only elsewhere.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { assertCheckoutReachableByOthers, SPOOL_BIN, spool, tempDir } from './helpers/cli.js';
import { fixture, SPOOLERD_BIN } from './helpers/daemon.js';

const EXIT_STORAGE = 6;
const EXIT_PERMISSION = 7;

/** A line of a stack trace: "    at fn (file:…)". */
const STACK_LINE = /^\s+at /m;

const isRoot = process.getuid?.() === 0;
const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;
const canDropPrivileges = isRoot && hasSetpriv && spawnSync('useradd', ['--help']).status === 0;
if (!isRoot) console.log('cli-system-errors: skipping the full-disk and permission tests: they need root (mount, useradd)');
else if (!canDropPrivileges) console.log('cli-system-errors: skipping the permission tests: setpriv or useradd is missing');

describe.skipIf(!isRoot)('a full disk', () => {
  let mountPoint: string;
  beforeEach(() => {
    mountPoint = mkdtempSync(join(tmpdir(), 'spool-full-'));
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mount tmpfs failed: ${r.stderr}`);
  });
  afterEach(() => {
    spawnSync('umount', [mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  });

  /** Fills the filesystem: writes until it refuses with ENOSPC. */
  function fill(): void {
    const chunk = Buffer.alloc(64 * 1024);
    for (let i = 0; ; i++) {
      try {
        writeFileSync(join(mountPoint, `filler-${i}`), chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
        break;
      }
    }
    // The last, partly written filler may have left a few bytes free: take them too.
    for (let size = 4096; size >= 1; size = Math.floor(size / 2)) {
      try {
        writeFileSync(join(mountPoint, `filler-small-${size}`), Buffer.alloc(size));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  }

  it('spool add says the disk is full and what to do, exits 6, no stack, and leaves nothing behind', () => {
    const root = join(mountPoint, 'spool');
    const first = spool(['add', '--create', '--dir', root, 'hello', '"world"']);
    expect(first.code, first.stderr).toBe(0);
    fill();

    const r = spool(['add', '--dir', root, 'hello', '"again"']);
    expect(r.code, r.stderr).toBe(EXIT_STORAGE);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^spool add: cannot write the task file in the spool .*: no space left on the device \(ENOSPC\); free some space/);
    expect(r.stderr).toContain(root);
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(r.stderr).not.toContain('unexpected error');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    // Nothing half-written: the first task alone, tmp/ empty.
    expect(readdirSync(join(root, 'incoming'))).toHaveLength(1);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  });
});

describe.skipIf(!canDropPrivileges)('without permission', () => {
  const user = `spoolcli${process.pid}`;
  let uid: number;
  let gid: number;
  beforeAll(() => {
    assertCheckoutReachableByOthers();
    const r = spawnSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', user], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`useradd failed: ${r.stderr}`);
    uid = Number(spawnSync('id', ['-u', user], { encoding: 'utf8' }).stdout);
    gid = Number(spawnSync('id', ['-g', user], { encoding: 'utf8' }).stdout);
  });
  afterAll(() => {
    spawnSync('userdel', [user]);
  });

  let dir: string;
  let cleanup: () => void;
  let root: string;
  beforeEach(() => {
    ({ dir, cleanup } = tempDir('spool-perm-'));
    chmodSync(dir, 0o755); // mkdtemp makes it 0700: the other user must reach the spool inside, as a reader
    root = join(dir, 'spool');
    const made = spool(['add', '--create', '--dir', root, 'hello', '"world"']);
    if (made.code !== 0) throw new Error(made.stderr);
    // A new spool is private to its owner (0700): open it to readers, as an operator may, so that
    // what the other user lacks is the permission to write, not to look.
    for (const f of ['', ...readdirSync(root)]) chmodSync(join(root, f), 0o755);
  });
  afterEach(() => cleanup());

  /** Runs a binary as the throwaway user (no supplementary groups). */
  function runAs(bin: string, args: string[]) {
    const r = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', process.execPath, bin, ...args], {
      encoding: 'utf8',
      env: { ...process.env, SPOOL_DIR: '' },
      timeout: 30_000,
    });
    if (r.error) throw r.error;
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  it('spool rm of a task in a root-owned spool says who may, exits 7, no stack, and removes nothing', () => {
    const [file] = readdirSync(join(root, 'incoming'));
    const r = runAs(SPOOL_BIN, ['rm', '--dir', root, file!]);
    expect(r.code, r.stderr).toBe(EXIT_PERMISSION);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`spool rm: cannot move ${join(root, 'incoming', file!)} to ${join(root, 'tmp')}/`);
    expect(r.stderr).toContain("permission denied (EACCES); run spool rm as the spool's owner or a member of its group");
    expect(r.stderr).toContain(`${root} is owned by root (uid 0), group root (gid 0), mode drwxr-xr-x`);
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(r.stderr).not.toContain('unexpected error');
    expect(readdirSync(join(root, 'incoming'))).toEqual([file]);
  });

  it('spool add, ls and retry get the same plain treatment', () => {
    const add = runAs(SPOOL_BIN, ['add', '--dir', root, 'hello', '"x"']);
    expect(add.code, add.stderr).toBe(EXIT_PERMISSION);
    expect(add.stderr).toMatch(/^spool add: cannot open .*\/tmp\/.*: permission denied \(EACCES\); run spool add as the spool's owner/);
    expect(add.stderr).not.toMatch(STACK_LINE);

    // A directory the user may not read.
    chmodSync(join(root, 'pending'), 0o700);
    const ls = runAs(SPOOL_BIN, ['ls', '--dir', root]);
    expect(ls.code, ls.stderr).toBe(EXIT_PERMISSION);
    expect(ls.stderr).toContain(`spool ls: cannot read the directory ${join(root, 'pending')}: permission denied (EACCES)`);
    expect(ls.stderr).not.toMatch(STACK_LINE);
    chmodSync(join(root, 'pending'), 0o755);

    mkdirSync(join(root, 'dead'), { recursive: true });
    const dead = '50-0000000000001-0000000000001aaaaaaaaaaaaaaaa-a3-hello.json';
    writeFileSync(join(root, 'dead', dead), '{"version":1,"type":"fcall","args":[]}');
    const retry = runAs(SPOOL_BIN, ['retry', '--dir', root, dead]);
    expect(retry.code, retry.stderr).toBe(EXIT_PERMISSION);
    expect(retry.stderr).toContain(`spool retry: cannot move ${join(root, 'dead', dead)} to ${join(root, 'incoming')}/`);
    expect(retry.stderr).not.toMatch(STACK_LINE);
    expect(readdirSync(join(root, 'dead'))).toEqual([dead]);
  });

  it('spoolerd on a spool it may not write: one log line saying so, exit 1, no stack', () => {
    const r = runAs(SPOOLERD_BIN, ['--dir', root, '--import', fixture('basic'), '--log-format', 'json', '--processes', '0']);
    expect(r.code, r.stderr).toBe(1);
    const errors = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.level === 'error');
    expect(errors, r.stderr).toHaveLength(1);
    expect(errors[0]!.msg).toMatch(/^start-up failed: cannot .*: permission denied \(EACCES\); run spoolerd as the spool's owner or a member of its group/);
    expect(errors[0]!.err).toBeUndefined();
    expect(r.stderr).not.toContain('    at ');
  });
});

describe('spool --help', () => {
  it('lists the exit codes for storage and permission errors', () => {
    const r = spool(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('6 no space, read-only or failing filesystem, 7 permission denied');
  });
});
