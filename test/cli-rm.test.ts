/**
 * `spool rm <id…>`, through the real binary (README, "The `spool` command";
 * SPOOL-FORMAT.md, "State changes": revoke is `incoming/NAME` or `pending/NAME`
 * → `tmp/.revoked-NAME`, then unlink, the same kind of atomic rename a daemon
 * claims with).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spool, spoolAsync, tempDir } from './helpers/cli.js';

const MIN = 60_000;

let seq = 0;
interface Made {
  id: string;
  file: string;
  path: string;
  body: string;
}
interface TaskSpec {
  priority?: number;
  due: number;
  created: number;
  name: string;
}

function nameOf(t: TaskSpec): { id: string; file: string } {
  const id = String(t.created).padStart(13, '0') + (++seq).toString(16).padStart(16, '0');
  const pp = String(t.priority ?? 50).padStart(2, '0');
  return { id, file: `${pp}-${String(t.due).padStart(13, '0')}-${id}-a0-${t.name}.json` };
}

/** Writes a task into `<root>/<where>/`, with a body unique to it. */
function put(root: string, where: string, t: TaskSpec): Made {
  const { id, file } = nameOf(t);
  mkdirSync(join(root, where), { recursive: true });
  const path = join(root, where, file);
  const body = JSON.stringify({ version: 1, type: 'fcall', args: [id] });
  writeFileSync(path, body);
  return { id, file, path, body };
}

function makeSpool(root: string): void {
  for (const d of ['tmp', 'incoming', 'pending', 'active', 'dead', 'quarantine', 'archive', 'state', 'locks']) mkdirSync(join(root, d), { recursive: true });
}

/** Every file (not directory) under `dir`, as paths relative to it. */
function allFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

let dir: string;
let cleanup: () => void;
let root: string;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('spool-rm-'));
  root = join(dir, 'spool');
  makeSpool(root);
});
afterEach(() => cleanup());

function rm(refs: string[]) {
  return spool(['rm', '--dir', root, ...refs]);
}

function task(where: string, name = 'job', age = MIN): Made {
  const now = Date.now();
  return put(root, where, { due: now - MIN, created: now - age, name });
}

describe('spool rm', () => {
  it('revokes a task in incoming/: the file is gone from the whole spool and tmp/ holds no leftovers', () => {
    const t = task('incoming');
    const keep = task('incoming', 'keep');
    const r = rm([t.id]);
    expect(r).toEqual({ code: 0, stdout: `removed ${t.id}\n`, stderr: '' });
    expect(allFiles(root)).toEqual([join('incoming', keep.file)]);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  });

  it('revokes a task in pending/ the same way', () => {
    const t = task('pending');
    const keep = task('pending', 'keep');
    const r = rm([t.id]);
    expect(r).toEqual({ code: 0, stdout: `removed ${t.id}\n`, stderr: '' });
    expect(allFiles(root)).toEqual([join('pending', keep.file)]);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  });

  it('removes several tasks at once, by id, unique id prefix or file name', () => {
    const a = task('incoming');
    const b = task('pending', 'job', 7 * MIN); // the only task created then: its creation time is a unique prefix
    const c = task('pending');
    const keep = task('incoming', 'keep');
    const r = rm([a.id, b.id.slice(0, 14), c.file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`removed ${a.id}\nremoved ${b.id}\nremoved ${c.id}\n`);
    expect(allFiles(root)).toEqual([join('incoming', keep.file)]);
  });

  it('exits 3 for an unknown id, and still removes the others', () => {
    const a = task('incoming');
    const b = task('pending');
    const r = rm([a.id, '1234567890123ffffffffffffffff', b.id]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe(`removed ${a.id}\nremoved ${b.id}\n`);
    expect(r.stderr).toContain('1234567890123ffffffffffffffff');
    expect(allFiles(root)).toEqual([]);
  });

  it('exits 5 for a running task and leaves its file untouched, still removing the others', () => {
    const running = task('pending', 'running');
    mkdirSync(join(root, 'active', 'daemon-9'));
    const activePath = join(root, 'active', 'daemon-9', running.file);
    renameSync(running.path, activePath);
    const before = statSync(activePath);
    const other = task('incoming');

    const r = rm([running.id, other.id]);
    expect(r.code).toBe(5);
    expect(r.stdout).toBe(`removed ${other.id}\n`);
    expect(r.stderr).toContain(running.id);
    expect(allFiles(root)).toEqual([join('active', 'daemon-9', running.file)]);
    expect(readFileSync(activePath, 'utf8')).toBe(running.body);
    const after = statSync(activePath);
    expect([after.ino, after.size, after.mtimeMs]).toEqual([before.ino, before.size, before.mtimeMs]);

    // By file name too.
    const byName = rm([running.file]);
    expect(byName.code).toBe(5);
    expect(byName.stdout).toBe('');
    expect(allFiles(root)).toEqual([join('active', 'daemon-9', running.file)]);
  });

  it('deletes dead letters', () => {
    const dead = task('dead', 'died');
    const r = rm([dead.id]);
    expect(r).toEqual({ code: 0, stdout: `removed ${dead.id}\n`, stderr: '' });
    expect(allFiles(root)).toEqual([]);
  });

  it('deletes quarantined files together with their reason sidecar', () => {
    const now = Date.now();
    const { id, file } = nameOf({ due: now - MIN, created: now - MIN, name: 'evil' });
    writeFileSync(join(root, 'quarantine', file), 'junk');
    writeFileSync(join(root, 'quarantine', file + '.reason.json'), JSON.stringify({ reason: 'the body must be a map', from: 'incoming', at: now }));
    writeFileSync(join(root, 'quarantine', 'junk.bin'), 'junk');
    writeFileSync(join(root, 'quarantine', 'junk.bin.reason.json'), JSON.stringify({ reason: 'bad name', from: 'pending', at: now }));

    const r = rm([id]);
    expect(r).toEqual({ code: 0, stdout: `removed ${id}\n`, stderr: '' });
    expect(allFiles(root)).toEqual([join('quarantine', 'junk.bin'), join('quarantine', 'junk.bin.reason.json')]);

    const byName = rm(['junk.bin']);
    expect(byName).toEqual({ code: 0, stdout: 'removed junk.bin\n', stderr: '' });
    expect(allFiles(root)).toEqual([]);
  });

  it('revokes a task in a spool that has incoming/ and pending/ but no tmp/ yet', () => {
    // SPOOL-FORMAT.md, "Layout": missing subdirectories are created by whoever needs them first (the runtime, spool, the daemon).
    const bare = join(dir, 'bare');
    mkdirSync(join(bare, 'incoming'), { recursive: true });
    mkdirSync(join(bare, 'pending'), { recursive: true });
    const now = Date.now();
    const t = put(bare, 'incoming', { due: now - MIN, created: now - MIN, name: 'job' });

    const r = spool(['rm', '--dir', bare, t.id]);
    expect(r).toEqual({ code: 0, stdout: `removed ${t.id}\n`, stderr: '' });
    expect(allFiles(bare)).toEqual([]);
  });

  it('exits 2 naming --dir and SPOOL_DIR without a spool, and 1 for a missing spool', () => {
    const none = spool(['rm', '1234']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--dir');
    expect(none.stderr).toContain('SPOOL_DIR');
    const missing = spool(['rm', '--dir', join(dir, 'nope'), '1234']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(join(dir, 'nope'));
  });
});

/**
 * A claimer in its own process, doing what a daemon's claim does: one rename of
 * incoming/NAME or pending/NAME into active/claimer/NAME, as fast as it can. It
 * reports which renames it won and which found the file gone.
 *
 * mode "sweep": once rm has taken its first task, claim every task in the given order.
 * mode "alternate": the list is rm's own order; each time rm has taken task 2k, claim
 * task 2k+1, the task rm is about to rename, after a pause that grows from 0 to
 * 30 µs and starts over. rm looks every id up in one listing first and then
 * renames one task every few tens of µs, so the claims land at every point of
 * its work on that very task (after its lookup: before, during and after its rename).
 */
const CLAIMER = `
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
const [root, listFile, mode] = process.argv.slice(2);
const tasks = JSON.parse(readFileSync(listFile, 'utf8'));
const target = join(root, 'active', 'claimer');
mkdirSync(target, { recursive: true });
const claimed = [];
const missed = [];
function tryClaim(t) {
  try {
    renameSync(join(root, t.from, t.file), join(target, t.file));
    claimed.push(t.file);
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
    missed.push(t.file);
  }
}
const deadline = Date.now() + 30000;
const waitGone = (t) => { while (existsSync(join(root, t.from, t.file)) && Date.now() < deadline) {} };
process.stdout.write('ready\\n');
if (mode === 'sweep') {
  waitGone(tasks.find((t) => t.first));
  for (const t of tasks) tryClaim(t);
} else {
  for (let k = 0; k < tasks.length; k += 2) {
    waitGone(tasks[k]);
    const pauseNs = BigInt((k / 2) % 31) * 1000n;
    const start = process.hrtime.bigint();
    while (process.hrtime.bigint() - start < pauseNs) {}
    if (k + 1 < tasks.length) tryClaim(tasks[k + 1]);
  }
}
process.stdout.write(JSON.stringify({ claimed, missed }) + '\\n');
`;

interface ClaimerResult {
  claimed: string[];
  missed: string[];
}

function startClaimer(script: string, args: string[]): { ready: Promise<void>; done: Promise<ClaimerResult> } {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let signalReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (signalReady = resolve));
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    if (out.startsWith('ready\n')) signalReady();
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 50_000);
  const done = new Promise<ClaimerResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      signalReady();
      if (code !== 0) return reject(new Error(`claimer exited ${code}: ${err}`));
      resolve(JSON.parse(out.slice('ready\n'.length)) as ClaimerResult);
    });
  });
  return { ready, done };
}

/** A deterministic shuffle (so a failure can be replayed). */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('spool rm racing a claimer', () => {
  const N = 300;
  const rounds: Array<[string, 'sweep' | 'alternate', (tasks: Made[]) => Made[]]> = [
    ['sweeping them all in a shuffled order', 'sweep', (tasks) => shuffled(tasks, 20261122)],
    ['sweeping them all in the reverse order', 'sweep', (tasks) => [...tasks].reverse()],
    ['grabbing each task rm is about to take', 'alternate', (tasks) => tasks],
  ];

  for (const [label, mode, claimOrder] of rounds) {
    it(`leaves every one of ${N} tasks either claimed or removed, never both, never neither (claimer ${label})`, async () => {
      const now = Date.now();
      const tasks = Array.from({ length: N }, (_, i) => put(root, i % 2 === 0 ? 'incoming' : 'pending', { due: now - MIN, created: now - MIN, name: `t${i}` }));
      const fromOf = new Map(tasks.map((t) => [t.file, relative(root, join(t.path, '..'))]));
      const listFile = join(dir, 'claim-order.json');
      writeFileSync(listFile, JSON.stringify(claimOrder(tasks).map((t) => ({ file: t.file, from: fromOf.get(t.file), first: t === tasks[0] }))));
      const script = join(dir, 'claimer.mjs');
      writeFileSync(script, CLAIMER);

      const claimer = startClaimer(script, [root, listFile, mode]);
      await claimer.ready;
      const [r, claims] = await Promise.all([spoolAsync(['rm', '--dir', root, ...tasks.map((t) => t.id)], { timeoutMs: 120_000 }), claimer.done]);

      const byFile = new Map(tasks.map((t) => [t.file, t]));
      const claimed = new Set(claims.claimed);
      const missedByClaimer = new Set(claims.missed);

      // rm's report: one "removed <id>" line per removed task, nothing else on stdout.
      const stdoutLines = r.stdout.split('\n').filter((l) => l !== '');
      for (const line of stdoutLines) expect(line).toMatch(/^removed \d{13}[0-9a-f]{16}$/);
      const removedIds = stdoutLines.map((l) => l.slice('removed '.length));
      const removed = new Set(removedIds);
      expect(removed.size).toBe(removedIds.length);

      // The race really happened: each side got some of the tasks.
      expect(claimed.size).toBeGreaterThan(0);
      expect(removed.size).toBeGreaterThan(0);

      // Where every task is now.
      const active = new Set(readdirSync(join(root, 'active', 'claimer')));
      expect(active).toEqual(claimed);
      for (const t of tasks) {
        const wasClaimed = claimed.has(t.file);
        const wasRemoved = removed.has(t.id);
        // Exactly one of the two.
        expect({ id: t.id, wasClaimed, wasRemoved }).toEqual({ id: t.id, wasClaimed: !wasRemoved, wasRemoved: !wasClaimed });
        // The claimer found a file gone only when rm had removed it; sweeping, it tried every task.
        if (missedByClaimer.has(t.file)) expect(wasRemoved).toBe(true);
        if (mode === 'sweep') expect(missedByClaimer.has(t.file)).toBe(wasRemoved);
        if (wasClaimed) expect(readFileSync(join(root, 'active', 'claimer', t.file), 'utf8')).toBe(t.body);
      }
      expect(claimed.size + removed.size).toBe(N);
      const allIds = new Set(tasks.map((t) => t.id));
      for (const id of removed) expect(allIds.has(id)).toBe(true);

      // Nothing anywhere else: not in incoming/ or pending/, no leftovers in tmp/.
      expect(allFiles(root)).toEqual([...claimed].map((f) => join('active', 'claimer', f)).sort());

      // rm's exit code and messages match: 5 because some tasks were running, and each of them is named.
      expect(r.code).toBe(5);
      const refused = new Set(
        r.stderr
          .split('\n')
          .filter((l) => l.includes('cannot be revoked'))
          .map((l) => /(\d{13}[0-9a-f]{16})/.exec(l)?.[1]),
      );
      expect(refused).toEqual(new Set([...claimed].map((f) => byFile.get(f)!.id)));
      expect(r.stderr).not.toContain('unexpected error');
    });
  }
});
