/**
 * The producer examples of SPOOL-FORMAT.md, which use no kit, run as printed
 * (only the spool's path substituted): the shell ones by dash, a POSIX shell
 * without bash's extensions, the Python one by python3 with python3-msgpack.
 * Each must enqueue a task that a real daemon, importing a module that
 * registers `sendEmail` the way README does, runs once with the example's
 * arguments. (README's own examples use the kits: test/readme.test.ts runs them.)
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';
import { keyFileName, readKeyFile } from '../spool/unique.js';
import { ls, readRecords, startServing, waitFor } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';
import { PYTHON, requirePythonMsgpack } from './helpers/python.js';

/** The first fenced block of `lang` after `heading` in `doc`. */
function example(doc: string, heading: string, lang: string): string {
  const text = readFileSync(join(ROOT, doc), 'utf8');
  const from = text.indexOf(heading);
  if (from < 0) throw new Error(`${doc} has no "${heading}"`);
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(text.slice(from));
  if (!m) throw new Error(`${doc} has no ${lang} block after "${heading}"`);
  return m[1]!;
}

let dir: string;
let root: string;
let records: string;
useDaemonSpool('docs-producers-', { open: true, bind: (s) => ({ dir, root, records } = s) });

function run(command: string, args: string[], cwd: string): void {
  const r = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 20_000 });
  if (r.error) throw r.error;
  expect(r.status, `${command} failed: ${r.stderr}`).toBe(0);
}

describe('the documented producers run the documented task', () => {
  it('SPOOL-FORMAT.md\'s shell producer with a unique key, run three times, enqueues sendEmail once; the daemon runs it and releases the key', async () => {
    const script = example('SPOOL-FORMAT.md', 'From a POSIX shell (`ln`', 'sh').replace('spool=/var/spool/app', `spool=${root}`);
    for (let i = 0; i < 3; i++) run('dash', ['-c', script], dir);
    const files = ls(join(root, 'incoming'));
    expect(files).toHaveLength(1);
    const keys = ls(join(root, 'unique'));
    expect(keys).toEqual([keyFileName('sendEmail', 'a@example.com')]);
    const held = readKeyFile(join(root, 'unique', keys[0]!));
    expect(held).toEqual(expect.objectContaining({ ok: true, holder: expect.objectContaining({ file: files[0], key: 'a@example.com', while: 'pending' }) }));
    expect(ls(join(root, 'tmp'))).toEqual([]);
    const daemon = await startServing({ dir: root, imports: ['readme'], records });
    await waitFor(() => readRecords(records).length >= 1, { what: 'the task to run', explain: () => daemon.describe(20) });
    await daemon.stop();
    expect(readRecords(records).map((r) => [r.task, r.args])).toEqual([['sendEmail', ['a@example.com', 'hi']]]);
    expect(ls(join(root, 'unique'))).toEqual([]);
  });

  it('SPOOL-FORMAT.md shell and SPOOL-FORMAT.md Python each enqueue sendEmail("a@example.com", "hi"), which runs once', async () => {
    requirePythonMsgpack();
    run('dash', ['-c', example('SPOOL-FORMAT.md', 'From a POSIX shell', 'sh').replace('spool=/var/spool/app', `spool=${root}`)], dir);
    run(PYTHON, ['-c', example('SPOOL-FORMAT.md', 'From Python with `msgpack`', 'python').replace('"/var/spool/app"', JSON.stringify(root))], dir);
    const files = ls(join(root, 'incoming'));
    expect(files).toHaveLength(2);
    for (const f of files) expect(f).toMatch(/^50-\d{13}-\d{13}[0-9a-f]{16}-a0-sendEmail\.(json|msgpack)$/);

    const daemon = await startServing({ dir: root, imports: ['readme'], records });
    await waitFor(() => readRecords(records).length >= 2, { what: 'the two example tasks run', explain: () => daemon.describe(20) });
    await daemon.stop();
    expect(readRecords(records).map((r) => [r.task, r.args])).toEqual([
      ['sendEmail', ['a@example.com', 'hi']],
      ['sendEmail', ['a@example.com', 'hi']],
    ]);
    expect(ls(join(root, 'dead'))).toEqual([]);
    expect(ls(join(root, 'tmp'))).toEqual([]);
  });

  it('set -C, as the shell examples use it, makes ">" refuse a staging file that exists (O_EXCL)', () => {
    const r = spawnSync('dash', ['-c', 'set -C; printf a > f; printf b > f'], { cwd: dir, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(readFileSync(join(dir, 'f'), 'utf8')).toBe('a');
  });
});
