/**
 * One runner process as the daemon sees it (process-runners.ts supervises
 * them all): its child process, the names given to it and not yet reported,
 * its share of the run slots, and its life:
 *
 *   starting --ready--> ready --(--max-tasks reached, or RSS over --max-memory)--> retiring --idle: told to exit--> exited
 *      |                  |  \--(a task outlived its timeout + kill grace, or a revoked one the kill grace)--> killed --SIGKILL--> exited
 *      '------------------'--(it died: exit, crash, OOM, abort, killed from outside)---------------------------------> exited
 */
import type { ChildProcess } from 'node:child_process';
import type { PendingDir } from '../order/task-queue.js';
import type { ToRunner } from './runner-protocol.js';

export type RunnerState = 'starting' | 'ready' | 'retiring' | 'killed' | 'exited';

const NEXT: Record<RunnerState, readonly RunnerState[]> = {
  starting: ['ready', 'exited'],
  ready: ['retiring', 'killed', 'exited'],
  retiring: ['killed', 'exited'],
  killed: ['exited'],
  exited: [],
};

export interface Given {
  key: number;
  dir: PendingDir;
  /** Armed when the runner says the task started with a run-time limit: kills the runner. */
  timer?: NodeJS.Timeout;
  /** Its run-time limit, once the runner said it started (timed). */
  timeoutMs?: number;
  timedOut?: boolean;
  revoked?: boolean;
  /** Cancelled: it ends as cancelled however its runner ends. */
  cancelled?: boolean;
  /** Kills the runner if the cancelled task is still running after the kill grace. */
  cancelTimer?: NodeJS.Timeout;
}

export class RunnerProcess {
  state: RunnerState = 'starting';
  /** Names given and not yet reported (their first report), by name. */
  readonly given = new Map<string, Given>();
  slots = 0;
  tasksGiven = 0;
  rss = 0;
  replaced = false;
  importError: string | undefined;
  importStack: string | undefined;
  revokeTimer: NodeJS.Timeout | undefined;
  readonly spawnedAt = Date.now();
  readonly ready: Promise<void>;
  readonly exited: Promise<void>;
  markReady!: () => void;
  markFailed!: (err: Error) => void;
  markExited!: () => void;

  constructor(readonly child: ChildProcess) {
    this.ready = new Promise((done, fail) => {
      this.markReady = done;
      this.markFailed = fail;
    });
    this.ready.catch(() => undefined);
    this.exited = new Promise((done) => (this.markExited = done));
  }

  go(to: RunnerState): void {
    if (!NEXT[this.state].includes(to)) throw new Error(`runner process ${this.pid}: cannot go from ${this.state} to ${to}`);
    this.state = to;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  send(message: ToRunner): void {
    if (!this.child.connected) return;
    try {
      this.child.send(message);
    } catch {
      // The channel closed under us: the exit handler decides what becomes of the names.
    }
  }
}

/** How a name given to a runner that died ended up (orphaned()). */
export type OrphanCause = 'crashed' | 'timed-out' | 'killed' | 'cancelled';

/** How a runner process ended, for the supervisor's log line and errors. */
export interface RunnerDeath {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** "exit code 3", "killed by SIGKILL". */
  how: string;
  /** It died by itself (not killed by the daemon): its started tasks fail with WorkerCrashedError, and the supervisor logs it. */
  crashed: boolean;
}

export interface Orphan {
  name: string;
  dir: PendingDir;
  cause: OrphanCause;
  /** Its run-time limit (timed-out). */
  timeoutMs?: number;
}

/** The names a runner held when it exited, by site, each with why it ended there (see process-runners.ts). */
export function orphansBySite(given: ReadonlyMap<string, Given>, state: RunnerState): Map<number, Orphan[]> {
  const bySite = new Map<number, Orphan[]>();
  for (const [name, g] of given) {
    // A cancelled task ends as cancelled however its runner ended (killed for it, for another task, or crashed).
    const cause: OrphanCause = g.cancelled === true ? 'cancelled' : state === 'killed' ? (g.timedOut === true ? 'timed-out' : 'killed') : 'crashed';
    let list = bySite.get(g.key);
    if (list === undefined) bySite.set(g.key, (list = []));
    list.push({ name, dir: g.dir, cause, ...(g.timeoutMs !== undefined && { timeoutMs: g.timeoutMs }) });
  }
  return bySite;
}
