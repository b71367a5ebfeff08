/**
 * Several "hosts" sharing one spool over a network filesystem, on one machine
 * (used by test/multihost*.test.ts and `npm run bench -- multihost`).
 *
 * A "server" network namespace runs sshd (Debian's openssh-server, SFTP
 * subsystem) exporting a local directory; each "host" is a network namespace
 * of its own, joined to the server by a veth pair on a private 10.213.<n>.0/24
 * subnet, and mounts the export with sshfs over that link. Every host has its
 * own mount point, so its own FUSE connection, its own sshfs caches and its
 * own SSH session, as a separate machine would. The mounts are made in this
 * process's mount namespace (sshfs runs under `nsenter --net`, which enters the
 * network namespace only), so the test can look at each host's view and remove
 * every mount it made.
 *
 * Programs run "on" a host through `host.wrap`: `nsenter --net=<netns>` then
 * `unshare --uts` with the host's own hostname (spoolerd names its owner id
 * after the hostname). Each step execs the next, so the spawned pid is the
 * program's own pid: kill -9 and SIGSTOP reach it directly.
 *
 * Needs root, /dev/fuse, network namespaces, and Debian's sshfs,
 * openssh-server and iproute2 (`.ci/run` installs them).
 *
 * Cleanup: close() lazily unmounts, stops sshfs and sshd, deletes the
 * namespaces and the temp directory, whatever state setup got to. A rig whose
 * creating process died without closing it (a killed test run) is reaped by
 * the next create(): its directory records the creator's pid.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * sshfs options of every host's mount. Without them, sshfs answers from its
 * own caches for up to 20 s (names and attributes of other hosts' files), and
 * the kernel for 1 s: a host sees other hosts' renames late, polls a stale
 * directory mtime, and judges another daemon's liveness lock by an old mtime.
 * See README.md, "Running across hosts".
 */
export const COHERENT_MOUNT_OPTIONS = ['dir_cache=no', 'attr_timeout=0', 'entry_timeout=0', 'negative_timeout=0'];

const REQUIRED_PROGRAMS = ['ip', 'nsenter', 'unshare', 'sshfs', '/usr/sbin/sshd', 'ssh-keygen', 'fusermount3'];
const RIG_PREFIX = 'spoolerd-hosts-';
/** A request line of sshfs_debug's output. */
const REQUEST_LINE = /^\[\d+\] ([A-Z_]+)\s*$/;

export interface RigHost {
  /** "h1", "h2", …: also the host's hostname. */
  name: string;
  /** The network namespace (ip netns name). */
  netns: string;
  /** The host's address; the server is 10.213.<n>.1. */
  address: string;
  /** The host's mount point of the export. */
  mount: string;
  /** Command prefix that runs a program on this host (network namespace and hostname). */
  wrap: string[];
  /**
   * SFTP requests this host's sshfs sent to the server since the rig was made,
   * by type (LSTAT, RENAME, OPEN, …): its round trips. Counted only with
   * RigOptions.countRequests (empty otherwise).
   */
  requests: Map<string, number>;
}

export interface RigOptions {
  hosts?: number;
  /** sshfs -o options (COHERENT_MOUNT_OPTIONS by default). */
  mountOptions?: string[];
  /** Count every SFTP request each host's sshfs sends (RigHost.requests), from sshfs's debug output. */
  countRequests?: boolean;
}

/**
 * Why this machine cannot make the rig at all (not root, no FUSE, no namespaces),
 * or undefined when it can. Missing programs are not a reason: they are
 * installable (`.ci/run`), and missingPrograms() names them.
 */
export function hostRigImpossible(): string | undefined {
  if (process.platform !== 'linux') return 'multi-host tests need Linux network namespaces';
  if (process.getuid?.() !== 0) return 'multi-host tests need root (network namespaces, FUSE mounts)';
  try {
    accessSync('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch {
    return 'multi-host tests need /dev/fuse (FUSE mounts for sshfs)';
  }
  const probe = spawnSync('unshare', ['--net', '--uts', 'true'], { encoding: 'utf8' });
  if (probe.error === undefined && probe.status !== 0) return `this machine cannot make network namespaces: unshare --net failed: ${probe.stderr.trim()}`;
  return undefined;
}

/** Programs the rig needs that are not installed (Debian: sshfs, openssh-server, iproute2, fuse3). */
export function missingPrograms(): string[] {
  return REQUIRED_PROGRAMS.filter((p) => spawnSync('sh', ['-c', `command -v ${p}`]).status !== 0);
}

const run = (command: string, args: string[]): string => execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const tryRun = (command: string, args: string[]): void => void spawnSync(command, args, { stdio: 'ignore' });
const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

function isMounted(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4] === path);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class HostRig {
  /** The server's local path of the exported directory. */
  readonly exportDir: string;
  readonly hosts: RigHost[] = [];
  private readonly sshfs: ChildProcess[] = [];
  private readonly namespaces: string[] = [];
  private closed = false;

  private constructor(readonly dir: string) {
    this.exportDir = join(dir, 'export');
  }

  /** Builds the server and `hosts` hosts (3 by default), each with the export mounted. */
  static async create(options: RigOptions = {}): Promise<HostRig> {
    const impossible = hostRigImpossible();
    if (impossible) throw new Error(impossible);
    const missing = missingPrograms();
    if (missing.length) throw new Error(`the multi-host rig needs ${missing.join(', ')}: apt-get install -y sshfs openssh-server iproute2 fuse3`);
    reapAbandonedRigs();
    const rig = new HostRig(mkdtempSync(join(tmpdir(), `${RIG_PREFIX}${process.pid}-`)));
    try {
      await rig.build(options.hosts ?? 3, options.mountOptions ?? COHERENT_MOUNT_OPTIONS, options.countRequests ?? false);
      return rig;
    } catch (err) {
      await rig.close();
      throw err;
    }
  }

  private async build(count: number, mountOptions: string[], countRequests: boolean): Promise<void> {
    const d = this.dir;
    writeFileSync(join(d, 'owner.pid'), String(process.pid));
    mkdirSync(this.exportDir);
    // Namespace names must be unique on the machine and short (interface names ≤ 15 bytes).
    const tag = `sph${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
    writeFileSync(join(d, 'tag'), tag);

    const server = `${tag}s`;
    this.addNamespace(server);
    run('ip', ['-n', server, 'link', 'set', 'lo', 'up']);
    for (let n = 1; n <= count; n++) {
      const name = `h${n}`;
      const netns = `${tag}${name}`;
      this.addNamespace(netns);
      run('ip', ['link', 'add', 'name', `${tag}s${n}`, 'netns', server, 'type', 'veth', 'peer', 'name', `${tag}h${n}`, 'netns', netns]);
      run('ip', ['-n', server, 'addr', 'add', `10.213.${n}.1/24`, 'dev', `${tag}s${n}`]);
      run('ip', ['-n', server, 'link', 'set', `${tag}s${n}`, 'up']);
      run('ip', ['-n', netns, 'addr', 'add', `10.213.${n}.2/24`, 'dev', `${tag}h${n}`]);
      run('ip', ['-n', netns, 'link', 'set', `${tag}h${n}`, 'up']);
      run('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
      const mount = join(d, `mnt-${name}`);
      mkdirSync(mount);
      this.hosts.push({
        name,
        netns,
        address: `10.213.${n}.2`,
        mount,
        wrap: ['nsenter', `--net=/run/netns/${netns}`, '--', 'unshare', '--uts', '--', 'sh', '-c', 'hostname "$0" && exec "$@"', name],
        requests: new Map(),
      });
    }

    // sshd: its own keys and config in the rig directory, listening only inside the server namespace.
    run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(d, 'host_key')]);
    run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(d, 'client_key')]);
    writeFileSync(join(d, 'authorized_keys'), readFileSync(join(d, 'client_key.pub')));
    writeFileSync(
      join(d, 'sshd_config'),
      [
        'ListenAddress 0.0.0.0',
        `HostKey ${join(d, 'host_key')}`,
        `AuthorizedKeysFile ${join(d, 'authorized_keys')}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        'MaxStartups 100',
        `PidFile ${join(d, 'sshd.pid')}`,
        'Subsystem sftp internal-sftp',
        '',
      ].join('\n'),
    );
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // sshd's privilege separation directory
    run('nsenter', [`--net=/run/netns/${server}`, '--', '/usr/sbin/sshd', '-f', join(d, 'sshd_config'), '-E', join(d, 'sshd.log')]);
    await this.waitFor(() => existsSync(join(d, 'sshd.pid')), 'sshd to write its pid file', () => readFileSync(join(d, 'sshd.log'), 'utf8'));

    for (const [i, host] of this.hosts.entries()) {
      const options = [
        `IdentityFile=${join(d, 'client_key')}`,
        'StrictHostKeyChecking=no',
        'UserKnownHostsFile=/dev/null',
        'BatchMode=yes',
        'LogLevel=ERROR',
        'ServerAliveInterval=5',
        ...mountOptions,
        ...(countRequests ? ['sshfs_debug'] : []),
      ];
      const child = spawn('nsenter', [`--net=/run/netns/${host.netns}`, '--', 'sshfs', '-f', `root@10.213.${i + 1}.1:${this.exportDir}`, host.mount, '-o', options.join(',')], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      let partial = '';
      child.stderr!.setEncoding('utf8').on('data', (t: string) => {
        if (!countRequests) return void (stderr += t);
        // sshfs_debug writes a line per request sent, "[<id>] <TYPE>", and more per reply.
        const lines = (partial + t).split('\n');
        partial = lines.pop()!;
        for (const line of lines) {
          const m = REQUEST_LINE.exec(line);
          if (m) host.requests.set(m[1]!, (host.requests.get(m[1]!) ?? 0) + 1);
          else if (stderr.length < 10_000) stderr += line + '\n';
        }
      });
      this.sshfs.push(child);
      writeFileSync(join(d, `sshfs-${host.name}.pid`), String(child.pid));
      await this.waitFor(() => isMounted(host.mount) || child.exitCode !== null, `sshfs to mount ${host.mount}`, () => stderr);
      if (!isMounted(host.mount)) throw new Error(`sshfs could not mount ${host.mount} (exit ${child.exitCode}): ${stderr}`);
    }
  }

  private addNamespace(name: string): void {
    run('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
  }

  private async waitFor(check: () => boolean, what: string, explain: () => string): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${explain()}`);
      await sleep(20);
    }
  }

  /** The server's view of a path inside the export. */
  serverPath(...parts: string[]): string {
    return join(this.exportDir, ...parts);
  }

  /** Unmounts, stops sshfs and sshd, deletes the namespaces and the directory. Idempotent; never throws. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const host of this.hosts) if (isMounted(host.mount)) tryRun('umount', ['-l', host.mount]);
    await Promise.all(
      this.sshfs.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((done) => child.once('exit', done));
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(3000)]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }),
    );
    stopSshd(this.dir);
    for (const ns of this.namespaces) tryRun('ip', ['netns', 'delete', ns]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function stopSshd(dir: string): void {
  const pidFile = join(dir, 'sshd.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  // Only if that pid is still our sshd (its command line names our config file).
  if (pid > 0 && pidAlive(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(join(dir, 'sshd_config'))) process.kill(pid, 'SIGTERM');
}

/** Tears down rigs left behind by processes that died without closing them. */
function reapAbandonedRigs(): void {
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(RIG_PREFIX)) continue;
    const dir = join(tmpdir(), entry);
    let owner = NaN;
    let tag = '';
    try {
      owner = Number(readFileSync(join(dir, 'owner.pid'), 'utf8'));
      tag = readFileSync(join(dir, 'tag'), 'utf8').trim();
    } catch {
      continue; // being created right now, or not ours
    }
    if (!Number.isSafeInteger(owner) || pidAlive(owner)) continue;
    for (const m of readdirSync(dir)) if (m.startsWith('mnt-') && isMounted(join(dir, m))) tryRun('umount', ['-l', join(dir, m)]);
    for (const f of readdirSync(dir)) {
      if (!/^sshfs-.*\.pid$/.test(f)) continue;
      const pid = Number(readFileSync(join(dir, f), 'utf8'));
      if (pid > 0 && pidAlive(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) process.kill(pid, 'SIGKILL');
    }
    stopSshd(dir);
    if (tag) for (const ns of run('ip', ['netns', 'list']).split('\n').map((l) => l.split(' ')[0]!)) if (ns.startsWith(tag)) tryRun('ip', ['netns', 'delete', ns]);
    rmSync(dir, { recursive: true, force: true });
  }
}
