/** Starting the real `spool dashboard` (dist/cli/spool.js) and finding the address it serves. */
import { spawn, type ChildProcess } from 'node:child_process';
import { SPOOL_BIN } from './cli.js';
import { waitFor } from './daemon.js';

export interface DashboardProcess {
  child: ChildProcess;
  /** e.g. http://127.0.0.1:40123/ */
  url: string;
  output(): string;
  stop(): Promise<number | null>;
}

/** `spool dashboard --http 127.0.0.1:0 <args>`; resolves once it says where it serves. */
export async function startDashboardProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<DashboardProcess> {
  const clean: NodeJS.ProcessEnv = { ...process.env, SPOOL_DIR: '' };
  delete clean.SPOOL_DASHBOARD_TOKEN;
  const child = spawn(process.execPath, [SPOOL_BIN, 'dashboard', '--http', '127.0.0.1:0', ...args], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
  let gone = false;
  void exited.then(() => (gone = true));
  const url = await waitFor(() => (gone ? (() => { throw new Error(`spool dashboard exited: ${out}`); })() : /at (http:\/\/\S+\/)\n/.exec(out)?.[1]), {
    timeoutMs: 15_000,
    what: 'spool dashboard to say where it serves',
  });
  return {
    child,
    url,
    output: () => out,
    stop: async () => {
      if (!gone) child.kill('SIGTERM');
      return exited;
    },
  };
}
