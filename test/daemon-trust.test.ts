/**
 * Hostile neighbours (README, "Running it safely"; SPOOL-FORMAT.md, "Folder
 * ownership and modes"): spoolerd runs as root here, and a throwaway user made
 * with useradd plays the producer, its actions run as that user through
 * setpriv. The daemon refuses spool folders it cannot trust (links, foreign
 * owners, writable by others where only daemons write), detects a folder
 * replaced while it runs, never reclaims through a link, and makes new spools
 * with an explicit mode policy, so that other users read no task's arguments.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, renameSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertCheckoutReachableByOthers, SPOOL_BIN, spool } from './helpers/cli.js';
import { killLeftoverDaemons, readRecords, startDaemon, startServing, waitFor, type DaemonProcess } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

/** Why this machine cannot run these tests, or undefined when it can. */
function cannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'they need root (to run spoolerd as root and create a throwaway user)';
  for (const tool of ['useradd', 'userdel', 'groupadd', 'groupdel', 'setpriv']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed`;
  }
  return undefined;
}
const skipReason = cannotRun();
if (skipReason !== undefined) console.warn(`daemon-trust.test.ts skipped: ${skipReason}`);

const suffix = randomBytes(3).toString('hex');
const USER = `spx${suffix}`;
const GROUP = `spg${suffix}`;
let uid = -1;
let gid = -1;
let producers = -1;

function run(cmd: string, args: string[]): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r;
}

/** Runs a command as the hostile producer. */
function asProducer(cmd: string[]): SpawnSyncReturns<string> {
  return spawnSync('setpriv', ['--reuid', String(uid), '--regid', String(gid), '--init-groups', '--', ...cmd], {
    encoding: 'utf8',
    env: { ...process.env, SPOOL_DIR: '', SPOOL_GROUP: '' },
    timeout: 30_000,
  });
}
const spoolAsProducer = (args: string[]) => asProducer([process.execPath, SPOOL_BIN, ...args]);

let dir: string;
let root: string;
let records: string;
beforeAll(() => {
  if (skipReason !== undefined) return;
  assertCheckoutReachableByOthers();
  run('groupadd', [GROUP]);
  run('useradd', ['-M', '-s', '/usr/sbin/nologin', '-G', GROUP, USER]);
  uid = Number(run('id', ['-u', USER]).stdout);
  gid = Number(run('id', ['-g', USER]).stdout);
  producers = Number(run('getent', ['group', GROUP]).stdout.split(':')[2]);
});
afterAll(() => {
  if (skipReason !== undefined) return;
  spawnSync('userdel', [USER]);
  spawnSync('groupdel', [GROUP]);
});
useDaemonSpool('spoolerd-trust-', {
  bind: (s) => {
    ({ dir, root, records } = s);
    // The producer must reach the spool; what it may do there is up to the spool's own modes.
    chmodSync(dir, 0o755);
  },
});

const mode = (path: string) => lstatSync(path).mode & 0o7777;

function taskName(name = 'echo', due = Date.now()): string {
  const now = String(Date.now()).padStart(13, '0');
  return `50-${String(due).padStart(13, '0')}-${now}${randomBytes(8).toString('hex')}-a0-${name}.json`;
}
const body = (...args: unknown[]) => JSON.stringify({ version: 1, type: 'fcall', args });

/** A folder outside the spool, owned by root, holding one file two hours old. */
function victim(name: string): { folder: string; file: string } {
  const folder = join(dir, name);
  mkdirSync(folder);
  const file = join(folder, 'precious');
  writeFileSync(file, 'root data');
  const old = (Date.now() - 2 * 3_600_000) / 1000;
  utimesSync(file, old, old);
  return { folder, file };
}

/** Makes the spool as root with spool add (0700 throughout), so the test can then loosen it. */
function makeSpool(): void {
  const r = spool(['add', '--create', 'echo', '"seed"', '--in', '1h', '--dir', root], { env: { SPOOL_GROUP: '' } });
  expect(r.code, r.stderr).toBe(0);
}

async function failsToStart(d: DaemonProcess) {
  const exit = await d.waitForExit(20_000);
  return { exit, errors: d.logs.filter((l) => l.level === 'error').map((l) => l.msg) };
}

describe.skipIf(skipReason !== undefined)('hostile producer (a throwaway user), spoolerd running as root', () => {
  it('the attacks of issue 12 on a spool the producer can write: refused at start, nothing outside the spool touched', async () => {
    makeSpool();
    // As the issue found it: the spool and active/ writable by everyone.
    chmodSync(root, 0o777);
    chmodSync(join(root, 'active'), 0o777);
    chmodSync(join(root, 'incoming'), 0o777);
    const tmpVictim = victim('etc-like');
    const quarantineVictim = victim('profile.d');
    const outside = join(dir, 'outside');
    mkdirSync(outside);
    const outsideTask = join(outside, taskName());
    writeFileSync(outsideTask, body('from outside the spool'));
    chmodSync(outside, 0o755);
    // The producer's moves, as that user.
    const sh = (script: string) => {
      const r = asProducer(['sh', '-c', script]);
      expect(r.status, `${script}: ${r.stderr}`).toBe(0);
    };
    sh(`cd ${root} && mv tmp tmp.gone && ln -s ${tmpVictim.folder} tmp`);
    sh(`cd ${root} && mv quarantine q.gone && ln -s ${quarantineVictim.folder} quarantine`);
    sh(`ln -s ${outside} ${join(root, 'active', 'evil-1-abcdef')}`);
    sh(`printf 'echo pwned' > ${join(root, 'incoming', 'evil.sh')}`);

    const d = startDaemon({ dir: root, imports: ['basic'], records, args: ['--scan-interval', '200ms', '--settle', '0ms'] });
    const r = await failsToStart(d);
    expect(r.exit.code).toBe(1);
    expect(r.errors.join('\n')).toMatch(/symbolic link|writable by other users/);
    expect(existsSync(tmpVictim.file), 'the tmp/ sweep followed the link and deleted a root file').toBe(true);
    expect(readdirSync(quarantineVictim.folder)).toEqual(['precious']);
    expect(existsSync(outsideTask), 'a task outside the spool was reclaimed').toBe(true);
    expect(readRecords(records)).toEqual([]);
  });

  it('refuses a spool folder writable by another user, naming the chmod or chown that fixes it', async () => {
    makeSpool();
    chmodSync(root, 0o777);
    let r = await failsToStart(startDaemon({ dir: root, imports: ['basic'] }));
    expect(r.exit.code).toBe(1);
    expect(r.errors).toEqual([expect.stringContaining(`spool folder ${root} is writable by other users (mode 0777`)]);
    expect(r.errors[0]).toContain(`chmod go-w ${root}`);

    chmodSync(root, 0o700);
    chmodSync(join(root, 'dead'), 0o777);
    r = await failsToStart(startDaemon({ dir: root, imports: ['basic'] }));
    expect(r.exit.code).toBe(1);
    expect(r.errors).toEqual([expect.stringContaining(`spool folder ${join(root, 'dead')} is writable by other users`)]);
    expect(r.errors[0]).toContain(`chmod 0700 ${join(root, 'dead')}`);

    chmodSync(join(root, 'dead'), 0o700);
    chownSync(join(root, 'active'), uid, gid);
    r = await failsToStart(startDaemon({ dir: root, imports: ['basic'] }));
    expect(r.exit.code).toBe(1);
    expect(r.errors).toEqual([expect.stringContaining(`spool folder ${join(root, 'active')} is owned by uid ${uid}, not by root`)]);
    expect(r.errors[0]).toContain(`chown 0 ${join(root, 'active')}`);

    // The spool inside a folder the producer owns: it could rename the spool away.
    chownSync(join(root, 'active'), 0, 0);
    chownSync(dir, uid, gid);
    r = await failsToStart(startDaemon({ dir: root, imports: ['basic'] }));
    expect(r.exit.code).toBe(1);
    expect(r.errors).toEqual([expect.stringContaining(`spool folder ${dir} (above the spool) is owned by uid ${uid}`)]);
    expect(r.errors[0]).toContain('put the spool in a folder owned by root');
  });

  it('refuses every spool folder that is a symbolic link, and follows none of them', async () => {
    for (const sub of ['tmp', 'incoming', 'pending', 'active', 'dead', 'quarantine', 'archive', 'state', 'locks']) {
      makeSpool();
      const target = victim(`target-${sub}`);
      renameSync(join(root, sub), join(root, `${sub}.real`));
      symlinkSync(target.folder, join(root, sub));
      const r = await failsToStart(startDaemon({ dir: root, imports: ['basic'], records }));
      expect(r.exit.code, sub).toBe(1);
      expect(r.errors, sub).toEqual([expect.stringContaining(`${join(root, sub)} is a symbolic link`)]);
      expect(readdirSync(target.folder), sub).toEqual(['precious']);
      // spool ls refuses it too (rather than list the folder it points to).
      const ls = spool(['ls', '--dir', root]);
      expect(ls.code, sub).toBe(1);
      expect(ls.stderr, sub).toContain(`${join(root, sub)} is a symbolic link`);
      cleanupSpool();
    }
    expect(readRecords(records)).toEqual([]);
  });

  it('a claim directory that is a link (active/<owner> -> a folder outside) is never reclaimed', async () => {
    makeSpool();
    const outside = join(dir, 'outside');
    mkdirSync(outside);
    const outsideTask = join(outside, taskName());
    writeFileSync(outsideTask, body('from outside the spool'));
    symlinkSync(outside, join(root, 'active', 'evil-1-abcdef'));
    const d = await startServing({ dir: root, imports: ['basic'], records, args: ['--scan-interval', '200ms'] });
    const refused = await d.waitForLog((l) => l.msg === 'not a claim directory spoolerd can trust; its files are not reclaimed');
    expect(refused.err).toContain(`${join(root, 'active', 'evil-1-abcdef')} is a symbolic link`);
    // A task enqueued now runs: the daemon went past that claim directory and goes on serving.
    const r = spool(['add', 'echo', '"after"', '--dir', root], { env: { SPOOL_GROUP: '' } });
    expect(r.code, r.stderr).toBe(0);
    await waitFor(() => readRecords(records).some((x) => JSON.stringify(x.args) === '["after"]'), { what: 'the later task to run' });
    expect(existsSync(outsideTask)).toBe(true);
    expect(readRecords(records).map((x) => x.args)).toEqual([['after']]);
  });

  it('a folder replaced by a link while the daemon runs is detected and not followed', async () => {
    makeSpool();
    const target = victim('swapped-in');
    const d = await startServing({ dir: root, imports: ['basic'], records, args: ['--scan-interval', '200ms'] });
    // Someone with write access to the spool folder swaps tmp/ (the tmp/ sweep deletes files older than an hour).
    renameSync(join(root, 'tmp'), join(root, 'tmp.real'));
    symlinkSync(target.folder, join(root, 'tmp'));
    const line = await d.waitForLog((l) => l.level === 'error' && l.msg.includes(`${join(root, 'tmp')} was replaced`));
    expect(line.msg).toContain('now a symbolic link');
    await d.waitForLog((l) => l.msg.startsWith('a spool folder was replaced while spoolerd ran'));
    expect(readdirSync(target.folder)).toEqual(['precious']);
    // It stops serving the spool, and stops like any daemon.
    expect((await d.stop()).code).toBe(0);
  });

  it('quarantine/ replaced by a link while the daemon runs: the bad file is not moved through it', async () => {
    makeSpool();
    const target = victim('profile.d');
    const d = await startServing({ dir: root, imports: ['basic'], records, args: ['--scan-interval', '200ms', '--settle', '0ms'] });
    renameSync(join(root, 'quarantine'), join(root, 'quarantine.real'));
    symlinkSync(target.folder, join(root, 'quarantine'));
    writeFileSync(join(root, 'incoming', 'evil.sh'), 'echo pwned');
    // Refused by the check before the quarantine (on the watch event) or by the scan's, whichever comes first.
    await d.waitForLog((l) => l.level === 'error' && JSON.stringify(l).includes(`${join(root, 'quarantine')} was replaced`));
    expect(readdirSync(target.folder)).toEqual(['precious']);
    expect(existsSync(join(root, 'incoming', 'evil.sh'))).toBe(true);
  });

  it('a new spool is private to spoolerd\'s user: another user reads no task and enqueues nothing', async () => {
    const d = await startServing({ dir: root, imports: ['basic'], records, env: { SPOOL_GROUP: '' } });
    for (const f of ['', 'tmp', 'incoming', 'pending', 'active', 'dead', 'quarantine', 'archive', 'state', 'locks']) expect(mode(join(root, f)), f).toBe(0o700);
    expect(d.logs.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
    const added = spool(['add', '--create', 'echo', '"the secret argument"', '--in', '1h', '--dir', root], { env: { SPOOL_GROUP: '' } });
    expect(added.code, added.stderr).toBe(0);
    const id = added.stdout.trim();
    const show = spoolAsProducer(['show', id, '--dir', root]);
    expect(show.status).not.toBe(0);
    expect(show.stdout + show.stderr).not.toContain('the secret argument');
    const cat = asProducer(['sh', '-c', `cat ${root}/*/*`]);
    expect(cat.status).not.toBe(0);
    expect(cat.stdout).not.toContain('the secret argument');
    const add = spoolAsProducer(['add', 'echo', '"x"', '--dir', root]);
    expect(add.status).not.toBe(0);
  });

  it('--group: producers of the group enqueue and their tasks run; they cannot touch the daemon-only folders', async () => {
    const d = await startServing({ dir: root, imports: ['basic'], records, args: ['--group', GROUP] });
    expect(d.logs.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
    expect(mode(root)).toBe(0o750);
    for (const f of ['tmp', 'incoming']) {
      expect(mode(join(root, f)), f).toBe(0o3770);
      expect(statSync(join(root, f)).gid, f).toBe(producers);
    }
    for (const f of ['pending', 'active', 'dead', 'quarantine', 'archive', 'state', 'locks']) {
      expect(mode(join(root, f)), f).toBe(0o2750);
      expect(statSync(join(root, f)).gid, f).toBe(producers);
    }
    const add = spoolAsProducer(['add', 'echo', '"from the producer"', '--dir', root]);
    expect(add.status, add.stderr).toBe(0);
    await waitFor(() => readRecords(records).some((x) => JSON.stringify(x.args) === '["from the producer"]'), { what: 'the producer\'s task to run' });
    // The producer can list the spool (the group reads it) but writes only tmp/ and incoming/.
    expect(spoolAsProducer(['ls', '--dir', root]).status).toBe(0);
    for (const attempt of [
      `mkdir ${root}/active/mine`,
      `mv ${root}/quarantine ${root}/q.gone`,
      `ln -s /etc ${root}/quarantine2`,
      `touch ${root}/dead/x`,
      `touch ${root}/state/x`,
      `mv ${root}/tmp ${root}/tmp.gone`,
    ]) {
      expect(asProducer(['sh', '-c', attempt]).status, attempt).not.toBe(0);
    }
    // Files a producer makes in incoming/ get the producers' group (setgid folder).
    const name = taskName('echo', Date.now() + 3_600_000);
    const made = asProducer(['sh', '-c', `printf '%s' '${body('later')}' > ${root}/tmp/${name} && mv ${root}/tmp/${name} ${root}/incoming/${name}`]);
    expect(made.status, made.stderr).toBe(0);
    await waitFor(() => existsSync(join(root, 'pending', name)), { what: 'the future task to be moved to pending/' });
    expect(statSync(join(root, 'pending', name)).gid).toBe(producers);
  });

  it('--group: a producer enqueues into a spool made before this version\'s folders existed (it cannot make them, and need not)', async () => {
    await startServing({ dir: root, imports: ['basic'], records, args: ['--group', GROUP] });
    await killLeftoverDaemons();
    // As an older daemon left the spool: without the folders added since (daemon-only ones, which a producer may not make).
    for (const f of ['schedules', 'control', 'limits', 'progress', 'flows']) spawnSync('rmdir', [join(root, f)]);
    expect(existsSync(join(root, 'limits'))).toBe(false);
    const add = spoolAsProducer(['add', 'echo', '"from an old spool"', '--dir', root]);
    expect(add.status, add.stderr).toBe(0);
    expect(readdirSync(join(root, 'incoming')).filter((n) => n.endsWith('-echo.msgpack') || n.endsWith('-echo.json'))).toHaveLength(1);
    // The daemon makes them again, and runs the task.
    await startServing({ dir: root, imports: ['basic'], records, args: ['--group', GROUP] });
    await waitFor(() => readRecords(records).some((x) => JSON.stringify(x.args) === '["from an old spool"]'), { what: 'the producer\'s task to run' });
    for (const f of ['schedules', 'control', 'limits', 'progress', 'flows']) expect(mode(join(root, f)), f).toBe(0o2750);
  });

  it('warns loudly about a world-writable incoming/, and serves', async () => {
    makeSpool();
    chmodSync(join(root, 'incoming'), 0o777);
    const d = await startServing({ dir: root, imports: ['basic'], records });
    const warn = d.logs.find((l) => l.level === 'warn' && l.msg.includes('world-writable'));
    expect(warn?.msg).toContain(`${join(root, 'incoming')} is world-writable (mode 0777): ANY local user can enqueue tasks`);
    expect(warn?.msg).toContain(`chmod o-rwx ${join(root, 'incoming')}`);
  });

  it('warns when any local user can read task files', async () => {
    makeSpool();
    chmodSync(root, 0o755);
    chmodSync(join(root, 'pending'), 0o755);
    const d = await startServing({ dir: root, imports: ['basic'], records });
    const warn = d.logs.find((l) => l.level === 'warn' && l.msg.startsWith('any local user can read task files'));
    expect(warn?.msg).toContain(join(root, 'pending'));
    expect(warn?.msg).toContain(`chmod o-rwx ${root}`);
  });
});

function cleanupSpool(): void {
  spawnSync('rm', ['-rf', root]);
}

describe('--group', () => {
  it('an unknown group refuses the start, saying so', async () => {
    const r = await failsToStart(startDaemon({ dir: root, imports: ['basic'], args: ['--group', `no-such-group-${suffix}`] }));
    expect(r.exit.code).toBe(1);
    expect(r.errors).toEqual([`no group named "no-such-group-${suffix}"; create it (groupadd no-such-group-${suffix}) or give its numeric id`]);
    expect(existsSync(root)).toBe(false);
  });
});
