/**
 * The conformance vectors (conformance/vectors/) and their checker
 * (dist/conformance/check.js). The vectors are one source of truth: they must
 * equal what the TypeScript parser, reader and runtime make of their inputs
 * now, so a change to the format that changes a vector fails here (and
 * `npm run conformance:write` rewrites them). The runtime, as a producer, must
 * pass the produce cases through the real checker process; the checker must
 * catch a producer that gets each thing wrong.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NAME_CASES, BODY_CASES, PRODUCE_CASES } from '../conformance/cases.js';
import { checkProducedCase, checkReaderResults, type ProduceVector } from '../conformance/check.js';
import { BODY_FILE_STEM, enqueueInput, generateVectors, VECTOR_FILES } from '../conformance/generate.js';
import { fromTagged, sameTagged, toTagged } from '../conformance/tags.js';
import { Spooler } from '../runtime/index.js';
import { encodeKeyHolder, keyFileName } from '../spool/unique.js';
import { parseTaskName } from '../spool/name.js';
import { decodeTask } from '../spool/task-file.js';
import { ROOT, tempDir } from './helpers/cli.js';

const CHECK = join(ROOT, 'dist/conformance/check.js');
const VECTORS = join(ROOT, 'conformance/vectors');

const committed = <T>(file: string): T[] => (JSON.parse(readFileSync(join(VECTORS, file), 'utf8')) as { cases: T[] }).cases;
const produceVectors = (): ProduceVector[] => committed<ProduceVector>('produce.json');

function check(args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [CHECK, ...args], { encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw r.error;
  return { code: r.status, out: r.stdout + r.stderr };
}

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir('spoolerd-conformance-test-')));
afterEach(() => cleanup());

/** Runs every produce case with spoolerd's runtime, the way a kit's harness does: <out>/<id>/, `refused` on an error. */
async function produceWithRuntime(out: string, vectors = produceVectors()): Promise<void> {
  for (const v of vectors) {
    const caseDir = join(out, v.id);
    mkdirSync(caseDir, { recursive: true });
    try {
      await enqueueInput(caseDir, v.input as never);
    } catch (err) {
      writeFileSync(join(caseDir, 'refused'), (err as Error).message);
    }
  }
}

/** The spools the runtime wrote while the vectors were generated, one per produce case: what a kit's harness leaves. */
let produced: { dir: string; cleanup: () => void } | undefined;
afterAll(() => produced?.cleanup());
const runtimeOutput = (): string => {
  if (produced === undefined) throw new Error('the vectors were not generated (run the whole file)');
  return produced.dir;
};

describe('the vectors', () => {
  it('are what spoolerd\'s parser, reader and runtime make of their inputs now (else: npm run conformance:write, and review the diff)', { timeout: 30_000 }, async () => {
    produced = tempDir('spoolerd-conformance-runtime-');
    const generated = await generateVectors(produced.dir);
    for (const file of VECTOR_FILES) {
      expect(readFileSync(join(VECTORS, file), 'utf8'), `conformance/vectors/${file} differs from what the implementation makes: if the change is meant, run \`npm run conformance:write\` and review the diff`).toBe(generated[file]);
    }
  });

  it('have unique ids, a why each, and both outcomes in every file', () => {
    const all = [...NAME_CASES, ...BODY_CASES, ...PRODUCE_CASES];
    expect(new Set(all.map((c) => c.id)).size).toBe(all.length);
    for (const c of all) expect(c.why.length, c.id).toBeGreaterThan(5);
    const names = committed<{ valid: boolean }>('names.json');
    const bodies = committed<{ valid: boolean; encoding: string }>('bodies.json');
    const produce = produceVectors();
    for (const encoding of ['json', 'msgpack']) {
      expect(bodies.filter((b) => b.encoding === encoding && b.valid).length, encoding).toBeGreaterThan(5);
      expect(bodies.filter((b) => b.encoding === encoding && !b.valid).length, encoding).toBeGreaterThan(5);
    }
    expect(names.filter((n) => n.valid).length).toBeGreaterThan(10);
    expect(names.filter((n) => !n.valid).length).toBeGreaterThan(10);
    expect(produce.filter((p) => p.expect).length).toBeGreaterThan(10);
    expect(produce.filter((p) => p.refuse).length).toBeGreaterThan(10);
  });

  it('cover the edges SPOOL-FORMAT.md rules on, each with the outcome the format gives', () => {
    const bodies = new Map(committed<{ id: string; valid: boolean; decoded?: unknown }>('bodies.json').map((b) => [b.id, b]));
    const outcome = (id: string) => {
      const b = bodies.get(id);
      if (b === undefined) throw new Error(`no body case ${id}`);
      return b.valid;
    };
    // The format's words, case by case: a generated vector that says otherwise is a bug in the reader.
    expect(outcome('mp-int64-safe-max')).toBe(true);
    expect(outcome('mp-uint64-2-53')).toBe(false);
    expect(outcome('mp-int64-minus-2-53')).toBe(false);
    expect(outcome('mp-depth-64')).toBe(true);
    expect(outcome('mp-depth-65')).toBe(false);
    expect(outcome('json-depth-64')).toBe(true);
    expect(outcome('json-depth-65')).toBe(false);
    expect(outcome('mp-utf8-surrogate')).toBe(false);
    expect(outcome('mp-utf8-overlong')).toBe(false);
    expect(outcome('json-bom')).toBe(false);
    expect(outcome('json-lone-surrogate')).toBe(false);
    expect(outcome('json-integer-beyond-2-53')).toBe(true);
    expect(outcome('mp-unknown-field')).toBe(true);
    for (const f of ['overlap', 'periodic', 'result']) expect(outcome(`mp-reserved-${f}`), f).toBe(false);
    // Chains and children (SPOOL-FORMAT.md, "Chains", "Children and continuations").
    expect(outcome('mp-chain-steps')).toBe(true);
    expect(outcome('mp-onError-step')).toBe(true);
    for (const id of ['mp-chain-not-a-list', 'mp-chain-step-without-name', 'mp-chain-step-priority-100', 'mp-onError-not-a-step', 'mp-flow-not-an-id']) expect(outcome(id), id).toBe(false);
    expect(outcome('mp-version-2')).toBe(false);
    expect(bodies.get('mp-duplicate-key')!.decoded).toEqual({ version: 1, type: 'fcall', args: [2] });
    expect(bodies.get('mp-map-int-keys')!.decoded).toEqual({ version: 1, type: 'fcall', args: [{ 1: 'one', '-2': 'minus two' }] });
    expect(bodies.get('mp-float32')!.decoded).toEqual({ version: 1, type: 'fcall', args: [Math.fround(0.1), 1.5] });
    // Characters of a unique key are code points, in the body check, the runtime and the key file alike.
    expect(outcome('mp-unique-1024-astral')).toBe(true);
    expect(outcome('mp-unique-1025-astral')).toBe(false);
    const produce = new Map(produceVectors().map((p) => [p.id, p]));
    expect(produce.get('produce-unique-astral-1024')!.expect?.uniqueKey?.key).toBe('😀'.repeat(1024));
    expect(produce.get('refuse-unique-1025-astral')!.refuse).toMatch(/^InvalidOptionError: unique must give a key/);
    expect(bodies.get('mp-bin')!.decoded).toEqual({ version: 1, type: 'fcall', args: [{ $bytes: '00ff' }, { $bytes: '01' }, { $bytes: '' }] });
  });

  it('tags survive a round trip, and compare numbers by value and maps by content', () => {
    const value = [{ $map: { $x: 1 } }, { $bytes: '00ff' }, { $float: '9007199254740992' }, 1, 'a', null, { a: [true] }];
    expect(toTagged(fromTagged(value))).toEqual(value);
    expect(fromTagged({ $float: 'NaN' })).toBeNaN();
    expect(Object.is(fromTagged({ $float: '-0' }), -0)).toBe(true);
    expect(fromTagged({ $int: '9007199254740993' })).toBe(9007199254740993n);
    expect(fromTagged({ $int: '5' })).toBe(5);
    expect(typeof fromTagged({ $function: 'f' })).toBe('function');
    expect(fromTagged({ $repeat: { text: 'ab', times: 3 } })).toBe('ababab');
    expect(sameTagged({ a: 1, b: [2] }, { b: [2], a: 1 })).toBe(true);
    expect(sameTagged({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(sameTagged([1], [1, 2])).toBe(false);
  });
});

describe('spoolerd\'s own writer and reader against the vectors', () => {
  it('the runtime passes every produce case through the checker process', () => {
    const r = check(['produced', runtimeOutput()]);
    const total = produceVectors().length;
    expect(r.out, r.out).toContain(`produce: ${total} passed, 0 failed, 0 unsupported, of ${total} cases`);
    expect(r.code).toBe(0);
    expect(r.out.split('\n').filter((l) => l.startsWith('ok    ')).length).toBe(total);
  });

  it('the parser and the reader agree with names.json and bodies.json, through the checker process', () => {
    const names = committed<{ id: string; file: string }>('names.json').map((c) => {
      const p = parseTaskName(c.file);
      return p === undefined ? { id: c.id, valid: false } : { id: c.id, valid: true, parsed: { priority: p.priority, due: p.due, id: p.id, attempts: p.attempts, name: p.name, encoding: p.encoding } };
    });
    const bodies = committed<{ id: string; encoding: string; text?: string; hex?: string }>('bodies.json').map((c) => {
      const bytes = c.text !== undefined ? Buffer.from(c.text, 'utf8') : Buffer.from(c.hex!, 'hex');
      const d = decodeTask(`${BODY_FILE_STEM}.${c.encoding}`, bytes);
      return d.ok ? { id: c.id, valid: true, decoded: toTagged(d.task.body) } : { id: c.id, valid: false };
    });
    writeFileSync(join(dir, 'names.json'), JSON.stringify({ results: names }));
    writeFileSync(join(dir, 'bodies.json'), JSON.stringify({ results: bodies }));
    for (const kind of ['names', 'bodies']) {
      const r = check([kind, join(dir, `${kind}.json`)]);
      expect(r.out, r.out).toMatch(new RegExp(`^${kind}: \\d+ passed, 0 failed, 0 unsupported`, 'm'));
      expect(r.code).toBe(0);
    }
    // A reader that gets one wrong fails, by name.
    const wrong = bodies.map((b) => (b.id === 'mp-uint64-2-53' ? { ...b, valid: true, decoded: {} } : b.id === 'mp-utf8' ? { ...b, decoded: { version: 1, type: 'fcall', args: ['e'] } } : b));
    writeFileSync(join(dir, 'wrong.json'), JSON.stringify({ results: wrong.filter((b) => b.id !== 'json-minimal') }));
    const r = check(['bodies', join(dir, 'wrong.json')]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^FAIL {2}mp-uint64-2-53: read as valid, but it is invalid$/m);
    expect(r.out).toMatch(/^FAIL {2}mp-utf8: decoded /m);
    expect(r.out).toMatch(/^FAIL {2}json-minimal: no result for this case$/m);
    expect(checkReaderResults('names', [{ id: 'n', valid: true, parsed: { priority: 1 } }], [{ id: 'n', valid: true, parsed: { priority: 2 } }])[0]!.status).toBe('fail');
  });
});

describe('the runtime as a producer, beyond the vectors\' input shape', () => {
  it('refuses an encoding other than msgpack and json, writing nothing (it used to write a ".xml" file)', async () => {
    await expect(Spooler.open(dir).enqueue({ name: 'greet', args: [], options: { encoding: 'xml' as never } })).rejects.toThrow('encoding must be "msgpack" or "json", got "xml"');
    expect(readdirSync(join(dir, 'incoming'))).toEqual([]);
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
  });
});

describe('the checker catches a producer that gets it wrong', () => {
  const vector = (id: string): ProduceVector => produceVectors().find((v) => v.id === id)!;
  const umask = process.umask();
  /** The runtime's output for one case, then `spoil` applied to it; the checker's problems. */
  async function problemsAfter(id: string, spoil: (caseDir: string, file: string) => void): Promise<string[]> {
    const v = vector(id);
    const caseDir = join(dir, id);
    await produceWithRuntime(dir, [v]);
    const file = readdirSync(join(caseDir, 'incoming'))[0]!;
    expect(checkProducedCase(v, caseDir, umask).problems, 'before spoiling').toEqual([]);
    spoil(caseDir, file);
    const verdict = checkProducedCase(v, caseDir, umask);
    expect(verdict.status).toBe('fail');
    return verdict.problems;
  }
  const rename = (caseDir: string, file: string, to: string) => renameSync(join(caseDir, 'incoming', file), join(caseDir, 'incoming', to));
  const rewrite = (caseDir: string, file: string, body: object) => writeFileSync(join(caseDir, 'incoming', file), JSON.stringify(body));

  it('debris in tmp/, a second file, a file in place of nothing', async () => {
    expect(await problemsAfter('produce-json', (d) => writeFileSync(join(d, 'tmp', 'x.json'), ''))).toEqual([expect.stringMatching(/^tmp\/ is not empty: x\.json/)]);
    rmSync(join(dir, 'produce-json'), { recursive: true });
    expect(await problemsAfter('produce-json', (d, f) => writeFileSync(join(d, 'incoming', f.replace('-a0-', '-a1-')), ''))).toEqual([expect.stringMatching(/^incoming\/ holds 2 entries, not 1/)]);
  });

  it('a wrong mode, priority, task name, encoding, due time or creation time', async () => {
    const cases: [string, (d: string, f: string) => void, RegExp][] = [
      ['produce-json', (d, f) => chmodSync(join(d, 'incoming', f), (0o666 & ~umask) === 0o600 ? 0o640 : 0o600), /^mode 06[04]0, not /],
      ['produce-priority-0', (d, f) => rename(d, f, f.replace(/^00-/, '50-')), /^priority in the name is 50, not 0$/],
      ['produce-json', (d, f) => rename(d, f, f.replace('-greet.', '-Greet.')), /^name in the name is "Greet", not "greet"$/],
      ['produce-msgpack', (d, f) => rename(d, f, f.replace(/\.msgpack$/, '.json')), /^encoding in the name is "json", not "msgpack"$/],
      ['produce-json', (d, f) => rename(d, f, f.slice(0, 3) + String(Number(f.slice(3, 16)) + 1) + f.slice(16)), /^due \d+ is not the creation time/],
      ['produce-postpone', (d, f) => rename(d, f, f.slice(0, 3) + String(Number(f.slice(3, 16)) - 1) + f.slice(16)), /^due 59999 ms after its creation, not 60000 ms/],
      ['produce-json', (d, f) => rename(d, f, f.slice(0, 3) + String(Number(f.slice(3, 16)) / 1000 | 0).padStart(13, '0') + '-' + String(Number(f.slice(17, 30)) / 1000 | 0).padStart(13, '0') + f.slice(30)), /creation time in the id \(\d+\) is -\d+ ms from the file's mtime/],
    ];
    for (const [id, spoil, problem] of cases) {
      rmSync(join(dir, id), { recursive: true, force: true });
      const problems = await problemsAfter(id, spoil);
      // A MessagePack body under a .json name is also refused by the reader: that is the second problem.
      expect(problems[0], id).toMatch(problem);
      expect(problems.slice(1), id).toEqual(id === 'produce-msgpack' ? [expect.stringMatching(/^spoolerd's reader refuses it: the body is not valid JSON/)] : []);
    }
  });

  it('a body the reader refuses, or that is not the call', async () => {
    expect(await problemsAfter('produce-json', (d, f) => writeFileSync(join(d, 'incoming', f), '{"version":1,"type":"fcall","args":["json"]')))
      .toEqual([expect.stringMatching(/^spoolerd's reader refuses it: the body is not valid JSON/)]);
    rmSync(join(dir, 'produce-json'), { recursive: true });
    expect(await problemsAfter('produce-json', (d, f) => rewrite(d, f, { version: 1, type: 'fcall', args: ['JSON'] })))
      .toEqual(['body {"version":1,"type":"fcall","args":["JSON"]}, not {"version":1,"type":"fcall","args":["json"]}']);
    // Leaving out empty args is the format's default, not a difference.
    const v = vector('produce-no-args');
    await produceWithRuntime(dir, [v]);
    const file = readdirSync(join(dir, v.id, 'incoming'))[0]!;
    writeFileSync(join(dir, v.id, 'incoming', file), v.expect!.encoding === 'json' || file.endsWith('.json') ? '{"version":1,"type":"fcall"}' : Buffer.from([0x82, 0xa7, ...Buffer.from('version'), 1, 0xa4, ...Buffer.from('type'), 0xa5, ...Buffer.from('fcall')]));
    expect(checkProducedCase(v, join(dir, v.id), umask).problems).toEqual([]);
  });

  it('a unique key missing, of another task, or left by a refused call; a call not refused', async () => {
    const v = vector('produce-unique');
    const hash = keyFileName('greet', 'user-42');
    expect(await problemsAfter(v.id, (d) => rmSync(join(d, 'unique', hash)))).toEqual([expect.stringMatching(/^unique\/[0-9a-f]{64} .*: missing$/)]);
    rmSync(join(dir, v.id), { recursive: true });
    expect(await problemsAfter(v.id, (d, f) => writeFileSync(join(d, 'unique', hash), encodeKeyHolder({ version: 1, id: '1763797190000a3f09c2d4e5b6f71', file: f.replace(/\d{13}[0-9a-f]{16}/, '1763797190000a3f09c2d4e5b6f71'), key: 'user-42', while: 'pending' }))))
      .toEqual([expect.stringMatching(/names task 1763797190000a3f09c2d4e5b6f71, not /), expect.stringMatching(/names file /)]);

    const refuse = vector('refuse-nan');
    const caseDir = join(dir, refuse.id);
    mkdirSync(join(caseDir, 'incoming'), { recursive: true });
    expect(checkProducedCase(refuse, caseDir, umask).problems).toEqual([expect.stringMatching(/^not refused \(spoolerd refuses it: UnencodableValueError/)]);
    writeFileSync(join(caseDir, 'refused'), 'NaN');
    expect(checkProducedCase(refuse, caseDir, umask).status).toBe('ok');
    await Spooler.open(caseDir).enqueue({ name: 'greet', args: [1] });
    expect(checkProducedCase(refuse, caseDir, umask).problems).toEqual([expect.stringMatching(/^a refused call wrote incoming\//)]);
  });

  it('through the process: a case not run fails, an unsupported one is counted apart, and the exit code says so', async () => {
    const vectors = produceVectors();
    cpSync(runtimeOutput(), dir, { recursive: true });
    rmSync(join(dir, 'produce-plain'), { recursive: true });
    writeFileSync(join(dir, 'produce-msgpack', 'unsupported'), 'this kit writes JSON only');
    const r = check(['produced', dir]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^FAIL {2}produce-plain: not run: there is no /m);
    expect(r.out).toMatch(/^n\/a {3}produce-msgpack: this kit writes JSON only$/m);
    expect(r.out).toContain(`produce: ${vectors.length - 2} passed, 1 failed, 1 unsupported, of ${vectors.length} cases`);
    const only = check(['produced', dir, '--only', 'produce-json,refuse-nan']);
    expect(only.out).toContain('produce: 2 passed, 0 failed, 0 unsupported, of 2 cases');
    expect(only.code).toBe(0);
    expect(check(['nonsense', dir]).code).toBe(2);
  });
});
