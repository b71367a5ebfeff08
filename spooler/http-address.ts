/** The address `--http` serves on, as the option table parses it (options.ts) and the server listens on it (http-server.ts). */
export interface HttpAddress {
  host: string;
  port: number;
}

/** Thrown for an --http value that is not [host:]port. */
export class HttpAddressError extends Error {
  override name = 'HttpAddressError';
}

/** Parses `host:port`, `[v6]:port` or a port alone (then 127.0.0.1). Port 0 picks a free port. */
export function parseHttpAddress(value: string): HttpAddress {
  const m = /^(\d+)$/.exec(value) ?? /^\[([0-9A-Fa-f:.]+)\]:(\d+)$/.exec(value) ?? /^([^:\s[\]]+):(\d+)$/.exec(value);
  const host = m === null || m.length === 2 ? '127.0.0.1' : m[1]!;
  const port = m === null ? NaN : Number(m[m.length - 1]);
  if (!Number.isSafeInteger(port) || port < 0 || port > 65535) {
    throw new HttpAddressError(`--http takes host:port or a port alone (e.g. 127.0.0.1:9464, [::1]:9464 or 9464), not ${JSON.stringify(value)}`);
  }
  return { host, port };
}
