/**
 * The waiter process of the wait-many benchmark (bench/wait-many.ts): waits
 * for every id on stdin's list (one per line) with spooler.wait(), all at
 * once, and prints JSON lines: {"waiting": …} once every wait is set up, then
 * {"done": …} when all have resolved, each with its RSS, peak RSS and the
 * inotify watches this process holds.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Spooler } from '../runtime/index.js';
import { resultWatch } from '../runtime/wait.js';

const [spoolDir] = process.argv.slice(2);
const ids = readFileSync(0, 'utf8').split('\n').filter(Boolean);
const spooler = Spooler.open(spoolDir!);

function inotifyWatches(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fdinfo')) {
    try {
      n += readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n').filter((l) => l.startsWith('inotify wd:')).length;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

function memory(): { rssMb: number; peakMb: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
}

const start = performance.now();
let settled = 0;
const waits = ids.map((id) => spooler.wait(id, { timeout: 300_000 }).then(() => void settled++));
const stats = resultWatch(spooler.layout).stats;
console.log(JSON.stringify({ waiting: ids.length, mode: stats.mode, watches: inotifyWatches(), setupMs: performance.now() - start, ...memory() }));
await Promise.all(waits);
console.log(JSON.stringify({ done: settled, watchesDuring: stats.mode === 'watching' ? 1 : 0, ms: performance.now() - start, ...memory() }));
