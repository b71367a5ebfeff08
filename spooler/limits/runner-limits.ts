/**
 * Concurrency and rate limits where a task runs (in its runner, which loaded
 * the task's module and read its body, so it can compute keys). After a
 * claim and before the run, enter() takes the task's slots and its rate token
 * in limits/ (spool/limits.ts); a task that cannot have them all takes none,
 * is put back in incoming/ and reported Limited with the scope that is full,
 * and the daemon's main thread parks it (gate.ts). leave() releases the slots
 * once the task's file has made its last move.
 *
 * A task of a name without limits costs one Map lookup; nothing here runs
 * at all while no task in this process has limits (forSite() is undefined).
 */
import { basename } from 'node:path';
import type { TaskFile } from '../../spool/task-file.js';
import { Hold, keyScope, nameScope, rateScope, TokenHints } from '../../spool/limits.js';
import type { TaskLimits } from '../../runtime/limits.js';
import { limitsInThisProcess } from '../task-names.js';

export type Entry =
  /** Runs; its slots (if any) are held until leave(). */
  | { kind: 'go' }
  /** A limit is full: `scope` (a rate scope: until the spool time `until`, when its window ends). */
  | { kind: 'full'; scope: string; until?: number }
  /** A key function threw or did not return a string: the task fails for good. */
  | { kind: 'bad-key'; reason: string; error: unknown };

const GO: Entry = { kind: 'go' };

export class RunnerLimits {
  /** The slot files each task running here holds, by its file name. */
  private readonly held = new Map<string, string[]>();
  private readonly hints = new TokenHints();
  /** This runner's hold file (spool/limits.ts), made at the first limited task. */
  private hold: Hold | undefined;

  constructor(
    /** The spool's limits/ folder. */
    private readonly dir: string,
    /** The owner the tasks are claimed under (its hold files carry its id). */
    private readonly owner: string,
    private readonly limits: ReadonlyMap<string, TaskLimits>,
    private readonly clock: { now(): number },
  ) {}

  /** Undefined when no task registered in this process has limits (the common case: nothing to do per task). */
  static forSite(site: { layout: { limits: string }; claimDirPath: string; clock: { now(): number } }): RunnerLimits | undefined {
    const limits = limitsInThisProcess();
    if (limits.size === 0) return undefined;
    return new RunnerLimits(site.layout.limits, basename(site.claimDirPath), limits, site.clock);
  }

  /** How many tasks hold slots here. */
  get size(): number {
    return this.held.size;
  }

  /** Takes what `task` needs to run now. Throws on a filesystem error (nothing held then). */
  enter(task: TaskFile): Entry {
    const l = this.limits.get(task.name);
    if (l === undefined || task.body.type !== 'fcall') return GO;
    const { spec } = l;
    const args = (task.body.args ?? []) as unknown[];
    let key: string | undefined;
    let rateKey: string | undefined;
    try {
      if (l.key !== undefined) key = checkedKey(l.key(...args), 'concurrencyKey');
      if (l.rateKey !== undefined) rateKey = checkedKey(l.rateKey(...args), 'rateLimit.key');
    } catch (error) {
      return { kind: 'bad-key', reason: `its limit key could not be computed: ${(error as Error).message ?? String(error)}`, error };
    }
    const hold = (this.hold ??= Hold.create(this.dir, this.owner, String(process.pid)));
    const slots: string[] = [];
    try {
      if (spec.concurrency !== undefined) {
        const scope = nameScope(task.name);
        const slot = hold.takeSlot(scope, spec.concurrency);
        if (slot === undefined) return this.refuse(hold, slots, scope);
        slots.push(slot);
      }
      if (key !== undefined) {
        const scope = keyScope(task.name, key);
        const slot = hold.takeSlot(scope, spec.keyConcurrency ?? 1);
        if (slot === undefined) return this.refuse(hold, slots, scope);
        slots.push(slot);
      }
      if (spec.rate !== undefined) {
        const scope = rateScope(task.name, rateKey);
        const until = this.hints.take(hold, scope, spec.rate.max, spec.rate.perMs, this.clock.now());
        if (until !== undefined) return this.refuse(hold, slots, scope, until);
      }
    } catch (err) {
      for (const slot of slots) hold.releaseSlot(slot);
      throw err;
    }
    if (slots.length > 0) this.held.set(task.fileName, slots);
    return GO;
  }

  /**
   * The task `fileName` reached its last move (`release`), or its owner was
   * lost (not `release`: the reclaim of the owner frees its slots, never
   * this process). Returns the scopes freed, for the report.
   */
  leave(fileName: string, release: boolean): string[] | undefined {
    const slots = this.held.get(fileName);
    if (slots === undefined) return undefined;
    this.held.delete(fileName);
    if (release) for (const slot of slots) this.hold!.releaseSlot(slot);
    return slots.map((s) => s.slice(0, s.lastIndexOf('~')));
  }

  private refuse(hold: Hold, taken: readonly string[], scope: string, until?: number): Entry {
    for (const slot of taken) hold.releaseSlot(slot);
    return until === undefined ? { kind: 'full', scope } : { kind: 'full', scope, until };
  }
}

function checkedKey(key: unknown, what: string): string {
  if (typeof key !== 'string') throw new TypeError(`${what} returned ${typeof key}, not a string`);
  return key;
}
