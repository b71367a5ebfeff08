/**
 * The main thread's side of concurrency and rate limits: which names may be
 * given to a runner now, and where the others wait (parked) until a slot or
 * a rate window frees. The slots themselves are files in limits/ taken by the
 * runner that starts a task (runner-limits.ts, spool/limits.ts); this side
 * never touches them but to list limits/ while something is parked.
 *
 * A name of a task with limits:
 *
 *   (queued) --give(): admitted--> given --its report--> (done: the scopes it freed wake one parked name each)
 *      |                             '--report Limited (a runner found the scope full)--> parked(scope)
 *      '--give(): its name's scope is full here, or others wait in it--> parked(scope)
 *   parked(scope) --woken--> ready (given before the queue's names) --give()--> given
 *
 * Woken: one parked name per slot a task of this daemon frees (its report
 * names the scopes), and, while anything is parked, every POLL_MS as many
 * as limits/ shows free slots (other daemons' releases, dead owners' slots
 * freed by the reclaim); a rate scope's names when its window ends, at most
 * `max` of them. A completion therefore costs one Map lookup and one heap pop
 * per scope it freed, whatever the backlog parked behind it; nothing parked
 * is looked at again until it is woken.
 *
 * Parked names are not in the queue and never given to a runner, so they
 * cannot hold a runner slot nor block the names behind them; discovery treats
 * them as held (holds()), so a listing does not queue them again.
 */
import { readdirSync } from 'node:fs';
import type { LimitSpec } from '../../runtime/limits.js';
import { countSlots, isRateScope, nameScope, sweepTokens, taskOfScope } from '../../spool/limits.js';
import type { Logger } from '../logger.js';
import { Heap } from '../order/heap.js';
import { byName } from '../order/name-order.js';
import type { PendingDir } from '../order/task-queue.js';
import { Code, type Report } from '../run/task-path.js';
import { taskNameOfFileName } from '../task-names.js';

/** How often limits/ is listed while names are parked (other daemons' releases are seen this late at most). */
export const POLL_MS = 250;
/** A woken name counts against its scope's free slots this long, or until its report (so one free slot wakes one name, not one per poll). */
const WOKEN_COUNTS_MS = 2_000;
/** Rate tokens of a window that ended are removed this long after (a daemon whose spool clock lags may still be in it). */
const TOKEN_GRACE_MS = 60_000;

export interface GateHost {
  /** The spool's limits/ folder. */
  readonly dir: string;
  readonly log: Logger;
  /** The spool clock (rate windows). */
  now(): number;
  /** Names were woken: dispatch soon (they are given before the queue's). */
  wake(): void;
  /** Throws unless limits/ is still the folder checked at start-up (before listing it). */
  check(): void;
}

interface Parked {
  names: Heap<string>;
  /** A rate scope (or one held back by an error): wake its names at this spool time. */
  until?: number;
}

export class LimitGate {
  /** Names given to a runner and not yet reported, per task-name scope (c~<task>). */
  private readonly inFlight = new Map<string, number>();
  /** Each given name counted in inFlight, with its scope. */
  private readonly given = new Map<string, string>();
  private readonly parked = new Map<string, Parked>();
  /** Every parked name, with where the queue last saw it. */
  private readonly parkedNames = new Map<string, PendingDir>();
  /**
   * Woken names not yet given to a runner, in waking order: give() takes them
   * before the queue (nextWoken()). They bypass the queue, whose window may
   * leave a name on disk for a later refill: a woken name must run now, its
   * slot is free.
   */
  private readonly ready: Array<[fileName: string, dir: PendingDir]> = [];
  private readyHead = 0;
  /** Names woken and not yet reported: scope and when (performance.now()). */
  private readonly woken = new Map<string, { scope: string; at: number }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly specs: ReadonlyMap<string, LimitSpec>,
    private readonly host: GateHost,
  ) {}

  /** A gate for the tasks in `limits` (RegisteredTasks.limits), or undefined when no task has any: then nothing here runs. */
  static of(limits: Record<string, LimitSpec> | undefined, host: GateHost): LimitGate | undefined {
    if (limits === undefined || Object.keys(limits).length === 0) return undefined;
    return new LimitGate(new Map(Object.entries(limits)), host);
  }

  /** How many names are parked. */
  get parkedCount(): number {
    return this.parkedNames.size;
  }

  /** How many names wait in each scope, at most `max` scopes (the status file). */
  parkedByScope(max: number): Record<string, number> {
    const out: Record<string, number> = {};
    let n = 0;
    for (const [scope, p] of this.parked) {
      if (n++ >= max) break;
      out[scope] = p.names.size;
    }
    return out;
  }

  /** Whether `fileName` is parked here (a listing must not queue it again). */
  holds(fileName: string): boolean {
    return this.parkedNames.has(fileName) || this.woken.has(fileName);
  }

  /** The next woken name to give to a runner (before any from the queue), or undefined. */
  nextWoken(): { fileName: string; dir: PendingDir } | undefined {
    if (this.readyHead >= this.ready.length) return undefined;
    const [fileName, dir] = this.ready[this.readyHead++]!;
    if (this.readyHead === this.ready.length) {
      this.ready.length = 0;
      this.readyHead = 0;
    }
    return { fileName, dir };
  }

  /** The scope a parked name waits in, or undefined (for the status and tests). */
  scopeOf(fileName: string): string | undefined {
    if (!this.parkedNames.has(fileName)) return undefined;
    for (const [scope, p] of this.parked) if (p.names.unordered.includes(fileName)) return scope;
    return undefined;
  }

  /**
   * Whether `fileName` (taken from the queue) may go to a runner now. A task
   * with a concurrency limit on its name is parked instead while this daemon
   * runs that many of it, or while others wait in its scope (they go first).
   */
  admits(fileName: string, dir: PendingDir): boolean {
    const task = taskNameOfFileName(fileName);
    const limit = this.specs.get(task)?.concurrency;
    if (limit === undefined) return true;
    const scope = nameScope(task);
    const running = this.inFlight.get(scope) ?? 0;
    if (running >= limit || (!this.woken.has(fileName) && (this.parked.get(scope)?.names.size ?? 0) > 0)) {
      this.park(fileName, dir, scope, undefined);
      return false;
    }
    this.inFlight.set(scope, running + 1);
    this.given.set(fileName, scope);
    return true;
  }

  /** A runner's report on a name given to it. */
  reported(r: Report): void {
    const scope = this.given.get(r.name);
    if (scope !== undefined && r.code !== Code.Stuck) {
      this.given.delete(r.name);
      this.inFlight.set(scope, this.inFlight.get(scope)! - 1);
    }
    if (r.code === Code.Stuck) return;
    this.woken.delete(r.name);
    if (r.code === Code.Limited) return this.park(r.name, 'incoming', r.limits ?? '', r.until);
    const freed = r.limits;
    if (freed !== undefined) for (const s of freed.split(' ')) this.wakeOne(s);
    // Given but never ran (a lost race, a failed claim...): its place here is free again.
    if (scope !== undefined && (freed === undefined || !freed.split(' ').includes(scope))) this.wakeOne(scope);
  }

  /** Slots freed outside a report (a dead worker's tasks, freed by the main thread): one parked name per slot wakes. */
  freed(scopes: readonly string[]): void {
    for (const s of scopes) this.wakeOne(s);
  }

  /** The owner was lost or the daemon stops: everything parked or counted is forgotten (the files stay where they are). */
  clear(): void {
    this.inFlight.clear();
    this.given.clear();
    this.parked.clear();
    this.parkedNames.clear();
    this.woken.clear();
    this.ready.length = 0;
    this.readyHead = 0;
    this.stopPolling();
  }

  /** Removes rate tokens of windows long over (the minute sweep). */
  sweep(now: number): void {
    let hasRate = false;
    for (const spec of this.specs.values()) if (spec.rate !== undefined) hasRate = true;
    if (!hasRate) return;
    try {
      this.host.check();
      const removed = sweepTokens(this.host.dir, readdirSync(this.host.dir), now, TOKEN_GRACE_MS);
      if (removed > 0) this.host.log.debug('removed rate tokens of past windows', { tokens: removed });
    } catch (err) {
      this.host.log.warn('cannot sweep old rate tokens in limits/', { err: (err as Error).message });
    }
  }

  private park(fileName: string, dir: PendingDir, scope: string, until: number | undefined): void {
    let p = this.parked.get(scope);
    if (p === undefined) this.parked.set(scope, (p = { names: new Heap<string>(byName) }));
    p.names.push(fileName);
    this.parkedNames.set(fileName, dir);
    if (until === undefined && this.host.log.enabled('debug')) this.host.log.debug('task waits for a concurrency slot', { file: fileName, scope, parked: p.names.size });
    if (until !== undefined) p.until = until;
    if (this.timer === undefined) this.timer = setInterval(() => this.poll(), POLL_MS);
  }

  /** Queues the first parked name of `scope` again. */
  private wakeOne(scope: string): boolean {
    const p = this.parked.get(scope);
    if (p === undefined) return false;
    const name = p.names.pop();
    if (p.names.size === 0) this.parked.delete(scope);
    if (this.parked.size === 0) this.stopPolling();
    if (name === undefined) return false;
    const dir = this.parkedNames.get(name)!;
    this.parkedNames.delete(name);
    this.woken.set(name, { scope, at: performance.now() });
    this.ready.push([name, dir]);
    this.host.wake();
    return true;
  }

  /** Wakes as many parked names as there are free slots or open rate windows. */
  poll(): void {
    if (this.parked.size === 0) return this.stopPolling();
    const now = this.host.now();
    const t = performance.now();
    const wokenIn = new Map<string, number>();
    for (const w of this.woken.values()) if (t - w.at <= WOKEN_COUNTS_MS) wokenIn.set(w.scope, (wokenIn.get(w.scope) ?? 0) + 1);
    let used: Map<string, number> | undefined;
    for (const [scope, p] of [...this.parked]) {
      let free: number;
      if (p.until !== undefined || isRateScope(scope) || scope === '') {
        if (p.until !== undefined && now < p.until) continue;
        p.until = undefined;
        free = this.specs.get(taskOfScope(scope))?.rate?.max ?? 1;
      } else {
        if (used === undefined) {
          try {
            this.host.check();
            used = countSlots(readdirSync(this.host.dir));
          } catch (err) {
            this.host.log.warn('cannot list limits/ to wake tasks held back by a limit; trying again', { err: (err as Error).message });
            return;
          }
        }
        free = this.limitOf(scope) - (used.get(scope) ?? 0);
        const running = this.inFlight.get(scope);
        if (running !== undefined) free = Math.min(free, this.limitOf(scope) - running);
      }
      free -= wokenIn.get(scope) ?? 0;
      while (free-- > 0 && this.wakeOne(scope));
    }
  }

  private limitOf(scope: string): number {
    const spec = this.specs.get(taskOfScope(scope));
    return (scope.startsWith('c~') ? spec?.concurrency : spec?.keyConcurrency) ?? 1;
  }

  private stopPolling(): void {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
