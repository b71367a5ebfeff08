/**
 * Tasks no daemon runs (issue 16, point 7; SPOOL-FORMAT.md, "Tasks no daemon
 * runs"). A daemon queues only the task names it serves (task-names.ts
 * ServedTasks; discover/feed.ts refuses the others before they reach the
 * window), so a task it does not run waits on disk for a daemon that does.
 * This sweep dead-letters such a task once it has waited --unknown-after past
 * its due time and no live daemon declares that it runs it.
 *
 * Who may decide. A daemon that does not run a task cannot know from its own
 * modules whether a peer does; so it asks the peers: every live owner (a
 * claim directory in active/ whose lock is fresh) declares the names it
 * serves in its status file (state/daemon-<owner>.json, "tasks"). A task is
 * dead-lettered only when (1) its due time + --unknown-after has passed by the
 * spool clock, (2) this daemon does not serve it, and (3) every other live
 * owner has a status file that declares names, none of them this one. An
 * owner without a declaration (starting, or an older spoolerd) may run
 * anything: nothing is dead-lettered while one is live. A task a live peer
 * declares is left to it, however long it waits (a backlog is no reason).
 *
 * Cost. Nothing per task: discovery notes the due time of each task it
 * refuses (one comparison), and this sweep lists incoming/ and pending/ only
 * once the oldest noted one may be due for a dead letter, or hourly (names
 * beyond the queue's window are noted only when a refill reaches them), and
 * then no more often than every scan interval and 50 times its last cost.
 * A sweep that found tasks a peer declares waits a minute before the next.
 */
import { join } from 'node:path';
import type { SpoolLayout, Subdir } from '../spool/layout.js';
import { parseTaskName, roughDue } from '../spool/name.js';
import { buryUnclaimed } from '../spool/protocol.js';
import { eachName } from '../spool/read-names.js';
import { readDeclaredTasks } from '../spool/status-file.js';
import type { Logger } from './logger.js';
import type { ServedTasks } from './task-names.js';

/** Without a noted task, a sweep runs this often anyway (names beyond the window are noted late). */
const CATCH_ALL_MS = 3_600_000;
/** After a sweep that left tasks to a peer that declares them: the shortest wait before the next. */
const PEER_DECLARED_WAIT_MS = 60_000;

export interface UnknownTasksHost {
  readonly layout: SpoolLayout;
  readonly log: Logger;
  /** --unknown-after (ms; 0: never). */
  readonly unknownAfterMs: number;
  readonly scanIntervalMs: number;
  /** What this daemon serves (undefined before the modules are known). */
  served(): ServedTasks | undefined;
  ownerId(): string | undefined;
  /** The live owners of the spool, ours included (discover/peers.ts). */
  liveOwners(): readonly string[];
  /** Throws unless these folders are still the ones checked at start-up. */
  check(...subs: Subdir[]): void;
  /** A task was dead-lettered here (counted in the stats). */
  buried(task: string): void;
}

export interface UnknownSweepResult {
  buried: number;
  /** Not served here and not yet due for a dead letter. */
  waiting: number;
  /** Due for a dead letter but declared by a live peer, or a peer declares nothing. */
  leftToPeers: number;
}

export class UnknownTasks {
  /** The earliest due time among the tasks refused since the last sweep (and those it left waiting). */
  private oldestDue = Infinity;
  /** Local clock: the next sweep runs no earlier than this. */
  private nextSweepAt = 0;
  private lastSweepAt = Date.now();

  constructor(private readonly host: UnknownTasksHost) {}

  /** Discovery refused `fileName` (not served here): remember how old the oldest such task is. One comparison. */
  noted(fileName: string): void {
    const due = roughDue(fileName);
    if (due < this.oldestDue) this.oldestDue = due;
  }

  /** From the reconciliation scan; `now` by the spool clock. Returns what it did, or undefined when it did not run. */
  sweep(now: number, local = Date.now()): UnknownSweepResult | undefined {
    const { unknownAfterMs: after, layout, log } = this.host;
    if (after === 0 || local < this.nextSweepAt) return undefined;
    if (this.oldestDue + after > now && local - this.lastSweepAt < CATCH_ALL_MS) return undefined;
    const me = this.host.ownerId();
    const served = this.host.served();
    if (me === undefined || served === undefined) return undefined;
    this.lastSweepAt = local;
    // What the other live owners run: undefined (anything) if one declares nothing.
    let declared: Set<string> | undefined = new Set();
    for (const owner of this.host.liveOwners()) {
      if (owner === me) continue;
      const names = readDeclaredTasks(layout, owner);
      if (names === undefined) {
        declared = undefined;
        break;
      }
      for (const n of names) declared.add(n);
    }
    const started = Date.now();
    const result: UnknownSweepResult = { buried: 0, waiting: 0, leftToPeers: 0 };
    let oldest = Infinity;
    try {
      this.host.check('incoming', 'pending', 'active', 'state', 'dead');
      for (const dir of ['pending', 'incoming'] as const) {
        for (const fileName of eachName(layout[dir])) {
          const due = roughDue(fileName);
          if (due !== due /* NaN: not a task name */ || served.serves(fileName)) continue;
          const task = parseTaskName(fileName);
          if (task === undefined) continue;
          if (due + after > now) {
            result.waiting++;
          } else if (declared === undefined || declared.has(task.name)) {
            result.leftToPeers++;
          } else {
            const message =
              `no daemon serving this spool runs task "${task.name}": it waited ${after} ms (--unknown-after) past its due time and no live daemon declares it; ` +
              `start a daemon whose --import registers it, then \`spool retry ${task.id}\``;
            const dead = buryUnclaimed(layout, join(layout.active, me), fileName, dir, {
              id: task.id,
              name: task.name,
              attempts: task.attempts,
              at: now,
              error: { name: 'UnknownTaskError', message },
            });
            if (dead !== undefined) {
              result.buried++;
              this.host.buried(task.name);
              log.warn('task is a dead letter: no daemon runs it', { task: task.name, id: task.id, due, unknownAfterMs: after, error: message });
            }
            continue;
          }
          if (due < oldest) oldest = due;
        }
      }
    } catch (err) {
      log.error('the sweep of tasks no daemon runs failed; trying again later', { err: (err as Error).message });
    }
    this.oldestDue = oldest;
    const cost = Date.now() - started;
    this.nextSweepAt = Date.now() + Math.max(this.host.scanIntervalMs, 50 * cost, result.leftToPeers > 0 ? PEER_DECLARED_WAIT_MS : 0);
    log.debug('swept tasks no daemon here runs', { ...result, ms: cost });
    return result;
  }
}
