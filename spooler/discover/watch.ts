/**
 * Watching incoming/: with inotify through Node's fs.watch on a local disk, by
 * polling (poll.ts) where inotify cannot see other machines' writes (network
 * filesystems: fs-kind.ts). One watch on the directory, whatever the traffic:
 * each raw event names the file that arrived or left; a poll only says the
 * directory may have changed, and the daemon lists it.
 *
 * Not chokidar (which this used before): it runs its own handler for the
 * directory before it passes the raw event on (a throttled re-read of the
 * whole folder, set up synchronously), which put ~0.3 ms between the kernel's
 * event and the daemon on every arrival and re-read a busy folder once a
 * second (BENCHMARKS.md, "Pickup, stage by stage"). The daemon needs only the
 * names.
 *
 * Watchers miss events (inotify queue overflow is dropped silently), so the
 * daemon pairs this with the reconciliation scan (reconcile.ts).
 */
import { watch } from 'node:fs';
import { basename } from 'node:path';
import { DirectoryPoller } from './poll.js';
import type { PollSettings } from './poll-policy.js';

export interface WatchOptions {
  /** Poll on this schedule instead of using inotify. */
  poll: PollSettings | undefined;
}

/** A watch in place: inotify or polling. */
export interface DirectoryWatch {
  close(): Promise<void>;
}

/**
 * Calls `onFile(name)` for a named change in `dir`, or `onFile(undefined)` when
 * only "something may have changed" is known (then the caller lists `dir` at
 * once, synchronously). Resolves once the watch is in place.
 */
export function watchDirectory(dir: string, options: WatchOptions, onFile: (fileName: string | undefined) => void, onError: (err: unknown) => void): Promise<DirectoryWatch> {
  if (options.poll !== undefined) return Promise.resolve(new DirectoryPoller(dir, options.poll, () => onFile(undefined), onError));
  const self = basename(dir);
  let watcher;
  try {
    // In place when it returns (inotify_add_watch): an arrival from now on is reported.
    watcher = watch(dir, { persistent: true }, (_event, fileName) => {
      // No name, or the folder's own (it was deleted or moved: recreated, spool/compact-folder.ts): list it.
      if (!fileName || fileName === self) onFile(undefined);
      else onFile(fileName);
    });
  } catch (err) {
    return Promise.reject(err);
  }
  watcher.on('error', onError);
  return Promise.resolve({
    close: () => {
      watcher.close();
      return Promise.resolve();
    },
  });
}
