/**
 * Dead-letter triage and bulk work through the real `spool` binary (README,
 * "The `spool` command"; issue 14 part 2): rm and retry by filter and by ids
 * on stdin, one listing for any number of ids, ids by the end of their random
 * part, show's last error, ls's ERROR column and --limit that stops early,
 * the progress bar only on a terminal, and the exit codes.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ROOT, SPOOL_BIN, lsJson, spool, tempDir, type RunResult } from './helpers/cli.js';

const MIN = 60_000;
const DAY = 24 * 60 * MIN;

let seq = 0;
interface Made {
  id: string;
  file: string;
  path: string;
}

/** Writes a valid JSON task into `<root>/<where>/`; `rand` sets the 16 hex digits of its id. */
function put(where: string, t: { name?: string; age?: number; attempts?: number; rand?: string; due?: number } = {}): Made {
  const now = Date.now();
  const created = now - (t.age ?? MIN);
  const id = String(created) + (t.rand ?? (++seq).toString(16).padStart(16, '0'));
  const file = `50-${t.due ?? now - MIN}-${id}-a${t.attempts ?? 0}-${t.name ?? 'job'}.json`;
  mkdirSync(join(root, where), { recursive: true });
  const path = join(root, where, file);
  writeFileSync(path, JSON.stringify({ version: 1, type: 'fcall', args: [id] }));
  return { id, file, path };
}

/** What a daemon writes before it buries a task: state/<id>.json. */
function failureRecord(t: Made, message: string, stack: string): void {
  writeFileSync(
    join(root, 'state', `${t.id}.json`),
    JSON.stringify({ id: t.id, name: 'job', attempts: 3, at: Date.now(), error: { name: 'Error', message, stack } }) + '\n',
  );
}

function files(where: string): string[] {
  return readdirSync(join(root, where)).filter((f) => !f.startsWith('.')).sort();
}

/** `spool <args>` with `input` on its standard input. */
function spoolWithInput(args: string[], input: string): RunResult {
  const r = spawnSync(process.execPath, [SPOOL_BIN, ...args], { encoding: 'utf8', input, env: { ...process.env, SPOOL_DIR: '' }, timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string;
let cleanup: () => void;
let root: string;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('spool-bulk-'));
  root = join(dir, 'spool');
  for (const d of ['tmp', 'incoming', 'pending', 'active', 'dead', 'quarantine', 'archive', 'state', 'locks']) mkdirSync(join(root, d), { recursive: true });
});
afterEach(() => cleanup());

describe('spool rm and retry by filter', () => {
  it('rm --state dead --older-than 7d purges old dead letters and their failure records, and nothing else', () => {
    const old = put('dead', { age: 8 * DAY });
    const young = put('dead', { age: DAY });
    const due = put('incoming', { age: 9 * DAY });
    failureRecord(old, 'boom', 'Error: boom\n    at x');
    failureRecord(young, 'boom', 'Error: boom\n    at y');
    const r = spool(['rm', '--dir', root, '--state', 'dead', '--older-than', '7d']);
    expect(r).toEqual({ code: 0, stdout: 'removed 1 task\n', stderr: '' });
    expect(files('dead')).toEqual([young.file]);
    expect(files('incoming')).toEqual([due.file]);
    expect(files('state')).toEqual([`${young.id}.json`]);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  });

  it('rm --task removes only those tasks, in every removable state, and never a running one', () => {
    const a = put('incoming', { name: 'send' });
    const b = put('pending', { name: 'send', due: Date.now() + DAY });
    const c = put('dead', { name: 'send' });
    const keep = put('incoming', { name: 'other' });
    const running = put('pending', { name: 'send' });
    mkdirSync(join(root, 'active', 'daemon-1'));
    renameSync(running.path, join(root, 'active', 'daemon-1', running.file));
    const r = spool(['rm', '--dir', root, '--task', 'send']);
    expect(r).toEqual({ code: 0, stdout: 'removed 3 tasks\n', stderr: '' });
    expect(files('incoming')).toEqual([keep.file]);
    expect(files('pending')).toEqual([]);
    expect(files('dead')).toEqual([]);
    expect(readdirSync(join(root, 'active', 'daemon-1'))).toEqual([running.file]);
    void [a, b, c];
  });

  it('rm --all leaves archive/ alone; rm --state archived purges it', () => {
    put('incoming');
    put('dead');
    const archived = put('archive');
    expect(spool(['rm', '--dir', root, '--all'])).toEqual({ code: 0, stdout: 'removed 2 tasks\n', stderr: '' });
    expect(files('archive')).toEqual([archived.file]);
    expect(spool(['rm', '--dir', root, '--state', 'archived', '-q'])).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(files('archive')).toEqual([]);
  });

  it('rm --state invalid removes bad files and not the valid tasks beside them', () => {
    const good = put('incoming');
    const bad = put('incoming', { name: 'broken' });
    writeFileSync(bad.path, '{"version": 1, "type": "fcall", "args": [');
    writeFileSync(join(root, 'incoming', 'not-a-task.txt'), 'x');
    const r = spool(['rm', '--dir', root, '--state', 'invalid']);
    expect(r).toEqual({ code: 0, stdout: 'removed 2 tasks\n', stderr: '' });
    expect(files('incoming')).toEqual([good.file]);
  });

  it('retry --task puts back only those dead letters; retry with neither ids nor filters is a usage error', () => {
    const a = put('dead', { name: 'send', attempts: 4 });
    const b = put('dead', { name: 'other', attempts: 4 });
    expect(spool(['retry', '--dir', root, '--task', 'send'])).toEqual({ code: 0, stdout: 'retrying 1 dead letter\n', stderr: '' });
    expect(files('dead')).toEqual([b.file]);
    const back = files('incoming');
    expect(back).toHaveLength(1);
    expect(back[0]).toContain(`-${a.id}-a0-send.json`);
    const none = spool(['retry', '--dir', root]);
    expect(none.code).toBe(2);
    expect(none.stdout).toBe('');
    expect(none.stderr).toContain('--all');
    expect(files('dead')).toEqual([b.file]);
  });

  it('retry in a folder without incoming/ fails with exit 1 instead of "retrying 0"', () => {
    const bare = join(dir, 'bare');
    mkdirSync(join(bare, 'dead'), { recursive: true });
    const r = spool(['retry', '--dir', bare, '--all']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('no incoming/');
  });
});

describe('ids from standard input', () => {
  it('echo ids | spool rm - removes each, reporting unknown ones (exit 3) and still removing the rest', () => {
    const tasks = Array.from({ length: 5 }, () => put('incoming'));
    const keep = put('incoming');
    const input = `${tasks.map((t) => t.id).join('\n')}\n\n  1234567890123ffffffffffffffff  \n`;
    const r = spoolWithInput(['rm', '--dir', root, '-'], input);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe(tasks.map((t) => `removed ${t.id}\n`).join(''));
    expect(r.stderr).toContain('1234567890123ffffffffffffffff');
    expect(files('incoming')).toEqual([keep.file]);
  });

  it('spool retry - takes dead letters from stdin; a task that is not a dead letter exits 8, a running one 5', () => {
    const dead = put('dead', { attempts: 3 });
    const due = put('incoming');
    const running = put('pending');
    mkdirSync(join(root, 'active', 'd1'));
    renameSync(running.path, join(root, 'active', 'd1', running.file));
    const r = spoolWithInput(['retry', '--dir', root, '-'], `${dead.id}\n${due.id}\n`);
    expect(r.code).toBe(8);
    expect(r.stdout).toBe(`retrying ${dead.id}\n`);
    expect(r.stderr).toContain(`${due.id} is due, not a dead letter`);
    const busy = spool(['retry', '--dir', root, running.id]);
    expect(busy.code).toBe(5);
    expect(busy.stderr).toContain('running');
    expect(files('dead')).toEqual([]);
  });

  it('ids and filters together are a usage error, and nothing is touched', () => {
    const t = put('incoming');
    const r = spool(['rm', '--dir', root, '--all', t.id]);
    expect(r.code).toBe(2);
    expect(files('incoming')).toEqual([t.file]);
  });
});

describe('ids by the end of their random part', () => {
  it('show and rm take a unique suffix; an ambiguous one exits 2 naming the matches, an unknown one 3', () => {
    const a = put('incoming', { rand: 'aaaa00000000c0ffee'.slice(2) });
    const b = put('incoming', { rand: 'bbbb00000000beef01'.slice(2) });
    const c = put('incoming', { rand: 'cccc00000000deef01'.slice(2) });
    const shown = spool(['show', '--dir', root, 'c0ffee']);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout).id).toBe(a.id);
    const ambiguous = spool(['show', '--dir', root, 'ef01']);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toContain('matches 2 tasks');
    expect(ambiguous.stderr).toContain(b.id);
    expect(ambiguous.stderr).toContain(c.id);
    expect(spool(['show', '--dir', root, 'abcdef']).code).toBe(3);

    const r = spool(['rm', '--dir', root, 'beef01', 'ef01', 'c0ffee']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe(`removed ${b.id}\nremoved ${a.id}\n`);
    expect(r.stderr).toContain('"ef01" matches 2 tasks');
    expect(files('incoming')).toEqual([c.file]);
  });
});

describe('the last error of a dead letter', () => {
  it('spool show prints it with its stack; spool ls has an ERROR column for dead letters', () => {
    const dead = put('dead', { attempts: 4 });
    const other = put('dead', { attempts: 4 });
    const stack = 'Error: SMTP refused: 550 mailbox unavailable\n    at sendEmail (/srv/tasks.js:12:9)';
    failureRecord(dead, 'SMTP refused: 550 mailbox unavailable', stack);
    const shown = JSON.parse(spool(['show', '--dir', root, dead.id]).stdout) as { error: Record<string, unknown> };
    expect(shown.error).toEqual({ name: 'Error', message: 'SMTP refused: 550 mailbox unavailable', stack, at: expect.any(Number), attempts: 3 });
    expect(JSON.parse(spool(['show', '--dir', root, other.id]).stdout).error).toBeNull();

    const ls = spool(['ls', '--dir', root, '--state', 'dead']);
    expect(ls.code).toBe(0);
    const [header, ...rows] = ls.stdout.trimEnd().split('\n');
    expect(header).toMatch(/AGE\s+ERROR$/);
    const row = rows.find((l) => l.startsWith(dead.id))!;
    expect(row).toMatch(/dead\s+\S+\s+SMTP refused: 550 mailbox unavailable$/);
    expect(rows.find((l) => l.startsWith(other.id))).toMatch(/dead\s+\S+$/);
    // The JSON keeps its fields (show has the error).
    expect(Object.keys(lsJson(root, ['--state', 'dead'])[0]!)).not.toContain('error');
  });
});

/** Runs spool under strace; returns the result and the traced calls, one line each. */
function traced(args: string[], calls: string, input?: string): { run: RunResult; lines: string[] } {
  const work = mkdtempSync(join(tmpdir(), 'bulk-trace-'));
  try {
    const log = join(work, 'strace.log');
    const r = spawnSync('strace', ['-f', '-qq', '-e', `trace=${calls}`, '-o', log, process.execPath, join(ROOT, 'dist/cli/spool.js'), ...args], {
      encoding: 'utf8',
      env: { ...process.env, SPOOL_DIR: '' },
      timeout: 120_000,
      maxBuffer: 64 * 1024 * 1024,
      ...(input !== undefined && { input }),
    });
    if (r.error) throw r.error;
    return { run: { code: r.status, stdout: r.stdout, stderr: r.stderr }, lines: readFileSync(log, 'utf8').split('\n') };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const hasStrace = (() => {
  const r = spawnSync('strace', ['-V'], { encoding: 'utf8' });
  return !r.error && r.status === 0;
})();
if (!hasStrace) console.log('cli-bulk: strace is not installed; the system-call counts are not checked (apt-get install strace)');

/** How many times a folder was opened to be read (opendir: O_DIRECTORY; Node opens it twice per listing here). */
const listingsOf = (lines: string[], folder: string): number => lines.filter((l) => l.includes(`"${folder}", O_RDONLY`) && l.includes('O_DIRECTORY')).length;
/** Task files opened to be read (safe-read.ts opens with O_NOFOLLOW). */
// Task files only (a name with its attempts field): `spool ls` also opens control/pause.json.
const taskFilesOpened = (lines: string[]): number => lines.filter((l) => /-a\d+-[^/"]*\.json", O_RDONLY.*O_NOFOLLOW/.test(l)).length;

describe.skipIf(!hasStrace)('work that stops early (system calls counted with strace)', () => {
  it('rm of 1,000 ids lists each folder once, not once per id', () => {
    const tasks = Array.from({ length: 3000 }, (_, i) => put(i % 2 === 0 ? 'incoming' : 'pending'));
    const chosen = tasks.filter((_, i) => i % 3 === 0).slice(0, 1000);
    const one = traced(['rm', '--dir', root, '-q', tasks[1]!.id], 'openat');
    expect(one.run).toEqual({ code: 0, stdout: '', stderr: '' });
    const { run, lines } = traced(['rm', '--dir', root, '-q', '-'], 'openat', chosen.map((t) => t.id).join('\n'));
    expect(run).toEqual({ code: 0, stdout: '', stderr: '' });
    // A thousand ids cost what one does: one listing (the old rm listed the spool again for each id).
    for (const folder of ['incoming', 'pending', 'dead', 'archive']) {
      expect(listingsOf(lines, join(root, folder)), folder).toBe(listingsOf(one.lines, join(root, folder)));
      expect(listingsOf(lines, join(root, folder)), folder).toBeGreaterThan(0);
    }
    expect(taskFilesOpened(lines)).toBe(0);
    expect(files('incoming').length + files('pending').length).toBe(1999);
  });

  it('ls --limit 5 opens five task files and does not list dead/ when the first five come before it', () => {
    const due = Array.from({ length: 2000 }, () => put('incoming'));
    for (let i = 0; i < 300; i++) put('dead');
    const first = lsJson(root, ['--limit', '5']);
    const { run, lines } = traced(['ls', '--dir', root, '--limit', '5'], 'openat');
    expect(run.code).toBe(0);
    expect(run.stdout.trimEnd().split('\n')).toHaveLength(6);
    expect(taskFilesOpened(lines)).toBe(5);
    expect(listingsOf(lines, join(root, 'dead'))).toBe(0);
    // The same first five as the full listing (which opens all 2,300).
    const all = lsJson(root);
    expect(first.map((e) => e.id)).toEqual(all.slice(0, 5).map((e) => e.id));
    const full = traced(['ls', '--dir', root], 'openat');
    expect(taskFilesOpened(full.lines)).toBeGreaterThanOrEqual(2300);
    expect(listingsOf(full.lines, join(root, 'dead'))).toBeGreaterThan(0);
    void due;
  });

  it('ls --limit skips an invalid body and still prints the first valid tasks in order, the invalid one after them', () => {
    const tasks = Array.from({ length: 10 }, () => put('incoming'));
    writeFileSync(tasks[1]!.path, 'not json');
    const listed = lsJson(root, ['--limit', '3']);
    expect(listed.map((e) => e.id)).toEqual([tasks[0]!.id, tasks[2]!.id, tasks[3]!.id]);
    const all = lsJson(root, ['--limit', '11']);
    expect(all.map((e) => e.id)).toEqual(lsJson(root).map((e) => e.id));
    expect(all.at(-1)!.state).toBe('invalid');
  });
});

describe('the progress bar', () => {
  const hasScript = !spawnSync('script', ['--version']).error;

  it.skipIf(!hasScript)('is drawn on stderr under a terminal, and not with --quiet or when stderr is not a terminal', () => {
    const many = () => Array.from({ length: 300 }, () => put('dead'));
    many();
    // script(1) gives the command a pseudo-terminal; its stdout is the terminal's output (stdout and stderr).
    const shell = (args: string) => `${process.execPath} ${SPOOL_BIN} ${args}`;
    const onTty = spawnSync('script', ['-qec', shell(`rm --dir ${root} --state dead`), '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
    expect(onTty.status).toBe(0);
    expect(onTty.stdout).toMatch(/spool rm \[[^\]]*\] \d+\/300 tasks/);
    expect(onTty.stdout).toContain('removed 300 tasks');
    expect(files('dead')).toEqual([]);

    many();
    const quiet = spawnSync('script', ['-qec', shell(`rm --dir ${root} --state dead --quiet`), '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
    expect(quiet.status).toBe(0);
    expect(quiet.stdout).not.toContain('spool rm [');
    expect(files('dead')).toEqual([]);

    many();
    const piped = spool(['retry', '--dir', root, '--all']);
    expect(piped).toEqual({ code: 0, stdout: 'retrying 300 dead letters\n', stderr: '' });
  });
});

describe('exit codes', () => {
  it('a bad option is 2 for spool and for spoolerd', () => {
    expect(spool(['ls', '--bogus']).code).toBe(2);
    const d = spawnSync(process.execPath, [join(ROOT, 'dist/cli/spoolerd.js'), '--bogus'], { encoding: 'utf8', timeout: 30_000 });
    expect(d.status).toBe(2);
    expect(d.stderr).toContain('--bogus');
  });

  it('--help lists every code, each with one meaning', () => {
    const help = spool(['rm', '--help']).stdout;
    for (const code of ['0 ok', '1 error', '2 usage', '3 no such task', '4 invalid task file', '5 task is running', '7 permission denied', '8 task not in a state']) {
      expect(help).toContain(code);
    }
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    for (let code = 0; code <= 8; code++) expect(readme).toMatch(new RegExp(`\\| \`${code}\` \\|`));
  });

  it('rm of a running task is 5 and leaves it; an archived task named by id is removed', () => {
    const archived = put('archive');
    expect(spool(['rm', '--dir', root, archived.id])).toEqual({ code: 0, stdout: `removed ${archived.id}\n`, stderr: '' });
    expect(existsSync(archived.path)).toBe(false);
    const t = put('pending');
    mkdirSync(join(root, 'active', 'd2'));
    renameSync(t.path, join(root, 'active', 'd2', t.file));
    const r = spool(['rm', '--dir', root, t.id]);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain(`${t.id} is running on d2`);
    expect(readdirSync(join(root, 'active', 'd2'))).toEqual([t.file]);
  });
});
