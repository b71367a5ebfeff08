/**
 * The Python kit (kits/python, `spoolerd_kit`) with Debian's python3: its own
 * unittest suite (with python3-msgpack, and again with msgpack hidden: the
 * JSON-only path), which runs every case of conformance/vectors/produce.json
 * through the kit and spoolerd's checker, an offline `pip install` of the
 * folder, and the end-to-end
 * run: the installed kit enqueues tasks with mixed priorities, postpones and
 * unique keys into a spool served by the real `spoolerd`; each runs once, due
 * tasks in priority order, none before its due time; results are read back
 * with wait(); and the example of kits/python/README.md runs as written.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from './helpers/cli.js';
import { describeSpool, ls, lsActive, parseName, readRecords, waitFor, type TaskRecord } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';
import { LIBFAKETIME, skewedClockEnv } from './helpers/multihost-scenarios.js';
import { PYTHON, requirePythonMsgpack } from './helpers/python.js';

const KIT = join(ROOT, 'kits/python');
const E2E = join(KIT, 'tests/e2e.py');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs python3 to completion without blocking the event loop (the daemon's log pipe keeps draining). */
function python(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(PYTHON, args, { cwd: options.cwd ?? KIT, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', ...options.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 40_000);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

function ok(r: Run, what: string): Run {
  if (r.code !== 0) throw new Error(`${what} exited with ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r;
}

const NO_MSGPACK = { SPOOLERD_KIT_NO_MSGPACK: '1' };

beforeAll(() => requirePythonMsgpack());

describe('the kit\'s unittest suite', () => {
  it('passes with python3-msgpack, and with msgpack hidden (JSON only), the conformance vectors included', async () => {
    const unittest = ['-m', 'unittest', 'discover', '-v', '-s', 'tests', '-t', '.'];
    // NODE: the conformance test runs spoolerd's checker (dist/conformance/check.js) with this Node.
    const env = { NODE: process.execPath };
    const [full, jsonOnly] = await Promise.all([python(unittest, { env }), python(unittest, { env: { ...env, ...NO_MSGPACK } })]);
    for (const [r, what] of [[full, 'unittest'], [jsonOnly, 'unittest without msgpack']] as const) {
      ok(r, what);
      // unittest reports on stderr; a discovery that found nothing would also say OK.
      expect(Number(/^Ran (\d+) tests?/m.exec(r.stderr)?.[1])).toBeGreaterThanOrEqual(30);
    }
    // Each run takes its own path: MessagePack where it is installed, JSON where it is not.
    expect(full.stderr).toMatch(/test_msgpack_keeps_bytes_and_integers .* \.\.\. ok/);
    expect(full.stderr).toMatch(/test_json_by_default_and_msgpack_refused .* skipped/);
    expect(jsonOnly.stderr).toMatch(/test_json_by_default_and_msgpack_refused .* \.\.\. ok/);
    expect(jsonOnly.stderr).toMatch(/test_msgpack_keeps_bytes_and_integers .* skipped/);
    // Every produce case passed the checker, every refuse case was refused, in both runs: never skipped.
    for (const r of [full, jsonOnly]) expect(r.stderr).toMatch(/test_produce_cases_pass_the_checker_and_refuse_cases_are_refused .* \.\.\. ok/);
  });
});

describe('a host whose clock is 30 s behind (libfaketime)', () => {
  it('writes spool-clock times: the staging file\'s mtime, not its own clock (clock="local": its own)', async () => {
    expect(existsSync(LIBFAKETIME), `${LIBFAKETIME} (apt-get install -y faketime)`).toBe(true);
    const t = tempDir('spoolerd-kit-skew-');
    try {
      const script = [
        'import json, sys, time',
        'from spoolerd_kit import Spool',
        'out = {"hostNow": time.time_ns() // 1_000_000}',
        'out["spool"] = Spool(sys.argv[1]).enqueue("t", postpone=1, encoding="json").file',
        'out["local"] = Spool(sys.argv[1], clock="local").enqueue("t", postpone=1, encoding="json").file',
        'print(json.dumps(out))',
      ].join('\n');
      const before = Date.now();
      const r = ok(await python(['-c', script, join(t.dir, 'spool')], { env: { ...skewedClockEnv('-30s'), PYTHONPATH: KIT } }), 'the skewed producer');
      const after = Date.now();
      const out = JSON.parse(r.stdout) as { hostNow: number; spool: string; local: string };
      expect(before - out.hostNow, 'libfaketime shifted the producer\'s clock').toBeGreaterThan(29_000);
      const spoolTask = parseName(out.spool)!;
      const created = Number(spoolTask.id.slice(0, 13));
      // The kernel stamps a file a timer tick behind the clock at most.
      expect(created).toBeGreaterThanOrEqual(before - 50);
      expect(created).toBeLessThanOrEqual(after);
      expect(spoolTask.due - created).toBe(1000 + 10);
      const localTask = parseName(out.local)!;
      expect(before - Number(localTask.id.slice(0, 13))).toBeGreaterThan(29_000);
      expect(localTask.due - Number(localTask.id.slice(0, 13))).toBe(1000);
    } finally {
      t.cleanup();
    }
  });
});

describe('installed with pip, into a spool served by spoolerd', () => {
  let site: string;
  let cleanupSite: () => void;
  let dir: string;
  let root: string;
  let records: string;
  const testSpool = useDaemonSpool('spoolerd-kit-python-', { open: true, bind: (s) => ({ dir, root, records } = s) });

  beforeAll(async () => {
    const t = tempDir('spoolerd-kit-pip-');
    cleanupSite = t.cleanup;
    site = join(t.dir, 'site');
    // A copy, so that setuptools' build/ and *.egg-info are not left in the checkout.
    cpSync(KIT, join(t.dir, 'src'), { recursive: true, filter: (p) => !p.includes('__pycache__') });
    ok(
      await python(['-m', 'pip', 'install', '--no-build-isolation', '--no-index', '--no-deps', '--no-compile', '--disable-pip-version-check', '--target', site, join(t.dir, 'src')], { cwd: t.dir }),
      'pip install',
    );
  });
  afterAll(() => cleanupSite?.());

  /** e2e.py with the installed kit only (PYTHONPATH: the pip target; the script's own folder holds no kit). */
  const e2e = async (args: string[], env: NodeJS.ProcessEnv = {}) =>
    JSON.parse(ok(await python([E2E, ...args], { cwd: dir, env: { PYTHONPATH: site, ...env } }), `e2e.py ${args[0]}`).stdout) as Record<string, any>;

  it('pip installs the folder offline', () => {
    expect(readdirSync(site).sort()).toEqual(['spoolerd_kit', 'spoolerd_kit-0.1.0.dist-info']);
    expect(existsSync(join(site, 'spoolerd_kit/__init__.py'))).toBe(true);
  });

  it('runs each task once, due tasks by priority, none early; unique keys hold; results come back', async () => {
    const handles = await e2e(['prefill', root]);
    const jsonOnly = await e2e(['json', root], NO_MSGPACK);
    expect(jsonOnly.kit).toBe(join(site, 'spoolerd_kit/__init__.py'));
    expect(jsonOnly.msgpack).toBe(false);
    expect(jsonOnly['json-default'].file).toMatch(/-a0-echo\.json$/);
    Object.assign(handles, { 'json-default': jsonOnly['json-default'] });

    // The second enqueue with key k1 added nothing and got the holder; the same key under another name is another key.
    expect(handles['u-dup']).toEqual({ ...handles['u-first'], existing: true });
    expect(handles['async-k1'].existing).toBe(false);
    const added = Object.entries(handles).filter(([, h]) => !h.existing);
    expect(ls(join(root, 'incoming')).sort()).toEqual(added.map(([, h]) => h.file).sort());
    expect(ls(join(root, 'tmp'))).toEqual([]);

    const prefillFile = join(dir, 'prefill.json');
    writeFileSync(prefillFile, JSON.stringify(handles));
    // examples/tasks.ts too, for the README example run last.
    const daemon = await testSpool.serve({ imports: ['basic', 'results', join(ROOT, 'dist/examples/tasks.js')], args: ['--concurrency', '1'] });
    const finished = await e2e(['finish', root, prefillFile]);

    expect(finished.add).toEqual({ sum: 5 });
    expect(finished.fail).toEqual({ error: 'TaskFailedError', code: 'SPOOL_TASK_DEAD', remote: 'TypeError', message: 'boom' });
    expect(finished.skip).toEqual({ error: 'TaskSkippedError', reason: 'no need' });
    expect(finished.noResult).toBe('SPOOL_RESULT_TIMEOUT');
    // Released when u-first was claimed: taken again by a new task.
    expect(finished['u-again'].existing).toBe(false);
    expect(finished['u-again'].id).not.toBe(handles['u-first'].id);
    const expected: Record<string, { file: string }> = { ...Object.fromEntries(added), 'u-again': finished['u-again'] };
    for (const label of ['add', 'fail', 'skip', 'async-k1']) delete expected[label];

    const echoes = (): TaskRecord[] => readRecords(records).filter((r) => r.task === 'echo');
    await waitFor(() => echoes().length >= Object.keys(expected).length && lsActive(root).length === 0 && ls(join(root, 'incoming')).length === 0 && ls(join(root, 'pending')).length === 0, {
      what: 'every task to run and the spool to be empty',
      explain: () => `${JSON.stringify(echoes().map((r) => r.args))}\n${describeSpool(root)}\n${daemon.describe(20)}`,
    });
    // Nothing is left that could run later: what ran is all that will.
    const runs = echoes();
    const labels = runs.map((r) => (r.args as string[])[0]!);
    expect([...labels].sort()).toEqual(Object.keys(expected).sort());
    expect(readRecords(records).filter((r) => r.task === 'async_echo').map((r) => r.args)).toEqual([['async-k1']]);
    for (const r of runs) {
      const label = (r.args as string[])[0]!;
      expect(r.file, label).toBe(expected[label]!.file);
      expect(r.attempt, label).toBe(0);
      // None early: run no sooner than the due time in its name (the spool clock is this host's on a local disk).
      expect(r.time, label).toBeGreaterThanOrEqual(parseName(r.file!)!.due);
    }
    // Postponed ones waited (1.5 s and 1.7 s) past their enqueue.
    for (const label of ['p10-later', 'p0-later']) {
      const due = parseName(expected[label]!.file)!.due;
      const created = Number(expected[label]!.file.split('-')[2]!.slice(0, 13));
      expect(due - created, label).toBeGreaterThanOrEqual(label === 'p10-later' ? 1500 : 1700);
    }
    // Due at the daemon's start, with one slot: claimed in name order (priority, due time, creation).
    const dueAtStart = ['p50-a', 'p10-json', 'p90', 'p0', 'p50-b', 'u-first', 'many-1', 'many-2', 'json-default'];
    const ranInOrder = labels.filter((l) => dueAtStart.includes(l));
    expect(ranInOrder).toEqual([...dueAtStart].sort((a, b) => (expected[a]!.file < expected[b]!.file ? -1 : 1)));
    expect(ranInOrder.slice(0, 2)).toEqual(['p0', 'p10-json']);
    rmSync(prefillFile);

    // kits/python/README.md's example, as written, in the folder that holds ./spool: checksum's value comes back.
    const example = /```python\n([\s\S]*?)```/.exec(readFileSync(join(KIT, 'README.md'), 'utf8'))![1]!;
    const ran = ok(await python(['-c', example], { cwd: dir, env: { PYTHONPATH: site } }), 'the README example');
    let digest = 'abc';
    for (let i = 0; i < 3; i++) digest = createHash('sha256').update(digest).digest('hex');
    expect(ran.stdout.trim()).toBe(digest);
  });
});
