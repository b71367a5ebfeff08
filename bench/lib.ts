/** Shared pieces of the benchmarks: temp spools, spawning the real daemon, process metrics, statistics. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DIST = fileURLToPath(new URL('..', import.meta.url));
export const SPOOLERD = join(DIST, 'cli/spoolerd.js');
export const SPOOL = join(DIST, 'cli/spool.js');
export const NOOP_TASKS = join(DIST, 'bench/fixtures/noop-tasks.js');

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Wall clock in fractional ms, comparable between processes on one host. */
export const preciseNow = (): number => performance.timeOrigin + performance.now();

/**
 * Spawns spoolerd on `spool` with the no-op task module. Tasks run in the daemon
 * (--processes 0) unless extraArgs say otherwise: the issue-3 benchmarks measure
 * the daemon's own path, and BENCH_EXPECT counting needs every run in one process.
 */
export function startDaemon(spool: string, env: Record<string, string>, extraArgs: string[] = []): ChildProcess {
  const processes = extraArgs.some((a) => a === '--processes' || a === '-p') ? [] : ['--processes', '0'];
  return spawn(process.execPath, [SPOOLERD, '--dir', spool, '--create', '--import', NOOP_TASKS, '--log-level', 'warn', '--log-format', 'json', ...processes, ...extraArgs], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

export async function stopDaemon(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(10_000)]);
  if (child.exitCode === null) child.kill('SIGKILL');
}

/** Waits until `file` holds a line starting with `prefix`; returns that line. */
export async function waitForLine(file: string, prefix: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (existsSync(file)) {
      const line = readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith(prefix));
      if (line) return line;
    }
    await sleep(5);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for "${prefix}" in ${file}`);
}

/**
 * Runs counted over every process that ran tasks (noop-tasks.ts with BENCH_COUNTS=dir):
 * how many, and the first and last run's wall-clock time (ms).
 */
export function readCounts(dir: string): { runs: number; first: number; last: number } {
  let runs = 0;
  let first = Infinity;
  let last = 0;
  if (!existsSync(dir)) return { runs, first, last };
  for (const f of readdirSync(dir)) {
    const [n, a, b] = readFileSync(join(dir, f), 'utf8').split(' ').map(Number);
    if (!n || !a || !b) continue; // being rewritten
    runs += n;
    first = Math.min(first, a);
    last = Math.max(last, b);
  }
  return { runs, first, last };
}

/** Resident and peak resident memory of a process, in MB (Linux /proc). */
export function memoryOf(pid: number): { rssMb: number; peakMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
}

/** CPU time (user + system) a process has used, in ms (Linux /proc). */
export function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

/** Prints rows of [label, value, target, verdict] as an aligned table. */
export function printTable(title: string, rows: Array<[string, string, string, string]>): void {
  const header: [string, string, string, string] = ['measure', 'value', 'target', 'verdict'];
  const all = [header, ...rows];
  const w = [0, 1, 2, 3].map((i) => Math.max(...all.map((r) => r[i]!.length)));
  console.log(`\n${title}`);
  for (const r of all) console.log(r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd());
}

export const verdict = (ok: boolean): string => (ok ? 'met' : 'MISSED');
