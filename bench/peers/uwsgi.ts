/**
 * uWSGI's spooler under test: Debian's uwsgi-core 2.0 with the python3 plugin,
 * started as a master with one WSGI worker (for the uwsgi.spool() row) and
 * `--spooler-processes` spoolers (the knob), `--spooler-frequency 1` (the
 * shortest it takes: an integer number of seconds; below 1 it spins, uwsgi
 * #2450), `--spooler-quiet` (no log line per task). The task module is
 * uwsgi_tasks.py.
 *
 * Two rows: `uWSGI` is fed by an external producer writing spool files in
 * uwsgi's packet format (uwsgi_packet.ts), which the spooler finds on its next
 * directory scan; `uWSGI (uwsgi.spool)` is fed by uwsgi.spool() called inside
 * the worker, which writes the file and wakes the spooler with SIGUSR1.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST, sleep } from '../lib.js';
import { monoNow } from './clock.js';
import { freePort, processTree, startProcess, stopProcess } from './procs.js';
import { dueTimes, freshDir, readLatencyFiles, type PrefillOptions, type Progress, type System, type TaskKind } from './system.js';
import { encodePacket, writeSpoolFile } from './uwsgi_packet.js';

/** uwsgi_tasks.py is not compiled: it lives beside this file's source. */
const PYTHON_DIR = join(DIST, '..', 'bench', 'peers');
const SLOT_BYTES = 24;
const SLOTS = 256;

export class UwsgiSystem implements System {
  readonly knob: string = '--spooler-processes';
  private n = 0;
  protected spoolDir = '';
  protected reportDir = '';
  protected master: ChildProcess | undefined;
  protected port = 0;

  constructor(
    private readonly base: string,
    readonly name: string = 'uWSGI',
  ) {}

  async reset(): Promise<void> {
    const dir = join(this.base, `${this.name.replace(/\W+/g, '_')}-${++this.n}`);
    this.spoolDir = freshDir(join(dir, 'spool'));
    this.reportDir = freshDir(join(dir, 'report'));
    writeFileSync(join(this.reportDir, 'counters'), Buffer.alloc(SLOT_BYTES * SLOTS));
  }

  async prefill(kind: TaskKind, count: number, options: PrefillOptions = {}): Promise<number> {
    const { due, dueCount } = dueTimes(count, options.dueFraction ?? 1);
    const packet = encodePacket({ task: kind });
    for (let i = 0; i < count; i++) {
      const d = due(i);
      writeSpoolFile(this.spoolDir, packet, d === undefined ? undefined : Math.ceil(d / 1000));
      if (i % 10_000 === 9_999) await new Promise((r) => setImmediate(r));
    }
    return dueCount;
  }

  addStamp(): void {
    writeSpoolFile(this.spoolDir, encodePacket({ task: 'stamp', ts: monoNow().toFixed(3) }));
  }

  addStamps(n: number): void {
    for (let i = 0; i < n; i++) this.addStamp();
  }

  async startConsumer(processes: number): Promise<void> {
    this.port = await freePort();
    this.master = startProcess(
      'uwsgi',
      [
        '--plugin', 'python3',
        '--master',
        '--die-on-term', // SIGTERM stops it (uwsgi 2.0 otherwise reloads)
        '--pythonpath', PYTHON_DIR,
        '--module', 'uwsgi_tasks:application',
        '--http-socket', `127.0.0.1:${this.port}`,
        '--processes', '1',
        '--spooler', this.spoolDir,
        '--spooler-processes', String(processes),
        '--spooler-frequency', '1',
        '--spooler-quiet',
        '--disable-logging', // no line per request; uwsgi's own messages go to uwsgi.log
        '--logto', join(this.reportDir, 'uwsgi.log'),
      ],
      { env: { ...process.env, BENCH_REPORT_DIR: this.reportDir }, stdio: ['ignore', 'ignore', 'ignore'] },
    );
    // The spoolers start scanning at once; the worker answers once the app is loaded.
    await this.waitForWorker();
  }

  private async waitForWorker(): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      try {
        const r = await fetch(`http://127.0.0.1:${this.port}/spool?count=0`);
        if (r.ok) return;
      } catch {
        // not listening yet
      }
      await sleep(20);
    }
    throw new Error('uwsgi did not start within 20 s');
  }

  async stopConsumer(): Promise<void> {
    if (this.master) await stopProcess(this.master, 'SIGTERM', 10_000);
    this.master = undefined;
  }

  pids(): number[] {
    return this.master?.pid ? processTree(this.master.pid) : [];
  }

  progress(): Progress {
    const p: Progress = { count: 0, first: Infinity, last: 0 };
    const buf = readFileSync(join(this.reportDir, 'counters'));
    for (let off = 0; off + SLOT_BYTES <= buf.length; off += SLOT_BYTES) {
      const count = Number(buf.readBigInt64LE(off));
      if (count === 0) continue;
      p.count += count;
      p.first = Math.min(p.first, buf.readDoubleLE(off + 8));
      p.last = Math.max(p.last, buf.readDoubleLE(off + 16));
    }
    return p;
  }

  latencies(): number[] {
    return readLatencyFiles(this.reportDir);
  }

  async close(): Promise<void> {
    await this.stopConsumer();
  }
}

/** The second row: tasks enqueued by uwsgi.spool() inside uwsgi's worker. */
export class UwsgiSpoolSystem extends UwsgiSystem {
  constructor(base: string) {
    super(base, 'uWSGI (uwsgi.spool)');
  }

  /** `count` stamp tasks one every `intervalMs`, or as many as fit in `seconds` with no pause. */
  async produceInside(o: { count?: number; intervalMs?: number; seconds?: number }): Promise<number> {
    const q = new URLSearchParams({ count: String(o.count ?? 0), interval: String(o.intervalMs ?? 0), seconds: String(o.seconds ?? 0), task: 'stamp' });
    let r: Response;
    try {
      r = await fetch(`http://127.0.0.1:${this.port}/spool?${q}`, { signal: AbortSignal.timeout(600_000) });
    } catch (err) {
      const log = readFileSync(join(this.reportDir, 'uwsgi.log'), 'utf8').split('\n').slice(-15).join('\n');
      throw new Error(`uwsgi worker: ${(err as Error).message} (${String((err as Error).cause)}); end of uwsgi.log:\n${log}`);
    }
    if (!r.ok) throw new Error(`uwsgi worker answered ${r.status}`);
    return Number((await r.text()).trim());
  }
}
