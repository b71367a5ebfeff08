/**
 * Anyone who can write to incoming/ can put anything there (SPOOL-FORMAT.md,
 * "Reading safely"). A spool holding every kind of bad entry, in incoming/ and
 * pending/, beside two good tasks: the real `spool` binary must list each bad
 * entry as invalid with the specific reason, never follow a link, never open a
 * FIFO, socket or directory, never read a file over the size cap, never copy a
 * bad file's content into its output, and never hang.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, spool, tempDir, type RunResult } from './helpers/cli.js';

const MiB = 1024 * 1024;
/** A plain MessagePack encoder, as a foreign producer would use. */
const packr = new Packr({ useRecords: false });
/** Every spool command below gets this long; a hang (say, opening a FIFO) fails the test instead of stalling it. */
const QUICK = { timeoutMs: 20_000 };

/** Content that must never leave the files it is in. */
const SYMLINK_SECRET = 'SYMLINK-TARGET-SECRET-5f2c9e';
const CONTENT_SECRETS = {
  truncated: 'TRUNCATED-SECRET-3d9e01',
  notJson: 'hunter2',
  trailing: 'TRAILING-SECRET-77ab10',
  version2: 'V2-SECRET-0c4411',
  argsNotArray: 'ARGS-SECRET-99fe02',
  retryNegative: 'RETRY-SECRET-1a2b3c',
  insideDirectory: 'DIRECTORY-SECRET-5e6f70',
};

let seq = 0;
const created = Date.now() - 5_000;
/** A valid task file name; the random part counts up so every name is distinct. */
function taskName(task: string, ext: 'msgpack' | 'json', options: { priority?: number; due?: number } = {}): string {
  const id = `${created}${(++seq).toString(16).padStart(16, '0')}`;
  return `${String(options.priority ?? 50).padStart(2, '0')}-${String(options.due ?? created).padStart(13, '0')}-${id}-a0-${task}.${ext}`;
}

/** Deterministic "random" bytes (xorshift32), so a failure can be reproduced. */
function pseudoRandomBytes(n: number, seed = 0x9e3779b9): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

interface Bad {
  location: 'incoming' | 'pending';
  file: string;
  /** Key words the reason must contain. */
  reason: RegExp;
  /** Whether the name parses (then id, name, priority… are filled in). */
  validName: boolean;
}

let dir: string;
let cleanup: () => void;
let root: string;
let outside: string;
let server: Server | undefined;
const bad: Record<string, Bad> = {};
const good: Record<string, { location: 'incoming' | 'pending'; file: string; state: 'due' | 'scheduled' }> = {};
let dotFiles: string[] = [];
const path = (e: { location: string; file: string }) => join(root, e.location, e.file);

beforeAll(async () => {
  // A short root: a Unix socket's path must fit in 108 bytes.
  ({ dir, cleanup } = tempDir('bad-'));
  root = dir;
  outside = mkdtempSync(join(tmpdir(), 'bad-outside-'));
  for (const d of ['tmp', 'incoming', 'pending', 'active', 'dead', 'quarantine', 'archive', 'state', 'locks']) mkdirSync(join(root, d));

  const add = (key: string, b: Bad, make: (p: string) => void) => {
    bad[key] = b;
    make(path(b));
  };
  const body = (secret: string, extra: Record<string, unknown> = {}) => ({ version: 1, type: 'fcall', args: [secret], ...extra });

  // incoming/
  add('truncated msgpack', { location: 'incoming', file: taskName('trunc', 'msgpack'), reason: /not valid MessagePack/, validName: true }, (p) => {
    const full = packr.pack(body(CONTENT_SECRETS.truncated, { meta: { pad: 'x'.repeat(40) } }));
    writeFileSync(p, full.subarray(0, full.length - 30));
  });
  add('random bytes', { location: 'incoming', file: taskName('noise', 'msgpack'), reason: /not valid MessagePack/, validName: true }, (p) =>
    writeFileSync(p, pseudoRandomBytes(4096)),
  );
  add('not JSON', { location: 'incoming', file: taskName('creds', 'json'), reason: /not valid JSON/, validName: true }, (p) =>
    writeFileSync(p, `password=${CONTENT_SECRETS.notJson}`),
  );
  add('trailing data after the map', { location: 'incoming', file: taskName('trail', 'msgpack'), reason: /not valid MessagePack/, validName: true }, (p) =>
    writeFileSync(p, Buffer.concat([packr.pack(body(CONTENT_SECRETS.trailing)), Buffer.of(0xc0)])),
  );
  add('format version 2', { location: 'incoming', file: taskName('v2', 'msgpack'), reason: /version 2\b.*not supported/, validName: true }, (p) =>
    writeFileSync(p, packr.pack({ ...body(CONTENT_SECRETS.version2), version: 2 })),
  );
  add('args not an array', { location: 'incoming', file: taskName('args', 'json'), reason: /"args" must be an array/, validName: true }, (p) =>
    writeFileSync(p, JSON.stringify({ version: 1, type: 'fcall', args: { first: CONTENT_SECRETS.argsNotArray } })),
  );
  add('bad name', { location: 'incoming', file: 'not-a-task.json', reason: /bad file name/, validName: false }, (p) =>
    writeFileSync(p, JSON.stringify({ version: 1, type: 'fcall', args: [] })),
  );
  add('symbolic link', { location: 'incoming', file: taskName('link', 'json'), reason: /symbolic link/, validName: true }, (p) => {
    // The target is a valid task, so following the link would show its content.
    const target = join(outside, 'secret.json');
    writeFileSync(target, JSON.stringify({ version: 1, type: 'fcall', args: [SYMLINK_SECRET] }));
    symlinkSync(target, p);
  });
  bad.socket = { location: 'incoming', file: taskName('sock', 'json'), reason: /socket/, validName: true };
  server = createServer();
  await new Promise<void>((done, fail) => server!.once('error', fail).listen(path(bad.socket!), done));

  // pending/
  add('retry.limit negative', { location: 'pending', file: taskName('retry', 'msgpack'), reason: /"retry\.limit" must be a non-negative integer/, validName: true }, (p) =>
    writeFileSync(p, packr.pack(body(CONTENT_SECRETS.retryNegative, { retry: { limit: -1 } }))),
  );
  add('FIFO', { location: 'pending', file: taskName('fifo', 'json'), reason: /FIFO/, validName: true }, (p) => {
    const r = spawnSync('mkfifo', [p]);
    if (r.status !== 0) throw new Error(`mkfifo failed: ${r.stderr}`);
  });
  add('directory', { location: 'pending', file: taskName('dir', 'json'), reason: /directory/, validName: true }, (p) => {
    mkdirSync(p);
    writeFileSync(join(p, 'inside.json'), CONTENT_SECRETS.insideDirectory);
  });
  add('100 MiB sparse file', { location: 'pending', file: taskName('huge', 'msgpack'), reason: /100\.0 MiB, over the .* cap/, validName: true }, (p) => {
    writeFileSync(p, '');
    truncateSync(p, 100 * MiB);
  });
  add('bad extension', { location: 'pending', file: `50-${created}-${created}00000000000000ab-a0-x.txt`, reason: /extension must be \.msgpack or \.json/, validName: false }, (p) =>
    writeFileSync(p, JSON.stringify({ version: 1, type: 'fcall', args: [] })),
  );

  // Dot-files: never tasks, never listed, whatever their content.
  dotFiles = [join(root, 'incoming', '.' + taskName('hidden', 'json')), join(root, 'pending', '.in-progress')];
  for (const p of dotFiles) writeFileSync(p, JSON.stringify({ version: 1, type: 'fcall', args: [] }));

  // Two good tasks.
  good.due = { location: 'incoming', file: taskName('good_now', 'msgpack', { priority: 10 }), state: 'due' };
  writeFileSync(path(good.due), packr.pack({ version: 1, type: 'fcall', args: ['ok', 1763797190000] }));
  good.scheduled = { location: 'pending', file: taskName('good_later', 'json', { due: Date.now() + 3_600_000 }), state: 'scheduled' };
  writeFileSync(path(good.scheduled), JSON.stringify({ version: 1, type: 'fcall', args: [{ ok: true }] }));
});

afterAll(async () => {
  if (server) await new Promise<void>((done) => server!.close(() => done()));
  cleanup?.();
  if (outside) rmSync(outside, { recursive: true, force: true });
});

function lsEntries(): Array<Record<string, unknown>> {
  const r = spool(['ls', '--dir', root, '--json'], QUICK);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Array<Record<string, unknown>>;
}

/** Everything the spool command prints about this spool: ls, ls --json, show of every entry, stats. */
function allOutputs(): RunResult[] {
  const runs = [
    spool(['ls', '--dir', root], QUICK),
    spool(['ls', '--dir', root, '--json'], QUICK),
    spool(['stats', '--dir', root], QUICK),
    spool(['stats', '--dir', root, '--json'], QUICK),
  ];
  for (const e of [...Object.values(bad), ...Object.values(good)]) runs.push(spool(['show', '--dir', root, e.file], QUICK));
  for (const r of runs) expect(r.stdout.length).toBeGreaterThan(0);
  return runs;
}

describe('spool ls on a spool full of bad input', () => {
  it('lists every bad entry as invalid with the reason for it, and the good tasks as valid, quickly', () => {
    const entries = lsEntries();
    const byFile = new Map(entries.map((e) => [e.file as string, e]));
    expect(entries).toHaveLength(Object.keys(bad).length + Object.keys(good).length);

    for (const [what, b] of Object.entries(bad)) {
      const e = byFile.get(b.file);
      expect(e, `${what} is not listed`).toBeDefined();
      expect(e!.state, what).toBe('invalid');
      expect(e!.location, what).toBe(b.location);
      expect(e!.path, what).toBe(path(b));
      expect(e!.reason, what).toMatch(b.reason);
    }
    for (const [what, g] of Object.entries(good)) {
      const e = byFile.get(g.file);
      expect(e, `${what} is not listed`).toBeDefined();
      expect([e!.state, e!.location, e!.reason], what).toEqual([g.state, g.location, null]);
    }
    // Execution order: the valid tasks first, then the invalid entries.
    expect(entries.slice(0, 2).map((e) => e.file)).toEqual([good.due!.file, good.scheduled!.file]);
  });

  it('an invalid entry reports the fields its name carries, and null only for what the file cannot supply', () => {
    // README, "The spool command": fields that a file cannot supply (an invalid name has no id) are null.
    // A link, FIFO, socket or directory under a valid task name still has that name's id, priority…
    const byFile = new Map(lsEntries().map((e) => [e.file as string, e]));
    const wrong: string[] = [];
    for (const [what, b] of Object.entries(bad)) {
      const e = byFile.get(b.file)!;
      const fields = [e.id, e.name, e.priority, e.due, e.created, e.attempts, e.encoding];
      const [pp, due, id, , rest] = b.file.split('-') as [string, string, string, string, string];
      const expected = b.validName
        ? [id, rest.replace(/\.(msgpack|json)$/, ''), Number(pp), Number(due), created, 0, b.file.endsWith('.json') ? 'json' : 'msgpack']
        : [null, null, null, null, null, null, null];
      if (JSON.stringify(fields) !== JSON.stringify(expected)) wrong.push(`${what}: ${JSON.stringify(fields)}, expected ${JSON.stringify(expected)}`);
    }
    expect(wrong).toEqual([]);
  });

  it('never lists files whose names begin with "."', () => {
    const files = lsEntries().map((e) => e.file as string);
    expect(files.filter((f) => f.startsWith('.'))).toEqual([]);
    const r = spool(['show', '--dir', root, dotFiles[0]!.split('/').pop()!], QUICK);
    expect(r.code).toBe(3);
  });

  it('spool stats counts the bad entries as invalid', () => {
    const r = spool(['stats', '--dir', root, '--json'], QUICK);
    expect(r.code).toBe(0);
    const stats = JSON.parse(r.stdout) as { total: number; byState: Record<string, number> };
    expect(stats.total).toBe(Object.keys(bad).length + 2);
    expect(stats.byState).toMatchObject({ due: 1, scheduled: 1, invalid: Object.keys(bad).length });
  });
});

describe('spool show on bad input', () => {
  const KEYS = [
    'truncated msgpack', 'random bytes', 'not JSON', 'trailing data after the map', 'format version 2', 'args not an array',
    'bad name', 'symbolic link', 'socket', 'retry.limit negative', 'FIFO', 'directory', '100 MiB sparse file', 'bad extension',
  ];

  it('the list of cases below covers every bad entry', () => {
    expect([...KEYS].sort()).toEqual(Object.keys(bad).sort());
  });

  for (const key of KEYS) {
    it(`spool show <file name> exits 4 and says why (${key})`, () => {
      const b = bad[key]!;
      const r = spool(['show', '--dir', root, b.file], QUICK);
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(b.reason);
      const shown = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(shown.state).toBe('invalid');
      expect(shown.reason).toMatch(b.reason);
      expect(shown.body).toBeNull();
    });
  }

  it('spool show of a good task exits 0 with its body', () => {
    const r1 = spool(['show', '--dir', root, good.due!.file], QUICK);
    expect([r1.code, r1.stderr]).toEqual([0, '']);
    expect((JSON.parse(r1.stdout) as { body: unknown }).body).toEqual({ version: 1, type: 'fcall', args: ['ok', 1763797190000] });
    const r2 = spool(['show', '--dir', root, good.scheduled!.file], QUICK);
    expect([r2.code, r2.stderr]).toEqual([0, '']);
    expect((JSON.parse(r2.stdout) as { body: unknown }).body).toEqual({ version: 1, type: 'fcall', args: [{ ok: true }] });
  });
});

describe('what never leaves a bad file', () => {
  it("a symbolic link is never followed: its target's content appears in no output of ls, ls --json, show or stats", () => {
    for (const r of allOutputs()) {
      expect(r.stdout).not.toContain(SYMLINK_SECRET);
      expect(r.stderr).not.toContain(SYMLINK_SECRET);
    }
  });

  it('nothing of an invalid file\'s content is copied into any output (SPOOL-FORMAT.md: "only its name, type, size and the reason")', () => {
    const leaks: string[] = [];
    for (const r of allOutputs()) {
      for (const [what, secret] of Object.entries(CONTENT_SECRETS)) {
        for (const line of (r.stdout + r.stderr).split('\n')) if (line.includes(secret)) leaks.push(`${what}: ${line.trim()}`);
      }
    }
    expect([...new Set(leaks)]).toEqual([]);
  });
});

/**
 * Which files the real `spool ls` opens, and how many bytes it reads from each.
 *
 * Timing cannot prove a file was not read on a shared machine, so this watches
 * the system calls instead: `strace -f` records every open and read of the
 * process (any way of reading the 100 MiB file, from any thread, shows up as
 * read/pread64/readv calls on its descriptor). Without strace, a preload module
 * wraps node:fs's open/read/close functions in the `spool` process and records
 * the same things (weaker: it sees only reads made through node:fs).
 */
interface FileAccess {
  opened: Set<string>;
  bytesRead: Map<string, number>;
  totalBytesRead: number;
}

function hasStrace(): boolean {
  const r = spawnSync('strace', ['-V'], { encoding: 'utf8' });
  return !r.error && r.status === 0;
}

function traceSpool(args: string[]): { run: RunResult; access: FileAccess } {
  const work = mkdtempSync(join(tmpdir(), 'bad-trace-'));
  try {
    const env = { ...process.env, SPOOL_DIR: '' };
    if (hasStrace()) {
      const log = join(work, 'strace.log');
      const calls = 'trace=open,openat,openat2,read,pread64,readv,preadv,preadv2,close';
      const r = spawnSync('strace', ['-f', '-qq', '-e', calls, '-o', log, process.execPath, join(ROOT, 'dist/cli/spool.js'), ...args], {
        encoding: 'utf8',
        env,
        timeout: 60_000,
        maxBuffer: 64 * MiB,
      });
      if (r.error) throw r.error;
      return { run: { code: r.status, stdout: r.stdout, stderr: r.stderr }, access: parseStrace(readFileSync(log, 'utf8')) };
    }
    const preload = join(work, 'preload.mjs');
    const report = join(work, 'report.json');
    writeFileSync(preload, PRELOAD);
    const r = spawnSync(process.execPath, ['--import', preload, join(ROOT, 'dist/cli/spool.js'), ...args], {
      encoding: 'utf8',
      env: { ...env, ACCESS_REPORT: report },
      timeout: 60_000,
      maxBuffer: 64 * MiB,
    });
    if (r.error) throw r.error;
    const rep = JSON.parse(readFileSync(report, 'utf8')) as { opened: string[]; bytesRead: Record<string, number> };
    const bytesRead = new Map(Object.entries(rep.bytesRead));
    return {
      run: { code: r.status, stdout: r.stdout, stderr: r.stderr },
      access: { opened: new Set(rep.opened), bytesRead, totalBytesRead: [...bytesRead.values()].reduce((a, b) => a + b, 0) },
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Reads `strace -f -o` output: which paths were opened, and the bytes read through each descriptor. */
function parseStrace(log: string): FileAccess {
  const opened = new Set<string>();
  const bytesRead = new Map<string, number>();
  let totalBytesRead = 0;
  const fdPath = new Map<number, string>(); // threads share one descriptor table
  const unfinished = new Map<string, string>(); // pid → the start of a call another thread interrupted
  for (const raw of log.split('\n')) {
    const m = /^(\d+)\s+(.*)$/.exec(raw);
    if (!m) continue;
    const [, pid, rest] = m as unknown as [string, string, string];
    let call: string;
    if (rest.endsWith('<unfinished ...>')) {
      unfinished.set(pid, rest.slice(0, -'<unfinished ...>'.length));
      // A close takes effect whether or not its line is split; forget the descriptor now.
      const close = /^close\((\d+)/.exec(rest);
      if (close) fdPath.delete(Number(close[1]));
      continue;
    }
    const resumed = /^<\.\.\. \w+ resumed>(.*)$/.exec(rest);
    if (resumed) {
      call = (unfinished.get(pid) ?? '') + resumed[1];
      unfinished.delete(pid);
    } else call = rest;
    const result = /\)\s+=\s+(-?\d+)/.exec(call);
    const ret = result ? Number(result[1]) : -1;
    const open = /^(?:open|openat|openat2)\((?:[A-Z_]+|\d+, )?(?:, )?"((?:[^"\\]|\\.)*)"/.exec(call);
    if (open) {
      opened.add(open[1]!);
      if (ret >= 0) fdPath.set(ret, open[1]!);
      continue;
    }
    const read = /^(?:read|pread64|readv|preadv|preadv2)\((\d+),/.exec(call);
    if (read && ret > 0) {
      totalBytesRead += ret;
      const p = fdPath.get(Number(read[1]));
      if (p !== undefined) bytesRead.set(p, (bytesRead.get(p) ?? 0) + ret);
      continue;
    }
    const close = /^close\((\d+)\)/.exec(call);
    if (close) fdPath.delete(Number(close[1]));
  }
  return { opened, bytesRead, totalBytesRead };
}

/** The fallback recorder: wraps node:fs before the spool command loads, writes what it saw at exit. */
const PRELOAD = `
import fs from 'node:fs';
import { resolve } from 'node:path';
import { syncBuiltinESMExports } from 'node:module';
const opened = [], bytesRead = {}, fdPath = new Map();
const count = (p, n) => { if (p !== undefined && n > 0) bytesRead[p] = (bytesRead[p] ?? 0) + n; };
const { openSync, readSync, closeSync, readFileSync, writeFileSync } = fs;
fs.openSync = function (p, ...rest) { const fd = openSync.call(fs, p, ...rest); opened.push(resolve(String(p))); fdPath.set(fd, resolve(String(p))); return fd; };
fs.readSync = function (fd, ...rest) { const n = readSync.call(fs, fd, ...rest); count(fdPath.get(fd), n); return n; };
fs.closeSync = function (fd) { fdPath.delete(fd); return closeSync.call(fs, fd); };
fs.readFileSync = function (p, ...rest) { const out = readFileSync.call(fs, p, ...rest); if (typeof p !== 'number') { opened.push(resolve(String(p))); count(resolve(String(p)), out.length); } return out; };
syncBuiltinESMExports();
process.on('exit', () => writeFileSync(process.env.ACCESS_REPORT, JSON.stringify({ opened, bytesRead })));
`;

describe('what spool ls opens and reads', () => {
  let access: FileAccess;
  beforeAll(() => {
    const { run, access: a } = traceSpool(['ls', '--dir', root, '--json']);
    expect(run.code).toBe(0);
    expect((JSON.parse(run.stdout) as unknown[]).length).toBe(Object.keys(bad).length + 2);
    access = a;
  });

  it('the trace sees the reads it must see (the good tasks were opened and read whole)', () => {
    // Guards the two tests below against a trace that records nothing.
    expect(access.opened).toContain(path(good.due!));
    expect(access.bytesRead.get(path(good.due!))).toBe(readFileSync(path(good.due!)).length);
  });

  it('a file over the 16 MiB cap is reported by its size and never read', () => {
    const huge = path(bad['100 MiB sparse file']!);
    // It is opened (the size is taken from fstat on the open descriptor, so a swap cannot fool it)…
    expect(access.opened).toContain(huge);
    // …and not one byte of it is read.
    expect(access.bytesRead.get(huge) ?? 0).toBe(0);
    expect(access.totalBytesRead).toBeLessThan(16 * MiB);
  });

  it('links, FIFOs, sockets and directories are never opened, and a link target never touched', () => {
    for (const key of ['symbolic link', 'FIFO', 'socket', 'directory']) expect(access.opened, key).not.toContain(path(bad[key]!));
    expect(access.opened).not.toContain(join(outside, 'secret.json'));
    expect(access.opened).not.toContain(join(path(bad.directory!), 'inside.json'));
  });
});

describe('readRegularFile (spool/safe-read.ts) on a file swapped after listing', () => {
  /**
   * Runs readRegularFile in a child process: a blocking open of a FIFO would
   * hang the test worker itself, where a child is simply killed at the timeout.
   */
  function readInChild(target: string): { ok: boolean; reason?: string } {
    const code = `
      import { readRegularFile } from ${JSON.stringify(join(ROOT, 'dist/spool/safe-read.js'))};
      const r = readRegularFile(process.argv[1]);
      process.stdout.write(JSON.stringify({ ok: r.ok, reason: r.reason, bytes: r.ok ? r.bytes.length : undefined }));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code, target], { encoding: 'utf8', timeout: 10_000 });
    if (r.error) throw new Error(`readRegularFile(${target}) did not return within 10 s: ${r.error.message}`);
    expect(r.stderr).toBe('');
    return JSON.parse(r.stdout) as { ok: boolean; reason?: string };
  }

  it('a FIFO (no writer) is refused at once instead of blocking', () => {
    const r = readInChild(path(bad.FIFO!));
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(/not a regular file/);
  });

  it('a symbolic link is refused, not followed', () => {
    const r = readInChild(path(bad['symbolic link']!));
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(/symbolic link/);
    expect(r.reason).not.toContain(SYMLINK_SECRET);
  });

  it('a directory and a socket are refused', () => {
    expect(readInChild(path(bad.directory!))).toMatchObject({ ok: false, reason: expect.stringMatching(/not a regular file/) });
    expect(readInChild(path(bad.socket!))).toMatchObject({ ok: false, reason: expect.stringMatching(/socket/) });
  });

  it('a file over the cap is refused by its size', () => {
    expect(readInChild(path(bad['100 MiB sparse file']!))).toMatchObject({ ok: false, reason: expect.stringMatching(/100\.0 MiB, over the 16\.0 MiB cap/) });
  });
});
