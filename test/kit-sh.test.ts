/**
 * The shell kit, kits/sh/spool-drop, under dash and busybox sh (POSIX shells
 * without bash's extensions): every produce case of the conformance vectors
 * through the checker process, and tasks with mixed priorities, a postpone
 * and a unique key into a spool served by a real spoolerd, which runs each
 * once, in priority order among due tasks, none early.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ProduceVector } from '../conformance/check.js';
import { parseTaskName } from '../spool/name.js';
import { ROOT } from './helpers/cli.js';
import { ls, readRecords, waitFor } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

const SPOOL_DROP = join(ROOT, 'kits/sh/spool-drop');
const CHECK = join(ROOT, 'dist/conformance/check.js');
const SHELLS: [label: string, command: string[]][] = [
  ['dash', ['dash']],
  ['busybox sh', ['busybox', 'sh']],
];

/** Whether a command exists; CI installs dash and busybox (.ci/run), so only a bare machine skips. */
function installed(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
}

function drop(shell: string[], args: string[], cwd?: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(shell[0]!, [...shell.slice(1), SPOOL_DROP, ...args], { encoding: 'utf8', timeout: 20_000, ...(cwd && { cwd }) });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A tagged argument of a produce case as the JSON text `spool-drop -j` takes (NaN and infinities as the non-JSON words a caller might pass). */
function jsonText(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(jsonText).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const [tag, inner] = Object.entries(v)[0] ?? [];
    if (Object.keys(v).length === 1 && tag === '$float') return /^-?\d+$/.test(String(inner)) && inner !== '-0' ? `${String(inner)}.0` : String(inner);
    if (Object.keys(v).length === 1 && tag === '$int') return String(inner);
    const map = Object.keys(v).length === 1 && tag === '$map' ? (inner as Record<string, unknown>) : (v as Record<string, unknown>);
    return `{${Object.entries(map).map(([k, x]) => `${JSON.stringify(k)}:${jsonText(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Why the shell kit cannot make a case's call at all, or undefined. */
function unsupported(v: ProduceVector & { input: { args?: unknown[] } }): string | undefined {
  if (v.input.encoding === 'msgpack') return 'spool-drop writes JSON bodies only';
  const text = JSON.stringify(v.input.args ?? []);
  if (text.includes('"$bytes"')) return 'a shell argument is text: it has no bytes type';
  if (text.includes('"$function"')) return 'a shell has no functions to pass';
  if (text.includes('"$repeat"')) return 'one argument of a command is at most 128 KiB (MAX_ARG_STRLEN), so no body can reach the 16 MiB cap';
  return undefined;
}
/** The cases the shell kit cannot express: kept explicit, so that a new vector the kit skips shows up here. */
const UNSUPPORTED = ['produce-msgpack', 'produce-values-msgpack', 'produce-double-beyond-2-53', 'refuse-function', 'refuse-bytes-in-json', 'refuse-over-size-cap'];

/** Runs every produce case with spool-drop into <out>/<id>/, as conformance/README.md asks of a kit. */
function produceAll(shell: string[], out: string): void {
  const vectors = (JSON.parse(readFileSync(join(ROOT, 'conformance/vectors/produce.json'), 'utf8')) as { cases: (ProduceVector & { input: Record<string, unknown> & { args?: unknown[] } })[] }).cases;
  for (const v of vectors) {
    const caseDir = join(out, v.id);
    mkdirSync(caseDir, { recursive: true });
    const why = unsupported(v);
    if (why !== undefined) {
      writeFileSync(join(caseDir, 'unsupported'), why);
      continue;
    }
    const i = v.input;
    const args = i.args ?? [];
    const options: string[] = [];
    if (i.priority !== undefined) options.push('-p', String(i.priority));
    if (i.postponeMs !== undefined) options.push('-d', String(i.postponeMs));
    if (i.retries !== undefined) options.push('-r', String(i.retries));
    if (i.unique !== undefined) options.push('-u', i.unique);
    // Plain strings as they are; anything else (or text no argv can carry) as JSON with -j.
    const plain = args.every((a) => typeof a === 'string' && (a as string & { isWellFormed(): boolean }).isWellFormed());
    if (!plain) options.push('-j');
    const r = drop(shell, [...options, caseDir, String(i.name), ...args.map((a) => (plain ? (a as string) : jsonText(a)))]);
    if (r.code === 2) writeFileSync(join(caseDir, 'refused'), r.stderr);
    else if (r.code !== 0) throw new Error(`${v.id}: spool-drop failed (${r.code}): ${r.stderr}`);
    else expect(r.stdout, v.id).toMatch(/^\d{13}[0-9a-f]{16}\n$/);
  }
}

let dir: string;
let root: string;
let records: string;
const testSpool = useDaemonSpool('spoolerd-kit-sh-', { bind: (s) => ({ dir, root, records } = s) });

describe.each(SHELLS)('kits/sh/spool-drop under %s', (label, shell) => {
  it('passes the produce cases of the conformance vectors through the checker', ({ skip }) => {
    if (!installed(shell[0]!)) {
      console.log(`skipped: ${shell[0]} is not installed (apt-get install -y ${shell[0]}; CI installs it)`);
      skip();
    }
    const out = join(dir, 'produced');
    produceAll(shell, out);
    const r = spawnSync(process.execPath, [CHECK, 'produced', out], { encoding: 'utf8', timeout: 30_000 });
    const output = r.stdout + r.stderr;
    expect(output, output).toMatch(/^produce: \d+ passed, 0 failed, \d+ unsupported, of \d+ cases$/m);
    expect(r.status, output).toBe(0);
    expect(output.split('\n').filter((l) => l.startsWith('n/a')).map((l) => l.split(/\s+/)[1]!.replace(/:$/, ''))).toEqual(UNSUPPORTED);
    // Refused calls say why, in words a shell user can act on.
    expect(readFileSync(join(out, 'refuse-name-space', 'refused'), 'utf8')).toMatch(/^spool-drop: task name 'send email': a task name starts with a letter/);
    expect(readFileSync(join(out, 'refuse-nan', 'refused'), 'utf8')).toMatch(/argument 1 is not JSON \(NaN and infinities are not JSON either\)/);
    expect(readFileSync(join(out, 'refuse-lone-surrogate', 'refused'), 'utf8')).toMatch(/argument 1 holds a lone surrogate escape \(\\ud800\)/);
    expect(readFileSync(join(out, 'refuse-integer-2-53', 'refused'), 'utf8')).toMatch(/argument 1 holds an integer beyond/);
    void label;
  });
});

describe('spool-drop into a spool served by spoolerd', () => {
  it('from dash and busybox sh: each task runs once, due tasks by priority, the postponed one not before its time; a held unique key adds nothing', async ({ skip }) => {
    for (const [, shell] of SHELLS) {
      if (!installed(shell[0]!)) {
        console.log(`skipped: ${shell[0]} is not installed (apt-get install -y ${shell[0]}; CI installs it)`);
        skip();
      }
    }
    const [dash, busybox] = [SHELLS[0]![1], SHELLS[1]![1]];
    const enqueue = (shell: string[], args: string[]): string => {
      const r = drop(shell, args);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim();
    };
    enqueue(dash, ['-p', '70', root, 'echo', 'dash p70']);
    enqueue(busybox, ['-p', '20', root, 'echo', 'busybox p20']);
    enqueue(dash, ['-p', '10', root, 'echo', 'dash p10']);
    const held = enqueue(dash, ['-p', '30', '-u', 'user "42"', root, 'echo', 'unique first']);
    // The same key again, from the other shell: nothing is added, and the holder's id comes back.
    const again = drop(busybox, ['-p', '30', '-u', 'user "42"', root, 'echo', 'unique second']);
    expect(again).toEqual({ code: 0, stdout: `${held}\n`, stderr: `spool-drop: the unique key is held by task ${held}; nothing added\n` });
    enqueue(busybox, ['-j', root, 'echo', '"busybox json p50"', '{"n":[1,2.5,null,true]}']);
    enqueue(busybox, ['-p', '60', root, 'echo', 'busybox p60 é "quoted" \\ $(no) `no`']);
    // Priority 0 but due in 1.5 s: it may not jump the queue before it is due, and never runs early.
    enqueue(dash, ['-p', '0', '-d', '1500', root, 'echo', 'dash postponed']);
    expect(ls(join(root, 'incoming'))).toHaveLength(7);
    expect(ls(join(root, 'tmp'))).toEqual([]);

    const daemon = await testSpool.serve({ imports: ['basic'], args: ['--concurrency', '1', '--processes', '0'] });
    const runs = () => readRecords(records).filter((r) => r.task === 'echo');
    await waitFor(() => runs().length >= 7, { what: 'the seven tasks to run', explain: () => `${JSON.stringify(runs())}\n${daemon.describe(20)}` });
    await daemon.stop();
    const ran = runs();
    const label = (r: (typeof ran)[number]) => (r.args as unknown[])[0];
    expect(ran.map(label).filter((l) => l !== 'dash postponed')).toEqual(['dash p10', 'busybox p20', 'unique first', 'busybox json p50', 'busybox p60 é "quoted" \\ $(no) `no`', 'dash p70']);
    expect(ran.map(label).filter((l) => l === 'dash postponed')).toHaveLength(1);
    const postponed = ran.find((r) => label(r) === 'dash postponed')!;
    expect(postponed.time as number).toBeGreaterThanOrEqual(parseTaskName(postponed.file as string)!.due);
    expect(ran.find((r) => label(r) === 'busybox json p50')!.args).toEqual(['busybox json p50', { n: [1, 2.5, null, true] }]);
    expect(ran.find((r) => label(r) === 'unique first')!.id).toBe(held);
    // The key was released when its task was claimed; nothing was left behind or quarantined.
    for (const folder of ['incoming', 'pending', 'unique', 'tmp', 'dead', 'quarantine']) expect(ls(join(root, folder)), folder).toEqual([]);
  });
});
