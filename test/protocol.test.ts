/**
 * claim() on ENOENT (spooler/claim.ts): a lost race and a claim directory that
 * is gone both make rename(2) fail with ENOENT, and must not be confused. Taken
 * for lost races, the claims of a daemon whose claim directory was reclaimed
 * failed silently forever (issue 13).
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { claim } from '../spool/protocol.js';
import { claimAndRead, ClaimStatus, NAME_SEPARATOR } from '../spooler/file-ops.js';
import { tempDir } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
let sources: { incoming: string; pending: string };
let ownerDir: string;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('spoolerd-claim-'));
  sources = { incoming: join(dir, 'incoming'), pending: join(dir, 'pending') };
  ownerDir = join(dir, 'active', 'host-1-abcdef');
  for (const d of [sources.incoming, sources.pending, ownerDir]) mkdirSync(d, { recursive: true });
});
afterEach(() => cleanup());

describe('claim', () => {
  it('claims a file that is there', () => {
    writeFileSync(join(sources.incoming, 't1'), 'x');
    expect(claim(sources, ownerDir, 't1', 'incoming')).toEqual({ claimed: true, path: join(ownerDir, 't1'), from: 'incoming' });
  });

  it('a file gone from incoming/ and pending/ is a lost race, nothing more', () => {
    expect(claim(sources, ownerDir, 't1', 'incoming')).toEqual({ claimed: false });
  });

  it('says so when its own claim directory is gone, and leaves the file where it was', () => {
    writeFileSync(join(sources.incoming, 't1'), 'x');
    rmdirSync(ownerDir);
    expect(claim(sources, ownerDir, 't1', 'incoming')).toEqual({ claimed: false, ownerGone: true });
    expect(existsSync(join(sources.incoming, 't1'))).toBe(true);
  });

  it('a claim batch into a claim directory that is gone reports every name OwnerGone and moves nothing', () => {
    const names = ['a', 'b', 'c'];
    for (const n of names) writeFileSync(join(sources.incoming, n), 'x');
    writeFileSync(join(sources.incoming, 'first'), 'x');
    const ok = claimAndRead({ sources, ownerDir, names: 'first', inPending: new Uint8Array(1), maxBytes: 1024 });
    expect(ok.status[0]).toBe(ClaimStatus.Read);
    rmSync(ownerDir, { recursive: true });
    const reply = claimAndRead({ sources, ownerDir, names: ['gone-already', ...names].join(NAME_SEPARATOR), inPending: new Uint8Array(4), maxBytes: 1024 });
    expect([...reply.status]).toEqual([ClaimStatus.OwnerGone, ClaimStatus.OwnerGone, ClaimStatus.OwnerGone, ClaimStatus.OwnerGone]);
    for (const n of names) expect(existsSync(join(sources.incoming, n))).toBe(true);
  });

  it('a batch started part-way claims every name, from the start round to it, and replies in the batch order', () => {
    const names = ['p0', 'p1', 'p2', 'p3', 'p4'];
    names.forEach((n, i) => writeFileSync(join(sources.incoming, n), `body-${i}`));
    // A neighbour already took p1 and p3: lost races, wherever the batch starts.
    renameSync(join(sources.incoming, 'p1'), join(dirname(ownerDir), 'p1-taken'));
    renameSync(join(sources.incoming, 'p3'), join(dirname(ownerDir), 'p3-taken'));
    const reply = claimAndRead({ sources, ownerDir, names: names.join(NAME_SEPARATOR), inPending: new Uint8Array(5), maxBytes: 1024, start: 3 });
    expect([...reply.status]).toEqual([ClaimStatus.Read, ClaimStatus.Lost, ClaimStatus.Read, ClaimStatus.Lost, ClaimStatus.Read]);
    const body = (i: number) => Buffer.from(reply.bytes.slice(reply.offsets[i]!, reply.offsets[i + 1]!)).toString();
    expect([body(0), body(2), body(4)]).toEqual(['body-0', 'body-2', 'body-4']);
    expect(readdirSync(ownerDir).sort()).toEqual(['p0', 'p2', 'p4']);
  });

  it('a batch started part-way into a claim directory that is gone reports every name OwnerGone', () => {
    const names = ['q0', 'q1', 'q2', 'q3'];
    for (const n of names) writeFileSync(join(sources.incoming, n), 'x');
    rmSync(ownerDir, { recursive: true });
    const reply = claimAndRead({ sources, ownerDir, names: names.join(NAME_SEPARATOR), inPending: new Uint8Array(4), maxBytes: 1024, start: 2 });
    expect([...reply.status]).toEqual([ClaimStatus.OwnerGone, ClaimStatus.OwnerGone, ClaimStatus.OwnerGone, ClaimStatus.OwnerGone]);
    for (const n of names) expect(existsSync(join(sources.incoming, n))).toBe(true);
  });
});
