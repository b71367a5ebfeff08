/**
 * Watching incoming/: with inotify through chokidar on a local disk, by
 * polling (poll.ts) where inotify cannot see other machines' writes (network
 * filesystems: fs-kind.ts). chokidar watches every file it reports (one
 * inotify watch and a few KB each), which a busy drop box cannot afford, so
 * every file is `ignored` and the daemon listens to the directory's raw events
 * instead: one watch, whatever the traffic. With inotify a raw event names the
 * file; a poll only says the directory may have changed, and the daemon lists
 * it.
 *
 * Watchers miss events (inotify queue overflow is dropped silently), so the
 * daemon pairs this with the reconciliation scan (reconcile.ts).
 */
import { watch } from 'chokidar';
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
  const watcher = watch(dir, {
    ignoreInitial: true,
    depth: 0,
    ignored: (path: string) => path !== dir,
  });
  watcher.on('raw', (_event, path, opts) => {
    const details = opts as { watchedPath?: string } | undefined;
    // path is the file's name inside the watched directory; anything else says only that the directory changed.
    if (!path || path === dir || details?.watchedPath !== dir) onFile(undefined);
    else onFile(basename(path));
  });
  watcher.on('error', onError);
  return new Promise((ready) => watcher.once('ready', () => ready(watcher)));
}
