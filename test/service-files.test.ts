/**
 * The service files (README, "Running it as a service"):
 * examples/systemd/spoolerd.service is accepted by `systemd-analyze verify`,
 * holds the settings the README promises, and its ExecStart command line
 * serves a spool for real; the Dockerfile copies only what exists, keeps the
 * spool on a volume and starts spoolerd on it. (A real image build needs a
 * base image: scripts/try-dockerfile.sh.)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { toMs } from '../runtime/duration.js';
import { Spooler } from '../runtime/index.js';
import { ROOT } from './helpers/cli.js';
import { describeSpool, fixture, readRecords, startDaemon, waitFor } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

const UNIT = join(ROOT, 'examples/systemd/spoolerd.service');

let dir: string;
useDaemonSpool('spoolerd-service-', { bind: (s) => ({ dir } = s) });

/** The unit's settings (continuation lines joined), by key; a key given twice keeps every value. */
function unitSettings(text: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  for (const line of text.replace(/\\\n\s*/g, ' ').split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) settings.set(m[1]!, [...(settings.get(m[1]!) ?? []), m[2]!.trim()]);
  }
  return settings;
}

const one = (settings: Map<string, string[]>, key: string) => {
  const values = settings.get(key) ?? [];
  expect(values, key).toHaveLength(1);
  return values[0]!;
};

/** The value of `--name value` in an argument list. */
const argValue = (args: string[], name: string) => {
  const i = args.indexOf(name);
  expect(i, `${name} in the arguments`).toBeGreaterThanOrEqual(0);
  return args[i + 1]!;
};

const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
if (!hasSystemdAnalyze) console.log('systemd unit: `systemd-analyze verify` skipped, systemd-analyze is not installed (apt-get install -y systemd)');

function verify(unitText: string, name = 'spoolerd.service') {
  // verify wants ExecStart's program to exist: use the node running this test wherever it lives.
  const path = join(dir, name);
  writeFileSync(path, unitText.replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `));
  return spawnSync('systemd-analyze', ['verify', '--man=no', path], { encoding: 'utf8', cwd: dir });
}

describe('examples/systemd/spoolerd.service', () => {
  const text = readFileSync(UNIT, 'utf8');
  const settings = unitSettings(text);
  const execStart = one(settings, 'ExecStart').split(/\s+/);

  it.skipIf(!hasSystemdAnalyze)('passes systemd-analyze verify without a warning (which reports a bad setting)', () => {
    const r = verify(text);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // The check can fail: a misspelt value is reported (verify still exits 0 for it, hence the stderr check).
    const broken = verify(text.replace('KillMode=mixed', 'KillMode=mixd'), 'broken.service');
    expect(broken.stderr).toContain('Failed to parse kill mode specification');
  });

  it('runs as a dedicated user, with the file system read-only but the spool, a mixed kill, a stop timeout above --grace, and restarts on failure', () => {
    const user = one(settings, 'User');
    expect(user).not.toBe('root');
    expect(user).not.toBe('');
    expect(one(settings, 'ProtectSystem')).toBe('strict');
    expect(one(settings, 'ReadWritePaths').split(/\s+/)).toContain(argValue(execStart, '--dir'));
    expect(one(settings, 'KillMode')).toBe('mixed');
    expect(one(settings, 'Restart')).toBe('on-failure');
    const grace = toMs(argValue(execStart, '--grace'));
    expect(toMs(one(settings, 'TimeoutStopSec'))).toBeGreaterThan(grace);
    expect(settings.has('RestrictSUIDSGID')).toBe(false);
  });

  it("has an ExecStart that serves a spool for real (with this checkout, a fixture module and a temporary spool put in for the unit's paths)", async () => {
    expect(execStart[0]).toBe('/usr/bin/node');
    expect(execStart[1]).toBe('/opt/app/node_modules/spoolerd/dist/cli/spoolerd.js');
    const spool = join(dir, 'spool');
    const records = join(dir, 'records.jsonl');
    mkdirSync(spool);
    const group = spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout.trim();
    const swap: Record<string, string> = { [argValue(execStart, '--dir')]: spool, [argValue(execStart, '--import')]: fixture('basic'), [argValue(execStart, '--group')]: group };
    const args = execStart.slice(2).map((a) => swap[a] ?? a);
    const daemon = startDaemon({ args, records, create: false });
    await daemon.waitUntilServing();
    await Spooler.open(spool).enqueue({ name: 'echo', args: ['from the unit'] });
    await waitFor(() => readRecords(records).some((r) => (r.args as unknown[])[0] === 'from the unit'), { what: 'the task run', explain: () => describeSpool(spool) });
    expect(await daemon.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });
});

describe('Dockerfile', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const instructions = text
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const [keyword, ...rest] = l.split(/\s+/);
      return { keyword: keyword!.toUpperCase(), args: rest.join(' ') };
    });
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').filter(Boolean);

  it('copies from the build context only files that exist and are not ignored, and from its build stage only what it builds', () => {
    const copies = instructions.filter((i) => i.keyword === 'COPY');
    expect(copies.length).toBeGreaterThan(0);
    for (const { args } of copies) {
      const parts = args.split(/\s+/);
      if (parts[0]!.startsWith('--from=')) {
        expect(['/src/package.json', '/src/node_modules', '/src/dist']).toContain(parts[1]);
        continue;
      }
      for (const source of parts.slice(0, -1)) {
        expect(existsSync(join(ROOT, source)), `COPY source ${source}`).toBe(true);
        expect(ignored.some((pattern) => source === pattern || source.startsWith(`${pattern}/`)), `${source} is in .dockerignore`).toBe(false);
      }
    }
    // The sources tsconfig.json compiles are all copied in before the build.
    const include = (JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { include: string[] }).include;
    const copied = copies.flatMap((c) => c.args.split(/\s+/).slice(0, -1));
    for (const folder of include) expect(copied, `tsconfig includes ${folder}`).toContain(folder);
  });

  it('starts spoolerd as its own user on a spool that is a volume, with bundled tasks that exist', () => {
    const last = (keyword: string) => instructions.filter((i) => i.keyword === keyword).at(-1)!.args;
    const entrypoint = JSON.parse(last('ENTRYPOINT')) as string[];
    const cmd = JSON.parse(last('CMD')) as string[];
    expect(entrypoint.slice(0, 2)).toEqual(['node', '/opt/spoolerd/dist/cli/spoolerd.js']);
    const spool = argValue(entrypoint, '--dir');
    expect(last('VOLUME').replace(/[[\]",]/g, ' ').split(/\s+/)).toContain(spool);
    expect(last('USER')).toBe('spoolerd');
    // /opt/spoolerd/dist is this checkout's dist/ (the build stage runs the same build).
    const imported = argValue(cmd, '--import');
    expect(imported.startsWith('/opt/spoolerd/dist/')).toBe(true);
    expect(existsSync(join(ROOT, imported.slice('/opt/spoolerd/'.length)))).toBe(true);
    // The grace period fits docker stop's default 10 s.
    const grace = /ENV SPOOLERD_GRACE=(\S+)/.exec(text)?.[1];
    expect(toMs(grace!)).toBeLessThan(10_000);
  });
});
