/**
 * `spool dashboard`: a web page over one or more spools (cli/dashboard/). Bound
 * to 127.0.0.1 by default; read-only unless given a token, which the page's
 * retry and remove buttons then send.
 */
import { Command } from 'commander';
import { CliError, EXIT } from '../exit-codes.js';
import { isLoopback, startDashboard } from '../dashboard/server.js';
import { spoolsFrom, withDirsOption, type DirsOption } from '../monitor/spools-option.js';

export const DEFAULT_DASHBOARD_ADDRESS = '127.0.0.1:9465';

export function dashboardCommand(): Command {
  return withDirsOption(new Command('dashboard'))
    .description('serve a web dashboard of the spools: counts, throughput, running tasks, dead letters (read-only without --token)')
    .option('--http <host:port>', `the address to serve (port 0: any free port)`, DEFAULT_DASHBOARD_ADDRESS)
    .option('--token <token>', 'enable retry and remove for requests carrying this token (default: $SPOOL_DASHBOARD_TOKEN); prefer the variable: arguments are visible to other users')
    .action(async (options: DirsOption & { http: string; token?: string }) => {
      const spools = spoolsFrom(options);
      const { host, port } = parseAddress(options.http);
      const token = options.token ?? (process.env.SPOOL_DASHBOARD_TOKEN || undefined);
      if (token !== undefined && token.length < 8) throw new CliError('the token must be at least 8 characters long', EXIT.USAGE);
      let dashboard;
      try {
        dashboard = await startDashboard({ spools, host, port, ...(token !== undefined && { token }) });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE') throw new CliError(`${options.http} is in use; choose another port with --http`, EXIT.ERROR);
        if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new CliError(`cannot serve on ${options.http}: no such local address`, EXIT.USAGE);
        throw err;
      }
      process.stdout.write(`spool dashboard: serving ${spools.map((s) => s.root).join(', ')} at ${dashboard.url}\n`);
      process.stdout.write(
        token === undefined
          ? 'spool dashboard: read-only (give --token or $SPOOL_DASHBOARD_TOKEN to enable retry and remove)\n'
          : `spool dashboard: retry and remove enabled: open ${dashboard.url}#token=<the token>\n`,
      );
      if (!isLoopback(host)) process.stderr.write(`spool dashboard: warning: ${host} is not a loopback address; anyone who can reach it can read the spools' task names and errors\n`);
      await new Promise<void>((done) => {
        const stop = (): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          void dashboard.close().then(() => {
            process.stdout.write('spool dashboard: stopped\n');
            done();
          });
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}

/** `host:port`, `[v6 address]:port` or `:port` (on 127.0.0.1). */
export function parseAddress(text: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new CliError(`--http takes host:port (e.g. ${DEFAULT_DASHBOARD_ADDRESS}), not ${JSON.stringify(text)}`, EXIT.USAGE);
  return { host: match[1] ?? (match[2] || '127.0.0.1'), port };
}
