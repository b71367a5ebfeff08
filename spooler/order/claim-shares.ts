/**
 * Which due tasks a daemon claims first when several serve one spool.
 *
 * Every daemon lists the same due tasks in the same order. Had each claimed
 * from the head, they would race for the same files: over sshfs three hosts
 * lost ~2 claims per task run, each a failed rename plus checks (~20 round
 * trips to the server), and three hosts drained slower than one
 * (BENCHMARKS.md, "multihost-drain"). So the due tasks are split into shares,
 * one per live owner: a task's share is a hash of its id modulo the number of
 * owners, and the owner whose id sorts k-th takes share k. A daemon claims its
 * own share first and others' tasks only when it has none of its own left
 * (or one of theirs has a better priority): work stealing, so a slow, busy or
 * dead owner's share still runs.
 *
 * This only orders claims: a claim is still one rename that one process wins
 * (SPOOL-FORMAT.md, "Claiming"), so daemons whose views of the owners differ
 * for a while (one just started, one just died) at worst race as before.
 * The id, not the whole name, is hashed: a task keeps its share across retries.
 */

/** Offsets of the 29-character id in a task file name ("PP-DUE-ID-…", spool/name.ts). */
const ID_START = 17;
const ID_END = 46;

/** The share (0 … shares-1) of a task file name: FNV-1a of its id. */
export function shareOf(fileName: string, shares: number): number {
  let h = 0x811c9dc5;
  for (let i = ID_START; i < ID_END; i++) {
    h ^= fileName.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shares;
}

/**
 * The test for "this task is in my share", given the live owners (ours among
 * them), or undefined when the spool is not shared (every task is ours).
 */
export function ownShare(owners: readonly string[], me: string): ((fileName: string) => boolean) | undefined {
  if (owners.length < 2) return undefined;
  const sorted = [...owners].sort();
  const index = sorted.indexOf(me);
  const shares = sorted.length;
  // Not among them (it just rejoined under a new id): no share of its own until the next look, so it steals.
  if (index < 0) return () => false;
  return (fileName) => shareOf(fileName, shares) === index;
}
