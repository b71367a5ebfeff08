/**
 * Example task module: what `spoolerd --import` loads. Each spooler.task() call
 * registers a function; calling the returned wrapper enqueues it. It imports
 * 'spoolerd' as a module of your own project would, so it can be copied as a start.
 */
import { createHash } from 'node:crypto';
import { Spooler, skipped } from 'spoolerd';

/** The spool the daemon serves ($SPOOL_DIR), or ./demo-spool when run on its own. */
export const spooler = Spooler.open(process.env.SPOOL_DIR || './demo-spool');

/** Which process ran a task: a worker process of the daemon, or the daemon itself (--processes 0). */
const where = (): string => `[pid ${process.pid}]`;

export const greet = spooler.task(function greet(name: string) {
  console.log(`${where()} hello, ${name}`);
});

export const checksum = spooler.task(
  function checksum(text: string, rounds: number) {
    let digest = text;
    for (let i = 0; i < rounds; i++) digest = createHash('sha256').update(digest).digest('hex');
    console.log(`${where()} checksum of ${JSON.stringify(text)} after ${rounds} rounds: ${digest.slice(0, 16)}…`);
    return digest;
  },
  { priority: 20, retries: 2, backoff: { kind: 'exponential', delay: '500ms' } },
);

// The task name is the function's name unless given: this one is enqueued and listed as "remind".
export const remind = spooler.task(
  (what: string, options: { loud?: boolean } = {}) => {
    if (!what) return skipped('nothing to remind of');
    console.log(`${where()} ${options.loud ? `REMINDER: ${what.toUpperCase()}` : `reminder: ${what}`}`);
  },
  { name: 'remind' },
);
