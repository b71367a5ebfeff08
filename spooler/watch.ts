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
 */
import { watch, type FSWatcher } from 'chokidar';
import { basename } from 'node:path';

export interface WatchOptions {
  poll: boolean;
  pollInterval: number;
}

/**
 * Calls `onFile(name)` for a named change in `dir`, or `onFile(undefined)` when
 * only "something changed" is known. Resolves once the watch is in place.
 */
export function watchDirectory(dir: string, options: WatchOptions, onFile: (fileName: string | undefined) => void, onError: (err: unknown) => void): Promise<FSWatcher> {
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
