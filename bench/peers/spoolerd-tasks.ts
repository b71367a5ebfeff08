/**
 * spoolerd's task module for `npm run bench:peers` (loaded with --import):
 * the same three tasks as uwsgi_tasks.py and the BullMQ worker, recording
 * through probe.ts.
 */
import { Spooler } from '../../runtime/index.js';
import { taskDone, taskStarted } from './probe.js';

const spooler = Spooler.fromEnv();

spooler.task(function noop() {
  taskDone();
});

/** `since`: the producer's monotonic clock (ms, clock.ts) when it renamed the task into the spool. */
spooler.task(function stamp(since: number) {
  taskStarted(since);
  taskDone();
});

spooler.task(async function sleep10() {
  await new Promise((r) => setTimeout(r, 10));
  taskDone();
});
