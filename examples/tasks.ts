/**
 * Example task module: what `spoolerd --import` loads. Each spooler.task() call
 * registers a function; calling the returned wrapper enqueues it.
 */
import { createHash } from 'node:crypto';
import { Spooler, skipped } from '../runtime/index.js';

/** The spool the daemon serves ($SPOOL_DIR), or ./demo-spool when run on its own. */
export const spooler = Spooler.open(process.env.SPOOL_DIR || './demo-spool');

export const greet = spooler.task(function greet(name: string) {
  console.log(`hello, ${name}`);
});

export const checksum = spooler.task(
  function checksum(text: string, rounds: number) {
    let digest = text;
    for (let i = 0; i < rounds; i++) digest = createHash('sha256').update(digest).digest('hex');
    console.log(`checksum of ${JSON.stringify(text)} after ${rounds} rounds: ${digest.slice(0, 16)}…`);
    return digest;
  },
  { priority: 20, retries: 2, backoff: { kind: 'exponential', delay: '500ms' } },
);

export const remind = spooler.task(function remind(what: string, options: { loud?: boolean } = {}) {
  if (!what) return skipped('nothing to remind of');
  console.log(options.loud ? `REMINDER: ${what.toUpperCase()}` : `reminder: ${what}`);
});
