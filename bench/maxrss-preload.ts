/**
 * Preloaded into a child process by the ls-100k benchmark
 * (`node --import dist/bench/maxrss-preload.js dist/cli/spool.js ls ...`): at
 * exit it writes the process's peak resident set size, getrusage(RUSAGE_SELF)
 * ru_maxrss in KiB (the kernel's high-water mark, the same as VmHWM), to the
 * file named by $BENCH_MAXRSS_FILE. It loads nothing else, so it costs the
 * measured command about nothing.
 */
import { writeFileSync } from 'node:fs';

const file = process.env.BENCH_MAXRSS_FILE;
if (file) {
  process.on('exit', () => {
    writeFileSync(file, `${process.resourceUsage().maxRSS}\n`);
  });
}
