/**
 * The directories of a spool. Producers only ever touch tmp/ and incoming/;
 * everything else belongs to spoolerd and the `spool` command.
 *
 *   tmp/          staging: producers write here, then rename into incoming/
 *   incoming/     the drop box, watched by the daemon and kept small by it
 *   pending/      accepted tasks waiting for their due time or a free slot; never
 *                 watched, so it may hold millions of files
 *   active/<owner>/  tasks claimed by one daemon process (owner = its id)
 *   dead/         dead letters: tasks that used up their retries
 *   quarantine/   files that are not valid tasks, each with a .reason.json beside it
 *   archive/      processed tasks, when the daemon is told to keep them
 *   state/        per-task records (last error; later status and results)
 *   locks/        daemon liveness and, later, per-task locks
 */
import { mkdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { SpoolDirectoryError } from './errors.js';
import { assertRealFolder, makeFolder, policyFromEnv, type FolderPolicy } from './trust.js';

export const SUBDIRS = ['tmp', 'incoming', 'pending', 'active', 'dead', 'quarantine', 'archive', 'state', 'locks'] as const;
export type Subdir = (typeof SUBDIRS)[number];

/** Where each task state lives: the states `spool ls` can filter on. */
export type TaskLocation = 'incoming' | 'pending' | 'active' | 'dead' | 'quarantine' | 'archive';

export class SpoolLayout {
  readonly root: string;
  readonly tmp: string;
  readonly incoming: string;
  readonly pending: string;
  readonly active: string;
  readonly dead: string;
  readonly quarantine: string;
  readonly archive: string;
  readonly state: string;
  readonly locks: string;

  constructor(dir: string) {
    this.root = resolve(dir);
    this.tmp = join(this.root, 'tmp');
    this.incoming = join(this.root, 'incoming');
    this.pending = join(this.root, 'pending');
    this.active = join(this.root, 'active');
    this.dead = join(this.root, 'dead');
    this.quarantine = join(this.root, 'quarantine');
    this.archive = join(this.root, 'archive');
    this.state = join(this.root, 'state');
    this.locks = join(this.root, 'locks');
  }

  get basename(): string {
    return basename(this.root);
  }

  /**
   * Creates any missing directories, with the modes of `policy` (spool/trust.ts;
   * by default from $SPOOL_GROUP: without it the spool is private to its owner).
   * Folders that exist keep their modes. Throws SpoolDirectoryError if the root is
   * unusable or a subfolder is a symbolic link or not a directory (never followed).
   */
  ensure(policy?: FolderPolicy): this {
    const getPolicy = (): FolderPolicy => (policy ??= policyFromEnv());
    try {
      try {
        makeFolder(this.root, 'root', getPolicy);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        // Its parents are made as mkdir -p makes them; the spool folder itself gets the policy's mode.
        mkdirSync(dirname(this.root), { recursive: true });
        makeFolder(this.root, 'root', getPolicy);
      }
    } catch (err) {
      throw new SpoolDirectoryError(this.root, `cannot be created (${(err as Error).message}); choose a writable path with --dir or SPOOL_DIR`, { cause: err });
    }
    if (!statSync(this.root).isDirectory()) {
      throw new SpoolDirectoryError(this.root, 'exists but is not a directory; choose another path with --dir or SPOOL_DIR');
    }
    for (const sub of SUBDIRS) {
      const path = join(this.root, sub);
      try {
        makeFolder(path, sub, getPolicy);
      } catch (err) {
        throw new SpoolDirectoryError(this.root, `cannot create ${sub}/ (${(err as Error).message}); check its permissions`, { cause: err });
      }
      assertRealFolder(path);
    }
    return this;
  }

  /**
   * Throws SpoolDirectoryError unless the spool directory exists. Its
   * subdirectories may be missing (a foreign producer may have made only tmp/
   * and incoming/): readers treat a missing one as empty.
   */
  assertExists(): this {
    let isDir = false;
    try {
      isDir = statSync(this.root).isDirectory();
    } catch {
      // reported below
    }
    if (!isDir) {
      throw new SpoolDirectoryError(this.root, 'does not exist or is not a directory; pass the right path with --dir or SPOOL_DIR (to make a new spool: spool add --create, spoolerd --create, or Spooler.open() in code)');
    }
    return this;
  }
}
