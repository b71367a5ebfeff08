/**
 * Idle: one spoolerd serving an empty spool, its CPU over a quiet stretch
 * (default 60 s, after 5 s to settle), read from /proc (user + system, the
 * daemon's process only: its timers, polls and scans all run on its main
 * thread; worker processes wait on their IPC channel).
 *
 *   npm run bench -- idle                                   this build
 *   BENCH_BASELINE_DIST=<old dist/> npm run bench -- idle   this build and an older one side by side,
 *                                                           each on its own spool, over the same seconds
 *
 * Side by side, both see the same load: the difference is what the newer
 * build adds while idle (the pause watch: four lstat calls a second per spool).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpuMsOf, DIST, printTable, sleep, stopDaemon, tempDir } from './lib.js';

async function waitForServing(log: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(existsSync(log) && readFileSync(log, 'utf8').includes('"msg":"serving spool"'))) {
    if (Date.now() > deadline) throw new Error(`spoolerd did not start serving within 30 s: ${existsSync(log) ? readFileSync(log, 'utf8') : 'no log'}`);
    await sleep(20);
  }
}

function spawnIdle(dist: string, spool: string, log: string): ChildProcess {
  const out = openSync(log, 'a');
  return spawn(process.execPath, [join(dist, 'cli/spoolerd.js'), '--dir', spool, '--create', '--import', join(dist, 'bench/fixtures/noop-tasks.js'), '--log-level', 'info', '--log-format', 'json'], {
    env: process.env,
    stdio: ['ignore', out, out],
  });
}

export async function idle(options: { seconds?: number } = {}): Promise<void> {
  const seconds = options.seconds ?? Number(process.env.BENCH_IDLE_SECONDS ?? 60);
  const builds: Array<[label: string, dist: string]> = [['this build', DIST]];
  if (process.env.BENCH_BASELINE_DIST) builds.push(['baseline', process.env.BENCH_BASELINE_DIST]);
  const { dir, cleanup } = tempDir('spoolerd-bench-idle-');
  const daemons: ChildProcess[] = [];
  try {
    for (const [i, [, dist]] of builds.entries()) {
      const spool = join(dir, `spool-${i}`);
      mkdirSync(dir, { recursive: true });
      const log = join(dir, `daemon-${i}.log`);
      daemons.push(spawnIdle(dist, spool, log));
      await waitForServing(log);
    }
    // Serving, past start-up's listings and the first scan.
    await sleep(5000);
    const before = daemons.map((d) => cpuMsOf(d.pid!));
    const started = performance.now();
    await sleep(seconds * 1000);
    const wall = performance.now() - started;
    const percent = daemons.map((d, i) => (100 * (cpuMsOf(d.pid!) - before[i]!)) / wall);
    printTable(
      `idle: one spoolerd on an empty spool, CPU over ${seconds} s (% of a core)${builds.length > 1 ? ', side by side' : ''}`,
      builds.map(([label], i) => [`CPU while idle, ${label}`, percent[i]!.toFixed(3), '< 1', percent[i]! < 1 ? 'met' : 'MISSED']),
    );
  } finally {
    await Promise.all(daemons.map((d) => stopDaemon(d)));
    cleanup();
  }
}
