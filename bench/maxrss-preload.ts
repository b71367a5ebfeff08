/**
 * Preloaded into a child process by the ls-100k benchmark
 * (`node --import dist/bench/maxrss-preload.js dist/cli/spool.js ls ...`): at
 * exit it writes the process's peak resident set size, getrusage(RUSAGE_SELF)
 * ru_maxrss in KiB (the kernel's high-water mark, the same as VmHWM), and its
 * user and system CPU time in µs (all threads), as JSON to the file named by
 * $BENCH_MAXRSS_FILE. It loads nothing else, so it costs the
 * measured command about nothing.
 */
import { writeFileSync } from 'node:fs';

const file = process.env.BENCH_MAXRSS_FILE;
if (file) {
  process.on('exit', () => {
    const usage = process.resourceUsage();
    writeFileSync(file, JSON.stringify({ maxRSS: usage.maxRSS, user: usage.userCPUTime, system: usage.systemCPUTime }) + '\n');
  });
}
