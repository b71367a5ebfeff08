/**
 * `spool show`'s "chain": where a task stands in its chain (spool/flows.ts,
 * chainPlaceOf), as far as its body tells, and what became of the steps it
 * gives rise to (their markers in flows/).
 *
 *   "chain": { "step": 1 | null, "of": n | null, "next": ["thumbnail", "notify"], "nextId": "…",
 *              "nextEnqueued": false, "previous": "…" | null, "onError": "alert" | null, "onErrorId": "…" | null,
 *              "text": "step 2 of 4 (at least): next thumbnail, notify; previous 17…" }
 *
 * `step` is known (1) only for a task that is no chain's step itself; a later
 * step knows the one before it (`previous`, its parent) but not how many came
 * before that, so `step` and `of` are null and `text` says "at least".
 */
import { lstatSync } from 'node:fs';
import type { TaskBody } from '../spool/body.js';
import { derivedId } from '../spool/derived-id.js';
import { chainPlaceOf, flowMarkerName, type FlowKind } from '../spool/flows.js';
import type { SpoolLayout } from '../spool/layout.js';

export interface ChainJson {
  step: number | null;
  of: number | null;
  next: string[];
  nextId: string | null;
  /** Whether the next step was enqueued (its marker is in flows/). */
  nextEnqueued: boolean;
  previous: string | null;
  onError: string | null;
  onErrorId: string | null;
  onErrorEnqueued: boolean;
  text: string;
}

/** The chain place of a task whose body is known; undefined when it is in no chain and has no onError. */
export function chainJson(layout: SpoolLayout, task: { id: string; body: TaskBody }): ChainJson | undefined {
  const place = chainPlaceOf(task);
  if (place === undefined) return undefined;
  const first = place.previous === undefined;
  const step = first ? 1 : null;
  const of = first ? 1 + place.next.length : null;
  const parts = [first ? `step 1 of ${of}` : `step 2 or later of at least ${2 + place.next.length}`];
  if (place.next.length > 0) parts.push(`next: ${place.next.join(', ')} (${place.nextId})`);
  else parts.push('the last step');
  if (place.previous !== undefined) parts.push(`previous: ${place.previous}`);
  if (place.onError !== undefined) parts.push(`on error: ${place.onError} (${place.onErrorId})`);
  return {
    step,
    of,
    next: place.next,
    nextId: place.nextId ?? null,
    nextEnqueued: place.nextId !== undefined && hasMarker(layout, task.id, 'next'),
    previous: place.previous ?? null,
    onError: place.onError ?? null,
    onErrorId: place.onErrorId ?? null,
    onErrorEnqueued: place.onErrorId !== undefined && hasMarker(layout, task.id, 'error'),
    text: parts.join('; '),
  };
}

/** For a task known only by its result (its file is gone): the steps it enqueued, from flows/. */
export function finishedChainJson(layout: SpoolLayout, id: string): { chain?: { nextId: string | null; onErrorId: string | null; text: string } } {
  const next = hasMarker(layout, id, 'next') ? derivedId(id, 'next') : null;
  const onError = hasMarker(layout, id, 'error') ? derivedId(id, 'error') : null;
  if (next === null && onError === null) return {};
  const text = [next !== null ? `enqueued its next step ${next}` : undefined, onError !== null ? `enqueued its onError task ${onError}` : undefined].filter((x) => x !== undefined).join('; ');
  return { chain: { nextId: next, onErrorId: onError, text } };
}

function hasMarker(layout: SpoolLayout, id: string, kind: FlowKind): boolean {
  try {
    return lstatSync(layout.flows + '/' + flowMarkerName(id, kind)).isFile();
  } catch {
    return false;
  }
}
