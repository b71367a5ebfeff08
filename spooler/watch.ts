/**
 * Watching incoming/ with chokidar. chokidar watches every file it reports
 * (one inotify watch and a few KB each), which a busy drop box cannot afford,
 * so every file is `ignored` and the daemon listens to the directory's raw
 * events instead: one watch, whatever the traffic. With inotify a raw event
 * names the file; in polling mode (network filesystems) it only says the
 * directory changed, and the daemon rescans it.
 *
 * Watchers miss events (inotify queue overflow is dropped silently), so the
 * daemon pairs this with periodic scans (daemon.ts).
 *
 * Polling (network filesystems) does not go through chokidar: on every change
 * of the directory's mtime chokidar re-reads the directory and lstats every
 * entry, ignored or not, to tell "something changed", which the daemon then
 * lists again itself. Over sshfs that was most of a drain's round trips to the
 * server (an lstat there is a request per path component): 2,000 queued tasks
 * cost ~30 requests per task on one host (BENCHMARKS.md, "multihost-drain").
 * fs.watchFile on the directory alone is one stat per interval.
 */
import { watch } from 'chokidar';
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { basename } from 'node:path';

/** A watch in place; close() ends it. */
export interface DirectoryWatch {
  close(): Promise<void>;
}

export interface WatchOptions {
  poll: boolean;
  pollInterval: number;
}

/**
 * Calls `onFile(name)` for a named change in `dir`, or `onFile(undefined)` when
 * only "something changed" is known. Resolves once the watch is in place.
 */
export function watchDirectory(dir: string, options: WatchOptions, onFile: (fileName: string | undefined) => void, onError: (err: unknown) => void): Promise<DirectoryWatch> {
  if (options.poll) return Promise.resolve(pollDirectory(dir, options.pollInterval, onFile));
  const watcher = watch(dir, {
    ignoreInitial: true,
    depth: 0,
    ignored: (path: string) => path !== dir,
    usePolling: options.poll,
    interval: options.pollInterval,
    binaryInterval: options.pollInterval,
  });
  watcher.on('raw', (_event, path, opts) => {
    const details = opts as { watchedPath?: string } | undefined;
    // inotify: path is the file's name inside the watched directory. Polling: path is the directory itself.
    if (options.poll || !path || path === dir || details?.watchedPath !== dir) onFile(undefined);
    else onFile(basename(path));
  });
  watcher.on('error', onError);
  return new Promise((ready) => watcher.once('ready', () => ready(watcher)));
}

/** "Something changed" whenever the directory's mtime (or the directory itself) changes; one stat per interval. */
function pollDirectory(dir: string, interval: number, onChange: (fileName: undefined) => void): DirectoryWatch {
  const listener = (now: Stats, before: Stats) => {
    if (now.mtimeMs !== before.mtimeMs || now.ino !== before.ino || now.ctimeMs !== before.ctimeMs) onChange(undefined);
  };
  watchFile(dir, { interval, persistent: true }, listener);
  return {
    close: () => {
      unwatchFile(dir, listener);
      return Promise.resolve();
    },
  };
}
