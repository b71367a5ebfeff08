/**
 * `spool cancel <id…> [--timeout 30s | --no-wait]`: cancel tasks (spool/cancel.ts).
 * A waiting task is revoked at once (it never runs). A running one gets a
 * request in cancel/ that the daemon holding it acts on: its AbortSignal
 * fires (a TaskCancelledError), it is killed --kill-grace later if it has not
 * stopped, and it ends as cancelled, not retried. The command waits until the
 * task has left its claim directory and tells how it ended:
 *
 *   0  cancelled (revoked while waiting, or ended as cancelled); with --no-wait: the request is filed; a task that
 *      had ended but has children: those that had not ended are cancelled (and so on, recursively), no continuation
 *   3  no such task
 *   5  still running when --timeout passed (the request stays: the daemon acts on it when it sees it)
 *   8  not waiting or running (a dead letter, archived, quarantined), or it finished before the cancel took effect
 */
import { Command } from 'commander';
import { cancelTask, findRunning, hasCancelRequest, removeCancelRequest } from '../../spool/cancel.js';
import { printable } from '../../spool/printable.js';
import { readFlow } from '../../spool/children.js';
import { TASK_ID_PATTERN } from '../../spool/name.js';
import { toMs } from '../../runtime/duration.js';
import { CliError, EXIT } from '../exit-codes.js';
import { findEntry, spoolFrom, withDirOption, type DirOption } from '../find-task.js';
import type { SpoolLayout } from '../../spool/layout.js';

interface CancelOptions extends DirOption {
  timeout: string;
  wait: boolean;
}

const POLL_MS = 50;
/** After the task left its claim directory, how long the daemon gets to remove the request it acted on. */
const REQUEST_REMOVAL_WAIT_MS = 2000;

export function cancelCommand(): Command {
  return withDirOption(
    new Command('cancel')
      .description('cancel tasks: a waiting one never runs; a running one gets its AbortSignal, is killed --kill-grace later, and ends as cancelled (not retried)')
      .argument('<id...>', 'task ids (or the start or end of one)')
      .option('--timeout <duration>', 'how long to wait for a running task to end', '60s')
      .option('--no-wait', 'file the request for a running task and return'),
  ).action(async (refs: string[], options: CancelOptions) => {
    const layout = spoolFrom(options);
    const timeoutMs = toMs(options.timeout, '--timeout');
    let failure: CliError | undefined;
    for (const ref of refs) {
      try {
        process.stdout.write(`${await cancelOne(layout, ref, options.wait, timeoutMs)}\n`);
      } catch (err) {
        if (!(err instanceof CliError)) throw err;
        process.stderr.write(`spool cancel: ${printable(err.message)}\n`);
        failure ??= err;
      }
    }
    if (failure !== undefined) throw new CliError(refs.length > 1 ? 'some tasks were not cancelled' : failure.message, failure.exitCode);
  });
}

async function cancelOne(layout: SpoolLayout, ref: string, wait: boolean, timeoutMs: number): Promise<string> {
  let entry;
  try {
    entry = findEntry(layout, ref, { checkBodies: false });
  } catch (err) {
    // A parent that has ended and left no file may still have children to cancel (children/<id>/).
    if (!(err instanceof CliError) || !TASK_ID_PATTERN.test(ref) || readFlow(layout, ref) === undefined) throw err;
    const r = cancelTask(layout, ref);
    if (r.kind !== 'children') throw err;
    return `${ref} had ended; cancelled ${r.children} of its children that had not ended, and its continuation will not be enqueued`;
  }
  const id = entry.task?.id;
  if (id === undefined) throw new CliError(`${entry.fileName} is not a task (${entry.state}); remove it with spool rm`, EXIT.WRONG_STATE);
  const r = cancelTask(layout, id);
  switch (r.kind) {
    case 'revoked':
      return `cancelled ${id} (it was waiting; it will not run)`;
    case 'not-found':
      throw new CliError(`${id} is ${entry.state === 'active' || entry.state === 'due' || entry.state === 'scheduled' ? 'no longer in the spool (it finished meanwhile)' : `${entry.state}, not waiting or running`}; nothing to cancel`, EXIT.WRONG_STATE);
    case 'children':
      return `${id} had ended; cancelled ${r.children} of its children that had not ended, and its continuation will not be enqueued`;
    case 'requested':
      if (!wait) return `cancel requested for ${id} (running on ${printable(r.owner)})`;
      return waitForEnd(layout, id, r.owner, timeoutMs);
  }
}

/** Waits until the running task `id` leaves its claim directory, then tells whether the daemon cancelled it. */
async function waitForEnd(layout: SpoolLayout, id: string, owner: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (findRunning(layout, id) !== undefined) {
    if (Date.now() > deadline) {
      throw new CliError(`${id} is still running on ${owner} after ${timeoutMs} ms; the cancel request stays in cancel/ and its daemon acts on it when it sees it (is that daemon alive?)`, EXIT.RUNNING);
    }
    await sleep(POLL_MS);
  }
  // The daemon removes the request once it has settled the task as cancelled.
  const removalDeadline = Date.now() + REQUEST_REMOVAL_WAIT_MS;
  while (hasCancelRequest(layout, id)) {
    // Its daemon died and the task was reclaimed: waiting again, it is revoked now; claimed again, the request stands.
    const again = cancelTask(layout, id);
    if (again.kind === 'revoked') {
      removeCancelRequest(layout, id);
      return `cancelled ${id} (its daemon died while it ran; reclaimed, it was revoked before it ran again)`;
    }
    if (again.kind === 'requested') return waitForEnd(layout, id, again.owner, Math.max(0, deadline - Date.now()));
    if (Date.now() > removalDeadline) {
      removeCancelRequest(layout, id);
      throw new CliError(`${id} finished before the cancel took effect (or its daemon died: then it was reclaimed and waits to run again; cancel it again)`, EXIT.WRONG_STATE);
    }
    await sleep(POLL_MS);
  }
  return `cancelled ${id} (it was running on ${printable(owner)})`;
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));
