/**
 * A worker process: imports the task modules, then runs the tasks the daemon
 * sends and reports how each ended. It never touches the spool's files (the
 * daemon claims, renames and unlinks); whatever happens to it, the daemon
 * decides what becomes of the tasks it was running.
 *
 * It exits when the daemon says so (retire), when the IPC channel closes (the
 * daemon is gone: its claims are reclaimed by other daemons, so running on
 * would only duplicate work), and from a watchdog thread when the daemon's
 * process is gone while this one's event loop is blocked by a task.
 */
import { Worker } from 'node:worker_threads';
import { TaskTimeoutError } from '../runtime/context.js';
import type { TaskOutcome } from '../runtime/results.js';
import { decodeTask } from '../spool/task-file.js';
import { createLogger, type Logger } from './logger.js';
import { TaskRun } from './run-task.js';
import { importTaskModule, TaskModuleError } from './task-modules.js';
import { outcomeToWire, type FromWorker, type ToWorker, type WireJob, type WireOutcome } from './worker-protocol.js';

const RSS_EVERY_MS = 100;

let log: Logger = createLogger({ level: 'info', format: 'json' });
const runs = new Map<number, TaskRun>();
let results: Array<[number, WireOutcome]> = [];
let flushScheduled = false;
let lastRss = 0;
let lastRssAt = 0;

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
  log = createLogger({ level: message.logLevel, format: message.logFormat }, { worker: process.pid });
  try {
    for (const m of message.modules) await importTaskModule(m);
  } catch (err) {
    send(err instanceof TaskModuleError ? { t: 'import-failed', message: err.message, stack: err.detail } : { t: 'import-failed', message: String(err) });
    process.exit(1);
  }
  send({ t: 'ready' });
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
    report(job.n, outcomeToWire(outcome));
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
