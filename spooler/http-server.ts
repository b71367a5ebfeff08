/**
 * `spoolerd --http host:port`: a small HTTP server (node:http) for probes and
 * Prometheus, off unless asked for.
 *
 *   GET /metrics  the Prometheus text format (metrics.ts)
 *   GET /healthz  200 while the process answers (liveness)
 *   GET /readyz   200 when every spool is served, writable and not stalled;
 *                 else 503 with a JSON body saying why (readiness)
 *
 * Anything else is 404 (405 for another method on these paths). It binds only
 * to the address given; a port alone binds 127.0.0.1.
 */
import type { HttpAddress } from './http-address.js';
import { accessSync, constants } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Daemon } from './daemon.js';
import type { Logger } from './logger.js';
import { DaemonMetrics } from './metrics.js';

/** The event loop blocked this long within READY_BLOCK_WINDOW_MS makes the daemon unready. */
const READY_MAX_BLOCK_MS = 5000;
const READY_BLOCK_WINDOW_MS = 30_000;
/**
 * No periodic scan for this many scan intervals (and at least READY_MIN_SCAN_GAP_MS)
 * means stalled: while incoming/ is too crowded to watch, scans are spaced out
 * with their cost, so a few intervals late is normal.
 */
const READY_SCAN_INTERVALS = 10;
const READY_MIN_SCAN_GAP_MS = 60_000;

export interface Readiness {
  ready: boolean;
  /** Why not, one line each; empty when ready. */
  reasons: string[];
}

/** Whether the daemon serves every spool, can write to each, and is not stalled. */
export function readiness(daemon: Daemon, scanIntervalMs: number): Readiness {
  const reasons: string[] = [];
  if (!daemon.serving) reasons.push('the daemon is not serving (starting or stopping)');
  const blocked = daemon.blockedMs(READY_BLOCK_WINDOW_MS);
  if (blocked > READY_MAX_BLOCK_MS) reasons.push(`stalled: the event loop was blocked for ${(blocked / 1000).toFixed(1)} s within the last ${READY_BLOCK_WINDOW_MS / 1000} s`);
  const now = Date.now();
  daemon.services.forEach((s, i) => {
    const spool = s.layout.root;
    const why = s.notServingReason;
    if (why !== undefined) return void reasons.push(`${spool}: not served: ${why}`);
    try {
      // EROFS on a read-only mount (root passes permission checks, not that one).
      accessSync(s.layout.active, constants.W_OK);
      accessSync(s.layout.state, constants.W_OK);
    } catch (err) {
      return void reasons.push(`${spool}: not writable: ${(err as Error).message}`);
    }
    const writeError = daemon.statusFiles[i]!.lastError;
    if (writeError !== undefined) return void reasons.push(`${spool}: not writable: the status file could not be written: ${writeError}`);
    const since = Math.max(s.servingSince, s.lastScanAt);
    const gap = Math.max(READY_SCAN_INTERVALS * scanIntervalMs, READY_MIN_SCAN_GAP_MS);
    if (since > 0 && now - since > gap) reasons.push(`${spool}: stalled: no scan for ${Math.round((now - since) / 1000)} s`);
  });
  return { ready: reasons.length === 0, reasons };
}

export class DaemonHttpServer {
  private readonly server: Server;
  private metrics: DaemonMetrics | undefined;

  constructor(
    private readonly daemon: Daemon,
    private readonly scanIntervalMs: number,
    private readonly log: Logger,
  ) {
    this.server = createServer((req, res) => void this.handle(req, res));
    // A probe that stays connected must not keep a stopping daemon alive.
    this.server.keepAliveTimeout = 5000;
  }

  /** Binds; resolves with the address bound (the port chosen, for port 0). Rejects if it cannot (in use, not permitted). */
  listen(address: HttpAddress): Promise<HttpAddress> {
    return new Promise((done, fail) => {
      const onError = (err: Error) => fail(err);
      this.server.once('error', onError);
      this.server.listen(address.port, address.host, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.log.error('http server error', { err }));
        const bound = this.server.address() as AddressInfo;
        done({ host: bound.address, port: bound.port });
      });
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') return send(res, 404, 'text/plain; charset=utf-8', 'not found: try /metrics, /healthz or /readyz\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    }
    try {
      if (path === '/healthz') return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
      if (path === '/readyz') {
        const r = readiness(this.daemon, this.scanIntervalMs);
        return send(res, r.ready ? 200 : 503, 'application/json', JSON.stringify(r) + '\n');
      }
      // Made on first use: a daemon nobody scrapes pays nothing for the registry.
      this.metrics ??= new DaemonMetrics(this.daemon);
      const body = await this.metrics.metrics();
      send(res, 200, this.metrics.contentType, body);
    } catch (err) {
      this.log.error('http request failed', { path, err });
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error; see the daemon log\n');
    }
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
