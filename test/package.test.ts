/**
 * spoolerd installed into a project of one's own, as README's "Use it in your
 * project" says: `npm pack` of this repository, `npm install` of the tarball
 * into a fresh project, then a TypeScript task module that imports 'spoolerd'
 * compiled against the package's own types (and the shipped
 * examples/tasks.ts, copied as a start), served by `npx spoolerd`, fed by
 * `npx spool`. (README's own commands cover the .mjs module: readme.test.ts.)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';
import { waitFor } from './helpers/daemon.js';

const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

/** A user's shell: none of this test run's npm or spoolerd settings. */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'SPOOL_DIR' || k.startsWith('SPOOLERD_') || k.toLowerCase().startsWith('npm_') || k === 'INIT_CWD' || k.startsWith('VITEST')) continue;
    env[k] = v;
  }
  return { ...env, npm_config_prefer_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
}

function run(command: string, args: string[], cwd: string) {
  const r = spawnSync(command, args, { cwd, env: userEnv(), encoding: 'utf8', timeout: 90_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('spoolerd installed into a project from an npm pack tarball', () => {
  const base = mkdtempSync(join(tmpdir(), 'spoolerd-package-'));
  const project = join(base, 'my-project');
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(base, { recursive: true, force: true });
  });

  it('compiles TypeScript task modules against its types and runs them with npx spoolerd', { timeout: 150_000 }, async () => {
    const pack = run('npm', ['pack', '--pack-destination', base, ROOT], base);
    expect(pack.code, pack.out).toBe(0);
    const tarball = readdirSync(base).find((f) => f.endsWith('.tgz'))!;
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'my-project', version: '1.0.0', type: 'module', private: true }));
    const install = run('npm', ['install', join(base, tarball)], project);
    expect(install.code, install.out).toBe(0);

    // Its own module, and the shipped example copied as a start: both import 'spoolerd'.
    writeFileSync(
      join(project, 'tasks.ts'),
      `import { Spooler, taskContext, skipped } from 'spoolerd';
const spooler = Spooler.fromEnv();
export const hello = spooler.task(function hello(name: string) {
  if (!name) return skipped('no name');
  console.log(\`hello, \${name} (attempt \${taskContext().attempt})\`);
});
export const twice = spooler.task((n: number) => console.log(\`twice: \${2 * n}\`), { name: 'twice', priority: 10 });
`,
    );
    copyFileSync(join(project, 'node_modules/spoolerd/examples/tasks.ts'), join(project, 'example-tasks.ts'));
    const tsconfig = {
      compilerOptions: { module: 'nodenext', target: 'es2022', strict: true, outDir: 'dist', types: ['node'], typeRoots: [join(ROOT, 'node_modules/@types')], skipLibCheck: false },
      include: ['tasks.ts', 'example-tasks.ts'],
    };
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(tsconfig));
    const tsc = run(process.execPath, [TSC, '-p', project], project);
    expect(tsc.code, tsc.out).toBe(0);

    // The types are real (not any): a wrong argument type does not compile.
    writeFileSync(join(project, 'wrong.ts'), `import { hello } from './tasks.js';\nawait hello(42);\n`);
    writeFileSync(join(project, 'tsconfig.wrong.json'), JSON.stringify({ ...tsconfig, include: ['wrong.ts', 'tasks.ts'], compilerOptions: { ...tsconfig.compilerOptions, noEmit: true } }));
    const wrong = run(process.execPath, [TSC, '-p', join(project, 'tsconfig.wrong.json')], project);
    expect(wrong.code).not.toBe(0);
    expect(wrong.out).toContain("Argument of type 'number' is not assignable to parameter of type 'string'");

    const daemon = spawn('npx', ['spoolerd', '--dir', './spool', '--create', '--import', './dist/tasks.js', '--log-format', 'json'], { cwd: project, env: userEnv(), detached: true });
    children.push(daemon);
    let output = '';
    daemon.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d));
    daemon.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
    await waitFor(() => output.includes('"msg":"serving spool"'), { what: 'npx spoolerd to serve', timeoutMs: 30_000, explain: () => output });
    for (const args of [['hello', '"typescript"'], ['twice', '21']]) {
      const add = run('npx', ['spool', 'add', ...args, '--dir', './spool'], project);
      expect(add.code, add.out).toBe(0);
    }
    await waitFor(() => output.includes('hello, typescript (attempt 0)') && output.includes('twice: 42'), { what: 'both tasks to run', explain: () => output });
    process.kill(-daemon.pid!, 'SIGINT');
    await waitFor(() => output.includes('"msg":"stopped"'), { what: 'a graceful stop', explain: () => output });
  });

  it('runs the bundled demo with npx spoolerd --demo', { timeout: 60_000 }, async () => {
    const demo = spawn('npx', ['spoolerd', '--demo', '--log-format', 'json'], { cwd: project, env: userEnv(), detached: true });
    children.push(demo);
    let output = '';
    demo.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d));
    demo.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
    await waitFor(() => output.includes('hello, world'), { what: 'the demo to run its tasks', timeoutMs: 30_000, explain: () => output });
    // Installed, the demo's hint names the command that works there.
    expect(output).toContain('in another terminal: npx spool ls --dir ./demo-spool');
    process.kill(-demo.pid!, 'SIGINT');
    await waitFor(() => output.includes('"msg":"stopped"'), { what: 'a graceful stop', explain: () => output });
  });
});
