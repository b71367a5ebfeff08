/**
 * The BullMQ consumer for `npm run bench:peers`: one Worker in its own process
 * (as BullMQ is deployed), on the queue BENCH_QUEUE of the Redis at
 * BENCH_REDIS_PORT, with concurrency BENCH_CONCURRENCY. Job names are the task
 * names (noop, stamp, sleep10); a stamp job's data is { since }.
 */
import { Worker, type Job } from 'bullmq';
import { taskDone, taskStarted } from './probe.js';

const port = Number(process.env.BENCH_REDIS_PORT);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 1);

const worker = new Worker(
  process.env.BENCH_QUEUE ?? 'bench',
  async (job: Job) => {
    if (job.name === 'stamp') taskStarted((job.data as { since: number }).since);
    else if (job.name === 'sleep10') await new Promise((r) => setTimeout(r, 10));
    taskDone();
  },
  {
    connection: { host: '127.0.0.1', port, maxRetriesPerRequest: null },
    concurrency,
    // The cheapest bookkeeping BullMQ offers: finished jobs are deleted, as
    // spoolerd and uWSGI delete a processed task's file.
    removeOnComplete: { count: 0 },
    removeOnFail: { count: 0 },
  },
);
worker.on('error', (err) => process.stderr.write(`bullmq worker: ${err.message}\n`));

async function shutdown(): Promise<void> {
  await worker.close();
  process.exit(0);
}
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());
