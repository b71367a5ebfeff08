/**
 * Spawning the real `spool` binary (dist/cli/spool.js, built by `npm test`
 * before vitest runs) on real directories.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');
export const SPOOL_BIN = join(ROOT, 'dist/cli/spool.js');

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `spool <args>` to completion (with a timeout, so a hang fails the test instead of stalling it). */
export function spool(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): RunResult {
  const r = spawnSync(process.execPath, [SPOOL_BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, SPOOL_DIR: '', ...options.env },
    timeout: options.timeoutMs ?? 30_000,
    maxBuffer: 256 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Like spool(), without blocking the test's event loop (for tests that run something alongside). */
export function spoolAsync(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [SPOOL_BIN, ...args], { env: { ...process.env, SPOOL_DIR: '', ...options.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

/** `spool ls --json` parsed. */
export function lsJson(dir: string, extra: string[] = []): Array<Record<string, unknown>> {
  const r = spool(['ls', '--dir', dir, '--json', ...extra]);
  if (r.code !== 0) throw new Error(`spool ls failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Array<Record<string, unknown>>;
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = 'spoolerd-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Tests that run the binaries as a throwaway user need every folder above the
 * checkout to be searchable by others. A checkout inside a 0700 folder (as
 * `mktemp -d` makes) fails them with "Cannot find module"; this says why instead.
 */
export function assertCheckoutReachableByOthers(): void {
  for (let dir = ROOT; ; dir = dirname(dir)) {
    const mode = statSync(dir).mode;
    if ((mode & 0o001) === 0) {
      throw new Error(`${dir} (mode ${(mode & 0o777).toString(8)}) is not searchable by other users, so the throwaway user these tests run the binaries as cannot reach ${ROOT}: clone into a folder others can traverse, or chmod o+x ${dir}`);
    }
    if (dirname(dir) === dir) return;
  }
}
