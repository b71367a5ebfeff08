/**
 * Enqueueing a task with a unique key (spool/unique.ts has the steps and their
 * crash table; SPOOL-FORMAT.md, "Unique keys"). The modes, as graphile-worker's
 * job_key_mode:
 *
 *   keep          the key is held: the holder's handle is returned, nothing is added
 *   replace       the key is held by a waiting task: it is revoked and the new task takes its key
 *   preserve-due  as replace, but the new task keeps the old one's due time
 *
 * A holder that has started (a daemon claimed it) cannot be replaced: with
 * uniqueWhile 'running' its handle is returned, as in keep; with 'pending'
 * its key is about to be released by the runner that claimed it, and the
 * enqueue tries again (UniqueKeyBusyError after UNIQUE_BUSY_MS).
 */
import { join } from 'node:path';
import type { UniqueWhile } from '../spool/body.js';
import { BadKeyFileError, UniqueKeyBusyError } from '../spool/errors.js';
import type { SpoolLayout } from '../spool/layout.js';
import { parseTaskName } from '../spool/name.js';
import { discardStagedSync, fsyncDirSync, publishStagedSync, revoke, stageTaskSync, withdrawPublishedSync, type WriteOptions } from '../spool/protocol.js';
import type { EncodedTask } from '../spool/task-file.js';
import { keyFileName, keyPath, linkKey, readKeyFile, removeKey, replaceKey, stageKeyFile, unlinkQuietly, type KeyHolder } from '../spool/unique.js';

export const UNIQUE_MODES = ['keep', 'replace', 'preserve-due'] as const;
export type UniqueMode = (typeof UNIQUE_MODES)[number];

/** How long a replace waits for a holder that a daemon is starting before it gives up. */
const UNIQUE_BUSY_MS = 2_000;
const RETRY_PAUSE_MS = 2;

export interface UniqueRequest {
  layout: SpoolLayout;
  taskName: string;
  key: string;
  mode: UniqueMode;
  while: UniqueWhile;
  /** Encodes the new task; `due` (preserve-due) overrides its due time. */
  encode(due?: number): EncodedTask;
  write: WriteOptions;
}

export type UniqueOutcome = { added: true; encoded: EncodedTask; path: string } | { added: false; holder: KeyHolder };

export async function enqueueUnique(req: UniqueRequest): Promise<UniqueOutcome> {
  const hash = keyFileName(req.taskName, req.key);
  const started = performance.now();
  for (;;) {
    const outcome = await attempt(req, hash, started);
    if (outcome !== 'again') return outcome;
  }
}

/** One enqueue: staged, key taken (or the holder's handle), published, checked. 'again': our published task lost its key and was withdrawn. */
async function attempt(req: UniqueRequest, hash: string, started: number): Promise<UniqueOutcome | 'again'> {
  const { layout } = req;
  let encoded = req.encode();
  stageTaskSync(layout, encoded.fileName, encoded.bytes, req.write);
  let stagedKey: string | undefined;
  let linked = false;
  let published = false;
  try {
    stagedKey = stageKeyFile(layout, holderOf(req, encoded));
    for (;;) {
      if (linkKey(layout, stagedKey, hash)) {
        linked = true;
        break;
      }
      const held = readKeyFile(keyPath(layout, hash));
      if (!held.ok) {
        if (held.missing) continue; // released between the link and the read: try again
        throw new BadKeyFileError(keyPath(layout, hash), held.reason);
      }
      const holder = held.holder;
      if (req.mode === 'keep') return { added: false, holder };
      const waiting = [join(layout.incoming, holder.file), join(layout.pending, holder.file)];
      if (revoke(layout, { paths: waiting, quarantined: false, id: holder.id }).kind !== 'absent') {
        if (req.mode === 'preserve-due') {
          const due = parseTaskName(holder.file)?.due;
          discardStagedSync(layout, encoded.fileName);
          unlinkQuietly(stagedKey);
          stagedKey = undefined;
          encoded = req.encode(due);
          stageTaskSync(layout, encoded.fileName, encoded.bytes, req.write);
          stagedKey = stageKeyFile(layout, holderOf(req, encoded));
        }
        replaceKey(layout, stagedKey, hash);
        stagedKey = undefined;
        linked = true;
        break;
      }
      // Started: a running holder keeps its key; a pending-only holder's key is released by its runner at once.
      if (holder.while === 'running') return { added: false, holder };
      if (performance.now() - started > UNIQUE_BUSY_MS) throw new UniqueKeyBusyError(req.key, Math.round(performance.now() - started));
      await new Promise((done) => setTimeout(done, RETRY_PAUSE_MS));
    }
    if (stagedKey !== undefined) unlinkQuietly(stagedKey);
    stagedKey = undefined;
    const path = publishStagedSync(layout, encoded.fileName);
    published = true;
    if (req.write.fsync) fsyncDirSync(layout.incoming);
    // Still ours? A producer stalled past the sweep's grace between link and rename lost its key to the sweep.
    const now = readKeyFile(keyPath(layout, hash));
    if (!now.ok || now.holder.id !== encoded.id) {
      if (withdrawPublishedSync(layout, encoded.fileName)) return 'again';
    }
    return { added: true, encoded, path };
  } finally {
    if (stagedKey !== undefined) unlinkQuietly(stagedKey);
    if (!published) {
      discardStagedSync(layout, encoded.fileName);
      // Taken for a task that will not be: give the key back (else the sweep does, after its grace).
      if (linked) removeKey(layout, hash, encoded.id);
    }
  }
}

function holderOf(req: UniqueRequest, encoded: EncodedTask): KeyHolder {
  return { version: 1, id: encoded.id, file: encoded.fileName, key: req.key, while: req.while };
}
