/**
 * The two file operations every task costs, done a batch at a time: claim and
 * read (rename into the claim directory, then the safe read of safe-read.ts),
 * and delete once processed. They are plain synchronous functions over plain
 * data, so that a file-ops thread (file-ops-thread.ts) can run them beside the
 * daemon's JavaScript, or the daemon itself can (--io-threads 0).
 *
 * Nothing here decides anything: each step is spool/protocol.ts's or safe-read.ts's,
 * with their crash behaviour, and every outcome is reported back per file.
 */
import { claim, removeClaimed, type ClaimSources } from '../spool/protocol.js';
import { readClaimedFile } from '../spool/safe-read.js';

/**
 * Names travel joined by "/", the one character no file name can hold: one
 * flat string crosses to a thread several times cheaper than an array of
 * strings (structured clone writes each string separately).
 */
export const NAME_SEPARATOR = '/';

/** Claim and read `names` into `ownerDir`. */
export interface ClaimRequest {
  sources: ClaimSources;
  /** The claim directory the files are renamed into (a handle's path on a network filesystem, dir-handles.ts). */
  ownerDir: string;
  /** The claim directory's real path, when ownerDir is a handle's: a handle outlives its directory, so only this path says whether it is gone. */
  ownerPath?: string;
  /** File names joined by NAME_SEPARATOR. */
  names: string;
  /** Per name: 1 if the queue last saw it in pending/ (then incoming/ is not tried), else 0. */
  inPending: Uint8Array;
  maxBytes: number;
  /**
   * Where in the batch to start claiming (then round to the end and on from the
   * first). Daemons sharing a spool list the same due tasks in the same order;
   * had each claimed from the head, the fastest would win every race and the
   * others none (seen over a network filesystem: one host ran 600 of 600).
   * Replies keep the batch's order whatever the start.
   */
  start?: number;
}

/** What became of each name of a ClaimRequest. */
export const enum ClaimStatus {
  /** Claimed and read: its bytes are in `bytes`. */
  Read = 0,
  /** Claimed, but reading failed for the file's own reasons: see `reasons`. */
  Unreadable = 1,
  /** Another process got it first (or it was removed). */
  Lost = 2,
  /** The claim failed for another reason (permissions, full disk): see `reasons`; the file stays where it was. */
  Failed = 3,
  /** Not claimed: the claim directory is gone (another daemon took this owner for dead). The rest of the batch is not tried. */
  OwnerGone = 4,
}

export interface ClaimReply {
  status: Uint8Array;
  /** 1 if claimed from pending/, 0 from incoming/. */
  fromPending: Uint8Array;
  /** The file's mtime, when known (NaN otherwise). */
  mtimes: Float64Array;
  /** Bodies of the Read files, back to back: name i's bytes are bytes[offsets[i], offsets[i + 1]). */
  offsets: Uint32Array;
  bytes: ArrayBuffer;
  /** Why, for Unreadable and Failed names. */
  reasons: Array<string | undefined>;
}

export function claimAndRead(req: ClaimRequest): ClaimReply {
  const names = req.names.split(NAME_SEPARATOR);
  const n = names.length;
  const status = new Uint8Array(n);
  const fromPending = new Uint8Array(n);
  const mtimes = new Float64Array(n).fill(NaN);
  const reasons: Array<string | undefined> = new Array(n);
  const bodies: Uint8Array[] = new Array(n);
  let total = 0;
  const start = req.start === undefined || n === 0 ? 0 : req.start % n;
  for (let k = 0; k < n; k++) {
    const i = start + k < n ? start + k : start + k - n;
    const name = names[i]!;
    let claimed;
    try {
      claimed = claim(req.sources, req.ownerDir, name, req.inPending[i] === 1 ? 'pending' : 'incoming', req.ownerPath);
    } catch (err) {
      status[i] = ClaimStatus.Failed;
      reasons[i] = (err as Error).message;
      continue;
    }
    if (!claimed.claimed) {
      if (claimed.ownerGone) {
        for (let rest = k; rest < n; rest++) status[start + rest < n ? start + rest : start + rest - n] = ClaimStatus.OwnerGone;
        break;
      }
      status[i] = ClaimStatus.Lost;
      continue;
    }
    fromPending[i] = claimed.from === 'pending' ? 1 : 0;
    const read = readClaimedFile(claimed.path, req.maxBytes);
    if (read.mtimeMs !== undefined) mtimes[i] = read.mtimeMs;
    if (!read.ok) {
      status[i] = ClaimStatus.Unreadable;
      reasons[i] = read.reason;
      continue;
    }
    bodies[i] = read.bytes;
    total += read.bytes.length;
  }
  // One buffer for the batch, so a thread can hand it over without copying it again.
  const bytes = new ArrayBuffer(total);
  const view = new Uint8Array(bytes);
  const offsets = new Uint32Array(n + 1);
  let at = 0;
  for (let i = 0; i < n; i++) {
    offsets[i] = at;
    const body = bodies[i];
    if (body !== undefined) {
      view.set(body, at);
      at += body.length;
    }
  }
  offsets[n] = at;
  return { status, fromPending, mtimes, offsets, bytes, reasons };
}

/** What became of each path of an unlink batch. */
export const enum UnlinkStatus {
  Done = 0,
  /** Gone already: another daemon reclaimed it. */
  Missing = 1,
  /** See `reasons`; the file stays claimed. */
  Failed = 2,
}

export interface UnlinkReply {
  status: Uint8Array;
  reasons: Array<string | undefined>;
}

/** Deletes processed and skipped tasks (`names`, joined by NAME_SEPARATOR) from the claim directory `dir`. */
export function unlinkAll(dir: string, joinedNames: string): UnlinkReply {
  const names = joinedNames.split(NAME_SEPARATOR);
  const status = new Uint8Array(names.length);
  const reasons: Array<string | undefined> = new Array(names.length);
  for (let i = 0; i < names.length; i++) {
    try {
      if (!removeClaimed(dir + NAME_SEPARATOR + names[i]!)) status[i] = UnlinkStatus.Missing;
    } catch (err) {
      status[i] = UnlinkStatus.Failed;
      reasons[i] = (err as Error).message;
    }
  }
  return { status, reasons };
}

export type FileOpsRequest = { id: number; op: 'claim'; req: ClaimRequest } | { id: number; op: 'unlink'; dir: string; names: string };
export type FileOpsReply = { id: number; claim: ClaimReply } | { id: number; unlink: UnlinkReply } | { id: number; error: string };
