/** Exit codes of the `spool` command, stable for scripts (documented in README.md). */
export const EXIT = {
  OK: 0,
  /** The spool cannot be used, or something unexpected failed. */
  ERROR: 1,
  /** Bad command line: unknown option, malformed argument, ambiguous id. */
  USAGE: 2,
  /** No task with that id. */
  NOT_FOUND: 3,
  /** The file exists but is not a valid task (show). */
  INVALID: 4,
  /** The task is claimed by a running daemon and cannot be changed (rm). */
  CONFLICT: 5,
  /** The filesystem refused: no space left, quota exceeded, read-only, or an I/O error. */
  STORAGE: 6,
  /** Permission denied: run as the spool's owner or a member of its group. */
  PERMISSION: 7,
} as const;

/** An error that ends the command with a given exit code and message. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}
