/**
 * What `spool show <id>` tells about a task's place in a flow (spool/children.ts):
 * its children with their states, its continuation, and for a child its parent.
 * States come from where each task is: its kept result (processed, skipped,
 * dead, cancelled, expired), else the folder its file is in (one listing of the
 * spool for all of them), else held back by its batch's limit (`limited`: its
 * file waits in children/<P>/), else `unknown` (removed by hand).
 */
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { listFlows, readFlow, readThen } from '../spool/children.js';
import { derivedId } from '../spool/derived-id.js';
import { TASK_LOCATIONS, type SpoolLayout } from '../spool/layout.js';
import { listSpool } from '../spool/listing.js';
import { readResult } from '../spool/results.js';

export interface ChildView {
  id: string;
  name: string | null;
  state: string;
}

export interface FlowView {
  children: ChildView[];
  /** The continuation: its id and state (`not-enqueued` while children run, `never` once cancelled); null without one. */
  continuation: { id: string; name: string; state: string } | null;
  cancelled: boolean;
}

/** The children of task `id`, or undefined when it has none (no children/<id>/). */
export function flowView(layout: SpoolLayout, id: string): FlowView | undefined {
  const listing = readFlow(layout, id);
  if (listing === undefined) return undefined;
  let then;
  try {
    then = readThen(layout, id);
  } catch {
    then = undefined;
  }
  // In the order they were enqueued (the continuation's list), then any others (earlier runs) by id.
  const ordered = then?.children.map((c) => c.id) ?? [];
  const rest = [...listing.children, ...listing.queued].filter((c) => !ordered.includes(c));
  const ids = [...ordered, ...[...new Set(rest)].sort()];
  const names = new Map(then?.children.map((c) => [c.id, c.name]) ?? []);
  const where = statesById(layout);
  const stateOf = (child: string): { state: string; name: string | null } => {
    const r = readResult(layout, child);
    if (r.ok) return { state: r.record.ending, name: r.record.name };
    const entry = where.get(child);
    if (entry !== undefined) return entry;
    if (listing.queued.includes(child)) return { state: 'limited', name: null };
    return { state: 'unknown', name: null };
  };
  const children = ids.map((child) => {
    const s = stateOf(child);
    return { id: child, name: s.name ?? names.get(child) ?? null, state: s.state };
  });
  let continuation: FlowView['continuation'] = null;
  if (then !== undefined) {
    const cid = derivedId(id, 'then');
    let state = stateOf(cid).state;
    if (state === 'unknown') state = listing.cancelled ? 'never' : 'not-enqueued';
    continuation = { id: cid, name: then.step.name, state };
  }
  return { children, continuation, cancelled: listing.cancelled };
}

/** The parent of a child whose file is gone (its folder in children/ names it). */
export function parentOfChild(layout: SpoolLayout, id: string): string | undefined {
  for (const parent of listFlows(layout).parents) {
    try {
      lstatSync(join(layout.children, parent, id));
      return parent;
    } catch {
      // not this one
    }
  }
  return undefined;
}

function statesById(layout: SpoolLayout): Map<string, { state: string; name: string | null }> {
  const out = new Map<string, { state: string; name: string | null }>();
  for (const e of listSpool(layout, { locations: TASK_LOCATIONS, checkBodies: false })) {
    if (e.task !== undefined) out.set(e.task.id, { state: e.state, name: e.task.name });
  }
  return out;
}
