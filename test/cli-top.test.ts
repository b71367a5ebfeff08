/**
 * `spool top`, through the real binary: one plain frame with --once (and when
 * stdout is not a terminal), and the live view under a real pseudo-terminal
 * (util-linux `script`): it enters the alternate screen, redraws, and on
 * SIGINT or SIGTERM leaves it, shows the cursor again and exits 0.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SPOOL_BIN, spool, tempDir } from './helpers/cli.js';
import { waitFor } from './helpers/daemon.js';
import { statusFile } from './helpers/status-files.js';

let seq = 0;
function taskName(name: string, due: number, attempts = 0): string {
  const id = String(Date.now() - 3_600_000) + (++seq).toString(16).padStart(16, '0');
  return `50-${String(due).padStart(13, '0')}-${id}-a${attempts}-${name}.json`;
}

let dir: string;
let cleanup: () => void;
let root: string;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('spool-top-'));
  root = join(dir, 'spool');
  for (const d of ['tmp', 'incoming', 'pending', 'active', 'dead', 'quarantine', 'state']) mkdirSync(join(root, d), { recursive: true });
  const now = Date.now();
  for (let i = 0; i < 3; i++) writeFileSync(join(root, 'pending', taskName('due_task', now - 1000)), '{}');
  writeFileSync(join(root, 'incoming', taskName('later', now + 3_600_000)), '{}');
  writeFileSync(join(root, 'dead', taskName('broken', now - 1000, 4)), '{}');
});
afterEach(() => cleanup());

describe('spool top --once', () => {
  it('prints counts by state as plain text, and says there are no status files', () => {
    const r = spool(['top', '--once', '--dir', root]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(root);
    expect(r.stdout).toContain('active 0  due 3  scheduled 1  invalid 0  dead 1  quarantined 0');
    expect(r.stdout).toContain('daemons: no status files');
    expect(r.stdout).not.toContain('\x1b');
  });

  it("shows live daemons' running tasks from their status files, escaped, and not those of a stale daemon", () => {
    const now = Date.now();
    mkdirSync(join(root, 'active', 'owner-live'));
    mkdirSync(join(root, 'active', 'owner-gone'));
    writeFileSync(
      join(root, 'state', 'daemon-owner-live.json'),
      JSON.stringify(statusFile('owner-live', { host: 'box\x1b[2J', startedAt: now - 5000, updatedAt: now, running: [{ id: 'task-running-1', name: 'evil\x1b]0;pwned\x07', attempt: 2, startedAt: now - 3000 }] })),
    );
    writeFileSync(
      join(root, 'state', 'daemon-owner-gone.json'),
      JSON.stringify(statusFile('owner-gone', { updatedAt: now - 60_000, running: [{ id: 'task-of-the-dead', name: 'x', attempt: 0, startedAt: now - 70_000 }] })),
    );
    const r = spool(['top', '--once', '--dir', root]);
    // The task had run 3 s when the status file was written; a slow start of `spool` adds whole seconds.
    const lateBy = Math.ceil((Date.now() - now) / 1000);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('daemons: 1 serving, 1 stale');
    expect(r.stdout).toContain('RUNNING (1)');
    const row = /task-running-1 +evil\\x1b\]0;pwned\\x07 +2 +(\d+)s +box\\x1b\[2J/.exec(r.stdout);
    expect(row, r.stdout).not.toBeNull();
    expect(Number(row![1])).toBeGreaterThanOrEqual(3);
    expect(Number(row![1])).toBeLessThanOrEqual(3 + lateBy);
    expect(r.stdout).not.toContain('task-of-the-dead');
    expect(r.stdout).not.toContain('\x1b');
  });

  it('takes several spools, and refuses one that does not exist', () => {
    const other = join(dir, 'other');
    mkdirSync(join(other, 'incoming'), { recursive: true });
    const r = spool(['top', '--once', '--dir', root, '--dir', other]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`\n${root}\n`);
    expect(r.stdout).toContain(`\n${other}\n  active 0  due 0`);
    const missing = spool(['top', '--once', '--dir', join(dir, 'nope')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('does not exist');
  });

  it('without a terminal and without --once, prints one frame and exits', () => {
    const r = spool(['top', '--dir', root], { timeoutMs: 10_000 });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('due 3');
    expect(r.stdout).not.toContain('\x1b');
  });
});

const hasScript = spawnSync('script', ['--version']).status === 0;

describe.skipIf(!hasScript)('spool top on a terminal', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`redraws in place on the alternate screen and restores the screen on ${signal}`, async () => {
      // The shell prints its pid and then becomes `spool top` (exec): that pid is the one to signal.
      const command = `sh -c 'echo PID=$$; exec "${process.execPath}" "${SPOOL_BIN}" top --dir "${root}" --interval 100'`;
      const child = spawn('script', ['-qefc', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      const exited = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
      try {
        // Two frames drawn: the second starts with the cursor sent home again.
        await waitFor(() => (out.split('\x1b[H').length > 2 && out.includes('due 3') ? true : undefined), { timeoutMs: 15_000, what: `two frames of spool top; so far: ${JSON.stringify(out)}` });
        const pid = Number(/PID=(\d+)/.exec(out)![1]);
        expect(out).toContain('\x1b[?1049h');
        expect(out).not.toContain('\x1b[?1049l');
        // A task finished meanwhile shows in a later frame: the view is live.
        writeFileSync(join(root, 'dead', taskName('broken', Date.now(), 4)), '{}');
        await waitFor(() => (out.includes('dead 2') ? true : undefined), { timeoutMs: 15_000, what: 'a frame with the new dead letter' });
        process.kill(pid, signal);
        expect(await exited).toBe(0);
        // The very end: cursor shown and main screen back, after the last frame.
        expect(out.trimEnd().endsWith('\x1b[?25h\x1b[?1049l')).toBe(true);
      } finally {
        child.kill('SIGKILL');
      }
    });
  }
});
