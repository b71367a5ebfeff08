#!/usr/bin/env node
/**
 * The language-neutral conformance checker (conformance/README.md says how a
 * kit drives it):
 *
 *   node dist/conformance/check.js produced <dir>   one spool per produce case: <dir>/<case id>/
 *   node dist/conformance/check.js names <results.json>    a reader's verdicts on names.json
 *   node dist/conformance/check.js bodies <results.json>   a reader's verdicts on bodies.json
 *
 * Each looks at what a producer (or reader) in another language made with
 * spoolerd's own reader, prints one line per case and a summary, and exits 0
 * only when every case passes (1 when one fails, 2 for a usage error).
 * Options: --vectors <folder> (default: conformance/vectors of this
 * checkout), --only <id,id…>.
 */
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { explainBadName, parseTaskName } from '../spool/name.js';
import { readRegularFile } from '../spool/safe-read.js';
import { decodeTask } from '../spool/task-file.js';
import { keyFileName, readKeyFile } from '../spool/unique.js';
import { VECTORS_DIR } from './paths.js';
import { sameTagged, toTagged } from './tags.js';

/** A producer writes the creation time of its own clock or of the spool's (the staging file's mtime): they may differ this much. */
export const CREATED_NEAR_MTIME_MS = 5000;
/** A postponed task is due no earlier than asked, and not much later (1 s more where mtimes are whole seconds, see "Clocks"). */
export const POSTPONE_SLACK_MS = 2000;

export interface ProduceVector {
  id: string;
  why: string;
  input: { name: string; encoding?: string; unique?: string };
  expect?: {
    priority: number;
    attempts: number;
    name: string;
    encoding?: 'json' | 'msgpack';
    dueAfterCreatedMs: number;
    body: Record<string, unknown>;
    uniqueKey?: { key: string; while: string };
  };
  refuse?: string;
}

export type Verdict = { id: string; status: 'ok' | 'fail' | 'unsupported'; problems: string[] };

const entries = (dir: string): string[] => {
  try {
    return readdirSync(dir).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
};

const short = (v: unknown): string => {
  const s = JSON.stringify(v);
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
};

/** A body with its defaults filled in, so that a producer may leave out what the format lets it leave out. */
function withDefaults(body: Record<string, unknown>): Record<string, unknown> {
  return body.type === 'fcall' && body.args === undefined ? { ...body, args: [] } : body;
}

/** Checks the spool one kit made for one produce case. `umask`: the producer's, for the file's mode. */
export function checkProducedCase(v: ProduceVector, caseDir: string, umask: number): Verdict {
  const problems: string[] = [];
  const verdict = (): Verdict => ({ id: v.id, status: problems.length === 0 ? 'ok' : 'fail', problems });
  if (!existsSync(caseDir)) return { id: v.id, status: 'fail', problems: [`not run: there is no ${caseDir}`] };
  if (existsSync(join(caseDir, 'unsupported'))) {
    return { id: v.id, status: 'unsupported', problems: [readFileSync(join(caseDir, 'unsupported'), 'utf8').trim() || '(no reason given)'] };
  }
  const incoming = entries(join(caseDir, 'incoming'));
  const tmp = entries(join(caseDir, 'tmp'));
  const unique = entries(join(caseDir, 'unique'));
  if (tmp.length > 0) problems.push(`tmp/ is not empty: ${tmp.join(', ')} (staging files must be renamed or removed)`);
  const refused = join(caseDir, 'refused');

  if (v.refuse !== undefined) {
    if (!existsSync(refused)) problems.push(`not refused (spoolerd refuses it: ${v.refuse}); a producer that refuses writes its error to ${v.id}/refused`);
    if (incoming.length > 0) problems.push(`a refused call wrote incoming/${incoming.join(', incoming/')}`);
    if (unique.length > 0) problems.push(`a refused call left unique/${unique.join(', unique/')}`);
    return verdict();
  }
  const expect = v.expect!;
  if (existsSync(refused)) problems.push(`refused: ${readFileSync(refused, 'utf8').trim()}`);
  if (incoming.length !== 1) {
    problems.push(`incoming/ holds ${incoming.length} entries, not 1${incoming.length > 0 ? `: ${incoming.join(', ')}` : ''}`);
    return verdict();
  }
  const file = incoming[0]!;
  const path = join(caseDir, 'incoming', file);
  const st = lstatSync(path);
  if (!st.isFile()) {
    problems.push(`incoming/${file} is not a regular file`);
    return verdict();
  }
  const mode = st.mode & 0o7777;
  const wanted = 0o666 & ~umask;
  if (mode !== wanted) problems.push(`mode ${mode.toString(8).padStart(4, '0')}, not ${wanted.toString(8).padStart(4, '0')} (0666 minus the umask ${umask.toString(8).padStart(3, '0')}, as open(2) with O_CREAT makes it)`);

  const name = parseTaskName(file);
  if (name === undefined) {
    problems.push(`bad file name ${JSON.stringify(file)}: ${explainBadName(file)}`);
    return verdict();
  }
  for (const field of ['priority', 'attempts', 'name', 'encoding'] as const) {
    if (expect[field] !== undefined && name[field] !== expect[field]) problems.push(`${field} in the name is ${JSON.stringify(name[field])}, not ${JSON.stringify(expect[field])}`);
  }
  const after = name.due - name.created;
  if (expect.dueAfterCreatedMs === 0) {
    if (after !== 0) problems.push(`due ${name.due} is not the creation time ${name.created} (a task due now has DUE = the time in its id)`);
  } else if (after < expect.dueAfterCreatedMs || after > expect.dueAfterCreatedMs + POSTPONE_SLACK_MS) {
    problems.push(`due ${after} ms after its creation, not ${expect.dueAfterCreatedMs} ms (to ${expect.dueAfterCreatedMs + POSTPONE_SLACK_MS} ms)`);
  }
  if (Math.abs(name.created - st.mtimeMs) > CREATED_NEAR_MTIME_MS) {
    problems.push(`the creation time in the id (${name.created}) is ${Math.round(name.created - st.mtimeMs)} ms from the file's mtime: is it ms since the epoch?`);
  }

  const read = readRegularFile(path);
  if (!read.ok) {
    problems.push(`cannot be read: ${read.reason}`);
    return verdict();
  }
  const decoded = decodeTask(file, read.bytes);
  if (!decoded.ok) {
    problems.push(`spoolerd's reader refuses it: ${decoded.reason}`);
  } else {
    const body = toTagged(withDefaults(decoded.task.body as unknown as Record<string, unknown>));
    const wantedBody = withDefaults(expect.body);
    if (!sameTagged(body, wantedBody)) problems.push(`body ${short(body)}, not ${short(wantedBody)}`);
  }

  if (expect.uniqueKey === undefined) {
    if (unique.length > 0) problems.push(`unique/ holds ${unique.join(', ')} for a task without a key`);
  } else {
    const hash = keyFileName(expect.name, expect.uniqueKey.key);
    const others = unique.filter((n) => n !== hash);
    if (others.length > 0) problems.push(`unique/ holds other files: ${others.join(', ')}`);
    const key = readKeyFile(join(caseDir, 'unique', hash));
    if (!key.ok) {
      problems.push(`unique/${hash} (SHA-256 of the task name, a newline and the key): ${key.missing ? 'missing' : key.reason}`);
    } else {
      const h = key.holder;
      if (h.id !== name.id) problems.push(`unique/${hash} names task ${h.id}, not ${name.id}`);
      if (h.file !== file) problems.push(`unique/${hash} names file ${h.file}, not ${file}`);
      if (h.key !== expect.uniqueKey.key) problems.push(`unique/${hash} holds key ${JSON.stringify(h.key)}, not ${JSON.stringify(expect.uniqueKey.key)}`);
      if (h.while !== expect.uniqueKey.while) problems.push(`unique/${hash} is held while ${h.while}, not ${expect.uniqueKey.while}`);
    }
  }
  return verdict();
}

/** A reader's verdict on one name or body vector, as a kit writes it (conformance/README.md). */
interface ReaderResult {
  id: string;
  valid: boolean;
  parsed?: unknown;
  decoded?: unknown;
}

/** Compares a reader's verdicts with the vectors: the same valid/invalid, and the same parsed fields or decoded body. */
export function checkReaderResults(kind: 'names' | 'bodies', vectors: { id: string; valid: boolean; parsed?: unknown; decoded?: unknown }[], results: ReaderResult[]): Verdict[] {
  const byId = new Map(results.map((r) => [r.id, r]));
  return vectors.map((v) => {
    const r = byId.get(v.id);
    if (r === undefined) return { id: v.id, status: 'fail', problems: ['no result for this case'] };
    const problems: string[] = [];
    if (r.valid !== v.valid) problems.push(`read as ${r.valid ? 'valid' : 'invalid'}, but it is ${v.valid ? 'valid' : 'invalid'}`);
    else if (v.valid) {
      const field = kind === 'names' ? 'parsed' : 'decoded';
      if (!sameTagged(r[field], v[field])) problems.push(`${field} ${short(r[field])}, not ${short(v[field])}`);
    }
    return { id: v.id, status: problems.length === 0 ? 'ok' : 'fail', problems };
  });
}

function readVectors<T>(dir: string, file: string): T[] {
  return (JSON.parse(readFileSync(join(dir, file), 'utf8')) as { cases: T[] }).cases;
}

function report(kind: string, verdicts: Verdict[]): number {
  for (const v of verdicts) {
    if (v.status === 'ok') console.log(`ok    ${v.id}`);
    else console.log(`${v.status === 'fail' ? 'FAIL' : 'n/a '}  ${v.id}: ${v.problems.join('; ')}`);
  }
  const count = (s: Verdict['status']) => verdicts.filter((v) => v.status === s).length;
  const failed = count('fail');
  console.log(`${kind}: ${count('ok')} passed, ${failed} failed, ${count('unsupported')} unsupported, of ${verdicts.length} cases`);
  return failed === 0 ? 0 : 1;
}

const USAGE = 'usage: check.js produced <dir> | names <results.json> | bodies <results.json>  [--vectors <folder>] [--only <id,id…>]';

export function main(argv: string[]): number {
  const args = [...argv];
  const option = (flag: string): string | undefined => {
    const i = args.indexOf(flag);
    if (i < 0) return undefined;
    const value = args[i + 1];
    args.splice(i, 2);
    return value;
  };
  const vectorsDir = option('--vectors') ?? VECTORS_DIR;
  const only = option('--only')?.split(',');
  const [command, target] = args;
  if (target === undefined || !['produced', 'names', 'bodies'].includes(command!)) {
    console.error(USAGE);
    return 2;
  }
  const pick = <T extends { id: string }>(cases: T[]): T[] => (only === undefined ? cases : cases.filter((c) => only.includes(c.id)));
  if (command === 'produced') {
    const vectors = pick(readVectors<ProduceVector>(vectorsDir, 'produce.json'));
    const umask = process.umask();
    const known = new Set(vectors.map((v) => v.id));
    for (const extra of entries(target)) if (!known.has(extra) && only === undefined) console.log(`note  ${extra}: not a produce case; ignored`);
    return report('produce', vectors.map((v) => checkProducedCase(v, join(target, v.id), umask)));
  }
  const file = command === 'names' ? 'names.json' : 'bodies.json';
  const vectors = pick(readVectors<{ id: string; valid: boolean }>(vectorsDir, file));
  const results = (JSON.parse(readFileSync(target, 'utf8')) as { results: ReaderResult[] }).results;
  return report(command!, checkReaderResults(command as 'names' | 'bodies', vectors, results));
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) process.exitCode = main(process.argv.slice(2));
