/**
 * README.md's commands, run as written on a copy of this repository (with the
 * already-built dist/ and node_modules linked from this checkout), the way a
 * new user would paste them: in order, each `sh` block in the folder the
 * blocks before it left the shell in.
 *
 * Every `sh` block must be preceded by a marker comment saying how to run it
 * (a block without one fails the test, so a new block is either run or
 * explicitly excused):
 *
 *   <!-- readme-test: run -->                 run it; it must exit 0
 *   <!-- readme-test: run expect="text" -->   ... and print text
 *   <!-- readme-test: run await="text" -->    ... and then the running command started last prints text
 *   <!-- readme-test: start until="text" -->  a command that runs until stopped: start it, wait until it prints text
 *   <!-- readme-test: start until="text" stopped="text2" -->  ... and after Ctrl-C it prints text2 (default: spoolerd's "stopped" log line)
 *   <!-- readme-test: stop -->                (on its own) Ctrl-C to every started command; each must exit 0
 *   <!-- readme-test: skip reason="why" -->   not runnable here, and why
 *
 * and a ```ts block (not sh) may be marked
 *
 *   <!-- readme-test: vitest file="name.ts" -->  a file of the README's vitest example ("Testing your tasks"):
 *                                               all such files are written to one folder and vitest runs there
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';
import { waitFor } from './helpers/daemon.js';

type Step =
  | { kind: 'run'; line: number; script: string; expect?: string; await?: string }
  | { kind: 'start'; line: number; script: string; until: string; stopped?: string }
  | { kind: 'skip'; line: number; script: string; reason: string }
  | { kind: 'stop'; line: number };

const MARKER = /^<!--\s*readme-test:\s*(\w+)((?:\s+\w+="[^"]*")*)\s*-->$/;

/** The steps README.md's markers describe, in order; throws naming the line of a block without a valid marker. */
export function readmeSteps(text: string): Step[] {
  const lines = text.split('\n');
  const steps: Step[] = [];
  const problems: string[] = [];
  let pending: { kind: string; attrs: Record<string, string>; line: number } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    const marker = MARKER.exec(line);
    if (marker) {
      const attrs = Object.fromEntries([...marker[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
      if (marker[1] === 'stop') steps.push({ kind: 'stop', line: i + 1 });
      else pending = { kind: marker[1]!, attrs, line: i + 1 };
      continue;
    }
    if (line.startsWith('<!--') && line.includes('readme-test')) problems.push(`line ${i + 1}: a readme-test marker this test does not understand: ${line}`);
    if (pending?.kind === 'vitest' && /^```ts\s*$/.test(line)) {
      // A file of the vitest example: readmeVitestFiles() takes it.
      if (!pending.attrs.file) problems.push(`line ${pending.line}: marker "vitest" needs file="…"`);
      while (i + 1 < lines.length && lines[i + 1]!.trim() !== '```') i++;
      i++;
      pending = undefined;
      continue;
    }
    if (/^```sh\s*$/.test(line)) {
      const start = i + 1;
      let end = start;
      while (end < lines.length && lines[end]!.trim() !== '```') end++;
      const script = lines.slice(start, end).join('\n');
      const m = pending;
      pending = undefined;
      i = end;
      if (m === undefined) {
        problems.push(`line ${start}: an sh block without a <!-- readme-test: run|start|skip --> marker before it`);
      } else if (m.kind === 'run') {
        steps.push({ kind: 'run', line: start, script, ...(m.attrs.expect !== undefined && { expect: m.attrs.expect }), ...(m.attrs.await !== undefined && { await: m.attrs.await }) });
      } else if (m.kind === 'start' && m.attrs.until) {
        steps.push({ kind: 'start', line: start, script, until: m.attrs.until, ...(m.attrs.stopped !== undefined && { stopped: m.attrs.stopped }) });
      } else if (m.kind === 'skip' && m.attrs.reason) {
        steps.push({ kind: 'skip', line: start, script, reason: m.attrs.reason });
      } else {
        problems.push(`line ${m.line}: marker "${m.kind}" needs ${m.kind === 'start' ? 'until="…"' : m.kind === 'skip' ? 'reason="…"' : 'to be run, start, skip or stop'}`);
      }
      continue;
    }
    // A marker applies to the block right after it (blank lines aside).
    if (line !== '' && pending !== undefined) {
      problems.push(`line ${pending.line}: a readme-test marker not followed by an sh block`);
      pending = undefined;
    }
  }
  if (problems.length > 0) throw new Error(`README.md:\n${problems.join('\n')}`);
  return steps;
}

/** The files of README.md's vitest example: each ```ts block after a <!-- readme-test: vitest file="…" --> marker. */
export function readmeVitestFiles(text: string): { file: string; line: number; code: string }[] {
  const lines = text.split('\n');
  const files: { file: string; line: number; code: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const marker = MARKER.exec(lines[i]!.trim());
    if (marker?.[1] !== 'vitest') continue;
    const file = /file="([^"]*)"/.exec(marker[2]!)?.[1];
    let start = i + 1;
    while (start < lines.length && lines[start]!.trim() === '') start++;
    if (file === undefined || !/^```ts\s*$/.test(lines[start]!.trim())) throw new Error(`README.md line ${i + 1}: a vitest marker needs file="…" and a \`\`\`ts block after it`);
    let end = start + 1;
    while (end < lines.length && lines[end]!.trim() !== '```') end++;
    files.push({ file, line: start + 2, code: lines.slice(start + 1, end).join('\n') + '\n' });
    i = end;
  }
  return files;
}

/** The environment of a new user's shell: none of this test run's npm or spoolerd settings. */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'SPOOL_DIR' || k.startsWith('SPOOLERD_') || k.toLowerCase().startsWith('npm_') || k === 'INIT_CWD' || k.startsWith('VITEST') || k === 'NODE_OPTIONS') continue;
    env[k] = v;
  }
  // Speed only: dependencies come from npm's cache when they are there.
  return { ...env, npm_config_prefer_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
}

interface Running {
  step: Step;
  child: ChildProcess;
  output: string;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
  exited: Promise<void>;
}

/** Runs a block in `cwd` as sh does; the folder it ends in is written to `cwdFile`. */
function shell(script: string, cwd: string, cwdFile: string | undefined): Running {
  const full = `set -e\n${cwdFile ? '' : "trap 'true' INT\n"}${script}\n${cwdFile ? `pwd >| '${cwdFile}'\n` : ''}`;
  const child = spawn('sh', ['-c', full], { cwd, env: userEnv(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const r: Running = { step: undefined as never, child, output: '', exited: undefined as never };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (r.output += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (r.output += d));
  r.exited = new Promise((done) => child.on('exit', (code, signal) => ((r.exit = { code, signal }), done())));
  return r;
}

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

describe('README.md', () => {
  it('marks every sh block: run, start (with until), or skip (with a reason)', () => {
    expect(() => readmeSteps(readme)).not.toThrow();
    // The check itself catches an unmarked block, a skip without a reason, and a start without until.
    expect(() => readmeSteps('text\n\n```sh\necho hi\n```\n')).toThrow(/line 3: an sh block without/);
    expect(() => readmeSteps('<!-- readme-test: skip -->\n```sh\necho hi\n```\n')).toThrow(/needs reason/);
    expect(() => readmeSteps('<!-- readme-test: start -->\n```sh\nsleep 9\n```\n')).toThrow(/needs until/);
    expect(() => readmeSteps('<!-- readme-test: run -->\n\nSome text.\n\n```sh\necho hi\n```\n')).toThrow(/not followed by an sh block/);
    expect(readmeSteps('<!-- readme-test: run expect="hi" -->\n\n```sh\necho hi\n```\n<!-- readme-test: stop -->\n')).toEqual([
      { kind: 'run', line: 3, script: 'echo hi', expect: 'hi' },
      { kind: 'stop', line: 6 },
    ]);
  });

  it('runs an example of every kit in kits/, and waits for the daemon to run what it enqueued', () => {
    const runs = readmeSteps(readme).filter((s) => s.kind === 'run' && s.await !== undefined) as { script: string }[];
    const kits = readdirSync(join(ROOT, 'kits'));
    expect(kits.length).toBeGreaterThan(0);
    for (const kit of kits) expect(runs.some((s) => s.script.includes(`kits/${kit}`)), `README.md runs no example of kits/${kit}`).toBe(true);
  });

  it('its vitest example ("Testing your tasks") passes, inline, and makes no spool folder', { timeout: 60_000 }, async () => {
    const files = readmeVitestFiles(readme);
    expect(files.map((f) => f.file).sort()).toEqual(['tasks.test.ts', 'tasks.ts', 'vitest.config.ts']);
    // Inside this checkout, so that 'spoolerd' resolves to this package (its built dist/, as for a user).
    mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
    const dir = mkdtempSync(join(ROOT, 'test-artifacts', 'readme-inline-'));
    try {
      for (const f of files) writeFileSync(join(dir, f.file), f.code);
      const env = { ...process.env };
      delete env.SPOOLERD_INLINE;
      delete env.SPOOL_DIR;
      for (const k of Object.keys(env)) if (k.startsWith('VITEST')) delete env[k];
      const run = spawnSync(process.execPath, [join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', '--root', dir], { cwd: dir, env, encoding: 'utf8', timeout: 50_000 });
      // eslint-disable-next-line no-control-regex
      const output = `${run.stdout}${run.stderr}`.replace(/\u001b\[[0-9;]*m/g, '');
      expect(run.status, output).toBe(0);
      expect(output).toMatch(/Tests\s+\S*4 passed/);
      // Spooler.fromEnv() would have made ./spool: inline, nothing is made.
      expect(existsSync(join(dir, 'spool'))).toBe(false);
      // (vitest keeps its cache in node_modules/.vite)
      expect(readdirSync(dir).filter((n) => n !== 'node_modules').sort()).toEqual(['tasks.test.ts', 'tasks.ts', 'vitest.config.ts']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('its commands, pasted into a copy of the repository', () => {
    // Made by the test, not when the file is collected, so a filtered-out run leaves nothing behind.
    let base: string | undefined;
    const started: Running[] = [];
    afterAll(async () => {
      for (const r of started) if (r.exit === undefined) process.kill(-r.child.pid!, 'SIGKILL');
      await Promise.all(started.map((r) => r.exited));
      if (base !== undefined) rmSync(base, { recursive: true, force: true });
    });

    it('work in order, as written', { timeout: 120_000 }, async () => {
      base = mkdtempSync(join(tmpdir(), 'spoolerd-readme-'));
      const clone = join(base, 'spoolerd');
      const skipDirs = new Set(['node_modules', '.git', 'demo-spool']);
      cpSync(ROOT, clone, {
        recursive: true,
        preserveTimestamps: true, // so dist/ is as up to date as here, and the demo does not rebuild
        filter: (src) => !skipDirs.has(basename(src)) && !src.endsWith('.tgz') && !src.endsWith('.cpuprofile'),
      });
      symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(clone, 'node_modules'));

      let cwd = clone;
      const cwdFile = join(base, '.cwd');
      const stepsRun: string[] = [];
      const where = (s: Step) => `README.md line ${s.line}`;
      for (const step of readmeSteps(readme)) {
        if (step.kind === 'skip') continue;
        if (step.kind === 'stop') {
          for (const r of started.filter((s) => s.exit === undefined)) {
            process.kill(-r.child.pid!, 'SIGINT'); // what Ctrl-C does: the whole foreground process group
            await Promise.race([r.exited, new Promise((_, fail) => setTimeout(() => fail(new Error(`${where(r.step)} did not stop on Ctrl-C:\n${r.output}`)), 30_000))]);
            // npm and npx exit 130 when they got the Ctrl-C, whatever the command they ran exited with: the "stopped" line says the daemon stopped cleanly.
            const npmRun = /^(npm run|npx) /.test((r.step as { script: string }).script);
            expect(r.exit, `${where(r.step)} after Ctrl-C:\n${r.output}`).toEqual({ code: npmRun && r.exit?.code === 130 ? 130 : 0, signal: null });
            const stopped = (r.step as { stopped?: string }).stopped;
            if (stopped !== undefined) expect(r.output, where(r.step)).toContain(stopped);
            else expect(r.output, where(r.step)).toMatch(/"msg":"stopped"/);
          }
          continue;
        }
        if (step.kind === 'start') {
          const r = shell(step.script, cwd, undefined);
          r.step = step;
          started.push(r);
          await waitFor(() => r.output.includes(step.until) || r.exit !== undefined, { timeoutMs: 30_000, what: `${where(step)} to print ${JSON.stringify(step.until)}`, explain: () => r.output });
          expect(r.exit, `${where(step)} exited early:\n${r.output}`).toBeUndefined();
          stepsRun.push(`start ${step.line}`);
          continue;
        }
        const r = shell(step.script, cwd, cwdFile);
        await Promise.race([r.exited, new Promise((_, fail) => setTimeout(() => fail(new Error(`${where(step)} still runs after 60 s:\n${r.output}`)), 60_000))]);
        expect(r.exit, `${where(step)}:\n${step.script}\n--- output:\n${r.output}`).toEqual({ code: 0, signal: null });
        if (step.expect !== undefined) expect(r.output, where(step)).toContain(step.expect);
        if (step.await !== undefined) {
          const last = started.at(-1)!;
          await waitFor(() => last.output.includes(step.await!), { timeoutMs: 20_000, what: `${where(last.step)} to print ${JSON.stringify(step.await)} after ${where(step)}`, explain: () => last.output });
        }
        cwd = readFileSync(cwdFile, 'utf8').trim();
        stepsRun.push(`run ${step.line}`);
      }
      expect(started.every((r) => r.exit !== undefined), 'a started command was never stopped: add <!-- readme-test: stop --> after it').toBe(true);
      expect(stepsRun.length).toBeGreaterThan(5);
    });
  });
});
