/**
 * Open handles on the directories every task's file operations go through
 * (incoming/, pending/, the claim directory), on a network filesystem only.
 *
 * Every path a system call is given is looked up one component at a time,
 * and a network filesystem mounted to see other hosts' changes at once
 * (NFS with `lookupcache=none`/`actimeo=0`, sshfs with `entry_timeout=0`)
 * asks the server again about each component: a claim's rename of
 * `<spool>/incoming/N` to `<spool>/active/<owner>/N` cost 7 lookups besides the
 * rename itself, and a no-op task 27 round trips in all over sshfs, 21 of them
 * lookups of the same few directories (BENCHMARKS.md, "multihost-drain").
 * Node has no openat()/renameat(), but a path through the process's own open
 * directory, `/proc/self/fd/<fd>/N`, starts the lookup at that directory: only
 * `N` is looked up. A task then costs about 13 round trips.
 *
 * The handle is opened with O_DIRECTORY | O_NOFOLLOW and must be the very
 * directory the daemon checked (folders.ts): it pins that directory, so a
 * later swap of the folder cannot redirect these operations (the scans still
 * detect and refuse the swap). `/proc/self/fd/<fd>` is the kernel's link to our
 * own descriptor, never a link anyone else made. The descriptor is shared by
 * the process's threads, so file-ops threads may use the path; worker
 * processes may not (they are given real paths).
 *
 * On a local filesystem the lookups are answered from the kernel's cache, and
 * a path through /proc costs more than it saves: plain paths are kept there.
 */
import { closeSync, constants, existsSync, fstatSync, openSync, statfsSync } from 'node:fs';

/** statfs(2) f_type of the network filesystems (and FUSE, which sshfs and most remote mounts use). */
const NETWORK_FILESYSTEMS = new Set([
  0x6969, // NFS
  0x65735546, // FUSE (sshfs, s3fs, GlusterFS native client, …)
  0xff534d42, // CIFS
  0xfe534d42, // SMB2
  0x517b, // SMB
  0x00c36400, // CephFS
  0x01021997, // 9P
  0x5346414f, // AFS
  0x6b414653, // kAFS
  0x0bd00bd0, // Lustre
  0x47504653, // GPFS
]);

/** Whether `path` is on a network filesystem where directory handles pay (Linux with /proc only). */
export function wantsDirHandles(path: string): boolean {
  if (process.platform !== 'linux' || !existsSync('/proc/self/fd')) return false;
  try {
    return NETWORK_FILESYSTEMS.has(Number(statfsSync(path).type));
  } catch {
    return false;
  }
}

export interface DirHandle {
  /** `/proc/self/fd/<fd>`: a directory path whose lookups start at the handle. */
  readonly path: string;
  close(): void;
}

/**
 * Opens `dir` as a handle if it is still the directory `checked` (dev, ino),
 * else undefined (the caller goes on with plain paths).
 */
export function openDirHandle(dir: string, checked: { dev: number; ino: number }): DirHandle | undefined {
  let fd: number;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (st.dev === checked.dev && st.ino === checked.ino) {
      let open = true;
      return {
        path: `/proc/self/fd/${fd}`,
        close: () => {
          if (open) closeSync(fd);
          open = false;
        },
      };
    }
  } catch {
    // fall through: not usable
  }
  closeSync(fd);
  return undefined;
}
