/**
 * Deterministic task ids: the id of a task that another task gives rise to
 * (the next step of a chain, an onError task, a continuation), computed from
 * the source task's id and what it is, so that it is known before the task
 * exists (a producer can wait for a chain's last step at once) and so that
 * every process that enqueues it writes the same file name.
 *
 *   derivedId(X, 'next')      the next step of task X's chain
 *   derivedId(X, 'error')     X's onError task
 *   derivedId(P, 'then')      the continuation of parent P
 *   derivedId(P, 'child:' + i) a child (the children helper decides)
 *
 * = the first 13 digits of `fromId` (its creation time: a derived task sorts
 * beside its source) + the first 16 hex digits of SHA-256(fromId + "\n" + what).
 * SPOOL-FORMAT.md, "Chains", gives the same rule for producers in other languages.
 */
import { createHash } from 'node:crypto';
import { InvalidOptionError } from './errors.js';
import { TASK_ID_PATTERN } from './name.js';

export function derivedId(fromId: string, what: string): string {
  if (!TASK_ID_PATTERN.test(fromId)) throw new InvalidOptionError(`derivedId(): ${JSON.stringify(fromId)} is not a task id`);
  return fromId.slice(0, 13) + createHash('sha256').update(`${fromId}\n${what}`).digest('hex').slice(0, 16);
}
