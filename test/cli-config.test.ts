/**
 * `spoolerd --config <file>` (README, "A config file"): keys are the long
 * option names; flags override environment variables, which override the
 * file, which overrides the defaults; a key that is not an option is an error
 * naming the valid ones, and every option of `spoolerd --help` is one.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { describeSpool, fixture, readRecords, SPOOLERD_BIN, startDaemon, waitFor } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let dir: string;
useDaemonSpool('spoolerd-config-', { bind: (s) => ({ dir } = s) });

/** Runs spoolerd to completion with only the given SPOOLERD_* / SPOOL_* variables. */
function spoolerd(args: string[], env: NodeJS.ProcessEnv = {}) {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SPOOLERD_') && !k.startsWith('SPOOL_')) clean[k] = v;
  const r = spawnSync(process.execPath, [SPOOLERD_BIN, ...args], { cwd: dir, env: { ...clean, ...env }, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function writeConfig(config: unknown, name = 'spoolerd.json'): string {
  const path = join(dir, name);
  writeFileSync(path, typeof config === 'string' ? config : JSON.stringify(config));
  return path;
}

function effective(args: string[], env: NodeJS.ProcessEnv = {}): Record<string, unknown> {
  const r = spoolerd([...args, '--print-config'], env);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe('spoolerd --config', () => {
  it('takes option values from the file, under environment variables and flags', () => {
    const config = writeConfig({ concurrency: 3, 'scan-interval': '10s', grace: '1m', dir: ['/srv/a', '/srv/b'], archive: true, 'log-level': 'warn' });
    expect(effective([])).toEqual(expect.objectContaining({ concurrency: 8, 'scan-interval': 5000, grace: 30000, archive: false, 'log-level': 'info' }));
    expect(effective([])).not.toHaveProperty('dir');

    const fromFile = effective(['--config', config]);
    expect(fromFile).toEqual(expect.objectContaining({ concurrency: 3, 'scan-interval': 10000, grace: 60000, dir: ['/srv/a', '/srv/b'], archive: true, 'log-level': 'warn' }));

    const env = { SPOOLERD_CONCURRENCY: '5', SPOOL_DIR: '/srv/env' };
    expect(effective(['--config', config], env)).toEqual(expect.objectContaining({ concurrency: 5, dir: ['/srv/env'], 'scan-interval': 10000 }));
    expect(effective(['--config', config, '--concurrency', '7', '--scan-interval', '2s'], env)).toEqual(
      expect.objectContaining({ concurrency: 7, dir: ['/srv/env'], 'scan-interval': 2000, grace: 60000 }),
    );
    // The file named by the environment, a flag before or after it.
    expect(effective(['--concurrency', '7'], { SPOOLERD_CONFIG: config })).toEqual(expect.objectContaining({ concurrency: 7, grace: 60000 }));
  });

  it('accepts every option of spoolerd --help but the command-line-only ones, and nothing else', () => {
    const help = spoolerd(['--help']).stdout;
    const inHelp = new Set([...help.matchAll(/--([a-z][a-z-]*)/g)].map((m) => m[1]!));
    for (const commandLineOnly of ['help', 'version', 'config', 'print-config', 'demo']) inHelp.delete(commandLineOnly);
    // A negated switch (--no-poll) is the file's "poll": false.
    for (const name of [...inHelp]) if (name.startsWith('no-') && inHelp.has(name.slice(3))) inHelp.delete(name);
    const r = spoolerd(['--config', writeConfig({ concurrency: 2, scanInterval: '1s' })]);
    // A bad config file is a bad command line: exit 2, as for a bad flag (README, "Exit codes").
    expect(r.code).toBe(2);
    const m = /unknown key "scanInterval" \(keys are written as the options are: "scan-interval"\); valid keys: (.*)$/m.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    expect(new Set(m![1]!.split(', '))).toEqual(inHelp);
  });

  it('refuses a bad file with the file, the key and the problem, and starts nothing', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ 'log-level': 'loud' }, /config file .*spoolerd\.json: "log-level": Allowed choices are debug, info, warn, error/],
      [{ concurrency: 0 }, /"concurrency": must be a whole number ≥ 1/],
      [{ 'scan-interval': 'soon' }, /"scan-interval": duration "soon" is not a duration/],
      [{ poll: 'yes' }, /"poll" is a switch: write true or false/],
      [{ dir: { path: '/x' } }, /"dir" must be a string or a number/],
      [['--dir', '/x'], /must hold a JSON object of option names and values/],
      ['{"dir": ', /is not valid JSON/],
      [{ demo: true }, /unknown key "demo"/],
    ];
    for (const [config, message] of cases) {
      const r = spoolerd(['--config', writeConfig(config)]);
      expect(r.stderr).toMatch(message);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
    }
    const missing = spoolerd(['--config', join(dir, 'nope.json')]);
    expect(missing.stderr).toMatch(/cannot read config file .*nope\.json: ENOENT/);
    expect(missing.code).toBe(2);
  });

  it('runs a real daemon from the file alone, and logs which keys it applied and which were overridden', async () => {
    const spool = join(dir, 'spool');
    const records = join(dir, 'records.jsonl');
    mkdirSync(spool);
    const config = writeConfig({ dir: spool, import: [fixture('basic')], concurrency: 1, 'log-format': 'json', processes: 0, 'scan-interval': '1s' });
    const daemon = startDaemon({ args: ['--config', config, '--processes', '1'], records, logFormat: null, create: false });
    await daemon.waitUntilServing();
    expect(daemon.logsWith('config file read')).toEqual([
      expect.objectContaining({ file: config, applied: ['dir', 'import', 'concurrency', 'log-format', 'scan-interval'], overridden: ['processes'] }),
    ]);
    // --processes 1 from the flag: one worker process.
    expect(daemon.logsWith('worker processes ready')).toEqual([expect.objectContaining({ processes: 1 })]);
    await Spooler.open(spool).enqueue({ name: 'echo', args: ['from config'] });
    await waitFor(() => readRecords(records).some((r) => (r.args as unknown[])[0] === 'from config'), { what: 'the task run', explain: () => describeSpool(spool) });
    expect(await daemon.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });
});
