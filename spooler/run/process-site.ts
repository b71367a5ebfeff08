/**
 * One spool under one owner as the runner processes serve it (its SiteRunner):
 * names go to the pool (process-runners.ts); the claimed tasks of a runner
 * that died are settled on the daemon's thread through a TaskPath of its own.
 */
import type { TaskOutcome } from '../../runtime/results.js';
import { parseTaskName } from '../../spool/name.js';
import type { PendingDir } from '../order/task-queue.js';
import type { ProcessRunners } from './process-runners.js';
import type { SiteRunner } from './runners.js';
import type { Item, TaskPath } from './task-path.js';

export class ProcessSite implements SiteRunner {
  constructor(
    private readonly pool: ProcessRunners,
    private readonly key: number,
    private readonly orphans: TaskPath,
  ) {}

  room(): number {
    return this.pool.free();
  }

  give(items: Item[]): void {
    const clock = this.orphans.site.clock;
    const now = Date.now();
    this.pool.give(this.key, items, { judge: clock.now() - now, stamp: clock.stampNow() - now });
  }

  revoke(reason: Error): void {
    this.orphans.stopStuck(false);
    this.pool.revoke(this.key, reason);
  }

  stop(lastTry: boolean): void {
    this.orphans.stopStuck(lastTry);
  }

  cancel(name: string): void {
    this.pool.cancel(this.key, name);
  }

  settleOrphan(name: string, from: PendingDir, outcome: TaskOutcome): void {
    this.orphans.settleOrphan(name, from, outcome);
  }

  pause(all: boolean, tasks: ReadonlySet<string> | undefined): void {
    this.pool.pause(this.key, all, tasks);
  }
}

/** A task as its file name says (the body stays with the runner). */
export function describeName(fileName: string): { task: string; id: string; attempt: number } | { file: string } {
  const n = parseTaskName(fileName);
  return n === undefined ? { file: fileName } : { task: n.name, id: n.id, attempt: n.attempts };
}
