/**
 * Key backlog (issue 17): a backlog of tasks that all share one concurrency
 * key limited to 1 runs one at a time, with the rest parked (spooler/limits/
 * gate.ts). The daemon must not look at the parked ones again on each
 * completion: the CPU per completion, measured over the same run of
 * completions (from FROM to TO) after every name has been parked once, must
 * not grow with the backlog. For scale, the same window with tasks that have
 * no limit.
 *
 *   npm run build && flock /work/bench.lock node dist/bench/run.js key-backlog [--runs 3]
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Spooler } from '../runtime/index.js';
import { DIST, median, printTable, SPOOLERD, stopDaemon, tempDir, waitForLine } from './lib.js';

/** Two windows of completions in one run: with ~60,000 and with ~10,000 names still parked behind the running one. */
const WINDOWS: Array<[from: number, to: number]> = [
  [30_000, 40_000],
  [80_000, 90_000],
];
const BACKLOG = 100_000;
const LIMITED_TASKS = join(DIST, 'bench/fixtures/limited-tasks.js');

interface Window {
  perCompletionUs: number;
  perSecond: number;
}

async function measure(task: 'one_key' | 'unlimited'): Promise<Window[]> {
  const { dir, cleanup } = tempDir('spoolerd-bench-key-backlog-');
  try {
    const spool = join(dir, 'spool');
    const spooler = Spooler.open(spool);
    for (let i = 0; i < BACKLOG; i += 10_000) await spooler.enqueueMany(Array.from({ length: Math.min(10_000, BACKLOG - i) }, (_, j) => ({ name: task, args: [i + j] })));
    const report = join(dir, 'report');
    const daemon = spawn(process.execPath, [SPOOLERD, '--dir', spool, '--import', LIMITED_TASKS, '--processes', '0', '--log-level', 'warn', '--log-format', 'json'], {
      env: { ...process.env, BENCH_REPORT: report, BENCH_MARKS: WINDOWS.flat().join(',') },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    try {
      const out: Window[] = [];
      for (const [from, to] of WINDOWS) {
        const a = (await waitForLine(report, `mark ${from} `, 600_000)).split(' ').map(Number);
        const b = (await waitForLine(report, `mark ${to} `, 600_000)).split(' ').map(Number);
        out.push({ perCompletionUs: (b[3]! - a[3]!) / (to - from), perSecond: (to - from) / ((b[2]! - a[2]!) / 1000) });
      }
      return out;
    } finally {
      await stopDaemon(daemon);
    }
  } finally {
    cleanup();
  }
}

export async function keyBacklog(options: { runs?: number } = {}): Promise<void> {
  const runs = options.runs ?? 3;
  const cases: Array<[label: string, task: 'one_key' | 'unlimited']> = [
    ['one key limited to 1', 'one_key'],
    ['no limit', 'unlimited'],
  ];
  const results = new Map<string, Window[][]>();
  // Alternated run by run, so that a change in the machine's load touches both cases alike.
  for (let run = 1; run <= runs; run++) {
    for (const [label, task] of cases) {
      const ws = await measure(task);
      (results.get(label) ?? results.set(label, []).get(label)!).push(ws);
      console.log(`run ${run}: ${label}: ${ws.map((w, i) => `completions ${WINDOWS[i]![0]}→${WINDOWS[i]![1]}: ${w.perCompletionUs.toFixed(1)} µs CPU each, ${w.perSecond.toFixed(0)}/s`).join('; ')}`);
    }
  }
  const rows: Array<[string, string, string, string]> = [];
  for (const [label] of cases) {
    WINDOWS.forEach(([from, to], i) => {
      const ws = results.get(label)!.map((r) => r[i]!);
      const parked = BACKLOG - to;
      rows.push([`${label}, completions ${from}→${to} (${label === 'no limit' ? 'queued' : 'parked'} after: ${parked})`, `${median(ws.map((w) => w.perCompletionUs)).toFixed(1)} µs, ${median(ws.map((w) => w.perSecond)).toFixed(0)}/s`, '', '']);
    });
  }
  printTable(`key-backlog: ${BACKLOG} async no-op tasks, daemon CPU per completion (--processes 0), median of ${runs} runs`, rows);
}
