/**
 * Deleting a directory that someone else may still be writing into (a
 * quarantined directory dropped into incoming/ by another user), as root,
 * without ever following a symbolic link.
 *
 * A path-based walk (lstat, then readdir and unlink by path) has a race: the
 * directory's owner can swap a subdirectory for a link to /etc between the
 * lstat and the unlinks, and root would then delete files under /etc. So each
 * directory is opened once with O_NOFOLLOW | O_DIRECTORY, and everything inside
 * it is named through /proc/self/fd/<fd>/, which always means the directory
 * that was opened, whatever its path leads to by now.
 */
import { closeSync, constants, lstatSync, openSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';

const OPEN_DIR_NOFOLLOW = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** Removes `path`: a file or link is unlinked, a directory emptied and removed. Never follows a link. */
export function removeTree(path: string): void {
  if (!lstatSync(path).isDirectory()) return unlinkSync(path);
  emptyDirectory(path);
  rmdirSync(path);
}

/** Deletes everything inside the directory at `path` (a directory itself, not a link to one). */
function emptyDirectory(path: string): void {
  const fd = openSync(path, OPEN_DIR_NOFOLLOW);
  try {
    const here = `/proc/self/fd/${fd}`;
    for (const name of readdirSync(here)) {
      const child = `${here}/${name}`;
      try {
        unlinkSync(child);
        continue;
      } catch (err) {
        // EISDIR on Linux, EPERM elsewhere: a directory; anything else is a real failure.
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EISDIR' && code !== 'EPERM') throw err;
      }
      emptyDirectory(child);
      rmdirSync(child);
    }
  } finally {
    closeSync(fd);
  }
}
