/**
 * spoolerd under test: the real `spoolerd` binary on a spool directory, with
 * the peers task module (spoolerd-tasks.ts) and `--concurrency` as its knob.
 * Tasks run in the daemon (`--processes 0`, as uWSGI's spooler runs its Python
 * in the spooler process) with two file-ops threads (`--io-threads 2`): the
 * best configuration on the 2-core machine (BENCHMARKS.md). Override with
 * BENCH_SPOOLERD_ARGS="--processes 2 --io-threads 1".
 * Producers follow SPOOL-FORMAT.md: encode, write into tmp/, rename into
 * incoming/ (spool/protocol.ts), one blocking call after another.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { SpoolLayout } from '../../spool/layout.js';
import { encodeTask } from '../../spool/task-file.js';
import { writeTaskSync } from '../../spool/protocol.js';
import { DIST, SPOOLERD } from '../lib.js';
import { monoNow } from './clock.js';
import { processTree, startProcess, stopProcess } from './procs.js';
import { dueTimes, freshDir, readLatencyFiles, readStatusFiles, type PrefillOptions, type Progress, type System, type TaskKind } from './system.js';

const TASKS = join(DIST, 'bench/peers/spoolerd-tasks.js');

/**
 * For profiling the daemon inside the same workloads:
 *   BENCH_SPOOLERD_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"  node options for the daemon
 *   BENCH_SPOOLERD_WRAP="strace -c -f -o /tmp/strace.txt"          a command the daemon runs under
 */
const NODE_ARGS = (process.env.BENCH_SPOOLERD_NODE_ARGS ?? '').split(' ').filter(Boolean);
const WRAP = (process.env.BENCH_SPOOLERD_WRAP ?? '').split(' ').filter(Boolean);
const SETTINGS = (process.env.BENCH_SPOOLERD_ARGS ?? '--processes 0 --io-threads 2').split(' ').filter(Boolean);

export class SpoolerdSystem implements System {
  readonly name = 'spoolerd';
  readonly knob = '--concurrency';
  private n = 0;
  private layout!: SpoolLayout;
  private reportDir = '';
  private daemon: ChildProcess | undefined;

  constructor(private readonly base: string) {}

  async reset(): Promise<void> {
    const dir = join(this.base, `spoolerd-${++this.n}`);
    this.layout = new SpoolLayout(join(dir, 'spool')).ensure();
    this.reportDir = freshDir(join(dir, 'report'));
  }

  async prefill(kind: TaskKind, count: number, options: PrefillOptions = {}): Promise<number> {
    const { due, dueCount } = dueTimes(count, options.dueFraction ?? 1);
    for (let i = 0; i < count; i++) {
      const d = due(i);
      const t = encodeTask({ name: kind, priority: 50, ...(d === undefined ? {} : { due: Math.floor(d) }), body: { type: 'fcall', args: [] } });
      writeTaskSync(this.layout, t.fileName, t.bytes);
      if (i % 10_000 === 9_999) await new Promise((r) => setImmediate(r)); // let signals in
    }
    return dueCount;
  }

  addStamp(): void {
    // The clock is read before encoding, so encode + write + rename count against spoolerd.
    const since = monoNow();
    const t = encodeTask({ name: 'stamp', priority: 50, body: { type: 'fcall', args: [since] } });
    writeTaskSync(this.layout, t.fileName, t.bytes);
  }

  addStamps(n: number): void {
    for (let i = 0; i < n; i++) this.addStamp();
  }

  async startConsumer(concurrency: number): Promise<void> {
    const command = [
      process.execPath,
      ...NODE_ARGS,
      SPOOLERD,
      '--dir', this.layout.root, '--create', '--import', TASKS, '--concurrency', String(concurrency), ...SETTINGS, '--log-level', 'warn', '--log-format', 'json',
    ];
    this.daemon = startProcess(WRAP[0] ?? command[0]!, [...WRAP.slice(1), ...(WRAP.length > 0 ? command : command.slice(1))], {
      env: { ...process.env, BENCH_REPORT_DIR: this.reportDir },
    });
  }

  async stopConsumer(): Promise<void> {
    if (this.daemon) await stopProcess(this.daemon, 'SIGTERM', 30_000);
    this.daemon = undefined;
  }

  pids(): number[] {
    return this.daemon?.pid ? processTree(this.daemon.pid) : [];
  }

  progress(): Progress {
    return readStatusFiles(this.reportDir);
  }

  latencies(): number[] {
    return readLatencyFiles(this.reportDir);
  }

  async close(): Promise<void> {
    await this.stopConsumer();
  }
}
