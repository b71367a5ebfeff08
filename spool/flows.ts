/**
 * The flows/ folder and what a daemon enqueues from a task's body when the task
 * ends (SPOOL-FORMAT.md, "Chains"):
 *
 *   flows/<X>.next     marker: X's next chain step was enqueued (id derivedId(X, 'next'))
 *   flows/<X>.error    marker: X's onError task was enqueued (id derivedId(X, 'error'))
 *   flows/<P>.then     marker: parent P's continuation was enqueued (children)
 *   flows/.stage-…     a task being enqueued once (spool/enqueue-once.ts)
 *
 * A marker is the enqueued task's second name (a hard link) until that task has
 * finished; then its link count is 1. Markers are pruned (pruneFlowMarkers) once
 * their count is 1 and they are over FLOW_MARKER_KEEP_MS old: by then the task
 * that made them has long left the spool (it is finished right after the
 * marker is made, or reclaimed and finished within the lock's stale time), so
 * nothing can ask for the marker again. A dead letter revived by `spool retry`
 * after that may enqueue its onError task again when it dies again: a new death.
 *
 * The rules here are pure (no file is touched) so that the daemon's runner and
 * the inline mode apply the same ones.
 */
import { readdirSync } from 'node:fs';
import type { StepSpec, TaskBody } from './body.js';
import { derivedId } from './derived-id.js';
import { pruneEndedMarkers } from './enqueue-once.js';
import type { SpoolLayout } from './layout.js';
import { PRIORITY_DEFAULT } from './name.js';
import { encodeTask, type EncodedTask, type TaskFile } from './task-file.js';

/** What a source task gives rise to: its next chain step, its onError task, a parent's continuation. */
export type FlowKind = 'next' | 'error' | 'then';

/** The marker of the task `kind` of `id` in flows/. */
export const flowMarkerName = (id: string, kind: FlowKind): string => `${id}.${kind}`;

/** How long an ended marker is kept (ms): a day. */
export const FLOW_MARKER_KEEP_MS = 86_400_000;

/** The first argument of an onError task. */
export interface FailureArgument {
  id: string;
  name: string;
  attempts: number;
  error: { name?: string; message: string };
}

/**
 * The next step of `task`'s chain as a task file, with `value` (what `task`
 * returned) as its first argument, the rest of the chain as its `chain`, and
 * the task's onError inherited. Throws UnencodableValueError when the value
 * cannot be stored in the step's encoding, InvalidOptionError when the file
 * would be over `maxBytes`.
 */
export function nextStepTask(task: TaskFile, value: unknown, now: number, maxBytes: number): EncodedTask {
  const [step, ...rest] = task.body.chain!;
  return stepTask(task, 'next', step!, value, rest, task.body.onError, now, maxBytes);
}

/** `task`'s onError task, with the failure as its first argument. */
export function errorStepTask(task: TaskFile, failure: FailureArgument, now: number, maxBytes: number): EncodedTask {
  return stepTask(task, 'error', task.body.onError!, failure, [], undefined, now, maxBytes);
}

/**
 * A step enqueued from `from` (id derivedId(from.id, kind)): `first` then the
 * step's own arguments; `parent` is `from` (so `spool show` finds the step
 * before); due `delay` ms after `now`; encoding the step's, else `from`'s.
 */
export function stepTask(from: Pick<TaskFile, 'id' | 'encoding'>, kind: FlowKind, step: StepSpec, first: unknown, chain: readonly StepSpec[], onError: StepSpec | undefined, now: number, maxBytes: number): EncodedTask {
  const body: Omit<TaskBody, 'version'> = { type: 'fcall', args: [first, ...(step.args ?? [])] as TaskBody['args'], parent: from.id };
  if (step.retry !== undefined) body.retry = step.retry;
  if (step.timeout !== undefined) body.timeout = step.timeout;
  if (step.keepResult !== undefined) body.keepResult = step.keepResult;
  if (step.meta !== undefined) body.meta = step.meta;
  if (chain.length > 0) body.chain = [...chain];
  if (onError !== undefined) body.onError = onError;
  return encodeTask(
    { id: derivedId(from.id, kind), name: step.name, priority: step.priority ?? PRIORITY_DEFAULT, due: now + (step.delay ?? 0), body, encoding: step.encoding ?? from.encoding, now },
    maxBytes,
  );
}

/** Deletes the markers of flows/ whose task has ended and that are over FLOW_MARKER_KEEP_MS old. Returns how many. */
export function pruneFlowMarkers(layout: SpoolLayout, now: number, names: readonly string[] = readdirSync(layout.flows)): number {
  const markers = names.filter((n) => !n.startsWith('.'));
  return pruneEndedMarkers(layout.flows, markers, (_, mtimeMs) => mtimeMs < now - FLOW_MARKER_KEEP_MS);
}

/** Where a task stands in its chain, as far as its body (and its id) tell: for `spool show`. */
export interface ChainPlace {
  /** The steps after this one, by task name. */
  next: string[];
  /** The id the next step has (or will have). */
  nextId?: string;
  /** The task before this one in the chain, when its parent's next step is this task. */
  previous?: string;
  /** The onError task's name, and the id it has (or will have). */
  onError?: string;
  onErrorId?: string;
}

/** The chain place of a task, or undefined when it has no chain, no onError and is no chain's step. */
export function chainPlaceOf(task: Pick<TaskFile, 'id' | 'body'>): ChainPlace | undefined {
  const body = task.body;
  const previous = body.parent !== undefined && isId(body.parent) && derivedId(body.parent, 'next') === task.id ? body.parent : undefined;
  if (body.chain === undefined && body.onError === undefined && previous === undefined) return undefined;
  const place: ChainPlace = { next: (body.chain ?? []).map((s) => s.name) };
  if (place.next.length > 0) place.nextId = derivedId(task.id, 'next');
  if (previous !== undefined) place.previous = previous;
  if (body.onError !== undefined) {
    place.onError = body.onError.name;
    place.onErrorId = derivedId(task.id, 'error');
  }
  return place;
}

const isId = (s: string): boolean => /^\d{13}[0-9a-f]{16}$/.test(s);
