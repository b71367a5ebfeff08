/**
 * Benchmark dispatcher.
 *
 *   npm run bench                         every benchmark
 *   npm run bench -- ls-100k              one (or several, by name)
 *   npm run bench -- enqueue-bulk --runs 5 --tasks 50000
 *   npm run bench -- ls-100k --cold       also cold page-cache runs (root)
 *   npm run bench -- cli                  spool rm/retry/ls --limit on 100,000 tasks
 *   BENCH_BASELINE_DIST=<old dist/> npm run bench -- idle   idle CPU of this build beside an older one
 *   npm run bench -- enqueue-bulk --topdir  spools placed in fresh ext4 block groups (see enqueue-bulk.ts)
 *   npm run bench -- --json               results as JSON on stdout (progress on stderr)
 *
 *   npm run bench -- drain --concurrency 8 --io-threads 1   the daemon's settings (drain)
 *   npm run bench -- wait-many --tasks 10000   one process waiting on many results (issue 16)
 *   npm run bench -- drain --processes 2   the drain with runner processes (default: --processes 0)
 *   npm run bench -- metrics --runs 5     drain scraped every second by /metrics vs not (rounds of two runs)
 *   npm run bench -- multihost --tasks 2000   three hosts over sshfs (root; bench/host-rig.ts)
 *   BENCH_BASELINE_DIST=<old dist/> npm run bench -- remote-pickup   pickup without --poll over sshfs, vs an older build's --poll
 *   npm run bench -- multihost-drain --runs 3  1 vs 3 hosts draining over sshfs, with round trips per task
 *   npm run bench -- key-backlog --runs 3   100,000 tasks of one key limited to 1: CPU per completion (issue 17)
 *   TMPDIR=/tmp npm run bench -- backlog-cost     1k vs 300k queued, 1M due queued, idle after its drain
 *   BENCH_DAEMON_DIST=<old dist/> npm run bench -- backlog-cost   the same against an older build's daemon
 *
 * Options: --runs N, --tasks N (each benchmark has its own defaults), --cold,
 * --topdir, --concurrency N, --io-threads N, --processes N, --json, --list. Results: BENCHMARKS.md.
 */
import { cleanUpDeferred, collectedResults } from './report.js';

interface CommonOptions {
  runs?: number;
  tasks?: number;
  cold?: boolean;
  topdir?: boolean;
  concurrency?: number;
  ioThreads?: number;
  processes?: number;
}

/** Each benchmark is a module under bench/, loaded only when it runs. */
const BENCHMARKS: Record<string, { what: string; run: (o: CommonOptions) => Promise<void> }> = {
  'enqueue-bulk': {
    what: 'Spooler.enqueueMany() tasks/s, and the filesystem alone (target ≥ 20,000/s)',
    run: async (o) => (await import('./enqueue-bulk.js')).enqueueBulk(o),
  },
  'enqueue-single': {
    what: 'awaited single enqueues, one at a time and 64 in flight (reported)',
    run: async (o) => (await import('./enqueue-single.js')).enqueueSingle(o),
  },
  'ls-100k': {
    what: '`spool ls` on 100,000 pending tasks: time and peak RSS (targets ≤ 2 s, ≤ 200 MB)',
    run: async (o) => (await import('./ls-100k.js')).ls100k(o),
  },
  cli: {
    what: '`spool` bulk commands on 100,000 tasks: ls --limit 5, rm of 10 and of 20,000 ids (stdin), purge of dead letters',
    run: async (o) => (await import('./cli.js')).cliBench(o),
  },
  drain: {
    what: 'one spoolerd draining a prefilled spool of no-op tasks (target ≥ 20,000/s)',
    run: async (o) => (await import('./drain.js')).drain(o),
  },
  'wait-many': {
    what: 'one process waiting on 10,000 results at once with spooler.wait() (targets: peak RSS < 200 MB, one inotify watch)',
    run: async (o) => (await import('./wait-many.js')).waitMany(o),
  },
  metrics: {
    what: 'the drain with --http /metrics scraped every second vs without, alternating (target: ≥ 0.98× the throughput)',
    run: async (o) => (await import('./metrics.js')).metricsCost(o),
  },
  'drain-floor': {
    what: "the drain's system calls alone, no daemon: what the filesystem allows this minute (1 and 2 threads)",
    run: async (o) => (await import('./drain-floor.js')).drainFloor(o),
  },
  backlog: {
    what: 'one spoolerd started on a million pending tasks: time to dispatch, RSS, idle CPU (targets ≤ 10 s, ≤ 500 MB)',
    run: async (o) => (await import('./backlog.js')).backlog(o.tasks === undefined ? {} : { tasks: o.tasks }),
  },
  'key-backlog': {
    what: 'a backlog of one concurrency key limited to 1: CPU per completion with 30k vs 100k parked (must not grow with the backlog), beside tasks without a limit',
    run: async (o) => (await import('./key-backlog.js')).keyBacklog(o.runs === undefined ? {} : { runs: o.runs }),
  },
  'backlog-cost': {
    what: 'cost that does not grow with the backlog: CPU/task with 1k vs 300k queued (≤ 1.1×), RSS with 1M due queued (≤ 200 MB), spawn → first run (≤ 2 s), idle CPU after the 1M drain (< 0.5%)',
    run: async (o) => (await import('./backlog-cost.js')).backlogCost(o.tasks === undefined ? {} : { tasks: o.tasks }),
  },
  processes: {
    what: 'worker processes: no-op drain --processes 0 vs 2 (target ≥ 0.5×), 10 ms CPU tasks 1 vs 2 (target ~2×), IPC serialization',
    run: async (o) => (await import('./processes.js')).processes(o),
  },
  idle: {
    what: 'one spoolerd on an empty spool: CPU while idle (BENCH_BASELINE_DIST=<old dist/>: an older build beside it, over the same seconds)',
    run: async () => (await import('./idle.js')).idle(),
  },
  pickup: {
    what: 'pickup latency of an idle spoolerd, and postponed tasks (targets p50 ≤ 5 ms, p99 ≤ 50 ms)',
    run: async () => (await import('./pickup.js')).pickup(),
  },
  'pickup-stages': {
    what: 'where the pickup time goes: write+rename, inotify delivery, chokidar, and producer -> task function (external drop and runtime enqueue; --processes 0 and 1)',
    run: async () => (await import('./pickup-stages.js')).pickupStages(),
  },
  dashboard: {
    what: '`spool dashboard` in chromium on 100,000 tasks: first paint, counts, a page of dead letters (target first paint ≤ 2 s); `spool top --once`',
    run: async (o) => (await import('./dashboard.js')).dashboard(o),
  },
  multihost: {
    what: 'hosts sharing a spool over sshfs (root, network namespaces): --poll pickup of a drop from another host; drain on 1 vs 3 hosts',
    run: async (o) => (await import('./multihost.js')).multihost(o),
  },
  'remote-pickup': {
    what: 'pickup of a drop through another host\'s sshfs mount without --poll (targets p50 ≤ 100 ms, p99 ≤ 500 ms), idle CPU (< 1%), cost of a poll and a listing of 100k remote files (root)',
    run: async (o) => (await import('./remote-pickup.js')).remotePickup(o.tasks === undefined ? {} : { tasks: o.tasks }),
  },
  'multihost-drain': {
    what: 'drain over sshfs on 1 host vs 3 hosts (root): tasks/s, ratio (target ≥ 2.5×), SFTP round trips and lost claim races per task',
    run: async (o) => (await import('./multihost.js')).multihostDrain(o),
  },
};

function parse(argv: string[]): { names: string[]; options: CommonOptions; json: boolean; list: boolean } {
  const names: string[] = [];
  const options: CommonOptions = {};
  let json = false;
  let list = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const number = (): number => {
      const n = Number(argv[++i]);
      if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${arg} takes a positive whole number`);
      return n;
    };
    if (arg === '--runs') options.runs = number();
    else if (arg === '--tasks') options.tasks = number();
    else if (arg === '--concurrency') options.concurrency = number();
    else if (arg === '--io-threads') options.ioThreads = Number(argv[++i]);
    else if (arg === '--processes') options.processes = Number(argv[++i]);
    else if (arg === '--cold') options.cold = true;
    else if (arg === '--topdir') options.topdir = true;
    else if (arg === '--json') json = true;
    else if (arg === '--list') list = true;
    else if (arg.startsWith('-')) throw new Error(`unknown option ${arg}`);
    else if (!(arg in BENCHMARKS)) throw new Error(`no benchmark named ${arg}; there are: ${Object.keys(BENCHMARKS).join(', ')}`);
    else names.push(arg);
  }
  return { names: names.length > 0 ? names : Object.keys(BENCHMARKS), options, json, list };
}

let parsed: ReturnType<typeof parse>;
try {
  parsed = parse(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exit(2);
}

if (parsed.list) {
  for (const [name, b] of Object.entries(BENCHMARKS)) console.log(`${name.padEnd(16)}${b.what}`);
} else {
  // With --json, the tables go to stderr and stdout carries only the JSON.
  if (parsed.json) console.log = (...args: unknown[]) => process.stderr.write(args.join(' ') + '\n');
  process.once('SIGINT', () => {
    cleanUpDeferred();
    process.exit(130);
  });
  try {
    for (const name of parsed.names) {
      process.stderr.write(`\n== ${name}: ${BENCHMARKS[name]!.what}\n`);
      await BENCHMARKS[name]!.run(parsed.options);
    }
  } finally {
    // The producer and listing benchmarks leave their temp directories until here.
    cleanUpDeferred();
  }
  if (parsed.json) process.stdout.write(JSON.stringify(collectedResults(), null, 2) + '\n');
}
