/**
 * Plain messages for the errors the operating system gives file operations:
 * a full disk, a read-only or failing filesystem, a missing permission. They
 * are the user's to fix, not bugs: one line that says which operation on which
 * path failed and what to do, with an exit code of their own (EXIT.STORAGE,
 * EXIT.PERMISSION), and no stack trace. Both `spool` and `spoolerd` use this.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { EXIT } from './exit-codes.js';

/** The filesystem cannot take the write: freeing space or fixing the mount is the cure. */
const STORAGE: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'the filesystem is read-only',
  EIO: 'input/output error (the disk or the network filesystem failed)',
};

/** The user running the command may not do this here. */
const PERMISSION: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
};

/** How each system call reads in a sentence: "cannot <verb> <path>". */
const VERBS: Record<string, string> = {
  open: 'open',
  read: 'read',
  write: 'write',
  close: 'close',
  fsync: 'flush to disk',
  rename: 'move',
  unlink: 'delete',
  mkdir: 'create the directory',
  rmdir: 'remove the directory',
  opendir: 'read the directory',
  scandir: 'read the directory',
  stat: 'look at',
  lstat: 'look at',
  fstat: 'look at',
  utime: 'set the times of',
  chmod: 'change the mode of',
};

export interface SystemErrorContext {
  /** The spool the command works on, when known: named in the message, and its owners in the advice on permissions. */
  spool?: string;
  /** What the command was doing, for errors that name no path (a write through an open file): "enqueue the task". */
  doing?: string;
  /** The command to run again, for the advice: "spool rm". */
  command?: string;
}

export interface ExplainedError {
  message: string;
  exitCode: number;
}

/**
 * The explanation of `err` when it is (or wraps, as `cause`) an error from a
 * system call; undefined for anything else, which stays an unexpected error.
 */
export function explainSystemError(err: unknown, context: SystemErrorContext = {}): ExplainedError | undefined {
  const sys = systemErrorIn(err);
  if (sys === undefined) return undefined;
  const code = sys.code!;
  // A typed error that wraps another system error already says what is wrong (spool directory: not a directory).
  if (sys !== err && STORAGE[code] === undefined && PERMISSION[code] === undefined) return undefined;
  const what = whatFailed(sys, context);
  const storage = STORAGE[code];
  if (storage !== undefined) {
    const advice =
      code === 'EROFS'
        ? 'remount it read-write (or point --dir at a writable spool), then try again'
        : code === 'EIO'
          ? 'check the disk (dmesg) or the network mount, then try again'
          : 'free some space on that filesystem (or raise the quota), then try again';
    return { message: `${what}: ${storage} (${code}); ${advice}`, exitCode: EXIT.STORAGE };
  }
  const permission = PERMISSION[code];
  if (permission !== undefined) {
    const again = context.command ?? 'the command';
    const owners = describeOwners(context.spool ?? (sys.path !== undefined ? dirname(sys.path) : undefined));
    return { message: `${what}: ${permission} (${code}); run ${again} as the spool's owner or a member of its group${owners}`, exitCode: EXIT.PERMISSION };
  }
  return { message: `${what}: ${sys.message}`, exitCode: EXIT.ERROR };
}

/** An error from a system call: Node gives those a string `code` and a `syscall`. */
function systemErrorIn(err: unknown): NodeJS.ErrnoException | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const sys = e as NodeJS.ErrnoException;
    if (typeof sys.code === 'string' && typeof sys.syscall === 'string') return sys;
  }
  return undefined;
}

function whatFailed(sys: NodeJS.ErrnoException, context: SystemErrorContext): string {
  const verb = VERBS[sys.syscall!] ?? sys.syscall!;
  const dest = (sys as { dest?: string }).dest;
  if (sys.path !== undefined) return `cannot ${verb} ${sys.path}${dest !== undefined ? ` to ${dest}` : ''}`;
  const where = context.spool !== undefined ? ` in the spool ${context.spool}` : '';
  return context.doing !== undefined ? `cannot ${context.doing}${where} (${verb} failed)` : `cannot ${verb}${where}`;
}

/**
 * ": /s is owned by alice (uid 1001), group spool (gid 1002), mode drwxrwx---",
 * or "" when the directory cannot be looked at.
 */
function describeOwners(dir: string | undefined): string {
  if (dir === undefined) return '';
  let uid: number;
  let gid: number;
  let mode: number;
  try {
    ({ uid, gid, mode } = statSync(dir));
  } catch {
    return '';
  }
  const user = nameOf('/etc/passwd', uid);
  const group = nameOf('/etc/group', gid);
  return (
    `: ${dir} is owned by ${user !== undefined ? `${user} (uid ${uid})` : `uid ${uid}`},` +
    ` group ${group !== undefined ? `${group} (gid ${gid})` : `gid ${gid}`}, mode ${modeText(mode)}`
  );
}

/** The name of a uid or gid from /etc/passwd or /etc/group (name:x:id:…), if listed there. */
function nameOf(file: string, id: number): string | undefined {
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const fields = line.split(':');
      if (fields.length > 2 && fields[2] === String(id)) return fields[0];
    }
  } catch {
    // No such file (a container without one): the number alone.
  }
  return undefined;
}

/** "drwxr-x---" for a directory's mode. */
function modeText(mode: number): string {
  let text = (mode & 0o170000) === 0o040000 ? 'd' : '-';
  for (let shift = 6; shift >= 0; shift -= 3) {
    const bits = (mode >> shift) & 7;
    text += (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (bits & 1 ? 'x' : '-');
  }
  return text;
}
