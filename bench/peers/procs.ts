/**
 * The processes the peers harness starts, and what it measures of them.
 *
 * Every server and consumer is started through `startProcess`, in a process
 * group of its own, and registered; `stopAll` (run on normal exit, on errors
 * and on SIGINT/SIGTERM by run.ts) signals each group, so that uwsgi's forked
 * spoolers and workers go with their master, and nothing outlives the run.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { sleep } from '../lib.js';

const running = new Set<ChildProcess>();

export function startProcess(command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'], ...options, detached: true });
  running.add(child);
  child.once('exit', () => running.delete(child));
  child.once('error', (err) => process.stderr.write(`bench:peers: ${command}: ${err.message}\n`));
  return child;
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // already gone
  }
}

/** SIGTERM (or `signal`), up to `graceMs` to exit, then SIGKILL to the whole group. */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
  if (child.pid === undefined) return;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    signalGroup(child, signal);
    await Promise.race([exited, sleep(graceMs)]);
  }
  // Forked children (uwsgi's spoolers) may outlive a master that exited.
  signalGroup(child, 'SIGKILL');
  running.delete(child);
}

/** Synchronous, for process exit and signal handlers. */
export function killAllNow(): void {
  for (const child of running) signalGroup(child, 'SIGKILL');
  running.clear();
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** A process and its descendants (uwsgi: master, spoolers, worker), from /proc. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // exited while listing
    }
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** Sum over pids of user+system CPU ms; exited processes count 0. */
export function cpuMs(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime, USER_HZ 100
    } catch {
      // exited
    }
  }
  return total;
}

/** Sum over pids of resident memory, MB. */
export function rssMb(pids: number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      kb += Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
    } catch {
      // exited
    }
  }
  return kb / 1024;
}

/**
 * Samples the summed RSS of a set of processes every `everyMs` and keeps the
 * peak: the sum of each process's own VmHWM would overstate it (their peaks
 * need not coincide), and uwsgi's forked processes share pages the sum counts
 * twice, which we accept and say.
 */
export function sampleRss(pids: () => number[], everyMs = 100): { peakMb: () => number; stop: () => void } {
  let peak = 0;
  const timer = setInterval(() => {
    peak = Math.max(peak, rssMb(pids()));
  }, everyMs);
  return {
    peakMb: () => Math.max(peak, rssMb(pids())),
    stop: () => clearInterval(timer),
  };
}
