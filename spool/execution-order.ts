/**
 * Execution order: the order `spool ls` lists task files in and getTasks()
 * returns them in. Running tasks first, then due tasks by priority, due time
 * and id (the byte order of their names), then scheduled tasks by due time,
 * then the rest by state (TASK_STATES) and file name.
 */
import { TASK_STATES, type TaskState } from './layout.js';
import type { SpoolEntry } from './entries.js';

/** Each state's place in TASK_STATES: the order of the states in a listing. */
export const STATE_RANK: Record<TaskState, number> = Object.fromEntries(TASK_STATES.map((s, i) => [s, i])) as Record<TaskState, number>;

/**
 * Execution order: running tasks, then due tasks by priority, due time and id
 * (the byte order of their names), then scheduled tasks by due time, then the
 * rest. Within a state without a task name, by file name.
 */
export function executionOrder(a: SpoolEntry, b: SpoolEntry): number {
  const rank = STATE_RANK[a.state] - STATE_RANK[b.state];
  if (rank !== 0) return rank;
  if (a.state === 'scheduled' && a.task && b.task && a.task.due !== b.task.due) return a.task.due - b.task.due;
  return a.fileName < b.fileName ? -1 : a.fileName > b.fileName ? 1 : 0;
}

/** Empty groups of entries by state, in rank order, for sortInExecutionOrder. */
export const stateGroups = (): SpoolEntry[][] => TASK_STATES.map(() => []);

/**
 * Sorts `count` entries, given split by state (in rank order, each keeping the
 * order the entries were found in), by executionOrder, with the same result as
 * a stable sort of them all by it: each state is sorted on its own, and the
 * states are joined in rank order.
 */
export function sortInExecutionOrder(byState: SpoolEntry[][], count: number): SpoolEntry[] {
  const sorted = new Array<SpoolEntry>(count);
  let at = 0;
  for (let rank = 0; rank < byState.length; rank++) {
    const state = TASK_STATES[rank]!;
    const group = state === 'due' || state === 'scheduled' ? sortTasks(byState[rank]!, state) : byState[rank]!.sort(byName);
    for (let i = 0; i < group.length; i++) sorted[at++] = group[i]!;
  }
  return sorted;
}

export function byName(a: SpoolEntry, b: SpoolEntry): number {
  return a.fileName < b.fileName ? -1 : a.fileName > b.fileName ? 1 : 0;
}

function byDueThenName(a: SpoolEntry, b: SpoolEntry): number {
  if (a.task && b.task && a.task.due !== b.task.due) return a.task.due - b.task.due;
  return a.fileName < b.fileName ? -1 : a.fileName > b.fileName ? 1 : 0;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Due tasks in the byte order of their names, scheduled ones by due time and then
 * name; stable. A task name begins with fixed-width digits, `PP-DUE-`, so that
 * order is: due tasks by (priority, due time), scheduled ones by (due time,
 * priority), then by the rest of the name. Rather than a million or more calls
 * of a comparison function, each task gets a 64-bit key packing those two
 * numbers and its position, the keys are sorted natively, and only runs of tasks
 * with the same two numbers (tasks enqueued in the same ms) are sorted by name.
 * When the numbers do not fit 64 bits (due times centuries apart), it sorts with
 * the comparison function instead.
 */
function sortTasks(group: SpoolEntry[], state: 'due' | 'scheduled'): SpoolEntry[] {
  const compare = state === 'due' ? byName : byDueThenName;
  const n = group.length;
  if (n < 2) return group;
  let minDue = Infinity;
  let maxDue = -Infinity;
  for (const e of group) {
    if (e.task === undefined) return group.sort(compare);
    if (e.task.due < minDue) minDue = e.task.due;
    if (e.task.due > maxDue) maxDue = e.task.due;
  }
  const dueBits = bitLength(maxDue - minDue);
  const indexBits = bitLength(n - 1);
  // Key: high field, low field, position. Due tasks: (priority, due); scheduled: (due, priority).
  const [highBits, lowBits] = state === 'due' ? [7, dueBits] : [dueBits, 7];
  if (highBits + lowBits + indexBits > 64 || lowBits + indexBits > 53 || indexBits > 31) return group.sort(compare);
  const shift = lowBits + indexBits;
  const keys = new BigUint64Array(n);
  const words = new Uint32Array(keys.buffer);
  const lo = LITTLE_ENDIAN ? 0 : 1;
  const hi = 1 - lo;
  const due = state === 'due';
  const indexScale = 2 ** indexBits;
  const topScale = shift >= 32 ? 2 ** (shift - 32) : 2 ** shift;
  const topSplit = shift >= 32 ? 0 : 2 ** (32 - shift);
  for (let i = 0; i < n; i++) {
    const task = group[i]!.task!;
    const high = due ? task.priority : task.due - minDue;
    const low = due ? task.due - minDue : task.priority;
    // Below 2^53, so exact: the low field and the position.
    const bottom = low * indexScale + i;
    const bottomLo = bottom % 4294967296;
    // The high field, shifted: all in the high word, or split between the two words.
    const topLo = shift >= 32 ? 0 : (high % topSplit) * topScale;
    const topHi = shift >= 32 ? high * topScale : Math.floor(high / topSplit);
    words[2 * i + lo] = bottomLo + topLo; // disjoint bits: no carry
    words[2 * i + hi] = (bottom - bottomLo) / 4294967296 + topHi;
  }
  keys.sort();
  const mask = 2 ** indexBits - 1;
  const sorted = new Array<SpoolEntry>(n);
  for (let i = 0; i < n; i++) sorted[i] = group[(words[2 * i + lo]! & mask) >>> 0]!;
  // Runs with the same (priority, due): still in their original order; sort each by name. The
  // keys tell where they are (the same bits above the position), without a look at the entries.
  let start = 0;
  for (let i = 1; i <= n; i++) {
    if (i < n && words[2 * i + hi] === words[2 * start + hi] && words[2 * i + lo]! >>> indexBits === words[2 * start + lo]! >>> indexBits) continue;
    if (i - start > 1) {
      const run = sorted.slice(start, i).sort(byName);
      for (let k = 0; k < run.length; k++) sorted[start + k] = run[k]!;
    }
    start = i;
  }
  return sorted;
}

/** How many bits a non-negative integer below 2^53 needs (0 for 0). */
function bitLength(value: number): number {
  let bits = 0;
  while (bits < 53 && 2 ** bits <= value) bits++;
  return bits;
}
