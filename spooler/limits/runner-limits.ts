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
  private readonly holds = new Map<string, Hold>();
  private readonly hints = new TokenHints();

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
    const hold = Hold.create(this.dir, this.owner, task.id);
    try {
      if (spec.concurrency !== undefined) {
        const scope = nameScope(task.name);
        if (!hold.takeSlot(scope, spec.concurrency)) return this.refuse(hold, scope);
      }
      if (key !== undefined) {
        const scope = keyScope(task.name, key);
        if (!hold.takeSlot(scope, spec.keyConcurrency ?? 1)) return this.refuse(hold, scope);
      }
      if (spec.rate !== undefined) {
        const scope = rateScope(task.name, rateKey);
        const until = this.hints.take(hold, scope, spec.rate.max, spec.rate.perMs, this.clock.now());
        if (until !== undefined) return this.refuse(hold, scope, until);
      }
    } catch (err) {
      hold.release();
      throw err;
    }
    this.holds.set(task.fileName, hold);
    return GO;
  }

  /**
   * The task `fileName` reached its last move (`release`), or its owner was
   * lost (not `release`: the reclaim of the owner frees its slots, never
   * this process). Returns the scopes freed, for the report.
   */
  leave(fileName: string, release: boolean): string[] | undefined {
    const hold = this.holds.get(fileName);
    if (hold === undefined) return undefined;
    this.holds.delete(fileName);
    const scopes = hold.slots.map((s) => s.slice(0, s.lastIndexOf('~')));
    if (release) hold.release();
    else hold.close();
    return scopes;
  }

  get size(): number {
    return this.holds.size;
  }

  private refuse(hold: Hold, scope: string, until?: number): Entry {
    hold.release();
    return until === undefined ? { kind: 'full', scope } : { kind: 'full', scope, until };
  }
}

function checkedKey(key: unknown, what: string): string {
  if (typeof key !== 'string') throw new TypeError(`${what} returned ${typeof key}, not a string`);
  return key;
}
