/**
 * The demo a new user runs first (`npm run demo`: scripts/build-if-stale.mjs,
 * then `spoolerd --demo`): it builds only when a source changed, says so, and
 * its log lines add up: what it enqueued is what the daemon reports serving,
 * then running, skipping or leaving scheduled, with the tasks counted by the
 * worker process that ran them.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { lsJson, ROOT, tempDir } from './helpers/cli.js';
import { killLeftoverDaemons, startDaemon, waitFor } from './helpers/daemon.js';
import { DEFAULTS } from '../spooler/options.js';

afterEach(() => killLeftoverDaemons());

describe('spoolerd --demo', () => {
  it('enqueues tasks, some scheduled, and its counts add up from "enqueued" to "stopped"', async () => {
    const { dir, cleanup } = tempDir('spoolerd-demo-');
    try {
      const d = startDaemon({ args: ['--demo'], cwd: dir, create: false });
      const enqueued = await d.waitForLog((l) => l.msg.startsWith('demo: enqueued'));
      const m = /^demo: enqueued (\d+) tasks into (\S+): (\d+) due now, 1 in 3 s, (\d+) scheduled in /.exec(enqueued.msg);
      expect(m, enqueued.msg).not.toBeNull();
      const [total, spool, dueNow, later] = [Number(m![1]), m![2]!.replace(/:$/, ''), Number(m![3]), Number(m![4])];
      expect(spool).toBe(join(realpathSync(dir), 'demo-spool'));
      expect(dueNow + 1 + later).toBe(total);
      expect(later).toBeGreaterThan(0);

      const serving = await d.waitForLog((l) => l.msg === 'serving spool');
      expect([serving.due, serving.scheduled]).toEqual([dueNow, 1 + later]);
      // The 3 s one ran too; what is left is the scheduled ones, which `spool ls` shows.
      await waitFor(() => d.stdout.includes('REMINDER: THIS ONE WAS POSTPONED BY 3 SECONDS'), { what: 'the postponed task', timeoutMs: 20_000 });
      await waitFor(() => lsJson(spool).length === later && lsJson(spool), { what: 'only the scheduled tasks left', timeoutMs: 10_000 });
      expect(lsJson(spool).map((e) => [e.name, e.state])).toEqual(Array.from({ length: later }, () => ['remind', 'scheduled']));

      expect(await d.stop('SIGINT')).toEqual({ code: 0, signal: null });
      const stopped = d.logsWith('stopped').at(-1)!;
      const skipped = d.logsWith('task skipped');
      expect(skipped.map((l) => [l.task, l.attempt, l.reason])).toEqual([['remind', 0, 'nothing to remind of']]);
      expect(stopped).toEqual(expect.objectContaining({ processed: dueNow, skipped: 1, rescheduled: 0, dead: 0, lost: 0, pending: later }));
      expect((stopped.processed as number) + (stopped.skipped as number) + (stopped.pending as number)).toBe(total);
      // Which process ran what: every task printed its pid, and the counts by worker add up to the tasks run.
      const byWorker = stopped.tasksByWorker as Record<string, number>;
      expect(Object.values(byWorker).reduce((a, b) => a + b, 0)).toBe(dueNow + 1);
      const printedPids = [...d.stdout.matchAll(/^\[pid (\d+)\] /gm)].map((p) => p[1]!);
      expect(printedPids).toHaveLength(dueNow); // the skipped task prints nothing
      for (const pid of printedPids) expect(Object.keys(byWorker)).toContain(pid);
      // The configured worker processes, not the live ones (all exited by then).
      expect([stopped.processes, stopped.processesAlive]).toEqual([DEFAULTS.processes, 0]);
    } finally {
      cleanup();
    }
  });
});

describe('npm run demo (scripts/build-if-stale.mjs)', () => {
  const base = mkdtempSync(join(tmpdir(), 'spoolerd-demo-build-'));
  const clone = join(base, 'spoolerd');
  afterAll(() => rmSync(base, { recursive: true, force: true }));
  const buildIfStale = () => spawnSync(process.execPath, ['scripts/build-if-stale.mjs'], { cwd: clone, encoding: 'utf8', timeout: 120_000 });

  it('does not build when dist/ is up to date, and builds, saying so, once a source changed', { timeout: 180_000 }, () => {
    cpSync(ROOT, clone, { recursive: true, preserveTimestamps: true, filter: (src) => !['node_modules', '.git', 'demo-spool'].includes(basename(src)) });
    symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(clone, 'node_modules'));

    const quick = buildIfStale();
    expect(quick.status, quick.stderr).toBe(0);
    expect(quick.stderr + quick.stdout).toBe('');

    // A source newer than its output: one build, announced, after which the output is newer.
    const source = join(clone, 'examples/demo.ts');
    const output = join(clone, 'dist/examples/demo.js');
    // Older than the source, whenever the checkout was made.
    const beforeSource = new Date(statSync(source).mtimeMs - 3_600_000);
    utimesSync(output, beforeSource, beforeSource);
    const built = buildIfStale();
    expect(built.status, built.stderr).toBe(0);
    expect(built.stderr).toContain('building… (examples/demo.ts changed since the last build)');
    expect(statSync(output).mtimeMs).toBeGreaterThanOrEqual(statSync(source).mtimeMs);
    expect(readFileSync(output, 'utf8')).toContain('enqueueExamples');

    const again = buildIfStale();
    expect(again.status).toBe(0);
    expect(again.stderr + again.stdout).toBe('');
  });
});
