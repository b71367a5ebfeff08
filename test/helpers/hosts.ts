/**
 * spoolerd on several hosts sharing one spool over sshfs (bench/host-rig.ts
 * builds the hosts). Each host's daemon serves `<mount>/spool` through its own
 * mount and appends its task records to a local file of its own
 * (`<rig>/records-<host>.jsonl`, outside the mount: an append over sshfs is not
 * atomic with other hosts' appends).
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { join } from 'node:path';
import { COHERENT_MOUNT_OPTIONS, HostRig, hostRigImpossible, missingPrograms, type RigHost } from '../../bench/host-rig.js';
import { killLeftoverDaemons, readRecords, startDaemon, type DaemonProcess, type DaemonStartOptions, type TaskRecord } from './daemon.js';

export { COHERENT_MOUNT_OPTIONS, HostRig, hostRigImpossible, missingPrograms, type RigHost };

/** The spool as a host sees it. */
export const hostSpool = (host: RigHost): string => join(host.mount, 'spool');

/** The spool as the server sees it (its local disk). */
export const serverSpool = (rig: HostRig): string => rig.serverPath('spool');

export const hostRecords = (rig: HostRig, host: RigHost): string => join(rig.dir, `records-${host.name}.jsonl`);

/** Starts spoolerd on `host`, serving the shared spool through the host's mount. */
export function startOnHost(rig: HostRig, host: RigHost, options: Omit<DaemonStartOptions, 'dir' | 'wrap' | 'records'> = {}): DaemonProcess {
  return startDaemon({ ...options, dir: hostSpool(host), wrap: host.wrap, records: hostRecords(rig, host) });
}

/** Every host's records, each with the host's name. */
export function allRecords(rig: HostRig): Array<TaskRecord & { host: string }> {
  return rig.hosts.flatMap((h) => readRecords(hostRecords(rig, h)).map((r) => ({ ...r, host: h.name })));
}

/** The pid and its descendants (from /proc), parents first. */
export function processTree(pid: number): number[] {
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    const p = tree[i]!;
    let threads: string[] = [];
    try {
      threads = readdirSync(`/proc/${p}/task`);
    } catch {
      continue; // gone meanwhile
    }
    for (const t of threads) {
      try {
        tree.push(...readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
      } catch {
        // that thread ended meanwhile
      }
    }
  }
  return tree;
}

/** Freezes a whole host's daemon (the daemon and its worker processes), as a paused VM would be. Returns the pids stopped. */
export function freeze(pid: number): number[] {
  const pids = processTree(pid);
  for (const p of pids) process.kill(p, 'SIGSTOP');
  return pids;
}

/** Resumes what freeze() stopped. */
export function thaw(pids: number[]): void {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGCONT');
    } catch {
      // exited meanwhile
    }
  }
}

/**
 * The rig for one test file: made before its tests (`hosts` hosts), the shared
 * spool and the hosts' record files emptied and leftover daemons killed after
 * each test, everything taken down after the file. `created` receives the rig.
 */
export function useHostRig(hosts: number, created: (rig: HostRig) => void): void {
  let rig: HostRig | undefined;
  beforeAll(async () => {
    rig = await HostRig.create({ hosts });
    created(rig);
  }, 60_000);
  afterEach(async () => {
    await killLeftoverDaemons();
    if (!rig) return;
    rmSync(serverSpool(rig), { recursive: true, force: true });
    for (const h of rig.hosts) rmSync(hostRecords(rig, h), { force: true });
  });
  afterAll(async () => {
    await killLeftoverDaemons();
    await rig?.close();
  });
}
