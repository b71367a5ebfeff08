/**
 * A runner process: imports the task modules, then claims, reads, decodes,
 * runs and settles the tasks whose names the daemon gives it (task-path.ts),
 * and reports what became of each, a batch at a time. No task body crosses
 * the IPC channel. A task is claimed only when it starts (see task-path.ts):
 * when this process dies, the files of its names left in the claim directory
 * are exactly the tasks it had started.
 *
 * A runner (process-runners.ts has the daemon's side of its life):
 *
 *   importing --ready--> serving --drain--> draining (starts nothing more; gives back its unstarted names)
 *                          '--retire / disconnect / the daemon gone--> exit
 *
 * It exits when the daemon says so (retire), when the IPC channel closes (the
 * daemon is gone: its claims are reclaimed by other daemons, so running on
 * would only duplicate work), and from a watchdog thread when the daemon's
 * process is gone while this one's event loop is blocked by a task.
 */
import { lstatSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { ClaimLostError } from '../../runtime/context.js';
import { recreatedByDaemon } from '../../spool/compact-folder.js';
import { SpoolLayout, type Subdir } from '../../spool/layout.js';
import { openDirHandle, wantsDirHandles } from '../dir-handles.js';
import { FolderSwappedError } from '../folders.js';
import { createLogger, type Logger } from '../logger.js';
import type { WorkerOptions } from '../options.js';
import { importTaskModule, TaskModuleError } from '../task-modules.js';
import { registeredInThisProcess, taskNameOfFileName } from '../task-names.js';
import type { PendingDir } from '../order/task-queue.js';
import { NAME_SEPARATOR, type FromRunner, type ToRunner, type WireReport, type WireSite } from './runner-protocol.js';
import { Code, TaskPath, type Item, type Report } from './task-path.js';

const RSS_EVERY_MS = 100;
/**
 * Tasks started per turn of the event loop: after that many, the reports go
 * out and the next names are started in the next turn, so that the daemon
 * refills this runner's names while it works through the rest (a runner that
 * ran everything it held in one turn would sit idle for a round trip). Half
 * the names the daemon gives ahead (process-runners.ts AHEAD_MIN): each
 * report message and the names it brings back cost both processes a write,
 * a read and a wake-up (~10 µs under load), so they are made per 64 tasks
 * rather than per 16 (measured: BENCHMARKS.md, issue 15).
 */
const CHUNK = 64;

type RunnerState = 'importing' | 'serving' | 'draining';

let state: RunnerState = 'importing';
let log: Logger = createLogger({ level: 'info', format: 'json' });
/** What the daemon sent at init (options.ts, the entries marked `worker`). */
let options: WorkerOptions;
/** The spool clock's offsets from this host's clock, as the daemon last measured them. */
const clock = { judge: 0, stamp: 0, now: () => Date.now() + clock.judge, stampNow: () => Date.now() + clock.stamp };

interface SiteHere {
  path: TaskPath;
  /** Names given, not started yet, in the daemon's order. */
  inbox: Item[];
  head: number;
  reports: WireReport[];
  revoked: boolean;
  /** Every task of this site is paused: none starts. */
  pausedAll: boolean;
  /** The task names paused (while not all are); undefined while none is. */
  pausedTasks: ReadonlySet<string> | undefined;
}
const sites = new Map<number, SiteHere>();
/** Tasks started and not yet ended (their first report), over all sites; at most `slots`. */
let running = 0;
let slots = 1;
/** Names whose move is stuck: their next report is their final one, not the end of a run. */
const stuckNames = new Set<string>();
let pumpScheduled = false;
let flushScheduled = false;
let lastRss = 0;
let lastRssAt = 0;

function go(to: RunnerState): void {
  const ok = (state === 'importing' && to === 'serving') || (state === 'serving' && to === 'draining');
  if (!ok) throw new Error(`runner: cannot go from ${state} to ${to}`);
  state = to;
}

const send = (message: FromRunner): void => {
  if (process.connected) process.send!(message);
};

process.on('message', (message: ToRunner) => {
  switch (message.t) {
    case 'init':
      return void init(message);
    case 'site':
      return openSite(message.site);
    case 'give':
      return give(message);
    case 'revoke':
      return revoke(message.key, message.message);
    case 'cancel':
      return cancel(message.key, message.name);
    case 'pause':
      return pause(message);
    case 'drain':
      return drain();
    case 'retire':
      return void process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
// The daemon alone decides when a runner ends (a 'retire' message, a disconnect, or SIGKILL).
// SIGINT and SIGTERM reach runners too when they are sent to the whole process group (Ctrl-C
// in a terminal, `kill -- -PGID`, a supervisor stopping a control group); dying on them would
// cut short the tasks the daemon is letting finish within its grace period, and count an
// attempt for each. The daemon gets the same signal and stops gracefully.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
process.on('uncaughtException', (err) => {
  // The process state is unknown: die, and let the daemon reschedule what ran here and start another runner.
  log.error('uncaught exception (most likely thrown by a task outside its promise); the worker exits and is replaced', { err, worker: process.pid });
  process.exit(70);
});
process.on('unhandledRejection', (reason) => {
  log.error('unhandled promise rejection (most likely from a task); ignored', { err: reason, worker: process.pid });
});
watchDaemon();

async function init(message: Extract<ToRunner, { t: 'init' }>): Promise<void> {
  options = message.options;
  log = createLogger({ level: options.logLevel, format: options.logFormat }, { worker: process.pid });
  try {
    for (const m of options.import) await importTaskModule(m);
  } catch (err) {
    send(err instanceof TaskModuleError ? { t: 'import-failed', message: err.message, stack: err.detail } : { t: 'import-failed', message: String(err) });
    process.exit(1);
  }
  go('serving');
  send({ t: 'ready', registered: registeredInThisProcess() });
  // While idle, report memory now and then so --max-memory also sees a runner that grew and went quiet.
  setInterval(() => {
    const rss = process.memoryUsage.rss();
    if (Math.abs(rss - lastRss) < 1048576) return;
    lastRss = rss;
    lastRssAt = Date.now();
    send({ t: 'rss', rss });
  }, 1000).unref();
  pump();
}

function openSite(w: WireSite): void {
  const layout = new SpoolLayout(w.root);
  const checked = new Map<Subdir, [number, number]>(w.checked.map(([sub, dev, ino]) => [sub, [dev, ino]]));
  const here: SiteHere = { inbox: [], head: 0, reports: [], revoked: false, pausedAll: false, pausedTasks: undefined, path: undefined! };
  // On a network filesystem, this process's own directory handles (a handle is a descriptor of the process that opened it: dir-handles.ts).
  const handles = wantsDirHandles(w.root) ? openHandles(w, checked) : undefined;
  here.path = new TaskPath(
    {
      layout,
      root: w.root,
      sources: { incoming: handles?.incoming ?? w.incoming, pending: handles?.pending ?? w.pending },
      claimDir: handles?.claimDir ?? w.claimDir,
      claimDirPath: w.claimDir,
      maxBytes: options.maxBytes,
      settle: options.settle,
      archive: options.archive,
      keepResults: options.keepResults,
      taskTimeout: options.taskTimeout,
      clock,
      check: (...subs) => {
        for (const sub of subs) {
          const id = checkFolder(layout, sub, checked.get(sub));
          if (id !== undefined) checked.set(sub, id);
        }
      },
      log: log.child({ spool: w.root }),
    },
    {
      report: (r) => report(w.key, here, r),
      // Sent now, synchronously: a task that then blocks this event loop cannot hold it back.
      timed: (name, timeoutMs) => send({ t: 'timed', key: w.key, name, timeoutMs }),
    },
  );
  sites.set(w.key, here);
}

/** Handles of incoming/, pending/ and the claim directory, each only if it is still the folder the daemon checked; else plain paths. Held for the runner's life. */
function openHandles(w: WireSite, checked: Map<Subdir, [number, number]>): { incoming?: string; pending?: string; claimDir?: string } {
  const open = (path: string, id: [number, number] | undefined) => (id === undefined ? undefined : openDirHandle(path, { dev: id[0], ino: id[1] })?.path);
  return { incoming: open(w.incoming, checked.get('incoming')), pending: open(w.pending, checked.get('pending')), claimDir: open(w.claimDir, w.claimDirId) };
}

/**
 * The folder must still be the one the daemon checked (folders.ts): never
 * follow a swapped one. A drained incoming/ that a daemon recreated
 * (spool/compact-folder.ts: its marker names the new one) is followed, as the
 * daemon's own check does. Returns the identity to check against from now on.
 */
function checkFolder(layout: SpoolLayout, sub: Subdir, id: [number, number] | undefined): [number, number] | undefined {
  if (id === undefined) return undefined;
  const path = layout[sub];
  const st = lstatSync(path);
  if (st.isDirectory() && st.dev === id[0] && st.ino === id[1]) return id;
  if (sub === 'incoming' && recreatedByDaemon(layout.state, path, st)) return [st.dev, st.ino];
  throw new FolderSwappedError(path, st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'another directory' : 'not a directory');
}

function give(m: Extract<ToRunner, { t: 'give' }>): void {
  const here = sites.get(m.key);
  clock.judge = m.judge;
  clock.stamp = m.stamp;
  slots = m.slots;
  const names = m.names.split(NAME_SEPARATOR);
  if (here === undefined || here.revoked || state === 'draining' || here.pausedAll) {
    // Not ours to claim any more (or not now: every task is paused): back to the daemon unclaimed.
    const reports: WireReport[] = names.map((name, i) => [name, Code.Unclaimed, undefined, undefined, 0, m.dirs[i] === 'p' ? 'pending' : 'incoming']);
    return send({ t: 'done', key: m.key, reports });
  }
  for (let i = 0; i < names.length; i++) here.inbox.push({ name: names[i]!, dir: m.dirs[i] === 'p' ? 'pending' : 'incoming' });
  pump();
}

/** Starts the next names while slots are free, at most CHUNK per turn, then sends the reports. */
function pump(): void {
  pumpScheduled = false;
  if (state !== 'serving') return;
  let started = 0;
  for (const [, here] of sites) {
    while (here.head < here.inbox.length && running < slots && started < CHUNK && !here.pausedAll) {
      const item = here.inbox[here.head++]!;
      // The daemon gives no paused name after it sent the pause: this holds only against a give that crossed it.
      if (here.pausedTasks !== undefined && here.pausedTasks.has(taskNameOfFileName(item.name))) {
        here.reports.push([item.name, Code.Unclaimed, undefined, undefined, 0, item.dir]);
        continue;
      }
      running++;
      started++;
      here.path.start(item);
    }
    if (here.head === here.inbox.length) {
      here.inbox = [];
      here.head = 0;
    }
  }
  flush();
  if (started === CHUNK && !pumpScheduled) {
    pumpScheduled = true;
    setImmediate(pump);
  }
}

function report(key: number, here: SiteHere, r: Report): void {
  if (stuckNames.delete(r.name)) {
    // The final report of a stuck move: its run had ended already.
  } else {
    running--;
    if (r.code === Code.Stuck) stuckNames.add(r.name);
  }
  const extra = r.next ?? r.until ?? r.reason;
  // Run time in whole microseconds: a short integer is cheaper to write and parse than a double's digits.
  const wire: WireReport = [r.name, r.code, r.task, r.ms === undefined ? undefined : Math.round(r.ms * 1000), r.failed === true ? 1 : 0, extra];
  // The scopes a limited task freed, or the one that held it back (runner-limits.ts); absent for other tasks.
  if (r.limits !== undefined) wire.push(r.limits);
  here.reports.push(wire);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushAndPump);
  }
  void key;
}

function flushAndPump(): void {
  flushScheduled = false;
  flush();
  if (!pumpScheduled) pump();
}

/** Every site's reports go out, one message per site. */
function flush(): void {
  for (const [key, here] of sites) {
    if (here.reports.length === 0) continue;
    const message: FromRunner = { t: 'done', key, reports: here.reports };
    here.reports = [];
    const now = Date.now();
    if (now - lastRssAt >= RSS_EVERY_MS) {
      lastRssAt = now;
      lastRss = message.rss = process.memoryUsage.rss();
    }
    send(message);
  }
}

function unstarted(here: SiteHere): WireReport[] {
  const back: WireReport[] = [];
  for (let i = here.head; i < here.inbox.length; i++) back.push([here.inbox[i]!.name, Code.Unclaimed, undefined, undefined, 0, here.inbox[i]!.dir satisfies PendingDir]);
  here.inbox = [];
  here.head = 0;
  return back;
}

/** The daemon lost the claims of this site: signals fire, its unstarted names go back, its running tasks report Revoked as they end. */
function revoke(key: number, message: string): void {
  const here = sites.get(key);
  if (here === undefined) return;
  here.revoked = true;
  here.path.stopStuck(false);
  here.path.revoke(new ClaimLostError(message));
  here.reports.push(...unstarted(here));
  flush();
}

/**
 * Every task of a site (`all`), or the tasks named, are paused from now on:
 * the names of theirs given and not started go back to the daemon at once
 * (Unclaimed: still where the queue saw them) and none of them starts here.
 * Tasks running go on.
 */
function pause(m: Extract<ToRunner, { t: 'pause' }>): void {
  const here = sites.get(m.key);
  if (here === undefined) return;
  here.pausedAll = m.all;
  here.pausedTasks = m.all || m.tasks.length === 0 ? undefined : new Set(m.tasks);
  if (m.all) {
    here.reports.push(...unstarted(here));
  } else if (here.pausedTasks !== undefined) {
    const keep: Item[] = [];
    for (let i = here.head; i < here.inbox.length; i++) {
      const item = here.inbox[i]!;
      if (here.pausedTasks.has(taskNameOfFileName(item.name))) here.reports.push([item.name, Code.Unclaimed, undefined, undefined, 0, item.dir]);
      else keep.push(item);
    }
    here.inbox = keep;
    here.head = 0;
  }
  flush();
  // A resume: names given meanwhile (none while all was paused) may start now.
  if (!pumpScheduled) pump();
}

/** Cancels one task given here: running, its signal fires; still in the inbox, it is claimed and settled as cancelled now, unrun. */
function cancel(key: number, name: string): void {
  const here = sites.get(key);
  if (here === undefined || here.revoked) return;
  if (here.path.cancel(name)) return;
  for (let i = here.head; i < here.inbox.length; i++) {
    const item = here.inbox[i]!;
    if (item.name !== name) continue;
    here.inbox.splice(i, 1);
    running++;
    here.path.start(item, true);
    return;
  }
}

/**
 * A stop: nothing more starts here; the names not started go back. Stuck
 * moves get a last try and then stay where they are (the daemon leaves them
 * claimed for the next one): no record is written after this, so none is left
 * half-written when this process is told to exit.
 */
function drain(): void {
  if (state === 'serving') go('draining');
  for (const here of sites.values()) {
    here.reports.push(...unstarted(here));
    here.path.stopStuck(true);
  }
  flush();
}

/**
 * A disconnect is only noticed by a free event loop. This thread checks every
 * half second that the daemon still exists and kills this process otherwise,
 * so a task stuck in a synchronous loop does not outlive its daemon.
 */
function watchDaemon(): void {
  const source = `
    const daemon = ${process.ppid};
    setInterval(() => {
      try { process.kill(daemon, 0); } catch (err) { if (err.code === 'ESRCH') process.kill(process.pid, 'SIGKILL'); }
    }, 500);`;
  new Worker(source, { eval: true, stdout: false, stderr: false }).unref();
}
