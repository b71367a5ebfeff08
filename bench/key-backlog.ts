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

const FROM = 10_000;
const TO = 20_000;
const LIMITED_TASKS = join(DIST, 'bench/fixtures/limited-tasks.js');

interface Window {
  perCompletionUs: number;
  perSecond: number;
}

async function measure(task: 'one_key' | 'unlimited', backlog: number): Promise<Window> {
  const { dir, cleanup } = tempDir('spoolerd-bench-key-backlog-');
  try {
    const spool = join(dir, 'spool');
    const spooler = Spooler.open(spool);
    for (let i = 0; i < backlog; i += 10_000) await spooler.enqueueMany(Array.from({ length: Math.min(10_000, backlog - i) }, (_, j) => ({ name: task, args: [i + j] })));
    const report = join(dir, 'report');
    const daemon = spawn(process.execPath, [SPOOLERD, '--dir', spool, '--import', LIMITED_TASKS, '--processes', '0', '--log-level', 'warn', '--log-format', 'json'], {
      env: { ...process.env, BENCH_REPORT: report, BENCH_MARKS: `${FROM},${TO}` },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    try {
      const a = (await waitForLine(report, `mark ${FROM} `, 600_000)).split(' ').map(Number);
      const b = (await waitForLine(report, `mark ${TO} `, 600_000)).split(' ').map(Number);
      const n = TO - FROM;
      return { perCompletionUs: (b[3]! - a[3]!) / n, perSecond: n / ((b[2]! - a[2]!) / 1000) };
    } finally {
      await stopDaemon(daemon);
    }
  } finally {
    cleanup();
  }
}

export async function keyBacklog(options: { runs?: number } = {}): Promise<void> {
  const runs = options.runs ?? 3;
  const cases: Array<[label: string, task: 'one_key' | 'unlimited', backlog: number]> = [
    ['one key limited to 1, backlog 30,000', 'one_key', 30_000],
    ['one key limited to 1, backlog 100,000', 'one_key', 100_000],
    ['no limit, backlog 100,000', 'unlimited', 100_000],
  ];
  const results = new Map<string, Window[]>();
  // Alternated run by run, so that a change in the machine's load touches every case alike.
  for (let run = 1; run <= runs; run++) {
    for (const [label, task, backlog] of cases) {
      const w = await measure(task, backlog);
      (results.get(label) ?? results.set(label, []).get(label)!).push(w);
      console.log(`run ${run}: ${label}: completions ${FROM}→${TO}: ${w.perCompletionUs.toFixed(1)} µs CPU each, ${w.perSecond.toFixed(0)}/s`);
    }
  }
  printTable(
    `key-backlog: CPU per completion of the daemon (--processes 0) over completions ${FROM}→${TO}, median of ${runs} runs`,
    cases.map(([label]) => {
      const ws = results.get(label)!;
      return [label, `${median(ws.map((w) => w.perCompletionUs)).toFixed(1)} µs, ${median(ws.map((w) => w.perSecond)).toFixed(0)}/s`, '', ''];
    }),
  );
}
