/**
 * A worker process: imports the task modules, then runs the tasks the daemon
 * sends and reports how each ended. The daemon claims and does every rename
 * of a failed task; the one file operation done here is the last one of a
 * processed or skipped task: its claimed file is removed (or archived) the
 * moment its function returns, before the next task starts and before the
 * report is sent. A report is sent asynchronously and may never leave (the
 * next task blocks the event loop and the worker is killed); the file being
 * gone is what makes sure such a task never runs again. Whatever else
 * happens to a worker, the daemon decides what becomes of its tasks.
 *
 * It exits when the daemon says so (retire), when the IPC channel closes (the
 * daemon is gone: its claims are reclaimed by other daemons, so running on
 * would only duplicate work), and from a watchdog thread when the daemon's
 * process is gone while this one's event loop is blocked by a task.
 */
import { sep } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ClaimLostError, TaskTimeoutError } from '../runtime/context.js';
import type { TaskOutcome } from '../runtime/results.js';
import { SpoolLayout } from '../spool/layout.js';
import { finish } from '../spool/protocol.js';
import { decodeTask } from '../spool/task-file.js';
import { createLogger, type Logger } from './logger.js';
import { TaskRun } from './run-task.js';
import { importTaskModule, TaskModuleError } from './task-modules.js';
import { registeredInThisProcess } from './task-names.js';
import { outcomeToWire, type FromWorker, type ToWorker, type WireFile, type WireJob, type WireOutcome } from './worker-protocol.js';

const RSS_EVERY_MS = 100;

let log: Logger = createLogger({ level: 'info', format: 'json' });
const runs = new Map<number, TaskRun>();
let results: Array<[number, WireOutcome]> = [];
let flushScheduled = false;
let lastRss = 0;
let lastRssAt = 0;
/** --archive: processed and skipped tasks are moved to archive/ instead of removed. */
let archive = false;
/** By spool root: where archived tasks go. */
const layouts = new Map<string, SpoolLayout>();

const send = (message: FromWorker): void => {
  if (process.connected) process.send!(message);
};

process.on('message', (message: ToWorker) => {
  switch (message.t) {
    case 'init':
      return void init(message);
    case 'run':
      for (const job of message.jobs) start(job);
      return;
    case 'abort':
      return runs.get(message.n)?.abort(new TaskTimeoutError(message.timeoutMs));
    case 'revoke':
      return runs.get(message.n)?.abort(new ClaimLostError(message.message));
    case 'retire':
      return void process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
// The daemon alone decides when a worker ends (a 'retire' message, a disconnect, or SIGKILL).
// SIGINT and SIGTERM reach workers too when they are sent to the whole process group (Ctrl-C
// in a terminal, `kill -- -PGID`, a supervisor stopping a control group); dying on them would
// cut short the tasks the daemon is letting finish within its grace period, and count an
// attempt for each. The daemon gets the same signal and stops gracefully.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
process.on('uncaughtException', (err) => {
  // The process state is unknown: die, and let the daemon reschedule what ran here and start another worker.
  log.error('uncaught exception (most likely thrown by a task outside its promise); the worker exits and is replaced', {
    err,
    worker: process.pid,
    running: [...runs.values()].map((r) => ({ task: r.name, id: r.id })),
  });
  process.exit(70);
});
process.on('unhandledRejection', (reason) => {
  log.error('unhandled promise rejection (most likely from a task); ignored', { err: reason, worker: process.pid });
});
watchDaemon();

async function init(message: Extract<ToWorker, { t: 'init' }>): Promise<void> {
  const options = message.options;
  log = createLogger({ level: options.logLevel, format: options.logFormat }, { worker: process.pid });
  archive = options.archive;
  try {
    for (const m of options.import) await importTaskModule(m);
  } catch (err) {
    send(err instanceof TaskModuleError ? { t: 'import-failed', message: err.message, stack: err.detail } : { t: 'import-failed', message: String(err) });
    process.exit(1);
  }
  send({ t: 'ready', registered: registeredInThisProcess() });
  // While idle, report memory now and then so --max-memory also sees a worker that grew and went quiet.
  setInterval(() => {
    const rss = process.memoryUsage.rss();
    if (Math.abs(rss - lastRss) < 1048576) return;
    lastRss = rss;
    lastRssAt = Date.now();
    send({ t: 'rss', rss });
  }, 1000).unref();
}

function start(job: WireJob): void {
  const decoded = decodeTask(job.file, Buffer.from(job.body, 'base64'));
  if (!decoded.ok) {
    // The daemon decoded the same bytes before sending them: only a bug gets here.
    report(job.n, { k: 'r', error: { name: 'Error', message: `the worker cannot decode the task it was sent: ${decoded.reason}` } });
    return;
  }
  const run = new TaskRun(job.spool, decoded.task, log);
  runs.set(job.n, run);
  const ended = (outcome: TaskOutcome): void => {
    runs.delete(job.n);
    const wire = outcomeToWire(outcome);
    if (wire.k !== 'r') {
      const file = finishFile(job);
      if (file !== undefined) wire.f = file;
    }
    report(job.n, wire);
  };
  let outcome: TaskOutcome | Promise<TaskOutcome>;
  try {
    outcome = run.execute();
  } catch (err) {
    return ended({ kind: 'rescheduled', error: err });
  }
  if (outcome instanceof Promise) outcome.then(ended, (err: unknown) => ended({ kind: 'rescheduled', error: err }));
  else ended(outcome);
}

/**
 * Removes (or archives) the claimed file of a task that ended processed or
 * skipped, synchronously. Undefined when that failed: the daemon then tries
 * itself, as for a task run in its own process, and logs what it finds.
 */
function finishFile(job: WireJob): WireFile | undefined {
  try {
    return finish(job.dir + sep + job.file, layoutOf(job.spool), archive) ? 1 : 2;
  } catch (err) {
    log.warn('cannot remove the file of a finished task; the daemon will try', { file: job.file, err });
    return undefined;
  }
}

function layoutOf(spool: string): SpoolLayout {
  let layout = layouts.get(spool);
  if (layout === undefined) layouts.set(spool, (layout = new SpoolLayout(spool)));
  return layout;
}

/** Results of one turn of the event loop go back in one message. */
function report(n: number, outcome: WireOutcome): void {
  results.push([n, outcome]);
  if (flushScheduled) return;
  flushScheduled = true;
  setImmediate(flush);
}

function flush(): void {
  flushScheduled = false;
  const message: FromWorker = { t: 'done', results };
  results = [];
  const now = Date.now();
  if (now - lastRssAt >= RSS_EVERY_MS) {
    lastRssAt = now;
    lastRss = message.rss = process.memoryUsage.rss();
  }
  send(message);
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
