/**
 * Bad input (README, "Bad input"; SPOOL-FORMAT.md, "Reading safely",
 * "Invalid files", "Quarantine", "Producers that write in place"): anything
 * that is not a valid task is moved to quarantine/ beside a reason file; links
 * are never followed, FIFOs never opened, big files never read; the content of
 * an invalid file is never copied anywhere; dot-files are left alone; the
 * daemon keeps running and good tasks around the bad files run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync, writeSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { Packr } from 'msgpackr';
import { afterEach, describe, expect, it } from 'vitest';
import { Spooler } from '../runtime/index.js';
import { describeSpool, ls, lsActive, readRecords, sleep, startServing, waitFor, type DaemonProcess } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let dir: string;
let root: string;
let incoming: string;
let records: string;
const helpers: ChildProcess[] = [];
const testSpool = useDaemonSpool('spoolerd-bad-', {
  open: true,
  bind: (s) => {
    ({ dir, root, records } = s);
    incoming = join(root, 'incoming');
  },
});
// Runs before the fixture's afterEach (hooks after a test run in reverse order): helpers go before the daemons.
afterEach(() => {
  for (const h of helpers.splice(0)) if (h.exitCode === null && h.signalCode === null) h.kill('SIGKILL');
});

const packr = new Packr({ useRecords: false });
const SETTLE = ['--settle', '200ms', '--scan-interval', '500ms'];

/** A valid task file name with a fresh id. */
function taskName(name = 'echo', ext: 'json' | 'msgpack' = 'json'): string {
  const now = String(Date.now()).padStart(13, '0');
  return `50-${now}-${now}${randomBytes(8).toString('hex')}-a0-${name}.${ext}`;
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

/** Deterministic "random" bytes (the reason for random bytes must not depend on luck). */
function noise(n: number, seed = 12345): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    b[i] = seed >>> 24;
  }
  return b;
}

interface BadFile {
  /** The name it is dropped under. */
  file: string;
  /** What its reason must say. */
  reason: string | RegExp;
  /** What the quarantined entry must be. */
  kind: 'file' | 'symlink' | 'fifo' | 'socket' | 'directory';
}

function kindOf(st: Stats): BadFile['kind'] | 'other' {
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isDirectory()) return 'directory';
  if (st.isFile()) return 'file';
  return 'other';
}

/**
 * Drops one of each kind of bad file into `into`, written in place as a hostile
 * producer would. `secretTarget` is a valid task file outside the spool that a
 * symbolic link points to. Returns what each must become.
 */
function dropBadFiles(into: string, secretTarget: string, tag: string): BadFile[] {
  const bad: BadFile[] = [];
  const put = (file: string, bytes: Uint8Array, reason: string | RegExp) => {
    writeFileSync(join(into, file), bytes);
    bad.push({ file, reason, kind: 'file' });
  };
  // Bodies that do not decode.
  put(taskName('echo', 'msgpack'), Buffer.from([0xc1]), 'the body is not valid MessagePack: byte 0 is 0xc1, which MessagePack never uses');
  put(taskName('echo', 'msgpack'), packr.pack({ version: 1, type: 'fcall', args: ['truncated', 1, 2, 3] }).subarray(0, 12), /^the body is not valid MessagePack: truncated: it ends inside a value at byte \d+$/);
  put(taskName('echo', 'msgpack'), Buffer.alloc(0), 'the body is not valid MessagePack: the file is empty');
  put(taskName('echo', 'json'), Buffer.from('{"version":1,"type":"fcall","args":['), 'the body is not valid JSON: truncated: the text ends inside a value');
  put(taskName('echo', 'json'), Buffer.from([0xff, 0xfe, 0x00, 0x7b]), 'the body is not valid JSON: the text is not valid UTF-8');
  put(taskName('echo', 'json'), Buffer.from('{"version":1,"type":"fcall","args":[}'), /^the body is not valid JSON: bad syntax( at character \d+)?$/);
  // Random bytes, under a task name and under a name that is not one.
  put(taskName('echo', 'msgpack'), noise(800), /^the body is not valid MessagePack: .+/);
  put(`random-${tag}.bin`, noise(800, 99), 'bad file name: the extension must be .msgpack or .json (got .bin)');
  // Format versions this daemon does not know.
  put(taskName('echo', 'json'), json({ version: 2, type: 'fcall', args: [] }), 'format version 2 is not supported; this spoolerd reads version 1 (upgrade spoolerd, or write version 1)');
  put(taskName('echo', 'msgpack'), packr.pack({ version: 99, type: 'fcall', args: [] }), 'format version 99 is not supported; this spoolerd reads version 1 (upgrade spoolerd, or write version 1)');
  put(taskName('echo', 'json'), json({ type: 'fcall', args: [] }), 'the body has no "version" field');
  // Fields of the wrong type.
  put(taskName('echo', 'json'), json({ version: 1, type: 'fcall', args: 'not-an-array' }), '"args" must be an array');
  put(taskName('echo', 'msgpack'), packr.pack({ version: 1, type: 42, args: [] }), '"type" must be a lowercase identifier such as "fcall"');
  put(taskName('echo', 'json'), json({ version: 1, type: 'fcall', args: [], retry: { limit: -1 } }), '"retry.limit" must be a non-negative integer');
  put(taskName('echo', 'json'), json({ version: 1, type: 'fcall', args: [], timeout: 'soon' }), '"timeout" must be a positive integer of ms');
  put(taskName('echo', 'json'), json([1, 2, 3]), 'the body must be a map (a JSON object)');
  put(taskName('echo', 'json'), json({ version: 1, type: 'fcall', args: [], overlap: 'k' }), '"overlap" is reserved for a later format version');
  put(taskName('echo', 'json'), json({ version: 1, type: 'fcall', args: [], unique: 42 }), '"unique" must be a key of 1 to 1024 characters');
  put(taskName('echo', 'json'), json({ version: 1, type: 'fcall', args: [], expires: 'soon' }), '"expires" must be a time: a non-negative integer of ms since the epoch (spool clock)');
  // Bad names (with valid bodies).
  const valid = json({ version: 1, type: 'fcall', args: ['must-not-run'] });
  put(`hello-${tag}.json`, valid, 'bad file name: the priority must be two digits, 00 to 99');
  put(taskName('bad name!', 'json'), valid, 'bad file name: a task name starts with a letter or "_" and holds only letters, digits, "_", ".", ":" and "-"');
  put(taskName('echo', 'json').replace(/\.json$/, '.txt'), valid, 'bad file name: the extension must be .msgpack or .json (got .txt)');
  // A symbolic link to a valid task file holding a secret.
  const link = taskName('echo', 'json');
  symlinkSync(secretTarget, join(into, link));
  bad.push({ file: link, reason: 'a symbolic link; spool files are never followed through links', kind: 'symlink' });
  // A FIFO, a socket and a directory, under task names.
  const fifo = taskName('echo', 'msgpack');
  const made = spawnSync('mkfifo', [join(into, fifo)]);
  expect(made.status, String(made.stderr)).toBe(0);
  bad.push({ file: fifo, reason: /FIFO|named pipe/, kind: 'fifo' });
  const socket = taskName('echo', 'msgpack');
  makeSocket(join(into, socket));
  bad.push({ file: socket, reason: /socket/, kind: 'socket' });
  // The directory is filled beside the spool and renamed in whole: a running daemon may quarantine it
  // the moment it appears, before a file could be written inside it.
  const sub = taskName('echo', 'json');
  const outside = join(dirname(secretTarget), `dir-${tag}`);
  mkdirSync(outside);
  writeFileSync(join(outside, 'inside.json'), valid);
  renameSync(outside, join(into, sub));
  bad.push({ file: sub, reason: /directory/, kind: 'directory' });
  // Over --max-bytes 1000: a valid task padded to 5000 bytes (it would run if it were read).
  const big = { version: 1, type: 'fcall', args: ['oversized-must-not-run'], meta: { pad: '' } };
  big.meta.pad = 'x'.repeat(5000 - json(big).length);
  expect(json(big).length).toBe(5000);
  put(taskName('echo', 'json'), json(big), 'the file is 4.9 KiB, over the 1000 B cap; it was not read');
  return bad;
}

/** Creates a Unix socket file at `path` (a process binds it and exits; the file stays). */
function makeSocket(path: string): void {
  const r = spawnSync(process.execPath, ['-e', "require('net').createServer().listen(process.argv[1], () => process.exit(0))", path], { timeout: 10_000 });
  // (A running daemon may already have moved it: do not look at it here.)
  expect(r.status, String(r.stderr)).toBe(0);
}

/** Dot-files: never tasks, never listed, never moved. One of them holds a valid task. */
function dropDotFiles(into: string, tag: string): string[] {
  const files = [`.hidden-${tag}`, `.${taskName('echo', 'json')}`];
  writeFileSync(join(into, files[0]!), noise(100));
  writeFileSync(join(into, files[1]!), json({ version: 1, type: 'fcall', args: ['dotfile-must-not-run'] }));
  return files;
}

interface Quarantined {
  entry: string;
  reason: Record<string, unknown>;
  kind: string;
}

/** quarantine/ by original file name: the entry, its reason record and what it is. */
function quarantined(): Map<string, Quarantined> {
  const q = join(root, 'quarantine');
  const out = new Map<string, Quarantined>();
  for (const f of ls(q)) {
    if (!f.endsWith('.reason.json')) continue;
    const reason = JSON.parse(readFileSync(join(q, f), 'utf8')) as Record<string, unknown>;
    const entry = f.slice(0, -'.reason.json'.length);
    let kind = 'missing';
    try {
      kind = kindOf(lstatSync(join(q, entry)));
    } catch {
      // reported as missing
    }
    out.set(reason.file as string, { entry, reason, kind });
  }
  return out;
}

function goodRuns(): string[] {
  return readRecords(records)
    .filter((r) => r.task === 'echo')
    .map((r) => (r.args as unknown[])[0] as string)
    .sort();
}

/** Every regular file under `top`, read without following links. */
function regularFilesUnder(top: string): Array<{ path: string; text: string }> {
  const out: Array<{ path: string; text: string }> = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out.push({ path: p, text: readFileSync(p).toString('latin1') });
    }
  };
  walk(top);
  return out;
}

/** Everything the daemon wrote (log lines, other stderr, stdout). */
const daemonOutput = (d: DaemonProcess) => [...d.logs.map((l) => JSON.stringify(l)), ...d.rawStderr, d.stdout].join('\n');

/** Checks that every bad file is in quarantine/ as itself (same kind of entry), with its reason record. */
function checkQuarantine(bad: BadFile[]): void {
  const q = quarantined();
  const actual = bad.map((b) => {
    const got = q.get(b.file);
    return { file: b.file, kind: got?.kind ?? 'not quarantined', reason: got?.reason.reason ?? null };
  });
  const expected = bad.map((b) => ({ file: b.file, kind: b.kind, reason: typeof b.reason === 'string' ? b.reason : expect.stringMatching(b.reason) }));
  expect(actual).toEqual(expected);
  // Each reason record names the file and when; a file that is not a task name gets a unique prefix.
  for (const b of bad) {
    const got = q.get(b.file)!;
    expect(got.reason).toEqual(expect.objectContaining({ file: b.file, at: expect.any(Number) }));
    if (/^\d{2}-\d{13}-\d{13}[0-9a-f]{16}-a\d+-[A-Za-z_][A-Za-z0-9_.:-]*\.(json|msgpack)$/.test(b.file)) expect(got.entry).toBe(b.file);
    else expect(got.entry).toMatch(new RegExp(`^\\d{13}-[0-9a-f]{6}-${b.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  }
}

/**
 * Whether process `pid` sleeps in open() of a FIFO, waiting for a reader
 * (Linux: its wait channel is wait_for_partner). A reader's open() wakes it
 * and it leaves that wait for good, so seeing it there after an event proves
 * no process opened the FIFO for reading before that event.
 */
function blockedOpeningFifo(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
    return state === 'S' && readFileSync(`/proc/${pid}/wchan`, 'utf8') === 'wait_for_partner';
  } catch {
    throw new Error(`process ${pid} is gone: it got past open() (something opened the FIFO for reading) and exited`);
  }
}

async function waitForQuarantine(daemon: DaemonProcess, files: string[], timeoutMs = 20_000): Promise<void> {
  await waitFor(() => files.every((f) => quarantined().has(f)), {
    timeoutMs,
    what: `${files.length} files in quarantine/`,
    explain: () => `missing: ${JSON.stringify(files.filter((f) => !quarantined().has(f)))}\n${describeSpool(root)}\n${daemon.describe()}`,
  });
}

describe('bad files in incoming/', () => {
  it('present before the daemon starts: each is quarantined with a specific reason, dot-files stay, good tasks run, the daemon keeps running', async () => {
    const spooler = Spooler.open(root);
    const secret = join(dir, 'secret-task.json');
    writeFileSync(secret, json({ version: 1, type: 'fcall', args: ['SECRET-linked-task-7f3a'] }));
    await spooler.enqueue({ name: 'echo', args: ['good-1'] });
    const bad = dropBadFiles(incoming, secret, 'pre');
    await spooler.enqueue({ name: 'echo', args: ['good-2'], options: { encoding: 'json' } });
    const dots = dropDotFiles(incoming, 'pre');
    await spooler.enqueue({ name: 'echo', args: ['good-3'] });
    await sleep(300); // older than --settle: every file is complete

    const daemon = await startServing({ dir: root, imports: ['basic'], records, args: ['--max-bytes', '1000', ...SETTLE] });
    await waitForQuarantine(daemon, bad.map((b) => b.file));
    await waitFor(() => goodRuns().length === 3, { what: 'the good tasks', explain: () => daemon.describe() });
    await spooler.enqueue({ name: 'echo', args: ['good-after'] });
    await waitFor(() => goodRuns().length === 4 && lsActive(root).length === 0, { what: 'a task enqueued afterwards', explain: () => daemon.describe() });

    expect(daemon.exit).toBeUndefined();
    expect(goodRuns()).toEqual(['good-1', 'good-2', 'good-3', 'good-after']);
    expect(ls(incoming)).toEqual(dots.sort());
    expect(ls(join(root, 'pending'))).toEqual([]);
    expect(ls(join(root, 'dead'))).toEqual([]);
    expect(ls(join(root, 'quarantine')).filter((f) => !f.endsWith('.reason.json'))).toHaveLength(bad.length);
    // The files are moved before their log lines reach this process: wait for the lines, then compare them.
    await daemon.waitForLog(() => daemon.logsWith('quarantined a file that is not a valid task').length >= bad.length, { what: 'a log line per quarantined file' });
    expect(daemon.logsWith('quarantined a file that is not a valid task').map((l) => l.file).sort()).toEqual(bad.map((b) => b.file).sort());
    checkQuarantine(bad);
  });

  it('dropped while the daemon runs: each is quarantined with a specific reason, dot-files stay, good tasks around them run', async () => {
    const spooler = Spooler.open(root);
    const secret = join(dir, 'secret-task.json');
    writeFileSync(secret, json({ version: 1, type: 'fcall', args: ['SECRET-linked-task-7f3a'] }));
    const daemon = await startServing({ dir: root, imports: ['basic'], records, args: ['--max-bytes', '1000', ...SETTLE] });
    await spooler.enqueue({ name: 'echo', args: ['live-1'] });
    const bad = dropBadFiles(incoming, secret, 'live');
    await spooler.enqueue({ name: 'echo', args: ['live-2'], options: { encoding: 'json' } });
    const dots = dropDotFiles(incoming, 'live');
    await spooler.enqueue({ name: 'echo', args: ['live-3'] });

    await waitForQuarantine(daemon, bad.map((b) => b.file));
    await spooler.enqueue({ name: 'echo', args: ['live-after'] });
    await waitFor(() => goodRuns().length === 4 && lsActive(root).length === 0, { what: 'the good tasks', explain: () => `${describeSpool(root)}\n${daemon.describe()}` });

    expect(daemon.exit).toBeUndefined();
    expect(goodRuns()).toEqual(['live-1', 'live-2', 'live-3', 'live-after']);
    expect(ls(incoming)).toEqual(dots.sort());
    expect(ls(join(root, 'pending'))).toEqual([]);
    expect(ls(join(root, 'dead'))).toEqual([]);
    checkQuarantine(bad);
  });

  it('a file over the default 16 MiB cap (a 100 MB sparse file) is quarantined unread, and the daemon goes on', async () => {
    const spooler = Spooler.open(root);
    const big = taskName('echo', 'msgpack');
    const fd = openSync(join(incoming, big), 'w');
    ftruncateSync(fd, 100 * 1024 * 1024);
    closeSync(fd);
    const daemon = await startServing({ dir: root, imports: ['basic'], records, args: SETTLE });
    await spooler.enqueue({ name: 'echo', args: ['after-big'] });
    await waitForQuarantine(daemon, [big]);
    await waitFor(() => goodRuns().length === 1, { what: 'the good task', explain: () => daemon.describe() });
    expect(quarantined().get(big)).toEqual({ entry: big, kind: 'file', reason: expect.objectContaining({ reason: 'the file is 100.0 MiB, over the 16.0 MiB cap; it was not read', file: big }) });
    expect(daemon.exit).toBeUndefined();
  });

  it('quarantines a symbolic link without following it: the secret in its target appears nowhere but in the target', async () => {
    const SECRET = `SECRET-${randomBytes(12).toString('hex')}`;
    const target = join(dir, 'target-outside-the-spool.json');
    // The target is a valid task: following the link would run it and pass the secret around.
    writeFileSync(target, json({ version: 1, type: 'fcall', args: [SECRET] }));
    const spooler = Spooler.open(root);
    const before = taskName('echo', 'json');
    symlinkSync(target, join(incoming, before));
    const daemon = await startServing({ dir: root, imports: ['basic'], records, args: ['--log-level', 'debug', ...SETTLE] });
    const during = taskName('echo', 'msgpack');
    symlinkSync(target, join(incoming, during));
    await spooler.enqueue({ name: 'echo', args: ['good'] });
    await waitForQuarantine(daemon, [before, during]);
    await waitFor(() => goodRuns().length === 1 && lsActive(root).length === 0, { what: 'the good task', explain: () => daemon.describe() });
    await daemon.stop('SIGTERM');

    for (const f of [before, during]) {
      expect(quarantined().get(f)).toEqual({
        entry: f,
        kind: 'symlink',
        reason: expect.objectContaining({ reason: 'a symbolic link; spool files are never followed through links', file: f }),
      });
    }
    expect(goodRuns()).toEqual(['good']);
    expect(daemonOutput(daemon)).not.toContain(SECRET);
    expect(readFileSync(records, 'utf8')).not.toContain(SECRET);
    const holding = regularFilesUnder(root).filter((f) => f.text.includes(SECRET) || f.path.includes(SECRET));
    expect(holding.map((f) => f.path)).toEqual([]);
    expect(readFileSync(target, 'utf8')).toContain(SECRET);
  });

  it('never copies the content of an invalid file into its reason file or the log', async () => {
    const secrets = {
      // Short, like a password: V8 quotes about ten characters from where JSON.parse stopped.
      'JSON syntax error at the secret': `SECRET${randomBytes(2).toString('hex')}`,
      'a version field holding the secret': `SECRETversion${randomBytes(6).toString('hex')}`,
      'a MessagePack body with one trailing byte': `SECRETtrailing${randomBytes(6).toString('hex')}`,
      'a MessagePack map key holding the secret, over a NaN': `SECRETkey${randomBytes(6).toString('hex')}`,
    };
    const files: Record<string, string> = {};
    const drop = (what: keyof typeof secrets, ext: 'json' | 'msgpack', bytes: Uint8Array) => {
      files[what] = taskName('echo', ext);
      writeFileSync(join(incoming, files[what]!), bytes);
    };
    drop('JSON syntax error at the secret', 'json', Buffer.from(`{"version":1,"type":"fcall","args":[${secrets['JSON syntax error at the secret']}]}`));
    drop('a version field holding the secret', 'json', json({ version: secrets['a version field holding the secret'], type: 'fcall', args: [] }));
    drop('a MessagePack body with one trailing byte', 'msgpack', Buffer.concat([packr.pack({ version: 1, type: 'fcall', args: [secrets['a MessagePack body with one trailing byte']] }), Buffer.from([0x01])]));
    drop('a MessagePack map key holding the secret, over a NaN', 'msgpack', packr.pack({ version: 1, type: 'fcall', args: [], meta: { [secrets['a MessagePack map key holding the secret, over a NaN']]: NaN } }));
    await sleep(300);

    const daemon = await startServing({ dir: root, imports: ['basic'], records, args: ['--log-level', 'debug', ...SETTLE] });
    await waitForQuarantine(daemon, Object.values(files));
    await daemon.stop('SIGTERM');

    const reasons = ls(join(root, 'quarantine'))
      .filter((f) => f.endsWith('.reason.json'))
      .map((f) => readFileSync(join(root, 'quarantine', f), 'utf8'))
      .join('\n');
    const output = daemonOutput(daemon);
    // Any 10 characters of a secret count.
    const leaked = (text: string, secret: string) => Array.from({ length: secret.length - 9 }, (_, i) => secret.slice(i, i + 10)).some((part) => text.includes(part));
    const leaks = Object.entries(secrets).flatMap(([what, secret]) => [
      ...(leaked(reasons, secret) ? [`${what}: copied into quarantine/*.reason.json`] : []),
      ...(leaked(output, secret) ? [`${what}: copied into the daemon's log`] : []),
    ]);
    expect(leaks).toEqual([]);
    expect(goodRuns()).toEqual([]);
  });

  it('never opens a FIFO: a writer blocked opening it for writing stays blocked, and the daemon goes on', async () => {
    const spooler = Spooler.open(root);
    const daemon = await startServing({ dir: root, imports: ['basic'], records, args: SETTLE });
    const fifo = join(dir, 'fifo-staging');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    // A writer blocks in open() until some process opens the FIFO for reading.
    const writer = spawn(
      process.execPath,
      ['-e', "process.stdout.write('ready\\n'); require('fs').openSync(process.argv[1], 'w'); process.stdout.write('opened\\n')", fifo],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    helpers.push(writer);
    let writerOut = '';
    writer.stdout!.setEncoding('utf8').on('data', (d: string) => (writerOut += d));
    await waitFor(() => writerOut.startsWith('ready'), { what: 'the writer to start' });
    await waitFor(() => blockedOpeningFifo(writer.pid!), { what: 'the writer to block in open()' });
    // A second name for the same FIFO, in incoming/: the writer's name stays, so however late the
    // writer reaches open() it opens the FIFO (and blocks), never a regular file of its own.
    const name = taskName('echo', 'msgpack');
    linkSync(fifo, join(incoming, name));
    await spooler.enqueue({ name: 'echo', args: ['after-fifo'] });
    await waitForQuarantine(daemon, [name]);
    await waitFor(() => goodRuns().length === 1, { what: 'the good task', explain: () => daemon.describe() });
    // Still asleep in open(), now that the daemon is past the FIFO: had anything opened it for reading, the kernel
    // would have let the writer's open() return (and the writer out of that sleep for good).
    await waitFor(() => blockedOpeningFifo(writer.pid!), { what: 'the writer still blocked in open()', explain: () => `writer: ${JSON.stringify(writerOut)}` });
    expect(quarantined().get(name)?.kind).toBe('fifo');
    expect(writerOut, 'the daemon opened the FIFO (the writer got past open())').toBe('ready\n');
    expect(writer.exitCode).toBeNull();
    expect(daemon.exit).toBeUndefined();
  });

  it('says in each reason file which directory the bad file was dropped into', async () => {
    const file = taskName('echo', 'json');
    writeFileSync(join(incoming, file), json({ version: 7, type: 'fcall' }));
    const badName = 'not-a-task.json';
    writeFileSync(join(incoming, badName), json({ version: 1, type: 'fcall' }));
    await sleep(300);
    const daemon = await startServing({ dir: root, imports: ['basic'], records, args: SETTLE });
    await waitForQuarantine(daemon, [file, badName]);
    // SPOOL-FORMAT.md, "Quarantine": {"reason": "...", "from": "incoming", "file": "<original name>", "at": <ms>}
    expect(quarantined().get(badName)?.reason.from).toBe('incoming');
    expect(quarantined().get(file)?.reason.from).toBe('incoming');
  });
});

describe('a producer that writes a task in place in incoming/', () => {
  for (const encoding of ['json', 'msgpack'] as const) {
    it(`slowly (half, 300 ms pause, the rest; ${encoding}) still gets its task run exactly once, not quarantined`, async () => {
      const daemon = await startServing({ dir: root, imports: ['basic'], records, args: ['--settle', '2s', '--scan-interval', '500ms', '--log-level', 'debug'] });
      const name = taskName('echo', encoding);
      const body = { version: 1, type: 'fcall', args: ['written-in-place', 'x'.repeat(200)] };
      const bytes = encoding === 'json' ? json(body) : packr.pack(body);
      const half = Math.floor(bytes.length / 2);
      const fd = openSync(join(incoming, name), 'wx');
      writeSync(fd, bytes, 0, half);
      await sleep(300);
      writeSync(fd, bytes, half, bytes.length - half);
      closeSync(fd);

      await waitFor(() => goodRuns().length >= 1 && lsActive(root).length === 0 && ls(incoming).length === 0, {
        timeoutMs: 15_000,
        what: 'the task written in place to run',
        explain: () => `${describeSpool(root)}\n${daemon.describe()}`,
      });
      // Past the --settle time of the half-written file first seen, and a scan: no second run, no quarantine.
      await testSpool.runMarker(daemon, 2500);
      expect(goodRuns()).toEqual(['written-in-place']);
      expect(readRecords(records)[0]!.args).toEqual(body.args);
      expect(ls(join(root, 'quarantine'))).toEqual([]);
      expect(ls(join(root, 'dead'))).toEqual([]);
      expect(ls(join(root, 'pending'))).toEqual([]);
      expect(daemon.exit).toBeUndefined();
    });
  }
});
