/**
 * Start-up errors (cli/spoolerd.ts, --help: "Exit status: ... 1 on a start-up
 * error"): a module that fails to import, a --dir that cannot be used, no
 * --import, no --dir: each exits non-zero at once with a clear message (one
 * JSON error line with --log-format json), not a crash.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fixture, readRecords, startDaemon, type DaemonStartOptions } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let dir: string;
let root: string;
let records: string;
useDaemonSpool('spoolerd-startup-', { bind: (s) => ({ dir, root, records } = s) });

/** Runs spoolerd expecting it to give up by itself; returns its exit and what it said. */
async function failsToStart(options: DaemonStartOptions) {
  const d = startDaemon(options);
  const exit = await d.waitForExit(20_000);
  return { exit, errors: d.logs.filter((l) => l.level === 'error'), logs: d.logs, raw: d.rawStderr, stdout: d.stdout, pid: d.pid };
}

describe('spoolerd refuses to start, with a clear message and exit status 1', () => {
  it('when a task module throws while it is imported', async () => {
    const module = fixture('throws-on-import');
    const r = await failsToStart({ dir: root, imports: ['throws-on-import'] });
    expect(r.raw, 'a crash instead of a log line').toEqual([]);
    expect(r.exit).toEqual({ code: 1, signal: null });
    expect(r.errors.map((l) => l.msg)).toEqual([`cannot import task module ${module}: fixture throws-on-import refuses to load (at ${module}:5:7)`]);
    expect(r.errors[0]!.stack).toContain(`${pathToFileURL(module).href}:5:7`);
    expect(r.logs.some((l) => l.msg === 'serving spool')).toBe(false);
  });

  for (const processes of ['2', '0']) {
    it(`when a task module has a syntax error, naming its file, line and column, with the source line (--processes ${processes})`, async () => {
      const broken = fixture('syntax-error');
      const r = await failsToStart({ dir: root, imports: ['imports-syntax-error'], args: ['--processes', processes] });
      expect(r.raw, 'a crash instead of a log line').toEqual([]);
      expect(r.exit).toEqual({ code: 1, signal: null });
      expect(r.errors.map((l) => l.msg)).toEqual([`cannot import task module ${fixture('imports-syntax-error')}: Unexpected token ';' (at ${broken}:6:22)`]);
      expect(r.errors[0]!.stack).toMatch(/^  return Math\.max\(x, ;\n {21}\^\n\nSyntaxError: Unexpected token ';'\n/);
    });
  }

  it('when a module imported dynamically has a syntax error: no location, and the module is not evaluated again to look for one', async () => {
    const r = await failsToStart({ dir: root, imports: ['dynamic-syntax-error'], args: ['--processes', '0'], records });
    expect(r.raw, 'a crash instead of a log line').toEqual([]);
    expect(r.exit).toEqual({ code: 1, signal: null });
    expect(r.errors.map((l) => l.msg)).toEqual([`cannot import task module ${fixture('dynamic-syntax-error')}: Unexpected token ';'`]);
    expect(readRecords(records).map((rec) => rec.pid)).toEqual([r.pid]);
  });

  it("when a task module outside any project that installed spoolerd imports 'spoolerd', saying to install it", async () => {
    const module = join(dir, 'tasks.mjs');
    writeFileSync(module, "import { Spooler } from 'spoolerd';\nSpooler.fromEnv();\n");
    const r = await failsToStart({ dir: root, imports: [module] });
    expect(r.exit).toEqual({ code: 1, signal: null });
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]!.msg).toContain(`cannot import task module ${module}: Cannot find package 'spoolerd'`);
    expect(r.errors[0]!.msg).toMatch(/; install spoolerd in the project the module belongs to \(README\.md, "Use it in your project"\)$/);
  });

  it('when a task module does not exist', async () => {
    const module = join(dir, 'no-such-module.mjs');
    const r = await failsToStart({ dir: root, imports: [module] });
    expect(r.raw, 'a crash instead of a log line').toEqual([]);
    expect(r.exit).toEqual({ code: 1, signal: null });
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]!.msg).toMatch(new RegExp(`^cannot import task module ${module.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: Cannot find module`));
  });

  it('when --dir is a path under a regular file (the module does not touch the spool)', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'not a directory');
    const spool = join(file, 'spool');
    const r = await failsToStart({ dir: spool, imports: ['empty'] });
    expect(r.raw, 'a crash instead of a log line').toEqual([]);
    expect(r.exit).toEqual({ code: 1, signal: null });
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]!.msg).toBe(
      `spool directory ${spool}: cannot be created (ENOTDIR: not a directory, mkdir '${spool}'); choose a writable path with --dir or SPOOL_DIR`,
    );
  });

  it('when --dir is a path under a regular file and the task module opens Spooler.fromEnv()', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'not a directory');
    const spool = join(file, 'spool');
    const r = await failsToStart({ dir: spool, imports: ['basic'] });
    expect(r.raw, 'a crash instead of a log line').toEqual([]);
    expect(r.exit).toEqual({ code: 1, signal: null });
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]!.msg).toContain(`spool directory ${spool}: cannot be created (ENOTDIR: not a directory`);
  });

  it('when --dir is a regular file', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'not a directory');
    const r = await failsToStart({ dir: file, imports: ['empty'] });
    expect(r.raw, 'a crash instead of a log line').toEqual([]);
    expect(r.exit).toEqual({ code: 1, signal: null });
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]!.msg).toMatch(new RegExp(`^spool directory ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*(not a directory|already exists)`));
  });

  it('when --dir does not exist and --create is not given (a mistyped path), creating nothing', async () => {
    const typo = join(dir, 'spoool');
    const r = await failsToStart({ dir: typo, imports: ['basic'], create: false });
    expect(r.raw, 'a crash instead of a log line').toEqual([]);
    expect(r.exit).toEqual({ code: 1, signal: null });
    expect(r.errors.map((l) => l.msg)).toEqual([`spool directory ${typo}: does not exist; check the path, or pass --create to make a new spool there`]);
    expect(existsSync(typo)).toBe(false);
  });

  it('without --import', async () => {
    mkdirSync(root);
    const r = await failsToStart({ dir: root });
    expect(r.raw, 'a crash instead of a log line').toEqual([]);
    // A usage error: the same code as spool's (README, "Exit codes").
    expect(r.exit).toEqual({ code: 2, signal: null });
    expect(r.errors.map((l) => l.msg)).toEqual(['nothing to run: pass --import <module> with the module that registers your tasks']);
  });

  it('without --dir (and no SPOOL_DIR)', async () => {
    const r = await failsToStart({ imports: ['empty'] });
    expect(r.raw, 'a crash instead of a log line').toEqual([]);
    // A usage error: the same code as spool's (README, "Exit codes").
    expect(r.exit).toEqual({ code: 2, signal: null });
    expect(r.errors.map((l) => l.msg)).toEqual(['no spool given: pass --dir <path> (or set SPOOL_DIR); try --demo for an example']);
  });

  it('with an invalid option value', async () => {
    const r = await failsToStart({ dir: root, imports: ['empty'], args: ['--concurrency', '0'] });
    // A usage error: the same code as spool's (README, "Exit codes").
    expect(r.exit).toEqual({ code: 2, signal: null });
    expect(r.raw.join('\n')).toContain("option '-c, --concurrency <n>' argument '0' is invalid. must be a whole number ≥ 1");
  });
});

describe('spoolerd takes its settings from the environment', () => {
  it('starts serving with SPOOL_DIR and SPOOLERD_IMPORT instead of --dir and --import', async () => {
    const d = startDaemon({ env: { SPOOL_DIR: root, SPOOLERD_IMPORT: fixture('empty'), SPOOLERD_LOG_FORMAT: 'json' }, logFormat: null });
    const line = await d.waitForLog((l) => l.msg === 'serving spool');
    expect(line.spool).toBe(root);
    expect(await d.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });

  it('creates a missing spool with --create (or SPOOLERD_CREATE=1), and serves an existing one without it', async () => {
    const d = startDaemon({ dir: root, imports: ['empty'], create: false, env: { SPOOLERD_CREATE: '1' } });
    await d.waitForLog((l) => l.msg === 'serving spool');
    expect(existsSync(join(root, 'incoming'))).toBe(true);
    expect(await d.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    const again = startDaemon({ dir: root, imports: ['empty'], create: false });
    expect((await again.waitForLog((l) => l.msg === 'serving spool')).spool).toBe(root);
    expect(await again.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });
});
