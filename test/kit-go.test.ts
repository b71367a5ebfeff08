/**
 * The Go kit (kits/go): `go test` in its folder, with Debian's golang-go and no
 * network (GOPROXY=off, GOTOOLCHAIN=local, a fresh GOCACHE and GOPATH). With
 * SPOOLERD_ROOT set to this checkout its tests include the conformance vectors
 * (every produce case through dist/conformance/check.js, every refuse case
 * refused) and an end-to-end run against the real spoolerd (mixed priorities,
 * postpones, unique keys; each task once, priority order among due tasks,
 * none early; a result read back). They must PASS here, not skip.
 *
 * Skipped, saying why, only where `go` is not installed (CI installs it).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from './helpers/cli.js';

const KIT = join(ROOT, 'kits/go');
const goVersion = spawnSync('go', ['version'], { encoding: 'utf8' });
const haveGo = goVersion.error === undefined && goVersion.status === 0;
if (!haveGo) {
  const why = `go is not installed (apt-get install -y golang-go): ${goVersion.error?.message ?? goVersion.stderr}`;
  if (process.env.CI) throw new Error(`CI must run the Go kit's tests, but ${why}`);
  console.log(`skipping test/kit-go.test.ts: ${why}`);
}

const { dir, cleanup } = tempDir('kit-go-');
afterAll(() => cleanup());

const goEnv = {
  ...process.env,
  GOPROXY: 'off',
  GOTOOLCHAIN: 'local',
  GOFLAGS: '-mod=mod',
  GOCACHE: join(dir, 'gocache'),
  GOPATH: join(dir, 'gopath'),
  GO111MODULE: 'on',
  SPOOLERD_ROOT: ROOT,
};

describe.skipIf(!haveGo)('the Go kit', () => {
  it('is gofmt-formatted', () => {
    const r = spawnSync('gofmt', ['-l', '.'], { cwd: KIT, encoding: 'utf8' });
    expect(r.error).toBeUndefined();
    expect(r.stdout, 'files gofmt would change (run gofmt -w kits/go)').toBe('');
  });

  it('passes go test: its own tests, the conformance vectors through the checker, and a real daemon', () => {
    // -vet=off: a cold vet of the standard library's imports costs ~5 s of CPU; gofmt is checked above.
    const r = spawnSync('go', ['test', '-vet=off', '-count=1', '-v', '.'], { cwd: KIT, env: goEnv, encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
    const output = `${r.stdout}${r.stderr}`;
    expect(r.error, output).toBeUndefined();
    expect(r.status, output).toBe(0);
    for (const test of ['TestEnqueueWritesOneCompleteFileIntoIncoming', 'TestRefusedInputWritesNothing', 'TestAUniqueKeyHeldReturnsItsHolder', 'TestWaitReadsTheRecordAndTypesEachEnding', 'TestConformance', 'TestDaemonEndToEnd']) {
      expect(output, `${test} did not pass`).toMatch(new RegExp(`^--- PASS: ${test} `, 'm'));
    }
    expect(output, 'a test skipped').not.toMatch(/^--- SKIP/m);
    expect(output).toMatch(/produce: \d+ passed, 0 failed/);
  });
});
