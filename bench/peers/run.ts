/**
 * `npm run bench:peers`: spoolerd side by side with uWSGI's spooler and BullMQ
 * (issue 5). setup.sh installs the peers when missing; this runs the
 * workloads on each system in turn, in one run on one filesystem, and prints
 * one table.
 *
 *   npm run bench:peers                                  everything, full sizes (~25 min)
 *   npm run bench:peers -- --only drain,pickup --tasks 20000
 *   npm run bench:peers -- --base /dev/shm               spools on tmpfs
 *
 * Options:
 *   --only LIST             drain, pickup, sustained, backlog, io (default: all)
 *   --systems LIST          spoolerd, uwsgi, bullmq (default: all)
 *   --tasks N               drain size (100,000); also scales --io-tasks (N/5) and --backlog-tasks (N×10)
 *   --io-tasks N            I/O-bound tasks (20,000)
 *   --backlog-tasks N       backlog size (1,000,000)
 *   --runs N                repetitions; figures are medians (1)
 *   --seconds S             pickup producer duration (10)
 *   --sustained-seconds S   (30)
 *   --idle-seconds S        backlog idle window (60)
 *   --base DIR              where spools, Redis's directory and reports go (os.tmpdir())
 *   --json                  rows as JSON on stdout, the rest on stderr
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { BullmqSystem } from './bullmq.js';
import { killAllNow } from './procs.js';
import { SpoolerdSystem } from './spoolerd.js';
import type { System } from './system.js';
import { renderConfigs, renderTable } from './table.js';
import { UwsgiSpoolSystem, UwsgiSystem } from './uwsgi.js';
import { backlog, drain, ioBound, KNOBS, pickup, sustained, type Row, type WorkloadOptions } from './workloads.js';

const WORKLOADS = ['drain', 'pickup', 'sustained', 'backlog', 'io'] as const;
type Workload = (typeof WORKLOADS)[number];

interface Options extends Omit<WorkloadOptions, 'log' | 'workDir'> {
  only: Workload[];
  systems: string[];
  base: string;
  json: boolean;
}

function parse(argv: string[]): Options {
  const o: Options = {
    only: [...WORKLOADS],
    systems: ['spoolerd', 'uwsgi', 'bullmq'],
    base: tmpdir(),
    json: false,
    runs: 1,
    drainTasks: 100_000,
    pickupSeconds: 10,
    pickupIntervalMs: 10,
    sustainedSeconds: 30,
    backlogTasks: 1_000_000,
    backlogDueFraction: 0.01,
    idleSeconds: 60,
    ioTasks: 20_000,
  };
  let io: number | undefined;
  let bl: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    const positive = (): number => {
      const n = Number(value());
      if (!(n > 0) || !Number.isFinite(n)) throw new Error(`${arg} takes a positive number`);
      return n;
    };
    const list = <T extends string>(allowed: readonly T[]): T[] => {
      const items = value().split(',');
      for (const it of items) if (!allowed.includes(it as T)) throw new Error(`${arg}: unknown "${it}"; choose from ${allowed.join(', ')}`);
      return items as T[];
    };
    if (arg === '--only') o.only = list(WORKLOADS);
    else if (arg === '--systems') o.systems = list(['spoolerd', 'uwsgi', 'bullmq'] as const);
    else if (arg === '--tasks') o.drainTasks = Math.round(positive());
    else if (arg === '--io-tasks') io = Math.round(positive());
    else if (arg === '--backlog-tasks') bl = Math.round(positive());
    else if (arg === '--runs') o.runs = Math.round(positive());
    else if (arg === '--seconds') o.pickupSeconds = positive();
    else if (arg === '--sustained-seconds') o.sustainedSeconds = positive();
    else if (arg === '--idle-seconds') o.idleSeconds = positive();
    else if (arg === '--base') o.base = resolve(value());
    else if (arg === '--json') o.json = true;
    else throw new Error(`unknown option ${arg}; see the header of bench/peers/run.ts`);
  }
  o.ioTasks = io ?? Math.max(1000, Math.round(o.drainTasks / 5));
  o.backlogTasks = bl ?? o.drainTasks * 10;
  return o;
}

function sh(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unavailable';
  }
}

function machine(base: string): string[] {
  const df = sh('df', ['-T', base]).split('\n')[1]?.split(/\s+/) ?? [];
  const bullmq = JSON.parse(readFileSync(join(process.cwd(), 'node_modules/bullmq/package.json'), 'utf8')) as { version: string };
  return [
    `machine: ${cpus().length} CPUs (nproc ${sh('nproc', [])}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, load ${sh('cat', ['/proc/loadavg']).split(' ').slice(0, 3).join(' ')}`,
    `filesystem of ${base}: ${df[1] ?? '?'} (${df[0] ?? '?'})`,
    `node ${process.version}; uwsgi ${sh('uwsgi', ['--version'])} + python3 plugin; ${sh('redis-server', ['--version']).split(' ').slice(0, 3).join(' ')}; bullmq ${bullmq.version}`,
  ];
}

let options: Options;
try {
  options = parse(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`bench:peers: ${(err as Error).message}\n`);
  process.exit(2);
}

const log = (line: string): void => void process.stderr.write(line + '\n');
const print = options.json ? log : (line: string): void => void process.stdout.write(line + '\n');
const runDir = mkdtempSync(join(options.base, 'spoolerd-peers-'));

// Whatever happens, nothing we started outlives us, and the spools go.
let cleaned = false;
function cleanUp(): void {
  if (cleaned) return;
  cleaned = true;
  killAllNow();
  log(`removing ${runDir}`);
  rmSync(runDir, { recursive: true, force: true });
}
process.on('exit', cleanUp);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    log(`bench:peers: ${signal}, stopping everything`);
    cleanUp();
    process.exit(130);
  });
}

const spoolerd = new SpoolerdSystem(runDir);
const uwsgi = new UwsgiSystem(runDir);
const uwsgiSpool = new UwsgiSpoolSystem(runDir);
const bullmq = new BullmqSystem(runDir);
const want = (name: string) => options.systems.includes(name);
/** Systems fed by prefilled queues or an external producer; the uwsgi.spool row only where its producer matters. */
const base: System[] = [...(want('spoolerd') ? [spoolerd] : []), ...(want('uwsgi') ? [uwsgi] : []), ...(want('bullmq') ? [bullmq] : [])];
const withSpoolRow: System[] = [...(want('spoolerd') ? [spoolerd] : []), ...(want('uwsgi') ? [uwsgi, uwsgiSpool] : []), ...(want('bullmq') ? [bullmq] : [])];

const wo: WorkloadOptions = { ...options, workDir: runDir, log };
const rows: Row[] = [];
const started = performance.now();
for (const line of machine(options.base)) log(line);
log(`run directory: ${runDir}`);

let failed = false;
try {
  for (const w of options.only) {
    log(`\n== ${w}`);
    try {
    if (w === 'drain') rows.push(...(await drain(base, wo)));
    else if (w === 'pickup') rows.push(...(await pickup(withSpoolRow, wo)));
    else if (w === 'sustained') {
      // The consumer's knob: the best drain setting of this run, or the latency workloads' default.
      const drained = rows.find((r) => r.workload === 'drain');
      const knob = (s: System): number => {
        // The uwsgi.spool row has no drain of its own: it takes uWSGI's.
        const cfg = (drained?.figures.get(s.name) ?? drained?.figures.get(s.name.split(' ')[0]!))?.config.split(' ').pop();
        return cfg && /^\d+$/.test(cfg) ? Number(cfg) : (KNOBS.pickup![s.name.split(' ')[0]!]?.[0] ?? 1);
      };
      rows.push(...(await sustained(withSpoolRow, wo, knob)));
    } else if (w === 'backlog') rows.push(...(await backlog(base, wo)));
    else if (w === 'io') rows.push(...(await ioBound(base, wo)));
    } catch (err) {
      // One workload failing (a peer crashed) does not cost the others: stop what it left running, go on.
      failed = true;
      log(`bench:peers: ${w} failed: ${(err as Error).stack ?? err}`);
      await Promise.allSettled([spoolerd.stopConsumer(), uwsgi.stopConsumer(), uwsgiSpool.stopConsumer(), bullmq.stopConsumer()]);
    }
  }
} catch (err) {
  failed = true;
  log(`bench:peers: ${(err as Error).stack ?? err}`);
} finally {
  await Promise.allSettled([spoolerd.close(), uwsgi.close(), uwsgiSpool.close(), bullmq.close()]);
}

const names = withSpoolRow.map((s) => s.name).filter((n) => rows.some((r) => r.figures.has(n)));
print('');
for (const line of machine(options.base)) print(line);
print(`command: npm run bench:peers -- ${process.argv.slice(2).join(' ')}`.trimEnd());
print(`took ${((performance.now() - started) / 60_000).toFixed(1)} min\n`);
print(renderTable(rows, names));
print('\nconfigurations:');
print(renderConfigs(rows));
if (options.json) {
  process.stdout.write(
    JSON.stringify(
      rows.map((r) => ({ ...r, figures: Object.fromEntries(r.figures), ...(r.ratioAgainst && { ratioAgainst: Object.fromEntries(r.ratioAgainst) }) })),
      null,
      2,
    ) + '\n',
  );
}
cleanUp();
process.exit(failed ? 1 : 0);
