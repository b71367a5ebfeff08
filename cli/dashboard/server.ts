/**
 * The web dashboard's HTTP server (node:http): one self-contained page and a
 * few JSON endpoints over the spools it was given.
 *
 *   GET  /                 the page (page.ts)
 *   GET  /api/summary      every spool: counts by state, daemons, running tasks, throughput history
 *   GET  /api/tasks?spool=0&state=dead&cursor=…&limit=50   one page of a state's tasks (dead letters with their last error)
 *   POST /api/retry  {"spool":0,"id":"…"}   put a dead letter back (as `spool retry`)
 *   POST /api/remove {"spool":0,"id":"…"}   take a task out (as `spool rm`)
 *
 * Read-only unless started with a token; the POSTs then need
 * `Authorization: Bearer <token>`. A header no cross-site form or image can
 * send, and no cookies at all, is the defence against cross-site requests; the
 * Host header is checked against the address served, so a DNS-rebound name
 * cannot read a dashboard bound to localhost either.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { SpoolLayout } from '../../spool/layout.js';
import { TASK_ID_PATTERN } from '../../spool/name.js';
import { readRegularFile } from '../../spool/safe-read.js';
import { removeTasks, retryTasks } from '../../spool/bulk.js';
import { resolveRefs } from '../../spool/select.js';
import { CliError, EXIT } from '../exit-codes.js';
import { SpoolMonitor } from '../monitor/spool-monitor.js';
import { SCAN_STATES, rowKey, type ScanRow, type ScanState } from '../monitor/spool-scan.js';
import { dashboardPage } from './page.js';

export interface DashboardOptions {
  spools: SpoolLayout[];
  host: string;
  port: number;
  /** Enables retry and remove for requests that carry it; without it the dashboard is read-only. */
  token?: string;
}

export interface RunningDashboard {
  server: Server;
  /** The address served, e.g. http://127.0.0.1:9465/ (with the port chosen when 0 was asked). */
  url: string;
  close(): Promise<void>;
}

const PAGE_LIMIT_MAX = 500;
const BODY_MAX_BYTES = 4096;
/** A failure record larger than this is not read: the page shows that it is too large. */
const RECORD_MAX_BYTES = 256 * 1024;
/** The throughput chart is fed while someone has looked within this long. */
const SAMPLE_WHILE_WATCHED_MS = 60_000;

export async function startDashboard(options: DashboardOptions): Promise<RunningDashboard> {
  const monitors = options.spools.map((layout) => new SpoolMonitor(layout));
  const page = dashboardPage();
  const tokenDigest = options.token === undefined ? undefined : digest(options.token);
  let lastViewed = 0;

  const server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch (err) {
      send(res, 500, { error: `the dashboard failed: ${(err as Error).message}` });
    }
  });

  function handle(req: IncomingMessage, res: ServerResponse): void {
    if (!hostAllowed(req.headers.host, options.host, port())) return send(res, 421, { error: 'unexpected Host header' });
    const url = new URL(req.url ?? '/', 'http://dashboard');
    if (req.method === 'GET' || req.method === 'HEAD') {
      lastViewed = Date.now();
      if (url.pathname === '/') return sendPage(res, page);
      if (url.pathname === '/api/summary') return send(res, 200, summary());
      if (url.pathname === '/api/tasks') return tasks(url, res);
      if (url.pathname === '/favicon.ico') return void res.writeHead(204, COMMON_HEADERS).end();
      return send(res, 404, { error: 'no such page' });
    }
    if (req.method === 'POST' && (url.pathname === '/api/retry' || url.pathname === '/api/remove')) {
      if (tokenDigest === undefined) return send(res, 403, { error: 'this dashboard is read-only: start it with --token (or $SPOOL_DASHBOARD_TOKEN) to retry and remove' });
      if (!authorized(req.headers.authorization, tokenDigest)) return send(res, 403, { error: 'a valid "Authorization: Bearer <token>" header is needed' });
      return readBody(req, res, (body) => act(url.pathname === '/api/retry' ? 'retry' : 'remove', body, res));
    }
    res.setHeader('Allow', 'GET, HEAD, POST');
    return send(res, 405, { error: 'method not allowed' });
  }

  function summary(): unknown {
    const now = Date.now();
    return {
      now,
      writable: tokenDigest !== undefined,
      spools: monitors.map((m, index) => {
        const snap = m.snapshot(now);
        return { index, ...snap, history: m.history };
      }),
    };
  }

  function tasks(url: URL, res: ServerResponse): void {
    const monitor = monitors[Number(url.searchParams.get('spool') ?? '0')];
    if (monitor === undefined) return send(res, 404, { error: 'no such spool' });
    const state = url.searchParams.get('state') ?? 'dead';
    if (!(SCAN_STATES as readonly string[]).includes(state)) return send(res, 400, { error: `state must be one of ${SCAN_STATES.join(', ')}` });
    const limit = Math.min(Math.max(Number(url.searchParams.get('limit') ?? '50') || 50, 1), PAGE_LIMIT_MAX);
    const cursor = url.searchParams.get('cursor') ?? undefined;
    const page = monitor.scanner.page(state as ScanState, cursor, limit);
    send(res, 200, { total: page.total, next: page.next, rows: page.rows.map((r) => taskRow(monitor.layout, r, state as ScanState)) });
  }

  function act(action: 'retry' | 'remove', body: unknown, res: ServerResponse): void {
    const { spool, id } = (typeof body === 'object' && body !== null ? body : {}) as { spool?: unknown; id?: unknown };
    const monitor = typeof spool === 'number' ? monitors[spool] : undefined;
    if (monitor === undefined) return send(res, 404, { error: 'no such spool' });
    // A whole id only: `spool rm` also takes prefixes, a button never needs one.
    if (typeof id !== 'string' || !TASK_ID_PATTERN.test(id)) return send(res, 400, { error: 'id must be a whole task id' });
    const layout = monitor.layout;
    try {
      if (action === 'retry') {
        monitor.scanner.invalidate();
        const row = monitor.scanner.scan().rows.dead.find((r) => r.task?.id === id);
        if (row === undefined) return send(res, 404, { error: `${id} is not a dead letter (any more)` });
        const entry = { state: 'dead' as const, location: 'dead' as const, fileName: row.fileName, path: join(layout.dead, row.fileName), task: row.task! };
        const [outcome] = retryTasks(layout, [entry]);
        if (outcome!.kind !== 'retried') return send(res, 409, { error: `${id} was retried or removed meanwhile` });
      } else {
        const found = resolveRefs(layout, [id])[0]!;
        if (!found.ok) return send(res, 404, { error: `no task ${id}` });
        const [outcome] = removeTasks(layout, [found.entry]);
        if (outcome!.kind === 'running') return send(res, 409, { error: `${id} is running on ${outcome!.owner}; it cannot be removed` });
        if (outcome!.kind === 'gone') return send(res, 409, { error: `${id} left the spool meanwhile` });
        if (outcome!.kind !== 'removed') return send(res, 500, { error: `${id} was not removed (${outcome!.kind})` });
      }
    } catch (err) {
      if (!(err instanceof CliError)) throw err;
      return send(res, err.exitCode === EXIT.NOT_FOUND ? 404 : err.exitCode === EXIT.RUNNING || err.exitCode === EXIT.WRONG_STATE ? 409 : 400, { error: err.message });
    } finally {
      monitor.scanner.invalidate();
    }
    send(res, 200, { ok: true, action, id });
  }

  // Throughput is a difference between samples: taken every second while anyone watches, not only when a page asks.
  const sampler = setInterval(() => {
    if (Date.now() - lastViewed > SAMPLE_WHILE_WATCHED_MS) return;
    for (const m of monitors) {
      try {
        m.snapshot();
      } catch {
        // The next request reports it.
      }
    }
  }, 1000);
  sampler.unref();

  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(options.port, options.host, () => {
      server.off('error', fail);
      done();
    });
  });
  const port = (): number => (server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    server,
    url: `http://${host}:${port()}/`,
    close: () =>
      new Promise((done) => {
        clearInterval(sampler);
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

/** A task as the page shows it; with the last error of a task that has failed (state/<id>.json). */
function taskRow(layout: SpoolLayout, r: ScanRow, state: ScanState): Record<string, unknown> {
  const out: Record<string, unknown> = { key: rowKey(r), fileName: r.fileName, state };
  if (r.owner !== undefined) out.owner = r.owner;
  if (r.task !== undefined) {
    const { id, name, priority, due, attempts } = r.task;
    Object.assign(out, { id, name, priority, due, attempts });
    if (state === 'dead' || attempts > 0) {
      const error = lastError(layout, id);
      if (error !== undefined) out.error = error;
    }
  }
  return out;
}

/** The error of a task's failure record, its fields checked (the file is the spool's, not ours). */
function lastError(layout: SpoolLayout, id: string): { message: string; name?: string; stack?: string; at?: number } | undefined {
  const read = readRegularFile(join(layout.state, `${id}.json`), RECORD_MAX_BYTES);
  if (!read.ok) return read.reason.startsWith('it disappeared') || read.reason.includes('does not exist') ? undefined : { message: `(the failure record cannot be read: ${read.reason})` };
  try {
    const record = JSON.parse(read.bytes.toString('utf8')) as { at?: unknown; error?: { name?: unknown; message?: unknown; stack?: unknown } };
    const e = record.error;
    if (typeof e !== 'object' || e === null || typeof e.message !== 'string') return { message: '(the failure record has no error message)' };
    return {
      message: e.message,
      ...(typeof e.name === 'string' && { name: e.name }),
      ...(typeof e.stack === 'string' && { stack: e.stack }),
      ...(typeof record.at === 'number' && { at: record.at }),
    };
  } catch {
    return { message: '(the failure record is not JSON)' };
  }
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

function authorized(header: string | undefined, tokenDigest: Buffer): boolean {
  const match = /^Bearer (.+)$/.exec(header ?? '');
  return match !== null && timingSafeEqual(digest(match[1]!), tokenDigest);
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

/**
 * Whether a request's Host is one this server answers to. Bound to all
 * addresses, any; otherwise the address served (and, for a loopback address,
 * the other names of loopback), with its port.
 */
export function hostAllowed(hostHeader: string | undefined, boundHost: string, port: number): boolean {
  if (boundHost === '0.0.0.0' || boundHost === '::') return true;
  if (hostHeader === undefined) return false;
  const bound = boundHost.includes(':') ? `[${boundHost}]` : boundHost;
  const names = isLoopback(boundHost) ? [...LOOPBACK_NAMES, bound] : [bound];
  return names.some((n) => hostHeader.toLowerCase() === `${n}:${port}`);
}

export const isLoopback = (host: string): boolean => host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);

function readBody(req: IncomingMessage, res: ServerResponse, then: (body: unknown) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let refused = false;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > BODY_MAX_BYTES && !refused) {
      refused = true;
      send(res, 413, { error: 'request body too large' });
      req.destroy();
    }
    if (!refused) chunks.push(chunk);
  });
  req.on('end', () => {
    if (refused) return;
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return send(res, 400, { error: 'the body must be JSON: {"spool": 0, "id": "<task id>"}' });
    }
    try {
      then(body);
    } catch (err) {
      send(res, 500, { error: `the dashboard failed: ${(err as Error).message}` });
    }
  });
}

const COMMON_HEADERS = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

function send(res: ServerResponse, status: number, value: unknown): void {
  if (res.headersSent) return;
  const body = JSON.stringify(value);
  res.writeHead(status, { ...COMMON_HEADERS, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function sendPage(res: ServerResponse, page: { html: string; csp: string }): void {
  res.writeHead(200, {
    ...COMMON_HEADERS,
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(page.html),
    'Content-Security-Policy': page.csp,
    'X-Frame-Options': 'DENY',
  });
  res.end(page.html);
}
