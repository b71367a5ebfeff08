/**
 * Running the foreign-language fixtures of test/fixtures/ with Debian's
 * python3 and python3-msgpack (installed by .ci/run).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, type RunResult } from './cli.js';

export const PYTHON = '/usr/bin/python3';
export const FIXTURES = join(ROOT, 'test/fixtures');

/** Throws (so the suite fails, rather than skips) when python3-msgpack is missing. */
export function requirePythonMsgpack(): void {
  const r = spawnSync(PYTHON, ['-c', 'import msgpack'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`these tests need ${PYTHON} with msgpack: apt-get install -y python3-msgpack (${r.error?.message ?? r.stderr.trim()})`);
  }
}

/** Runs test/fixtures/<script> with `args`, `input` on stdin, to completion (a hang is a failure). */
export function runPython(script: string, args: string[], options: { input?: string; timeoutMs?: number } = {}): RunResult {
  const r = spawnSync(PYTHON, [join(FIXTURES, script), ...args], {
    encoding: 'utf8',
    input: options.input ?? '',
    timeout: options.timeoutMs ?? 30_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs a fixture that must succeed and print JSON; returns the parsed output. */
export function runPythonJson<T>(script: string, args: string[], input?: string): T {
  const r = runPython(script, args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`${script} exited with ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
