/**
 * Which filesystem a spool lives on, as far as discovery cares: inotify
 * reports only the changes made through this machine's own kernel, so on a
 * filesystem that other machines write to (a network filesystem, or FUSE,
 * which sshfs, virtiofs and most remote mounts use) a file another host drops
 * is never announced, and the daemon must poll instead.
 *
 * The kind comes from statfs(2)'s f_type (Node: `fs.statfsSync(path).type`),
 * the magic numbers of linux/magic.h and of the filesystems' own sources.
 */
import { statfsSync } from 'node:fs';

/** f_type values of filesystems whose files other machines may change. */
const REMOTE_FILESYSTEMS: ReadonlyMap<number, string> = new Map([
  [0x6969, 'nfs'],
  [0x65735546, 'fuse'],
  [0xff534d42, 'cifs'],
  [0xfe534d42, 'smb2'],
  [0x517b, 'smb'],
  [0x00c36400, 'ceph'],
  [0x01021997, '9p'],
  [0x5346414f, 'afs'],
  [0x6b414653, 'afs'],
  [0x73757245, 'coda'],
  [0x564c, 'ncp'],
  [0x7461636f, 'ocfs2'],
  [0x01161970, 'gfs2'],
  [0x0bd00bd0, 'lustre'],
  [0x47504653, 'gpfs'],
  [0x19830326, 'fhgfs'],
  [0x013111a8, 'ibrix'],
  [0xaad7aaea, 'panfs'],
]);

export interface FilesystemKind {
  /** A short name: "nfs", "fuse", "cifs", … or "local". */
  name: string;
  /** statfs f_type, as `0x…`. */
  type: string;
  /** Other machines may write to it, and inotify would not see their writes. */
  remote: boolean;
}

/** The kind of a statfs f_type (exported for tests). */
export function filesystemKindOf(fType: number): FilesystemKind {
  // f_type is a signed long on some platforms: the CIFS magic can come back negative.
  const type = fType >>> 0;
  const name = REMOTE_FILESYSTEMS.get(type);
  return { name: name ?? 'local', type: `0x${type.toString(16)}`, remote: name !== undefined };
}

/** The kind of the filesystem `path` is on; undefined where statfs is not available or fails. */
export function filesystemKind(path: string): FilesystemKind | undefined {
  try {
    return filesystemKindOf(statfsSync(path).type);
  } catch {
    return undefined;
  }
}
