/**
 * Makes the conformance vectors from the cases (cases.ts) by asking the
 * TypeScript implementation what it makes of each: the name parser
 * (spool/name.ts), the reader (spool/task-file.ts: the body check and decode
 * the daemon uses) and the writer (the runtime's enqueue). The committed
 * files in conformance/vectors/ must equal what this makes;
 * test/conformance.test.ts checks it, and `npm run conformance:write`
 * rewrites them.
 */
import { isUtf8 } from 'node:buffer';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spooler, type EnqueueOptions, type TaskHandle } from '../runtime/spooler.js';
import { explainBadName, parseTaskName } from '../spool/name.js';
import { decodeTask } from '../spool/task-file.js';
import { BODY_CASES, NAME_CASES, PRODUCE_CASES, type ProduceCase, type ProduceInput } from './cases.js';
import { fromTagged, toTagged } from './tags.js';

/** The id and time every body vector is read under (only its extension matters to the body). */
export const BODY_FILE_STEM = '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-vector';

export const VECTOR_FILES = ['names.json', 'bodies.json', 'produce.json'] as const;
export type VectorFile = (typeof VECTOR_FILES)[number];

const ABOUT: Record<VectorFile, string> = {
  'names.json': 'Task file names and what a reader makes of them (SPOOL-FORMAT.md, "File name"). Generated from spoolerd\'s own parser; see conformance/README.md.',
  'bodies.json': 'Task bodies and what a reader makes of them (SPOOL-FORMAT.md, "Body", "Values", "JSON bodies"). Generated from spoolerd\'s own reader; see conformance/README.md.',
  'produce.json': 'What a producer must write for each call, or refuse (SPOOL-FORMAT.md, "Enqueueing"). Generated from spoolerd\'s own runtime; check a kit\'s output with dist/conformance/check.js; see conformance/README.md.',
};

export function nameVectors(): unknown[] {
  return NAME_CASES.map((c) => {
    const parsed = parseTaskName(c.file);
    if (parsed === undefined) return { id: c.id, why: c.why, file: c.file, valid: false, reason: explainBadName(c.file) };
    const { priority, due, id, attempts, name, encoding } = parsed;
    return { id: c.id, why: c.why, file: c.file, valid: true, parsed: { priority, due, id, attempts, name, encoding } };
  });
}

export function bodyVectors(): unknown[] {
  return BODY_CASES.map((c) => {
    const bytes = Buffer.from(c.bytes);
    // JSON cases are given as text where the bytes are text; a BOM or invalid UTF-8 needs the bytes.
    const asText = c.encoding === 'json' && isUtf8(bytes) && !(bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf);
    const given = asText ? { text: bytes.toString('utf8') } : { hex: bytes.toString('hex') };
    const outcome = decodeTask(`${BODY_FILE_STEM}.${c.encoding}`, bytes);
    const head = { id: c.id, why: c.why, encoding: c.encoding, ...given };
    return outcome.ok ? { ...head, valid: true, decoded: toTagged(outcome.task.body) } : { ...head, valid: false, reason: outcome.reason };
  });
}

/** The runtime's options for a produce case's input. */
export function enqueueOptionsOf(input: ProduceInput): EnqueueOptions {
  return {
    ...(input.priority !== undefined && { priority: input.priority }),
    ...(input.postponeMs !== undefined && { postpone: input.postponeMs }),
    ...(input.retries !== undefined && { retries: input.retries }),
    ...(input.unique !== undefined && { unique: input.unique }),
    ...(input.encoding !== undefined && { encoding: input.encoding }),
  };
}

/** Makes the call of a produce case's input with spoolerd's runtime, into the spool `dir`. */
export async function enqueueInput(dir: string, input: ProduceInput): Promise<TaskHandle> {
  return Spooler.open(dir).enqueue({ name: input.name, args: fromTagged(input.args ?? []) as unknown[], options: enqueueOptionsOf(input) });
}

/**
 * What the runtime makes of one producer call: the file it writes, or the
 * error it throws. It leaves <base>/<case id>/ as a kit's harness does
 * (conformance/README.md): the spool, and `refused` for a refused call.
 */
async function produceOne(c: ProduceCase, base: string): Promise<unknown> {
  const dir = join(base, c.id);
  const input: ProduceInput = c.input;
  const head = { id: c.id, why: c.why, input };
  try {
    mkdirSync(dir);
    await enqueueInput(dir, input);
  } catch (err) {
    writeFileSync(join(dir, 'refused'), (err as Error).message);
    // A time in the message (a due time computed from now) would change the vector at every run.
    return { ...head, refuse: `${(err as Error).name}: ${(err as Error).message}`.replace(/\d{13,}/g, '<time>') };
  }
  const files = readdirSync(join(dir, 'incoming'));
  if (files.length !== 1) throw new Error(`${c.id}: the runtime wrote ${files.length} files`);
  const file = files[0]!;
  const decoded = decodeTask(file, readFileSync(join(dir, 'incoming', file)));
  if (!decoded.ok) throw new Error(`${c.id}: the runtime wrote a file its reader refuses: ${decoded.reason}`);
  const task = decoded.task;
  const expect = {
    priority: task.priority,
    attempts: task.attempts,
    name: task.name,
    ...(input.encoding !== undefined && { encoding: task.encoding }),
    dueAfterCreatedMs: input.postponeMs ?? 0,
    body: toTagged(task.body),
    ...(input.unique !== undefined && { uniqueKey: { key: input.unique, while: 'pending' } }),
  };
  return { ...head, expect };
}

/** The produce vectors; `keepIn`: an empty folder to leave the runtime's spools in, one per case (else they are removed). */
export async function produceVectors(keepIn?: string): Promise<unknown[]> {
  const base = keepIn ?? mkdtempSync(join(tmpdir(), 'spoolerd-conformance-'));
  try {
    const out: unknown[] = [];
    for (const c of PRODUCE_CASES) out.push(await produceOne(c, base));
    return out;
  } finally {
    if (keepIn === undefined) rmSync(base, { recursive: true, force: true });
  }
}

/** A vector file's text: one case per line, so a change shows as the lines of the cases it changes. */
export function vectorText(file: VectorFile, cases: unknown[]): string {
  return `{"about": ${JSON.stringify(ABOUT[file])},\n"cases": [\n${cases.map((c) => JSON.stringify(c)).join(',\n')}\n]}\n`;
}

/** Every vector file's text, as generated now; `keepIn` as for produceVectors. */
export async function generateVectors(keepIn?: string): Promise<Record<VectorFile, string>> {
  return {
    'names.json': vectorText('names.json', nameVectors()),
    'bodies.json': vectorText('bodies.json', bodyVectors()),
    'produce.json': vectorText('produce.json', await produceVectors(keepIn)),
  };
}
