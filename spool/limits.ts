/**
 * The `limits/` folder: concurrency slots and rate-limit tokens, shared by
 * every daemon on the spool (on one host or many). Written by daemons only.
 * SPOOL-FORMAT.md, "Concurrency and rate limits", is the reference; the rows
 * of the crash table are in spool/protocol.ts.
 *
 * Every file here is a hard link to one "hold" file, which stands for one
 * runner process (a worker, or the daemon with --processes 0) of one owner:
 *
 *   hold~<owner>~<pid>                the runner's identity (empty; created O_EXCL before its first slot)
 *   <scope>~<k>                       concurrency slot k of a scope (0 <= k < limit), a link to a hold file
 *   r~<task>[~<key hash>]~<end>~<k>   rate token k of the window ending at <end> (spool-clock ms), a link too
 *
 *   scopes:  c~<task>                 concurrency of a task name (concurrency: N, overlap: false)
 *            k~<task>~<key hash>      concurrency of one key of a task (concurrencyKey + keyConcurrency)
 *
 * Exclusivity is link(2): of several processes linking the same new name,
 * exactly one succeeds, the others get EEXIST (also over NFS and sshfs). A slot
 * is released by unlinking it after checking that it is still a link to our
 * hold file (same inode); the runner keeps its hold file open, so its inode
 * cannot be reused by another file while it might be compared. A dead
 * owner's slots are found by the inode of its hold files and removed by the
 * reclaim of that owner (spooler/discover/reconcile.ts).
 *
 * Key hashes are 16 hex digits of the SHA-256 of the key (keys are any
 * string; file names are not).
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, linkSync, lstatSync, openSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

export const SEP = '~';
export const HOLD_PREFIX = `hold${SEP}`;
export const RATE_PREFIX = `r${SEP}`;

/** The scope of a task name's concurrency limit. */
export const nameScope = (task: string): string => `c${SEP}${task}`;
/** The scope of one key's concurrency limit. */
export const keyScope = (task: string, key: string): string => `k${SEP}${task}${SEP}${keyHash(key)}`;
/** The scope of a rate limit (per task name, or per key). */
export const rateScope = (task: string, key?: string): string => (key === undefined ? `${RATE_PREFIX}${task}` : `${RATE_PREFIX}${task}${SEP}${keyHash(key)}`);

export function keyHash(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

/** The task name a scope belongs to. */
export function taskOfScope(scope: string): string {
  const from = scope.indexOf(SEP) + 1;
  const end = scope.indexOf(SEP, from);
  return end < 0 ? scope.slice(from) : scope.slice(from, end);
}

/** Whether a scope is a rate scope (tokens, not slots). */
export const isRateScope = (scope: string): boolean => scope.startsWith(RATE_PREFIX);

/** The concurrency scope of a slot file name (`<scope>~<k>`), or undefined for any other file. */
export function scopeOfSlot(fileName: string): string | undefined {
  if (!(fileName.startsWith('c~') || fileName.startsWith('k~'))) return undefined;
  const at = fileName.lastIndexOf(SEP);
  return at > 2 ? fileName.slice(0, at) : undefined;
}

/** The end of the window (spool-clock ms) of a rate token's file name, or undefined for any other file. */
export function windowEndOfToken(fileName: string): number | undefined {
  if (!fileName.startsWith(RATE_PREFIX)) return undefined;
  const k = fileName.lastIndexOf(SEP);
  const e = fileName.lastIndexOf(SEP, k - 1);
  if (e < 0) return undefined;
  const end = Number(fileName.slice(e + 1, k));
  return Number.isSafeInteger(end) ? end : undefined;
}

/** The end of the fixed window of `perMs` that holds `now`. */
export const windowEnd = (now: number, perMs: number): number => (Math.floor(now / perMs) + 1) * perMs;

const holdName = (owner: string, runner: string): string => `${HOLD_PREFIX}${owner}${SEP}${runner}`;

function isCode(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException).code === code;
}

/**
 * The hold file of one runner process (a worker, or the daemon itself with
 * --processes 0) serving one owner: every slot and token it takes is a link
 * to it. It stays open for the runner's life, so its inode cannot be reused
 * by another file while this process may compare it.
 */
export class Hold {
  private constructor(
    readonly dir: string,
    readonly path: string,
    private fd: number,
    readonly ino: number,
  ) {}

  /** Creates the hold file of runner `runner` (its pid) of `owner` (O_EXCL, never following a link). */
  static create(dir: string, owner: string, runner: string): Hold {
    const path = join(dir, holdName(owner, runner));
    const flags = constants.O_CREAT | constants.O_EXCL | constants.O_RDONLY | constants.O_NOFOLLOW;
    let fd: number;
    try {
      fd = openSync(path, flags, 0o600);
    } catch (err) {
      if (!isCode(err, 'EEXIST')) throw err;
      // Left by an earlier runner of this owner with the same pid (its slots are not ours to keep): free them first.
      freeHolds(dir, (n) => n === holdName(owner, runner));
      fd = openSync(path, flags, 0o600);
    }
    return new Hold(dir, path, fd, fstatSync(fd).ino);
  }

  /** Takes `name` (a slot or a token) by link(2). False: someone holds it. */
  take(name: string): boolean {
    try {
      linkSync(this.path, join(this.dir, name));
      return true;
    } catch (err) {
      if (isCode(err, 'EEXIST')) return false;
      throw err;
    }
  }

  /** Takes the first free slot of `scope` (0 <= k < limit): its file name, or undefined when all are held. */
  takeSlot(scope: string, limit: number): string | undefined {
    for (let k = 0; k < limit; k++) {
      const name = scope + SEP + k;
      if (this.take(name)) return name;
    }
    return undefined;
  }

  /**
   * Releases slot `name` if it is still a link to this hold file. One that is
   * gone or is another file now (the reclaim took this owner for dead and
   * another task took the slot) is left alone.
   */
  releaseSlot(name: string): void {
    unlinkIfMine(join(this.dir, name), this.ino);
  }

  /** Closes the hold file, leaving every file where it is (the owner was lost: the reclaim removes them). */
  close(): void {
    if (this.fd < 0) return;
    try {
      closeSync(this.fd);
    } catch {
      // closed already
    }
    this.fd = -1;
  }
}

function unlinkIfMine(path: string, ino: number): void {
  try {
    if (lstatSync(path).ino !== ino) return;
    unlinkSync(path);
  } catch (err) {
    if (!isCode(err, 'ENOENT')) throw err;
  }
}

/** The next rate token to try per scope and window, so a daemon does not try every taken token again. */
export class TokenHints {
  private readonly next = new Map<string, { end: number; k: number }>();

  /** Takes a token of `scope` in the window holding `now`; returns undefined, or the window's end when all `max` are taken. */
  take(hold: Hold, scope: string, max: number, perMs: number, now: number): number | undefined {
    const end = windowEnd(now, perMs);
    let h = this.next.get(scope);
    if (h === undefined || h.end !== end) this.next.set(scope, (h = { end, k: 0 }));
    for (; h.k < max; h.k++) {
      if (hold.take(`${scope}${SEP}${end}${SEP}${h.k}`)) {
        h.k++;
        return undefined;
      }
    }
    return end;
  }
}

/**
 * Frees the slots of the given hold files (a dead owner's, or a worker
 * process's that died) and the hold files. Returns the scopes freed. One
 * listing of limits/ and an lstat per slot file.
 */
export function freeHolds(dir: string, isTarget: (holdFileName: string) => boolean): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if (isCode(err, 'ENOENT')) return [];
    throw err;
  }
  const inos = new Map<number, string>();
  for (const n of names) {
    if (!n.startsWith(HOLD_PREFIX) || !isTarget(n)) continue;
    try {
      const st = lstatSync(join(dir, n));
      if (st.isFile()) inos.set(st.ino, n);
    } catch {
      // gone meanwhile
    }
  }
  if (inos.size === 0) return [];
  const freed: string[] = [];
  for (const n of names) {
    const scope = scopeOfSlot(n);
    if (scope === undefined) continue;
    try {
      const path = join(dir, n);
      if (!inos.has(lstatSync(path).ino)) continue;
      unlinkSync(path);
      freed.push(scope);
    } catch {
      // gone meanwhile
    }
  }
  // The hold files last: while one remains, the next reclaim finds its slots again.
  for (const n of inos.values()) {
    try {
      unlinkSync(join(dir, n));
    } catch {
      // gone meanwhile
    }
  }
  return freed;
}

/** Hold files of one owner. */
export const ownerHolds = (owner: string) => (holdFileName: string): boolean => holdFileName.startsWith(HOLD_PREFIX + owner + SEP);
/** The hold file of one runner process of one owner. */
export const runnerHold = (owner: string, runner: string) => (holdFileName: string): boolean => holdFileName === holdName(owner, runner);

/** How many slots of each concurrency scope are held now: one listing of limits/. */
export function countSlots(names: readonly string[]): Map<string, number> {
  const used = new Map<string, number>();
  for (const n of names) {
    const scope = scopeOfSlot(n);
    if (scope !== undefined) used.set(scope, (used.get(scope) ?? 0) + 1);
  }
  return used;
}

/** Removes rate tokens of windows that ended more than `graceMs` ago. Returns how many. */
export function sweepTokens(dir: string, names: readonly string[], now: number, graceMs: number): number {
  let removed = 0;
  for (const n of names) {
    const end = windowEndOfToken(n);
    if (end === undefined || end + graceMs > now) continue;
    try {
      unlinkSync(join(dir, n));
      removed++;
    } catch {
      // gone meanwhile
    }
  }
  return removed;
}
