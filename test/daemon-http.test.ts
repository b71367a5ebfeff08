/**
 * `spoolerd --http` (README, "Watching it run"): /metrics in Prometheus' text
 * format, /healthz, /readyz, and the per-daemon status file
 * state/daemon-<owner>.json (SPOOL-FORMAT.md, "Daemon status files"), on real
 * daemons and real spools.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { describeSpool, ls, readRecords, startDaemon, startServing, waitFor, type DaemonProcess } from './helpers/daemon.js';
import { mountSkipReason, mountTmpfs, type Mounted } from './helpers/mounts.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let dir: string;
let root: string;
let records: string;
useDaemonSpool('spoolerd-http-', { bind: (s) => ({ dir, root, records } = s) });

/** Starts a daemon with --http on a free port and returns it with the base URL it logged. */
async function serveHttp(spool: string, args: string[] = [], imports = ['basic', 'retry', 'block']): Promise<{ daemon: DaemonProcess; url: string }> {
  const daemon = await startServing({ dir: spool, imports, records, args: ['--http', '127.0.0.1:0', ...args] });
  const line = await daemon.waitForLog((l) => l.msg === 'serving metrics and health checks over http');
  return { daemon, url: line.url as string };
}

/** The samples of a Prometheus text exposition: one entry per line, labels as a map. */
function parseMetrics(text: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  const out: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

async function scrape(url: string): Promise<(name: string, labels?: Record<string, string>) => number | undefined> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
  const samples = parseMetrics(await res.text());
  return (name, labels = {}) => {
    const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    if (hits.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${hits.length} samples`);
    return hits[0]?.value;
  };
}

/** Polls an async check until it is true (waitFor() takes synchronous checks only). */
async function until(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 50));
  }
}

function statusFile(spool: string, owner: string): Record<string, any> | undefined {
  const path = join(spool, 'state', `daemon-${owner}.json`);
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, any>) : undefined;
}

const started = (task: string, key: string) => readRecords(records).some((r) => r.task === task && r.phase === 'started' && (r.args as unknown[])[0] === key);
const finished = (task: string, key: string) => readRecords(records).some((r) => r.task === task && r.phase === 'finished' && (r.args as unknown[])[0] === key);

describe('/metrics', () => {
  it('counts tasks by name as they run: processed, skipped, failed, retried, dead, run-time and claim-to-start histograms, counts by state', async () => {
    const spooler = Spooler.open(root);
    for (const k of ['e1', 'e2', 'e3']) await spooler.enqueue({ name: 'echo', args: [k] });
    await spooler.enqueue({ name: 'skip_me', args: ['s1', 'not today'] });
    await spooler.enqueue({ name: 'always_fails', args: ['f1'], options: { retries: 1, backoff: { kind: 'constant', delay: 100 } } });
    const marker = join(dir, 'go');
    await spooler.enqueue({ name: 'wait_for_file', args: ['w1', marker] });
    // Scheduled for later: counted by name from the daemon's queue (runs of one name, then another, then the first again).
    for (const name of ['echo', 'echo', 'skip_me', 'echo']) await spooler.enqueue({ name, args: ['later'], options: { postpone: '1h' } });
    const { daemon, url } = await serveHttp(root, ['--scan-interval', '1s']);

    // Everything has ended but wait_for_file, which runs until the marker exists.
    await waitFor(() => ls(join(root, 'dead')).length === 1 && started('wait_for_file', 'w1') && readRecords(records).filter((r) => r.task === 'echo').length === 3, {
      what: 'the dead letter, three echoes and wait_for_file running',
      explain: () => `${describeSpool(root)}\n${daemon.describe()}`,
    });
    const spoolLabel = { spool: root };
    let m = await scrape(url);
    const byTask = (task: string) => ({ ...spoolLabel, task });
    expect(m('spoolerd_tasks_processed_total', byTask('echo'))).toBe(3);
    expect(m('spoolerd_tasks_skipped_total', byTask('skip_me'))).toBe(1);
    expect(m('spoolerd_tasks_failed_total', byTask('always_fails'))).toBe(2);
    expect(m('spoolerd_tasks_retried_total', byTask('always_fails'))).toBe(1);
    expect(m('spoolerd_tasks_dead_total', byTask('always_fails'))).toBe(1);
    expect(m('spoolerd_tasks_failed_total', byTask('echo'))).toBe(0);
    expect(m('spoolerd_task_run_seconds_count', byTask('echo'))).toBe(3);
    expect(m('spoolerd_task_run_seconds_count', byTask('always_fails'))).toBe(2);
    expect(m('spoolerd_task_run_seconds_count', byTask('wait_for_file'))).toBeUndefined(); // still running
    // Every run started: three echoes, skip_me, two attempts of always_fails, wait_for_file.
    expect(m('spoolerd_task_claim_to_start_seconds_count', spoolLabel)).toBe(7);
    expect(m('spoolerd_tasks_running', spoolLabel)).toBe(1);
    expect(m('spoolerd_tasks', { ...spoolLabel, state: 'dead', task: 'always_fails' })).toBe(1);
    expect(m('spoolerd_tasks', { ...spoolLabel, state: 'active', task: 'wait_for_file' })).toBe(1);
    // In incoming/ or pending/ (the daemon moves tasks not due soon to pending/ when it sees them arrive, not at start-up).
    const waiting = (task?: string) =>
      (['incoming', 'pending'] as const).reduce((n, state) => n + (task === undefined ? m('spoolerd_queue_tasks', { ...spoolLabel, state })! : (m('spoolerd_tasks', { ...spoolLabel, state, task }) ?? 0)), 0);
    expect(waiting('echo')).toBe(3);
    expect(waiting('skip_me')).toBe(1);
    expect(waiting()).toBe(4);
    expect(m('spoolerd_queue_tasks', { ...spoolLabel, state: 'active' })).toBe(1);
    expect(m('spoolerd_serving', spoolLabel)).toBe(1);
    expect(m('spoolerd_oldest_due_task_age_seconds', spoolLabel)).toBe(0);
    expect(m('spoolerd_worker_restarts_total', { reason: 'crashed' })).toBe(0);
    expect(m('process_resident_memory_bytes')).toBeGreaterThan(0);

    // The counters move: wait_for_file ends after at least the time it was held.
    const heldFrom = Date.now();
    await new Promise((done) => setTimeout(done, 300));
    writeFileSync(marker, '');
    await waitFor(() => finished('wait_for_file', 'w1'), { what: 'wait_for_file to finish' });
    await until(async () => (await scrape(url))('spoolerd_tasks_processed_total', byTask('wait_for_file')) === 1, 'wait_for_file counted');
    m = await scrape(url);
    const heldMs = Date.now() - heldFrom;
    expect(m('spoolerd_tasks_running', spoolLabel)).toBe(0);
    expect(m('spoolerd_task_run_seconds_count', byTask('wait_for_file'))).toBe(1);
    const sum = m('spoolerd_task_run_seconds_sum', byTask('wait_for_file'))!;
    expect(sum).toBeGreaterThanOrEqual(0.3);
    expect(sum).toBeLessThan(heldMs / 1000 + 1);
    // Buckets are cumulative and end at the count; the run is in none below 0.25 s.
    expect(m('spoolerd_task_run_seconds_bucket', { ...byTask('wait_for_file'), le: '0.25' })).toBe(0);
    expect(m('spoolerd_task_run_seconds_bucket', { ...byTask('wait_for_file'), le: '+Inf' })).toBe(1);
    expect(m('spoolerd_task_run_seconds_bucket', { ...byTask('echo'), le: '+Inf' })).toBe(3);
    expect(m('spoolerd_tasks_processed_total', byTask('echo'))).toBe(3);

    await daemon.stop();
  });

  it('counts a worker process that died as a restart, and its task as failed', async () => {
    const spooler = Spooler.open(root);
    const { daemon, url } = await serveHttp(root, ['--processes', '1'], ['isolation']);
    expect((await scrape(url))('spoolerd_worker_restarts_total', { reason: 'crashed' })).toBe(0);
    const h = await spooler.enqueue({ name: 'crash', args: ['x1', 'exit'], options: { retries: 0 } });
    await waitFor(() => ls(join(root, 'dead')).some((f) => f.includes(h.id)), { what: 'the crashing task in dead/', explain: () => daemon.describe() });
    const m = await scrape(url);
    expect(m('spoolerd_worker_restarts_total', { reason: 'crashed' })).toBe(1);
    expect(m('spoolerd_tasks_failed_total', { spool: root, task: 'crash' })).toBe(1);
    expect(m('spoolerd_tasks_dead_total', { spool: root, task: 'crash' })).toBe(1);
    await daemon.stop();
  });
});

describe('/healthz, /readyz and other paths', () => {
  it('answers 200 on /healthz and /readyz while serving, 404 elsewhere, 405 for other methods; /readyz is 503 with a reason while stopping', async () => {
    const spooler = Spooler.open(root);
    const { daemon, url } = await serveHttp(root, ['--grace', '30s']);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, reasons: [] });
    expect((await fetch(`${url}/`)).status).toBe(404);
    expect((await fetch(`${url}/metrics/x`)).status).toBe(404);
    expect((await fetch(`${url}/metrics`, { method: 'POST' })).status).toBe(405);

    // Stopping with a task still running (the grace period): alive, not ready.
    const marker = join(dir, 'go');
    await spooler.enqueue({ name: 'wait_for_file', args: ['w1', marker] });
    await waitFor(() => started('wait_for_file', 'w1'), { what: 'wait_for_file to start' });
    daemon.signal('SIGTERM');
    await daemon.waitForLog((l) => l.msg.startsWith('stopping'));
    const stopping = await fetch(`${url}/readyz`);
    expect(stopping.status).toBe(503);
    const body = (await stopping.json()) as { ready: boolean; reasons: string[] };
    expect(body.ready).toBe(false);
    expect(body.reasons.join('\n')).toContain('not serving');
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    writeFileSync(marker, '');
    expect((await daemon.waitForExit(20_000)).code).toBe(0);
  });

  it.skipIf(mountSkipReason !== undefined)('/readyz is 503 "not writable" while the spool is on a read-only mount, and 200 again once it is writable', async () => {
    let mount: Mounted | undefined = mountTmpfs(16);
    try {
      const spool = join(mount.path, 'spool');
      const { daemon, url } = await serveHttp(spool);
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
      const remount = (mode: 'ro' | 'rw') => {
        const r = spawnSync('mount', ['-o', `remount,${mode}`, mount!.path], { encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
      };
      remount('ro');
      const res = await fetch(`${url}/readyz`);
      expect(res.status).toBe(503);
      const body = (await res.json()) as { ready: boolean; reasons: string[] };
      expect(body.reasons).toEqual([expect.stringMatching(/not writable: .*(EROFS|read-only)/)]);
      // The status file cannot be written either; the daemon says so once.
      await daemon.waitForLog((l) => l.msg.startsWith('cannot write the status file'));
      remount('rw');
      await until(async () => (await fetch(`${url}/readyz`)).status === 200, '/readyz 200 again');
      await daemon.waitForLog((l) => l.msg === 'the status file is written again');
      await daemon.stop();
    } finally {
      mount.unmount();
      mount = undefined;
    }
  });

  it('refuses a malformed --http and an address in use, at start-up', async () => {
    const bad = startDaemon({ dir: root, imports: ['basic'], args: ['--http', 'localhost'] });
    // A malformed value is a usage error (exit 2); an address in use, a start-up error (exit 1).
    expect((await bad.waitForExit(10_000)).code).toBe(2);
    expect(bad.rawStderr.join('\n') + bad.logs.map((l) => l.msg).join('\n')).toContain('--http takes host:port or a port alone');

    const taken = createServer();
    await new Promise<void>((done) => taken.listen(0, '127.0.0.1', done));
    const port = (taken.address() as { port: number }).port;
    try {
      const busy = startDaemon({ dir: root, imports: ['basic'], args: ['--http', `127.0.0.1:${port}`] });
      expect((await busy.waitForExit(10_000)).code).toBe(1);
      expect(busy.logs.map((l) => l.msg).join('\n')).toContain(`--http 127.0.0.1:${port}: cannot listen`);
      // It failed before serving: nothing was claimed, no status file written.
      expect(busy.logsWith('serving spool')).toEqual([]);
    } finally {
      taken.close();
    }
  });
});

describe('the status file state/daemon-<owner>.json', () => {
  it('is rewritten every second while serving, with the running tasks and counts by name, and removed at a clean stop', async () => {
    const spooler = Spooler.open(root);
    const marker = join(dir, 'go');
    await spooler.enqueue({ name: 'echo', args: ['e1'] });
    await spooler.enqueue({ name: 'skip_me', args: ['s1', 'no'] });
    const w = await spooler.enqueue({ name: 'wait_for_file', args: ['w1', marker] });
    await spooler.enqueue({ name: 'echo', args: ['later'], options: { postpone: '1h' } });
    const daemon = await startServing({ dir: root, imports: ['basic', 'block'], records, args: ['--concurrency', '4'] });
    const owner = daemon.owner;
    await waitFor(() => started('wait_for_file', 'w1'), { what: 'wait_for_file to start' });
    const first = await waitFor(() => {
      const s = statusFile(root, owner);
      return s !== undefined && s.totals.processed === 1 && s.running.length === 1 ? s : undefined;
    }, { what: 'a status file with the echo processed and wait_for_file running', explain: () => JSON.stringify(statusFile(root, owner)) });
    expect(first).toEqual({
      version: 1,
      owner,
      host: expect.any(String),
      pid: daemon.pid,
      startedAt: expect.any(Number),
      updatedAt: expect.any(Number),
      concurrency: 4,
      totals: { processed: 1, skipped: 1, rescheduled: 0, dead: 0, quarantined: 0, reclaimed: 0, lost: 0 },
      byTask: { echo: { processed: 1, skipped: 0, rescheduled: 0, dead: 0 }, skip_me: { processed: 0, skipped: 1, rescheduled: 0, dead: 0 } },
      running: [{ id: w.id, name: 'wait_for_file', attempt: 0, startedAt: expect.any(Number) }],
      queue: { ready: 0, known: 1, nextDueAt: expect.any(Number) },
      // The task names it claims, sorted: its modules' (basic, block), tasks and types alike.
      tasks: ['async_echo', 'block', 'block_first_attempt', 'crash_daemon', 'done_explicitly', 'echo', 'note', 'quick', 'returns_value', 'skip_me', 'wait_for_file'],
    });
    expect(first.running[0].startedAt).toBeLessThanOrEqual(first.updatedAt);
    expect(first.running[0].startedAt).toBeGreaterThanOrEqual(first.startedAt);
    expect(first.queue.nextDueAt).toBeGreaterThan(Date.now() + 3_500_000);
    expect(Math.abs(first.updatedAt - Date.now())).toBeLessThan(5000);
    // Rewritten about once a second.
    await waitFor(() => (statusFile(root, owner)?.updatedAt ?? 0) > first.updatedAt, { what: 'a newer status file', timeoutMs: 5000 });
    // Nothing else in state/ matches, and no staging file stays behind (one staged at this instant is renamed within microseconds).
    const statusNames = () => ls(join(root, 'state')).filter((n) => n.startsWith('daemon-') || n.startsWith('.record-'));
    await waitFor(() => statusNames().length === 1, { what: 'no staged status file left behind', timeoutMs: 5000, explain: () => statusNames().join('\n') });
    expect(statusNames()).toEqual([`daemon-${owner}.json`]);

    writeFileSync(marker, '');
    await waitFor(() => statusFile(root, owner)?.byTask.wait_for_file?.processed === 1, { what: 'wait_for_file counted in the status file' });
    expect((await daemon.stop()).code).toBe(0);
    expect(ls(join(root, 'state')).filter((n) => n.startsWith('daemon-'))).toEqual([]);
  });

  it('of a daemon killed with -9 is removed by the daemon that reclaims its claims', async () => {
    const spooler = Spooler.open(root);
    const marker = join(dir, 'never');
    await spooler.enqueue({ name: 'wait_for_file', args: ['w1', marker] });
    const a = await startServing({ dir: root, imports: ['block'], records, args: ['--stale-after', '2s'] });
    const ownerA = a.owner;
    await waitFor(() => statusFile(root, ownerA)?.running.length === 1 || undefined, { what: "A's status file with its running task" });
    a.signal('SIGKILL');
    await a.waitForExit(10_000);
    // Left behind by a process that could not clean up.
    expect(statusFile(root, ownerA)).toBeDefined();
    const b = await startServing({ dir: root, imports: ['block'], records, args: ['--stale-after', '2s', '--scan-interval', '500ms'] });
    await b.waitForLog((l) => l.msg.startsWith('reclaimed tasks of a daemon that died') && l.owner === ownerA, { timeoutMs: 20_000 });
    expect(statusFile(root, ownerA)).toBeUndefined();
    expect(ls(join(root, 'state')).filter((n) => n.startsWith('daemon-'))).toEqual([`daemon-${b.owner}.json`]);
    writeFileSync(marker, '');
    await b.stop();
  });
});
