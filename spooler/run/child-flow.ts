/**
 * The runner's part in flows (spool/children.ts has the files and the rules):
 * called from the settle of task-path.ts after the task's ending is kept and
 * before its file is finished, only for tasks that have a part in a flow: a
 * child (body field `flow`), or a parent whose run used children or afterChildren()
 * (TaskRun.flow), or a cancelled task (its children are cancelled too). A
 * plain task pays one property test for each.
 *
 * A child that ended:  .done → start the next waiting child of its pool → continuation if due
 * A parent processed:  .then → continuation if due (its children may all have ended already)
 * A parent cancelled:  .cancelled, its children cancelled (spool/cancel.ts cancelChildren)
 *
 * A kill -9 anywhere here leaves the task's file claimed: it is reclaimed and
 * run again, and this runs again: .done and .then are written again (the same
 * content), and enqueue-once makes the continuation's enqueue exactly once.
 */
import { continuationDue, markChildDone, promoteQueued, readFlow, readThen, writeThen, type ChildEnding, type ThenRecord } from '../../spool/children.js';
import { flowMarkerName, stepTask } from '../../spool/flows.js';
import { enqueueOnce } from '../../spool/enqueue-once.js';
import type { SpoolLayout } from '../../spool/layout.js';
import { readResult } from '../../spool/results.js';
import type { TaskFile } from '../../spool/task-file.js';
import { cancelChildren } from '../../spool/cancel.js';
import type { Logger } from '../logger.js';
import type { TaskRun } from './run-task.js';

export interface FlowSite {
  layout: SpoolLayout;
  clock: { stampNow(): number };
  log: Logger;
  maxBytes: number;
}

/** How a task's run ended, for its part in a flow. */
export type FlowEnding = 'processed' | 'skipped' | 'dead' | 'cancelled' | 'expired';

/** Tests only: SPOOLERD_TEST_FLOW_CRASH=due kills the process (SIGKILL) when a continuation is due, before its enqueue. */
const crashWhenDue = process.env.SPOOLERD_TEST_FLOW_CRASH === 'due';

/** The task's part in a flow, after its ending is kept. Never throws: a failure is logged (the sweep or a rerun finishes it). */
export function settleFlow(site: FlowSite, task: TaskFile, run: TaskRun | undefined, ending: FlowEnding): void {
  try {
    if (task.body.flow !== undefined) childEnded(site, task, task.body.flow);
    if (run?.flow?.thenStep !== undefined && ending === 'processed') {
      const record: ThenRecord = { version: 1, step: run.flow.thenStep, children: run.flow.children.map((c) => ({ id: c.id, name: c.name })) };
      writeThen(site.layout, task.id, record);
      continueIfDue(site, task.id);
    }
    if (ending === 'cancelled') {
      const n = cancelChildren(site.layout, task.id);
      if (n > 0) site.log.info('cancelled the children of a cancelled task', { task: task.name, id: task.id, children: n });
    }
  } catch (err) {
    site.log.error("cannot record a task's part in its flow (children/); its continuation may wait until the parent is cancelled or the folder expires", { task: task.name, id: task.id, err: (err as Error).message });
  }
}

function childEnded(site: FlowSite, task: TaskFile, parent: string): void {
  if (!markChildDone(site.layout, parent, task.id)) return; // the parent's folder is gone: settled and removed
  if (task.body.flowPool !== undefined) {
    const started = promoteQueued(site.layout, parent, task.body.flowPool);
    if (started !== undefined && site.log.enabled('debug')) site.log.debug('a child ended; started the next waiting child of its batch', { parent, file: started });
  }
  continueIfDue(site, parent);
}

/** Enqueues the continuation of `parent` if every child it waits for has ended (exactly once: enqueue-once, marker flows/<P>.then). */
export function continueIfDue(site: FlowSite, parent: string): 'enqueued' | 'exists' | 'not-due' {
  const listing = readFlow(site.layout, parent);
  if (listing === undefined || !listing.hasThen || listing.cancelled) return 'not-due';
  const then = readThen(site.layout, parent);
  if (!continuationDue(listing, then)) return 'not-due';
  if (crashWhenDue) {
    site.log.warn('test: killing this process when a continuation is due, before its enqueue', { parent });
    process.kill(process.pid, 'SIGKILL');
  }
  const encoded = encodeContinuation(site, parent, then!);
  const r = enqueueOnce(site.layout, { markerDir: site.layout.flows, marker: flowMarkerName(parent, 'then'), fileName: encoded.fileName, bytes: encoded.bytes, fsync: false });
  if (r === 'enqueued') site.log.info('every child has ended: enqueued the continuation', { parent, task: then!.step.name, id: encoded.id, children: then!.children.length });
  return r;
}

/** The children's endings, in order, from their kept results. */
export function childEndings(layout: SpoolLayout, children: readonly { id: string; name: string }[]): ChildEnding[] {
  return children.map(({ id, name }) => {
    const r = readResult(layout, id);
    if (!r.ok) return { id, name, ending: 'unknown', reason: `its result could not be read (${r.reason})` };
    const rec = r.record;
    const e: ChildEnding = { id, name: rec.name, ending: rec.ending };
    if (rec.value !== undefined) e.value = rec.value;
    if (rec.error !== undefined) e.error = { ...(rec.error.name !== undefined && { name: rec.error.name }), message: rec.error.message };
    if (rec.reason !== undefined) e.reason = rec.reason;
    return e;
  });
}

/** The continuation's task: id derivedId(P, 'then'), the endings first, then the step's own arguments; parent P. */
function encodeContinuation(site: FlowSite, parent: string, then: ThenRecord) {
  return stepTask({ id: parent, encoding: then.step.encoding ?? 'msgpack' }, 'then', then.step, childEndings(site.layout, then.children), [], undefined, site.clock.stampNow(), site.maxBytes);
}
