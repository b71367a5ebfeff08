/**
 * Exit codes of the `spool` command, stable for scripts; each means one thing
 * (README.md, "Exit codes"; `spool --help` lists them: keep the three in step).
 * `spoolerd` shares 0, 1 and 2.
 */
export const EXIT = {
  OK: 0,
  /** The spool cannot be used, or something unexpected failed. */
  ERROR: 1,
  /** Bad command line: unknown option, malformed argument, an id that matches several tasks. */
  USAGE: 2,
  /** No task with that id (or it left the spool while the command ran). */
  NOT_FOUND: 3,
  /** The file exists but is not a valid task (show). */
  INVALID: 4,
  /** The task is claimed by a running daemon and cannot be changed (rm, retry). */
  RUNNING: 5,
  /** The filesystem refused: no space left, quota exceeded, read-only, or an I/O error. */
  STORAGE: 6,
  /** Permission denied: run as the spool's owner or a member of its group. */
  PERMISSION: 7,
  /** The task is not in a state the command acts on: retry of a task that is not a dead letter (resume --task while every task is paused). */
  WRONG_STATE: 8,
  /** spool wait: the task was skipped. */
  SKIPPED: 10,
  /** spool wait: the task is a dead letter (out of retries, or failed for good). */
  DEAD: 11,
  /** spool wait: the task was cancelled. */
  CANCELLED: 12,
  /** spool wait: the task expired before it ran. */
  EXPIRED: 13,
  /** spool wait: no result within --timeout (still waiting or running, or it keeps no result). */
  TIMEOUT: 14,
} as const;

/** The lines `--help` ends with. */
export const EXIT_HELP =
  '\nExit codes: 0 ok, 1 error, 2 usage (bad option or argument, ambiguous id),\n' +
  '3 no such task, 4 invalid task file, 5 task is running (cancel: still running at --timeout),\n' +
  '6 no space, read-only or failing filesystem, 7 permission denied,\n' +
  '8 task not in a state the command acts on (retry: not a dead letter;\n' +
  'cancel: not waiting or running, or it finished before the cancel took effect;\n' +
  'resume --task: every task is paused, resume them all first);\n' +
  'wait: 10 skipped, 11 dead, 12 cancelled, 13 expired, 14 no result within --timeout.';

/** An error that ends the command with a given exit code and message. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}
