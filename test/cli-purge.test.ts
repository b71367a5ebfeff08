/**
 * `spool purge` through the real binary (README, "Retention"): by state and
 * age, with its failure records, --dry-run, --json, never a running task, a
 * progress bar only when a person watches (stdout a terminal) and a count at the end.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SPOOL_BIN, spool, tempDir } from './helpers/cli.js';

const DAY = 86_400_000;
let seq = 0;
let root: string;
let cleanup: () => void;
beforeEach(() => {
  const t = tempDir('spool-purge-');
  cleanup = t.cleanup;
  root = join(t.dir, 'spool');
  for (const d of ['tmp', 'incoming', 'pending', 'active', 'dead', 'quarantine', 'archive', 'state', 'locks']) mkdirSync(join(root, d), { recursive: true });
});
afterEach(() => cleanup());

/** A task file created `ageDays` ago in `where`; a dead one gets its failure record. */
function put(where: string, ageDays: number): { id: string; file: string } {
  const created = Date.now() - ageDays * DAY;
  const id = String(created) + (++seq).toString(16).padStart(16, '0');
  const file = `50-${created}-${id}-a${where === 'dead' ? 3 : 0}-job.json`;
  mkdirSync(join(root, where), { recursive: true });
  writeFileSync(join(root, where, file), JSON.stringify({ version: 1, type: 'fcall', args: [] }));
  if (where === 'dead') writeFileSync(join(root, 'state', `${id}.json`), JSON.stringify({ id, name: 'job', attempts: 3, at: created, error: { message: 'boom' } }));
  return { id, file };
}
const files = (where: string) => readdirSync(join(root, where)).filter((f) => !f.startsWith('.')).sort();

describe('spool purge', () => {
  it('--state dead --older-than 7d deletes old dead letters with their failure records, and says how many', () => {
    const old = [put('dead', 10), put('dead', 8)];
    const young = put('dead', 1);
    const archived = put('archive', 30);
    const due = put('incoming', 30);
    expect(spool(['purge', '--dir', root, '--state', 'dead', '--older-than', '7d'])).toEqual({ code: 0, stdout: 'purged 2 tasks\n', stderr: '' });
    expect(files('dead')).toEqual([young.file]);
    expect(files('state')).toEqual([`${young.id}.json`]);
    expect(files('archive')).toEqual([archived.file]);
    expect(files('incoming')).toEqual([due.file]);
    expect(old.every((t) => !files('state').includes(`${t.id}.json`))).toBe(true);
  });

  it('--dry-run deletes nothing and says what it would; --json gives the counts (and with --dry-run the tasks)', () => {
    const a = put('archive', 10);
    put('archive', 1);
    expect(spool(['purge', '--dir', root, '--state', 'archived', '--older-than', '7d', '--dry-run'])).toEqual({
      code: 0,
      stdout: 'would purge 1 task (archived, created over 7d ago)\n',
      stderr: '',
    });
    const dry = spool(['purge', '--dir', root, '--state', 'archived', '--older-than', '7d', '--dry-run', '--json']);
    expect(JSON.parse(dry.stdout)).toEqual({ dryRun: true, purged: 1, tasks: [{ id: a.id, state: 'archived', file: a.file }] });
    expect(files('archive')).toHaveLength(2);
    const done = spool(['purge', '--dir', root, '--state', 'archived', '--older-than', '7d', '--json']);
    expect(done.code).toBe(0);
    expect(JSON.parse(done.stdout)).toEqual({ dryRun: false, purged: 1, running: 0, gone: 0, stranded: 0 });
    expect(files('archive')).toHaveLength(1);
  });

  it('refuses running tasks (--state active) and leaves claimed ones alone', () => {
    const r = spool(['purge', '--dir', root, '--state', 'active']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('running tasks (--state active) are never purged');
    mkdirSync(join(root, 'active', 'host-1-abcdef'));
    const running = put('active/host-1-abcdef', 30);
    expect(spool(['purge', '--dir', root, '--state', 'due', 'scheduled', 'dead']).stdout).toBe('purged 0 tasks\n');
    expect(files('active/host-1-abcdef')).toEqual([running.file]);
  });

  const hasScript = !spawnSync('script', ['--version']).error;
  it.skipIf(!hasScript)('draws a progress bar when stdout is a terminal, none when it is piped', () => {
    for (let i = 0; i < 300; i++) put('dead', 10);
    const shell = (args: string) => `${process.execPath} ${SPOOL_BIN} ${args}`;
    const onTty = spawnSync('script', ['-qec', shell(`purge --dir ${root} --state dead`), '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
    expect(onTty.status).toBe(0);
    expect(onTty.stdout).toMatch(/spool purge \[[^\]]*\] \d+\/300 tasks/);
    expect(onTty.stdout).toContain('purged 300 tasks');
    for (let i = 0; i < 300; i++) put('dead', 10);
    // stdout piped, stderr still the terminal: no bar.
    const piped = spawnSync('script', ['-qec', `${shell(`purge --dir ${root} --state dead`)} | cat`, '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
    expect(piped.status).toBe(0);
    expect(piped.stdout).not.toContain('spool purge [');
    expect(piped.stdout).toContain('purged 300 tasks');
    expect(files('dead')).toEqual([]);
    expect(files('state')).toEqual([]);
  });
});
