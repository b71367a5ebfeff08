/**
 * The cost of being watched: a 100,000-task drain (the drain benchmark's
 * settings) with and without `--http`, whose /metrics is scraped every second
 * from the first moment it answers until the drain is over. Runs alternate
 * (off/on, then on/off, ...) so that a machine that gets busier or quieter
 * during the benchmark weighs on both alike. Target (issue 14): the scraped
 * drain keeps ≥ 98% of the throughput (cost under 2%).
 *
 *   npm run bench -- metrics [--runs 5] [--tasks 100000]      (--runs: rounds, each one run of each)
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Spooler } from '../runtime/index.js';
import { cpuMsOf, median, printTable, startDaemon, stopDaemon, tempDir, verdict, waitForLine } from './lib.js';

const SETTINGS = ['--concurrency', '32', '--io-threads', '2'];
const SCRAPE_EVERY_MS = 1000;

interface Run {
  scraped: boolean;
  rate: number;
  /** The daemon's CPU time (all threads) by the end of the drain, ms. */
  cpuMs: number;
  /** Of the drain's time, the share the daemon spent rendering /metrics (its own count, spoolerd_metrics_render_seconds_total). */
  renderShare: number;
  scrapes: number;
  bytes: number;
  scrapeMs: number[];
}

export async function metricsCost(options: { tasks?: number; runs?: number } = {}): Promise<void> {
  const tasks = options.tasks ?? 100_000;
  const rounds = options.runs ?? 5;
  const results: Run[] = [];
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 === 1 ? [false, true] : [true, false];
    for (const scraped of order) {
      const run = await drainOnce(tasks, scraped);
      results.push(run);
      console.log(
        `round ${round}, ${scraped ? '--http, scraped' : 'no --http      '}: ${run.rate.toFixed(0)} tasks/s, daemon CPU ${run.cpuMs} ms` +
          (scraped
            ? `; ${run.scrapes} scrapes of ${(run.bytes / Math.max(1, run.scrapes) / 1024).toFixed(1)} KiB, answered in ${median(run.scrapeMs).toFixed(1)} ms (median) to ${Math.max(...run.scrapeMs).toFixed(1)} ms; rendering took ${(100 * run.renderShare).toFixed(2)}% of the drain's time`
            : ''),
      );
    }
  }
  const off = results.filter((r) => !r.scraped).map((r) => r.rate);
  const on = results.filter((r) => r.scraped).map((r) => r.rate);
  // Paired by round: each round's two runs ran back to back.
  const ratios = Array.from({ length: rounds }, (_, i) => on[i]! / off[i]!);
  const ratio = median(ratios);
  const cpuRatios = Array.from({ length: rounds }, (_, i) => results.filter((r) => r.scraped)[i]!.cpuMs / results.filter((r) => !r.scraped)[i]!.cpuMs);
  const renderShares = results.filter((r) => r.scraped).map((r) => r.renderShare);
  printTable(`metrics: ${tasks}-task drain, no --http vs --http scraped every ${SCRAPE_EVERY_MS / 1000} s (--processes 0 ${SETTINGS.join(' ')}), ${rounds} rounds`, [
    ['tasks/s, no --http (median)', median(off).toFixed(0), '', ''],
    ['tasks/s, --http scraped (median)', median(on).toFixed(0), '', ''],
    ['scraped / not, per round (median)', ratio.toFixed(3), '≥ 0.98', verdict(ratio >= 0.98)],
    ['per round', ratios.map((r) => r.toFixed(3)).join(' '), '', ''],
    ['daemon CPU, scraped / not (median)', median(cpuRatios).toFixed(3), '', ''],
    ["rendering /metrics, share of the drain's time (max)", `${(100 * Math.max(...renderShares)).toFixed(2)}%`, '< 2%', verdict(Math.max(...renderShares) < 0.02)],
  ]);
}

async function drainOnce(tasks: number, scraped: boolean): Promise<Run> {
  const { dir, cleanup } = tempDir('spoolerd-bench-metrics-');
  try {
    const spool = join(dir, 'spool');
    const spooler = Spooler.open(spool);
    const noop = spooler.task(function noop() {});
    for (let i = 0; i < tasks; i += 10_000) await spooler.enqueueMany(Array.from({ length: Math.min(10_000, tasks - i) }, () => noop.request()));
    const report = join(dir, 'report');
    const port = scraped ? await freePort() : 0;
    const daemon = startDaemon(spool, { BENCH_EXPECT: String(tasks), BENCH_REPORT: report }, [...SETTINGS, ...(scraped ? ['--http', `127.0.0.1:${port}`] : [])]);
    const run: Run = { scraped, rate: 0, cpuMs: 0, renderShare: 0, scrapes: 0, bytes: 0, scrapeMs: [] };
    let done = false;
    const scraper = scraped ? scrape(port, run, () => done) : Promise.resolve();
    try {
      const line = await waitForLine(report, 'done', 300_000);
      const drainMs = Number(line.split(' ')[2]);
      run.rate = tasks / (drainMs / 1000);
      run.cpuMs = cpuMsOf(daemon.pid!);
      done = true;
      await scraper;
      if (scraped) {
        // Scrapes during start-up count too: the share is an upper bound.
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        const rendered = Number(/^spoolerd_metrics_render_seconds_total (\S+)$/m.exec(text)?.[1]);
        run.renderShare = (rendered * 1000) / drainMs;
      }
    } finally {
      done = true;
      await scraper;
      await stopDaemon(daemon);
    }
    if (scraped && run.scrapes === 0) throw new Error('no scrape answered during the drain');
    return run;
  } finally {
    cleanup();
  }
}

/** GETs /metrics every SCRAPE_EVERY_MS (the first as soon as the daemon answers) until `over()`. */
async function scrape(port: number, run: Run, over: () => boolean): Promise<void> {
  let next = performance.now();
  while (!over()) {
    const started = performance.now();
    try {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      const body = await res.text();
      if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
      run.scrapes++;
      run.bytes += body.length;
      run.scrapeMs.push(performance.now() - started);
      next += SCRAPE_EVERY_MS;
    } catch (err) {
      if ((err as { cause?: { code?: string } }).cause?.code !== 'ECONNREFUSED') throw err;
      next = performance.now() + 5; // not listening yet
    }
    while (!over() && performance.now() < next) await new Promise((r) => setTimeout(r, Math.min(20, next - performance.now())));
  }
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}
