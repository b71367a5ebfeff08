/**
 * The unique-key sweep (spool/unique.ts, SPOOL-FORMAT.md "Unique keys"): a key
 * older than KEY_GRACE_MS whose task is in none of incoming/, pending/ and
 * active/<owner>/ is stale (its producer died between taking the key and
 * renaming its task in, or a daemon died between a task's last move and the
 * key's release) and is removed; so is anything in unique/ that is not a key
 * file (producers write there: a link, a directory, a bad name or record),
 * once older than the grace.
 *
 * Run from the reconciliation scan, at most every min(60 s, grace) (1 s at
 * least). Cost: nothing while unique/ is empty (one listing); else one open
 * and read per key, and for a key older than the grace whose task is not
 * under its name in incoming/ or pending/, one listing of the task folders
 * per sweep (matched by id: a retry or reclaim renames the task).
 */
import { existsSync, readdirSync } from 'node:fs';
import { sep } from 'node:path';
import { parseTaskName } from '../../spool/name.js';
import { existsNoFollow } from '../../spool/protocol.js';
import { eachName } from '../../spool/read-names.js';
import { removeTree } from '../../spool/remove-tree.js';
import type { SpoolLayout } from '../../spool/layout.js';
import { isKeyFileName, KEY_GRACE_MS, keyFileName, readKeyFile, removeBadEntry, removeKey } from '../../spool/unique.js';
import type { SpoolFolders } from '../folders.js';
import type { Logger } from '../logger.js';

const SWEEP_EVERY_MS = Math.max(1_000, Math.min(60_000, KEY_GRACE_MS));

export class UniqueKeySweeper {
  private last = 0;

  constructor(
    private readonly layout: SpoolLayout,
    private readonly folders: SpoolFolders,
    private readonly log: Logger,
  ) {}

  /** `now` by the spool clock (the keys' mtimes). */
  sweep(now: number): void {
    if (Date.now() - this.last < SWEEP_EVERY_MS) return;
    this.last = Date.now();
    let names: string[];
    try {
      this.folders.check('unique');
      names = readdirSync(this.layout.unique);
    } catch (err) {
      // A spool made before unique keys existed has no unique/ until something needs it.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.error('unique/ is not swept of stale keys', { err: (err as Error).message });
      return;
    }
    if (names.length === 0) return;
    let ids: Set<string> | undefined;
    for (const n of names) {
      const path = this.layout.unique + sep + n;
      const read = isKeyFileName(n) ? readKeyFile(path) : undefined;
      if (read === undefined || !read.ok) {
        // Gone meanwhile, or not ours to read (a key cannot be judged stale unread).
        if (read?.ok === false && (read.missing || read.denied === true)) continue;
        const reason = read === undefined ? 'not a key file name' : read.reason;
        if (removeBadEntry(path, now, removeTree)) this.log.warn('removed an entry of unique/ that is not a key file', { file: n, reason });
        continue;
      }
      if (now - read.mtimeMs <= KEY_GRACE_MS) continue;
      const h = read.holder;
      if (keyFileName(parseTaskName(h.file)!.name, h.key) !== n) {
        if (removeBadEntry(path, now, removeTree)) this.log.warn('removed an entry of unique/ that is not a key file', { file: n, reason: 'its name is not the hash of its task name and key' });
        continue;
      }
      if (existsNoFollow(this.layout.incoming + sep + h.file) || existsNoFollow(this.layout.pending + sep + h.file)) continue;
      ids ??= this.taskIds();
      if (ids.has(h.id)) continue;
      const removed = removeKey(this.layout, n, h.id, (other) => this.log.error('a unique key was released and taken by two tasks at once; both are enqueued', { key: h.key, id: other.id }));
      if (removed === 'removed') this.log.info('removed a stale unique key: its task is not waiting or running', { key: h.key, id: h.id, file: h.file });
    }
  }

  /** The ids of every task in incoming/, pending/ and active/<owner>/. */
  private taskIds(): Set<string> {
    const ids = new Set<string>();
    const add = (dir: string) => {
      if (!existsSync(dir)) return;
      try {
        for (const n of eachName(dir)) {
          const t = parseTaskName(n);
          if (t !== undefined) ids.add(t.id);
        }
      } catch {
        // Gone meanwhile (a reclaimed owner's folder).
      }
    };
    add(this.layout.incoming);
    add(this.layout.pending);
    for (const owner of readdirSync(this.layout.active)) add(this.layout.active + sep + owner);
    return ids;
  }
}
