/**
 * The inputs of the conformance vectors: file names, body bytes and producer
 * calls, each with an id and why it is there. What the reader and the writer
 * make of them (valid or not, the parsed fields, the decoded body, the
 * reason) is not written here: generate.ts asks the TypeScript
 * implementation, so the vectors cannot drift from it.
 */
import { arrayOf, bin, f32, f64, i64, mapOf, pack, raw, str, u32, u64 } from './msgpack-bytes.js';

export interface NameCase {
  id: string;
  why: string;
  file: string;
}

export interface BodyCase {
  id: string;
  why: string;
  encoding: 'json' | 'msgpack';
  bytes: Uint8Array;
}

/** A producer call (produce.json's `input`, tagged JSON): exactly the shape conformance/README.md gives. */
export interface ProduceInput {
  name: string;
  args?: unknown[];
  priority?: number;
  postponeMs?: number;
  retries?: number;
  unique?: string;
  encoding?: 'json' | 'msgpack';
}

export interface ProduceCase {
  id: string;
  why: string;
  input: ProduceInput;
}

// ---------------------------------------------------------------------------
// File names (SPOOL-FORMAT.md, "File name")

const DUE = '1763797200000';
const ID = '1763797190000a3f09c2d4e5b6f71';
/** A file name from its fields, as written (no check). */
const fileName = (pp = '50', due = DUE, id = ID, attempts = 'a0', name = 'sendEmail', ext = 'msgpack'): string => `${pp}-${due}-${id}-${attempts}-${name}.${ext}`;

export const NAME_CASES: NameCase[] = [
  { id: 'name-msgpack', why: 'the example of SPOOL-FORMAT.md', file: fileName() },
  { id: 'name-json', why: 'the JSON encoding', file: fileName(undefined, undefined, undefined, undefined, undefined, 'json') },
  { id: 'name-priority-00', why: 'the most urgent priority', file: fileName('00') },
  { id: 'name-priority-99', why: 'the least urgent priority', file: fileName('99') },
  { id: 'name-due-zero', why: 'a due time of 0 (1970) is a time like any other', file: fileName(undefined, '0000000000000') },
  { id: 'name-due-max', why: 'the largest 13-digit due time (2286)', file: fileName(undefined, '9999999999999') },
  { id: 'name-due-before-created', why: 'a due time before the creation time is valid (due at once)', file: fileName(undefined, '0000000000001', '9999999999999ffffffffffffffff') },
  { id: 'name-attempts-1', why: 'a retried task', file: fileName(undefined, undefined, undefined, 'a1') },
  { id: 'name-attempts-max', why: 'the most attempts a name can count: 6 digits', file: fileName(undefined, undefined, undefined, 'a999999') },
  { id: 'name-task-one-letter', why: 'the shortest task name', file: fileName(undefined, undefined, undefined, undefined, 'x', 'json') },
  { id: 'name-task-underscore', why: 'a task name may start with "_"', file: fileName(undefined, undefined, undefined, undefined, '_private') },
  { id: 'name-task-every-character', why: 'every character a task name may hold after its first', file: fileName(undefined, undefined, undefined, undefined, 'a_Z9.b:c-d') },
  { id: 'name-task-dashes', why: 'dashes inside NAME: the fields before it are fixed-width, so NAME is everything after aN-', file: fileName(undefined, undefined, undefined, 'a12', 'a-b-c') },
  { id: 'name-task-with-extension-inside', why: 'NAME may end in ".json": the file ends with the real extension', file: fileName(undefined, undefined, undefined, undefined, 'report.json') },
  { id: 'name-task-128', why: 'the longest task name, 128 characters', file: fileName(undefined, undefined, undefined, undefined, 'n'.repeat(128)) },

  { id: 'name-hidden', why: 'names beginning with "." are never tasks', file: '.' + fileName() },
  { id: 'name-extension-txt', why: 'only .msgpack and .json', file: fileName(undefined, undefined, undefined, undefined, undefined, 'txt') },
  { id: 'name-extension-uppercase', why: 'extensions are lowercase', file: fileName(undefined, undefined, undefined, undefined, undefined, 'JSON') },
  { id: 'name-extension-none', why: 'a name without an extension', file: fileName().replace(/\.msgpack$/, '') },
  { id: 'name-extension-trailing', why: 'a staging suffix after the extension', file: fileName() + '.tmp' },
  { id: 'name-priority-one-digit', why: 'the priority is two digits', file: fileName('5') },
  { id: 'name-priority-three-digits', why: 'priority 100 does not exist', file: fileName('100') },
  { id: 'name-priority-sign', why: 'no sign in a priority', file: fileName('+5') },
  { id: 'name-due-12-digits', why: 'the due time is exactly 13 digits', file: fileName(undefined, DUE.slice(1)) },
  { id: 'name-due-14-digits', why: 'the due time is exactly 13 digits', file: fileName(undefined, '0' + DUE) },
  { id: 'name-id-uppercase-hex', why: 'the id\'s hex digits are lowercase', file: fileName(undefined, undefined, ID.toUpperCase()) },
  { id: 'name-id-15-hex', why: 'the id has 16 hex digits after its 13-digit time', file: fileName(undefined, undefined, ID.slice(0, -1)) },
  { id: 'name-id-17-hex', why: 'the id has 16 hex digits after its 13-digit time', file: fileName(undefined, undefined, ID + 'a') },
  { id: 'name-id-not-hex', why: '"g" is not a hex digit', file: fileName(undefined, undefined, ID.slice(0, -1) + 'g') },
  { id: 'name-attempts-leading-zero', why: 'attempts have no leading zero', file: fileName(undefined, undefined, undefined, 'a01') },
  { id: 'name-attempts-seven-digits', why: 'attempts have at most 6 digits', file: fileName(undefined, undefined, undefined, 'a1000000') },
  { id: 'name-attempts-empty', why: '"a" must be followed by a number', file: fileName(undefined, undefined, undefined, 'a') },
  { id: 'name-attempts-other-letter', why: 'the attempts field starts with "a"', file: fileName(undefined, undefined, undefined, 'b0') },
  { id: 'name-task-empty', why: 'NAME has at least one character', file: fileName(undefined, undefined, undefined, undefined, '') },
  { id: 'name-task-digit-first', why: 'NAME starts with a letter or "_"', file: fileName(undefined, undefined, undefined, undefined, '1task') },
  { id: 'name-task-dash-first', why: 'NAME starts with a letter or "_"', file: fileName(undefined, undefined, undefined, undefined, '-task') },
  { id: 'name-task-space', why: 'a space is not allowed in NAME', file: fileName(undefined, undefined, undefined, undefined, 'send email') },
  { id: 'name-task-non-ascii', why: 'NAME is ASCII', file: fileName(undefined, undefined, undefined, undefined, 'café') },
  { id: 'name-task-plus', why: '"+" is not allowed in NAME', file: fileName(undefined, undefined, undefined, undefined, 'a+b') },
  { id: 'name-task-129', why: 'NAME is at most 128 characters', file: fileName(undefined, undefined, undefined, undefined, 'n'.repeat(129)) },
  { id: 'name-missing-attempts', why: 'every field is required', file: `50-${DUE}-${ID}-sendEmail.msgpack` },
  { id: 'name-uwsgi', why: 'a uWSGI spool file is not a task', file: 'uwsgi_spoolfile_on_host_123_1_2_1700000000_1' },
];

// ---------------------------------------------------------------------------
// Bodies (SPOOL-FORMAT.md, "Body", "Values", "JSON bodies")

const mp = (id: string, why: string, value: unknown): BodyCase => ({ id, why, encoding: 'msgpack', bytes: pack(value) });
const js = (id: string, why: string, text: string): BodyCase => ({ id, why, encoding: 'json', bytes: Buffer.from(text, 'utf8') });
const jsBytes = (id: string, why: string, hex: string): BodyCase => ({ id, why, encoding: 'json', bytes: Buffer.from(hex.replace(/\s+/g, ''), 'hex') });
/** An fcall body with these args (msgpack: a map of version, type, args in that order). */
const call = (args: unknown, more: Record<string, unknown> = {}): Record<string, unknown> => ({ version: 1, type: 'fcall', args, ...more });
const nested = (depth: number): unknown => (depth === 0 ? [] : [nested(depth - 1)]);
const nestedJson = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);

export const BODY_CASES: BodyCase[] = [
  // Valid MessagePack bodies
  mp('mp-minimal', 'the fields every body has; args defaults to []', { version: 1, type: 'fcall' }),
  mp('mp-args-strings', 'an fcall with two string arguments', call(['a@example.com', 'hi'])),
  mp('mp-nil-bools', 'nil and booleans', call([null, true, false])),
  mp('mp-int-formats', 'integers in every format: fixint, uint8/16/32, negative fixint, int8/16/32', call([0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31)])),
  mp('mp-int64-safe-max', 'uint64 holding 2^53 − 1, the largest integer allowed', call([u64(2n ** 53n - 1n)])),
  mp('mp-int64-safe-min', 'int64 holding −(2^53 − 1), the smallest integer allowed', call([i64(-(2n ** 53n - 1n))])),
  mp('mp-uint64-small', 'a small integer in a uint64 is the same integer', call([u64(5)])),
  mp('mp-float64', 'float64 values: fractions, the extremes, an integral one', call([0.5, -2.25, f64(5e-324), f64(Number.MAX_VALUE), f64(2)])),
  mp('mp-float64-beyond-2-53', 'a double beyond 2^53 is a float, carried exactly', call([f64(2 ** 53), f64(1e20)])),
  mp('mp-float32', 'float32 is read as the float32 value it holds', call([f32(0.1), f32(1.5)])),
  mp('mp-negative-zero', 'float64 −0: a reader may give −0 or 0', call([f64(-0)])),
  mp('mp-str-formats', 'the same text in str8, str16 and str32', call([str('str8', 'hi'), str('str16', 'hi'), str('str32', 'hi')])),
  mp('mp-utf8', 'multi-byte UTF-8: 2, 3 and 4 bytes per character', call(['é', '€', '😀'])),
  mp('mp-bin', 'bytes are bin, in bin8, bin16 and bin32', call([bin('bin8', Buffer.from([0, 255])), bin('bin16', Buffer.from([1])), bin('bin32', Buffer.alloc(0))])),
  mp('mp-map-int-keys', 'integer map keys are read as strings', call([mapOf([[1, 'one'], [-2, 'minus two']])])),
  mp('mp-map16-root', 'the body in a map16', mapOf([['version', 1], ['type', 'fcall'], ['args', []]], 'map16')),
  mp('mp-map32-root', 'the body in a map32', mapOf([['version', 1], ['type', 'fcall'], ['args', []]], 'map32')),
  mp('mp-array16-array32', 'arrays in array16 and array32', call(arrayOf([arrayOf([1], 'array16'), arrayOf([2], 'array32')], 'array16'))),
  mp('mp-duplicate-key', 'a key written twice: the last value counts', mapOf([['version', 1], ['type', 'fcall'], ['args', [1]], ['args', [2]]])),
  mp('mp-depth-64', 'nesting of 64 levels, the body being level 1: args (level 2) holds 62 nested arrays', call([nested(61)])),
  mp('mp-unknown-field', 'fields this version does not know are carried', call([], { addedLater: { x: 1 } })),
  mp('mp-version-float', 'version 1.0 as a float64 is the number 1', mapOf([['version', f64(1)], ['type', 'fcall']])),
  mp('mp-every-field', 'every optional field of version 1 with a valid value', {
    version: 1,
    type: 'fcall',
    args: [1],
    payload: { any: ['thing'] },
    retry: { limit: 5, backoff: { kind: 'exponential', delay: 1000, factor: 1.5, floor: 10, ceiling: 60000, jitter: 0.1 } },
    timeout: 30000,
    parent: '1763797190000a3f09c2d4e5b6f71',
    meta: { by: 'a test' },
    keepResult: 0,
    unique: 'k',
    uniqueWhile: 'running',
    expires: 0,
  }),
  mp('mp-message-type', 'a non-fcall type with a message and a payload', { version: 1, type: 'my-type_2', message: 'reindex', payload: null }),
  mp('mp-type-64', 'the longest type, 64 characters', { version: 1, type: 't'.repeat(64) }),
  mp('mp-tag-like-key', 'a map whose one key starts with "$" (written as a $map tag in `decoded`)', call([{ $bytes: 1 }])),
  mp('mp-unique-1024', 'a unique key of 1024 characters', call([], { unique: 'k'.repeat(1024) })),
  mp('mp-unique-1024-astral', 'characters are code points: 1024 emoji are 1024 characters (4096 bytes, 2048 UTF-16 units)', call([], { unique: '😀'.repeat(1024) })),

  // Invalid MessagePack bodies
  mp('mp-root-array', 'the body is a map', [1, 'fcall']),
  mp('mp-root-nil', 'the body is a map', null),
  { id: 'mp-empty', why: 'an empty file', encoding: 'msgpack', bytes: new Uint8Array(0) },
  mp('mp-trailing-bytes', 'nothing after the body map', raw(Buffer.concat([pack(call([])), Buffer.from([0xc0])]).toString('hex'))),
  mp('mp-truncated-map', 'a map that claims more entries than the file holds', mapOf([['version', 1], ['type', 'fcall']], 'fix', 3)),
  mp('mp-truncated-str', 'a string that claims more bytes than the file holds', mapOf([['version', 1], ['type', raw('a5 66 63')]])),
  mp('mp-array32-huge-count', 'an array32 that claims 2^32 − 1 elements in a small file', call(raw('dd ffffffff 01'))),
  mp('mp-utf8-invalid', 'a str that is not UTF-8', call([str('fix', Buffer.from([0x66, 0xff, 0x6f]))])),
  mp('mp-utf8-overlong', 'an overlong UTF-8 form ("/" as c0 af)', call([str('fix', Buffer.from([0xc0, 0xaf]))])),
  mp('mp-utf8-surrogate', 'an encoded surrogate (ed a0 80) is not UTF-8', call([str('fix', Buffer.from([0xed, 0xa0, 0x80]))])),
  mp('mp-utf8-invalid-key', 'map keys are UTF-8 too', call([mapOf([[str('fix', Buffer.from([0xff])), 1]])])),
  mp('mp-uint64-2-53', '2^53 is beyond the integers allowed', call([u64(2n ** 53n)])),
  mp('mp-uint64-2-53-plus-1', '2^53 + 1 would read back as 2^53', call([u64(2n ** 53n + 1n)])),
  mp('mp-int64-minus-2-53', '−2^53 is beyond the integers allowed', call([i64(-(2n ** 53n))])),
  mp('mp-uint64-max', 'the largest uint64', call([u64(2n ** 64n - 1n)])),
  mp('mp-float64-nan', 'NaN is refused', call([f64(NaN)])),
  mp('mp-float64-infinity', 'infinities are refused', call([f64(Infinity)])),
  mp('mp-float32-minus-infinity', 'infinities are refused, in float32 too', call([f32(-Infinity)])),
  mp('mp-ext-fixext1', 'extension types are refused', call([raw('d4 01 00')])),
  mp('mp-ext-timestamp', 'the timestamp extension (−1) is refused', call([raw('d6 ff 00000000')])),
  mp('mp-ext-msgpackr-record', 'msgpackr\'s records (extension 0x72) are refused', call([raw('d4 72 00')])),
  mp('mp-map-nil-key', 'map keys are strings (or integers)', call([mapOf([[null, 1]])])),
  mp('mp-map-float-key', 'map keys are strings (or integers)', call([mapOf([[0.5, 1]])])),
  mp('mp-depth-65', '65 levels of nesting: one too many', call([nested(62)])),
  mp('mp-never-used-byte', '0xc1 is never used in MessagePack', call([raw('c1')])),
];

// Field rules, each in MessagePack (the same rules apply to JSON: see the json- cases).
const fieldCases: [string, string, Record<string, unknown>][] = [
  ['version-missing', 'version is required', { type: 'fcall' }],
  ['version-2', 'an unknown version is refused', { version: 2, type: 'fcall' }],
  ['version-0', 'an unknown version is refused', { version: 0, type: 'fcall' }],
  ['version-string', 'version is an integer', { version: '1', type: 'fcall' }],
  ['version-fraction', 'version is an integer', { version: 1.5, type: 'fcall' }],
  ['type-missing', 'type is required', { version: 1 }],
  ['type-uppercase', 'type is a lowercase identifier', { version: 1, type: 'FCALL' }],
  ['type-empty', 'type is a lowercase identifier', { version: 1, type: '' }],
  ['type-65', 'type is at most 64 characters', { version: 1, type: 't'.repeat(65) }],
  ['type-number', 'type is a string', { version: 1, type: 1 }],
  ['args-map', 'args is an array', { version: 1, type: 'fcall', args: { 0: 'a' } }],
  ['args-nil', 'args is an array: leave it out for none', { version: 1, type: 'fcall', args: null }],
  ['message-on-fcall', 'an fcall has args, not message', { version: 1, type: 'fcall', message: 'hi' }],
  ['message-number', 'message is a string', { version: 1, type: 'note', message: 1 }],
  ['timeout-zero', 'timeout is a positive integer', call([], { timeout: 0 })],
  ['timeout-fraction', 'timeout is an integer', call([], { timeout: 1.5 })],
  ['timeout-string', 'timeout is an integer of ms', call([], { timeout: '30s' })],
  ['parent-empty', 'parent is a task id', call([], { parent: '' })],
  ['parent-number', 'parent is a string', call([], { parent: 1 })],
  ['meta-array', 'meta is a map', call([], { meta: [] })],
  ['retry-array', 'retry is a map', call([], { retry: [3] })],
  ['retry-limit-missing', 'retry.limit is required', call([], { retry: {} })],
  ['retry-limit-negative', 'retry.limit is not negative', call([], { retry: { limit: -1 } })],
  ['backoff-kind-unknown', 'backoff.kind is constant, linear or exponential', call([], { retry: { limit: 1, backoff: { kind: 'random', delay: 1 } } })],
  ['backoff-delay-missing', 'backoff.delay is required', call([], { retry: { limit: 1, backoff: { kind: 'constant' } } })],
  ['backoff-factor-below-1', 'backoff.factor is at least 1', call([], { retry: { limit: 1, backoff: { kind: 'exponential', delay: 1, factor: 0.5 } } })],
  ['backoff-jitter-above-1', 'backoff.jitter is 0 to 1', call([], { retry: { limit: 1, backoff: { kind: 'constant', delay: 1, jitter: 1.5 } } })],
  ['backoff-floor-negative', 'backoff.floor is a non-negative integer', call([], { retry: { limit: 1, backoff: { kind: 'constant', delay: 1, floor: -1 } } })],
  ['keepResult-negative', 'keepResult is a non-negative integer', call([], { keepResult: -1 })],
  ['unique-empty', 'a unique key has 1 to 1024 characters', call([], { unique: '' })],
  ['unique-1025', 'a unique key has 1 to 1024 characters', call([], { unique: 'k'.repeat(1025) })],
  ['unique-1025-astral', 'a unique key has 1 to 1024 characters (code points)', call([], { unique: '😀'.repeat(1025) })],
  ['unique-number', 'a unique key is a string', call([], { unique: 42 })],
  ['uniqueWhile-unknown', 'uniqueWhile is pending or running', call([], { unique: 'k', uniqueWhile: 'always' })],
  ['expires-negative', 'expires is a non-negative integer', call([], { expires: -1 })],
  ['expires-fraction', 'expires is an integer', call([], { expires: 1.5 })],
  ['chain-steps', 'chain lists the steps that follow the task, each naming its task', call([], { chain: [{ name: 'next', args: [1], priority: 10, delay: 500 }, { name: 'last' }] })],
  ['chain-not-a-list', 'chain is an array of steps', call([], { chain: 'k' })],
  ['chain-step-without-name', 'a step names its task', call([], { chain: [{ args: [] }] })],
  ['chain-step-priority-100', "a step's priority is 0 to 99", call([], { chain: [{ name: 'next', priority: 100 }] })],
  ['onError-step', 'onError is one step, enqueued if the task ends dead', call([], { onError: { name: 'alert' } })],
  ['onError-not-a-step', 'onError is one step (a map), not a list', call([], { onError: [{ name: 'alert' }] })],
  ['flow-not-an-id', 'flow is the id of the parent task', call([], { flow: 'parent' })],
  ['reserved-overlap', 'overlap is reserved for a later version', call([], { overlap: false })],
  ['reserved-periodic', 'periodic is reserved for a later version', call([], { periodic: null })],
  ['reserved-result', 'result is reserved for a later version', call([], { result: 1 })],
];
for (const [id, why, body] of fieldCases) BODY_CASES.push(mp(`mp-${id}`, why, body));

BODY_CASES.push(
  // Valid JSON bodies
  js('json-minimal', 'the fields every body has', '{"version":1,"type":"fcall"}'),
  js('json-args', 'an fcall with two string arguments', '{"version":1,"type":"fcall","args":["a@example.com","hi"]}'),
  js('json-whitespace', 'whitespace around the object and a trailing newline', ' \n{ "version" : 1 , "type" : "fcall" }\n'),
  js('json-version-float', '"version": 1.0 is the number 1', '{"version":1.0,"type":"fcall"}'),
  js('json-escapes', 'escapes, a surrogate pair among them', '{"version":1,"type":"fcall","args":["\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\\u00e9\\ud83d\\ude00"]}'),
  js('json-utf8', 'raw multi-byte UTF-8', '{"version":1,"type":"fcall","args":["é€😀"]}'),
  js('json-numbers', 'integers and doubles', '{"version":1,"type":"fcall","args":[0,-1,9007199254740991,-9007199254740991,0.5,1e20,1E-5,-0,2.0]}'),
  js('json-integer-beyond-2-53', 'an integer literal beyond 2^53 is read as the nearest double, not refused', '{"version":1,"type":"fcall","args":[9007199254740993]}'),
  js('json-duplicate-key', 'a key written twice: the last value counts', '{"version":1,"type":"fcall","args":[1],"args":[2]}'),
  js('json-depth-64', 'nesting of 64 levels, the body being level 1', `{"version":1,"type":"fcall","args":[${nestedJson(62)}]}`),
  js('json-unknown-field', 'fields this version does not know are carried', '{"version":1,"type":"fcall","addedLater":{"x":1}}'),
  // Invalid JSON bodies
  jsBytes('json-bom', 'UTF-8 without a byte order mark', 'efbbbf' + Buffer.from('{"version":1,"type":"fcall"}').toString('hex')),
  jsBytes('json-utf8-invalid', 'the text is UTF-8', Buffer.from('{"version":1,"type":"fcall","args":["').toString('hex') + 'ff' + Buffer.from('"]}').toString('hex')),
  js('json-lone-surrogate', 'a \\uD800 escape that is not half of a pair is not text', '{"version":1,"type":"fcall","args":["\\ud800"]}'),
  js('json-lone-surrogate-key', 'the same in a key', '{"version":1,"type":"fcall","args":[{"\\udc00":1}]}'),
  js('json-empty', 'an empty file', ''),
  js('json-truncated', 'a file cut short', '{"version":1,"type":"fc'),
  js('json-trailing', 'one object, nothing after it', '{"version":1,"type":"fcall"} {}'),
  js('json-root-array', 'the body is an object', '[1,"fcall"]'),
  js('json-nan', 'NaN is not JSON', '{"version":1,"type":"fcall","args":[NaN]}'),
  js('json-overflow', 'a number beyond the doubles is an infinity, refused', '{"version":1,"type":"fcall","args":[1e400]}'),
  js('json-depth-65', '65 levels of nesting', `{"version":1,"type":"fcall","args":[${nestedJson(63)}]}`),
  js('json-version-2', 'an unknown version is refused', '{"version":2,"type":"fcall"}'),
  js('json-reserved-result', 'result is reserved for a later version', '{"version":1,"type":"fcall","result":1}'),
  js('json-args-null', 'args is an array', '{"version":1,"type":"fcall","args":null}'),
);

// ---------------------------------------------------------------------------
// Producer calls (SPOOL-FORMAT.md, "Enqueueing"): a kit makes each call its own way.

const deep = (depth: number): unknown[] => (depth === 0 ? [] : [deep(depth - 1)]);

export const PRODUCE_CASES: ProduceCase[] = [
  { id: 'produce-plain', why: 'a registered task with one string argument, every option left to its default', input: { name: 'greet', args: ['world'] } },
  { id: 'produce-no-args', why: 'a call without arguments', input: { name: 'greet' } },
  { id: 'produce-json', why: 'a JSON body', input: { name: 'greet', args: ['json'], encoding: 'json' } },
  { id: 'produce-msgpack', why: 'a MessagePack body', input: { name: 'greet', args: ['msgpack'], encoding: 'msgpack' } },
  { id: 'produce-priority-0', why: 'the most urgent priority', input: { name: 'greet', args: ['urgent'], priority: 0, encoding: 'json' } },
  { id: 'produce-priority-99', why: 'the least urgent priority', input: { name: 'greet', args: ['later'], priority: 99, encoding: 'json' } },
  { id: 'produce-postpone', why: 'due a minute after its creation, never earlier', input: { name: 'greet', args: ['in a minute'], postponeMs: 60000, encoding: 'json' } },
  { id: 'produce-retries-0', why: 'no retries: the first failure makes a dead letter', input: { name: 'greet', args: ['once'], retries: 0, encoding: 'json' } },
  { id: 'produce-retries-5', why: 'five retries', input: { name: 'greet', args: ['again'], retries: 5, encoding: 'json' } },
  { id: 'produce-unique', why: 'a unique key: the body names it and unique/<hash> holds it for this task', input: { name: 'greet', args: ['once only'], unique: 'user-42', encoding: 'json' } },
  { id: 'produce-unique-astral-1024', why: 'a key of 1024 characters outside the BMP: characters are code points, not UTF-16 units or bytes', input: { name: 'greet', unique: '😀'.repeat(1024), encoding: 'json' } },
  { id: 'produce-unique-needs-escaping', why: 'a unique key with a quote, a backslash and non-ASCII text', input: { name: 'greet', args: ['k'], unique: 'a "quoted" \\ key é', encoding: 'json' } },
  {
    id: 'produce-string-escaping',
    why: 'strings a JSON writer must escape: quotes, backslashes, control characters, non-ASCII',
    input: { name: 'greet', args: ['"quoted"', 'back\\slash', 'line\nbreak\ttab\r', '\u0001\u001f\u007f', 'é€😀', '$(not run) `nor this`', "it's"], encoding: 'json' },
  },
  { id: 'produce-values-json', why: 'every kind of value JSON carries', input: { name: 'greet', args: [null, true, false, 0, -1, 9007199254740991, -9007199254740991, 0.5, -2.25, { a: [1, { b: 'c' }] }, []], encoding: 'json' } },
  { id: 'produce-values-msgpack', why: 'every kind of value MessagePack carries, bytes included', input: { name: 'greet', args: [null, true, 4294967296, -9007199254740991, 0.5, { $bytes: '00ff' }, { a: [] }], encoding: 'msgpack' } },
  { id: 'produce-double-beyond-2-53', why: 'a double beyond 2^53 is a double, written as one', input: { name: 'greet', args: [{ $float: '9007199254740992' }, { $float: '1e+20' }], encoding: 'msgpack' } },
  { id: 'produce-negative-zero', why: '−0 is written as 0', input: { name: 'greet', args: [{ $float: '-0' }], encoding: 'json' } },
  { id: 'produce-depth-64', why: 'arguments nested as deep as allowed: 62 levels inside args', input: { name: 'greet', args: [deep(61)], encoding: 'json' } },
  { id: 'produce-name-every-character', why: 'every character a task name may hold', input: { name: 'a_Z9.b:c-d', encoding: 'json' } },
  { id: 'produce-name-128', why: 'the longest task name', input: { name: 'n'.repeat(128), encoding: 'json' } },

  { id: 'refuse-name-space', why: 'a task name with a space cannot be a file name', input: { name: 'send email', args: [] } },
  { id: 'refuse-name-empty', why: 'a task name has at least one character', input: { name: '' } },
  { id: 'refuse-name-digit-first', why: 'a task name starts with a letter or "_"', input: { name: '1greet' } },
  { id: 'refuse-name-129', why: 'a task name has at most 128 characters', input: { name: 'n'.repeat(129) } },
  { id: 'refuse-name-non-ascii', why: 'a task name is ASCII', input: { name: 'grüßen' } },
  { id: 'refuse-name-slash', why: 'a task name with "/" would write outside the spool', input: { name: '../greet' } },
  { id: 'refuse-priority-100', why: 'priorities are 0 to 99', input: { name: 'greet', priority: 100 } },
  { id: 'refuse-priority-negative', why: 'priorities are 0 to 99', input: { name: 'greet', priority: -1 } },
  { id: 'refuse-priority-fraction', why: 'priorities are integers', input: { name: 'greet', priority: 1.5 } },
  { id: 'refuse-postpone-negative', why: 'a postpone is a delay from now', input: { name: 'greet', postponeMs: -1 } },
  { id: 'refuse-postpone-beyond-2286', why: 'the due time must fit 13 digits', input: { name: 'greet', postponeMs: 9999999999999 } },
  { id: 'refuse-retries-negative', why: 'retries are a non-negative integer', input: { name: 'greet', retries: -1 } },
  { id: 'refuse-retries-fraction', why: 'retries are an integer', input: { name: 'greet', retries: 1.5 } },
  { id: 'refuse-unique-empty', why: 'a unique key has 1 to 1024 characters', input: { name: 'greet', unique: '' } },
  { id: 'refuse-unique-1025', why: 'a unique key has 1 to 1024 characters', input: { name: 'greet', unique: 'k'.repeat(1025) } },
  { id: 'refuse-unique-1025-astral', why: 'a unique key has 1 to 1024 characters, counted as code points', input: { name: 'greet', unique: '😀'.repeat(1025) } },
  { id: 'refuse-nan', why: 'NaN is not a value of the format', input: { name: 'greet', args: [{ $float: 'NaN' }] } },
  { id: 'refuse-infinity', why: 'infinities are not values of the format', input: { name: 'greet', args: [{ $float: 'Infinity' }] } },
  { id: 'refuse-minus-infinity', why: 'infinities are not values of the format', input: { name: 'greet', args: [[{ $float: '-Infinity' }]] } },
  { id: 'refuse-function', why: 'a function cannot be stored', input: { name: 'greet', args: [{ $function: 'a callback' }] } },
  { id: 'refuse-integer-2-53', why: 'an integer beyond ±(2^53 − 1) would be read back as another number', input: { name: 'greet', args: [{ $int: '9007199254740992' }] } },
  { id: 'refuse-integer-minus-2-53', why: 'an integer beyond ±(2^53 − 1) would be read back as another number', input: { name: 'greet', args: [{ x: { $int: '-9007199254740993' } }] } },
  { id: 'refuse-bytes-in-json', why: 'a JSON body cannot carry bytes', input: { name: 'greet', args: [{ $bytes: '00' }], encoding: 'json' } },
  { id: 'refuse-lone-surrogate', why: 'a string holding a lone surrogate is not text', input: { name: 'greet', args: ['\ud800'], encoding: 'json' } },
  { id: 'refuse-depth-65', why: 'arguments nested one level too deep', input: { name: 'greet', args: [deep(62)], encoding: 'json' } },
  { id: 'refuse-over-size-cap', why: 'a body over the 16 MiB cap is refused before anything is written', input: { name: 'greet', args: [{ $repeat: { text: 'x', times: 16 * 1024 * 1024 } }], encoding: 'json' } },
];
