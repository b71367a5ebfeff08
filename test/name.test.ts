import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { InvalidOptionError, InvalidTaskNameError } from '../spool/errors.js';
import {
  ATTEMPTS_MAX,
  DUE_END,
  DUE_START,
  dueOfTaskName,
  explainBadName,
  ID_END,
  ID_START,
  formatTaskName,
  isTaskName,
  parseTaskName,
  PRIORITY_END,
  PRIORITY_START,
  renameTask,
  TASK_NAME_MAX_LENGTH,
  TaskIdGenerator,
  TIME_MAX,
} from '../spool/name.js';
import { ROOT } from './helpers/cli.js';
import { random } from './helpers/random.js';

describe('task file names', () => {
  it('round-trip every field', () => {
    const fields = { priority: 7, due: 1763797200000, id: '1763797190000a3f09c2d4e5b6f71', attempts: 12, name: 'mail.send:v2-x', encoding: 'json' as const };
    const fileName = formatTaskName(fields);
    expect(fileName).toBe('07-1763797200000-1763797190000a3f09c2d4e5b6f71-a12-mail.send:v2-x.json');
    expect(parseTaskName(fileName)).toEqual({ ...fields, created: 1763797190000 });
  });

  it('ids from one generator increase within one millisecond', () => {
    const ids = new TaskIdGenerator();
    const made = Array.from({ length: 1000 }, () => ids.next(1763797190000)[0]);
    expect([...made].sort()).toEqual(made);
    expect(new Set(made).size).toBe(1000);
  });
});

describe('formatTaskName', () => {
  const base = { priority: 50, due: 1763797200000, id: '1763797190000a3f09c2d4e5b6f71', attempts: 0, name: 'send_email', encoding: 'msgpack' as const };

  it('pads priority to 2 digits and the due time to 13', () => {
    expect(formatTaskName({ ...base, priority: 0, due: 0 })).toBe('00-0000000000000-1763797190000a3f09c2d4e5b6f71-a0-send_email.msgpack');
    expect(formatTaskName({ ...base, priority: 5, due: 42 })).toBe('05-0000000000042-1763797190000a3f09c2d4e5b6f71-a0-send_email.msgpack');
    expect(formatTaskName({ ...base, priority: 99, due: TIME_MAX, attempts: ATTEMPTS_MAX })).toBe(
      '99-9999999999999-1763797190000a3f09c2d4e5b6f71-a999999-send_email.msgpack',
    );
  });

  it('round-trips the edges of every field through parseTaskName', () => {
    const longName = '_' + 'x'.repeat(TASK_NAME_MAX_LENGTH - 1);
    for (const fields of [
      { ...base, priority: 0, due: 0, attempts: 0, name: 'a', encoding: 'json' as const },
      { ...base, priority: 99, due: TIME_MAX, attempts: ATTEMPTS_MAX, name: longName },
      { ...base, id: '0000000000000' + '0'.repeat(16), name: 'Z9_.:-' },
      { ...base, id: '9999999999999' + 'f'.repeat(16), name: '_' },
    ]) {
      expect(parseTaskName(formatTaskName(fields))).toEqual({ ...fields, created: Number(fields.id.slice(0, 13)) });
    }
  });

  it('refuses fields out of range', () => {
    for (const priority of [-1, 100, 1.5, NaN]) {
      expect(() => formatTaskName({ ...base, priority })).toThrow(InvalidOptionError);
      expect(() => formatTaskName({ ...base, priority })).toThrow(`priority must be an integer from 0 (runs first) to 99, got ${priority}`);
    }
    for (const due of [-1, TIME_MAX + 1, 1.5]) {
      expect(() => formatTaskName({ ...base, due })).toThrow(`due time must be whole ms between 1970 and 2286, got ${due}`);
    }
    for (const attempts of [-1, ATTEMPTS_MAX + 1, 0.5]) {
      expect(() => formatTaskName({ ...base, attempts })).toThrow(`attempts must be an integer from 0 to 999999, got ${attempts}`);
    }
    for (const id of ['1763797190000A3F09C2D4E5B6F71', '1763797190000a3f09c2d4e5b6f7', '176379719000a3f09c2d4e5b6f71x', '']) {
      expect(() => formatTaskName({ ...base, id })).toThrow(InvalidTaskNameError);
      expect(() => formatTaskName({ ...base, id })).toThrow(`${JSON.stringify(id)} is not a task file name: not a task id`);
    }
    expect(() => formatTaskName({ ...base, name: '' })).toThrow('task name "": the task name is empty');
    expect(() => formatTaskName({ ...base, name: 'a'.repeat(129) })).toThrow('the task name is longer than 128 characters');
    expect(() => formatTaskName({ ...base, name: '1abc' })).toThrow(
      'task name "1abc": a task name starts with a letter or "_" and holds only letters, digits, "_", ".", ":" and "-"',
    );
    for (const name of ['a b', 'a/b', 'é', 'a\n', '-a', '.a', ':a']) expect(() => formatTaskName({ ...base, name })).toThrow(InvalidOptionError);
  });

  it('renameTask keeps the id, name and encoding and changes due time, attempts or priority', () => {
    const t = parseTaskName('50-1763797200000-1763797190000a3f09c2d4e5b6f71-a2-send_email.json')!;
    expect(renameTask(t, { due: 1763797300000, attempts: 3 })).toBe('50-1763797300000-1763797190000a3f09c2d4e5b6f71-a3-send_email.json');
    expect(renameTask(t, { priority: 1 })).toBe('01-1763797200000-1763797190000a3f09c2d4e5b6f71-a2-send_email.json');
    expect(() => renameTask(t, { attempts: ATTEMPTS_MAX + 1 })).toThrow(InvalidOptionError);
  });
});

describe('parseTaskName and explainBadName', () => {
  const good = '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-send_email.msgpack';

  it('parses a valid name', () => {
    expect(parseTaskName(good)).toEqual({
      priority: 50,
      due: 1763797200000,
      id: '1763797190000a3f09c2d4e5b6f71',
      created: 1763797190000,
      attempts: 0,
      name: 'send_email',
      encoding: 'msgpack',
    });
  });

  const bad: Array<[string, string]> = [
    ['.50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-send_email.msgpack', 'names beginning with "." are never tasks'],
    ['50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-send_email.txt', 'the extension must be .msgpack or .json (got .txt)'],
    ['50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-send_email', 'the extension must be .msgpack or .json (got none)'],
    ['50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-mail.send', 'the extension must be .msgpack or .json (got .send)'],
    ['noextension', 'the extension must be .msgpack or .json (got none)'],
    ['50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-send_email.MSGPACK', 'the extension must be .msgpack or .json (got .MSGPACK)'],
    ['5-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-send_email.json', 'the priority must be two digits, 00 to 99'],
    ['100-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-send_email.json', 'the priority must be two digits, 00 to 99'],
    ['50-176379720000-1763797190000a3f09c2d4e5b6f71-a0-send_email.json', 'the due time must be 13 digits of ms since the epoch'],
    ['50-1763797200000-1763797190000A3F09C2D4E5B6F71-a0-send_email.json', 'the id must be 13 digits of creation time followed by 16 lowercase hex digits'],
    ['50-1763797200000-1763797190000a3f09c2d4e5b6f7-a0-send_email.json', 'the id must be 13 digits of creation time followed by 16 lowercase hex digits'],
    ['50-1763797200000-1763797190000a3f09c2d4e5b6f71-a01-send_email.json', 'the attempts field must be "a" followed by a number, e.g. a0'],
    ['50-1763797200000-1763797190000a3f09c2d4e5b6f71-a1000000-send_email.json', 'the attempts field must be "a" followed by a number, e.g. a0'],
    ['50-1763797200000-1763797190000a3f09c2d4e5b6f71-0-send_email.json', 'the attempts field must be "a" followed by a number, e.g. a0'],
    ['50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-.json', 'the task name is empty'],
    ['50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-9lives.json', 'a task name starts with a letter or "_" and holds only letters, digits, "_", ".", ":" and "-"'],
    [`50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-${'n'.repeat(129)}.json`, 'the task name is longer than 128 characters'],
  ];
  for (const [fileName, reason] of bad) {
    it(`refuses ${fileName.length > 80 ? fileName.slice(0, 77) + '...' : fileName}`, () => {
      expect(parseTaskName(fileName)).toBeUndefined();
      expect(explainBadName(fileName)).toBe(reason);
    });
  }

  it('a name with dashes is one name, not more fields', () => {
    expect(parseTaskName('50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-a-b-c.json')?.name).toBe('a-b-c');
  });

  it('a byte sort of names is execution order: priority, then due time, then id', () => {
    const names = [
      formatTaskName({ priority: 50, due: 2000, id: '0000000001000' + '0'.repeat(16), attempts: 3, name: 'z', encoding: 'json' }),
      formatTaskName({ priority: 10, due: 9000, id: '0000000009000' + 'f'.repeat(16), attempts: 0, name: 'b', encoding: 'msgpack' }),
      formatTaskName({ priority: 50, due: 1000, id: '0000000000900' + '0'.repeat(16), attempts: 0, name: 'y', encoding: 'msgpack' }),
      formatTaskName({ priority: 50, due: 2000, id: '0000000001000' + '0'.repeat(15) + '1', attempts: 0, name: 'a', encoding: 'msgpack' }),
      formatTaskName({ priority: 9, due: 9_999_999_999_999, id: '0000000000001' + '0'.repeat(16), attempts: 0, name: 'x', encoding: 'json' }),
    ];
    expect([...names].sort().map((n) => parseTaskName(n)!.name)).toEqual(['x', 'b', 'y', 'z', 'a']);
  });
});

describe('TaskIdGenerator', () => {
  it('ids begin with the creation time and end with 16 lowercase hex digits', () => {
    const [id, created] = new TaskIdGenerator().next(1763797190000);
    expect(created).toBe(1763797190000);
    expect(id).toMatch(/^1763797190000[0-9a-f]{16}$/);
  });

  it('ids increase across milliseconds, and time never goes backwards', () => {
    const ids = new TaskIdGenerator();
    const [a, ta] = ids.next(1763797190000);
    const [b, tb] = ids.next(1763797190005);
    const [c, tc] = ids.next(1763797190001); // the clock stepped back
    expect([ta, tb, tc]).toEqual([1763797190000, 1763797190005, 1763797190005]);
    expect(a < b && b < c).toBe(true);
  });

  it('counting up within a millisecond carries into the high half', () => {
    const ids = new TaskIdGenerator();
    const [first] = ids.next(1763797190000);
    (ids as unknown as { lo: number }).lo = 0xfffffffe;
    const [x] = ids.next(1763797190000);
    const [y] = ids.next(1763797190000);
    expect(x.slice(13 + 8)).toBe('ffffffff');
    expect(y.slice(13 + 8)).toBe('00000000');
    expect(parseInt(y.slice(13, 21), 16)).toBe(parseInt(x.slice(13, 21), 16) + 1);
    expect(first < x && x < y).toBe(true);
  });

  it('two generators do not make the same ids in one millisecond', () => {
    const a = new TaskIdGenerator();
    const b = new TaskIdGenerator();
    const made = new Set<string>();
    for (let i = 0; i < 100; i++) {
      made.add(a.next(1763797190000)[0]);
      made.add(b.next(1763797190000)[0]);
    }
    expect(made.size).toBe(200);
  });
});

/**
 * SPOOL-FORMAT.md, "File name", gives one regular expression for every valid
 * name; name.ts parses by character codes. The document is the contract: the
 * parser must accept exactly what the expression matches and read the same
 * fields out of it.
 */
describe('parseTaskName accepts exactly the names of the pattern in SPOOL-FORMAT.md', () => {
  const doc = readFileSync(join(ROOT, 'SPOOL-FORMAT.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## File name'), doc.indexOf('## Body'));
  const source = /```\n(\^.*\$)\n```/.exec(section)?.[1];
  const pattern = new RegExp(source ?? '(?!)');
  /** The fields as the documented pattern reads them, or undefined. */
  const byPattern = (s: string) => {
    const m = pattern.exec(s);
    if (m === null) return undefined;
    return { priority: Number(m[1]), due: Number(m[2]), id: m[3], created: Number(m[3]!.slice(0, 13)), attempts: Number(m[4]), name: m[5], encoding: m[6] };
  };
  /** Whether `s` is a task name; fails the test where the parser (any of its entry points) and the pattern disagree. */
  const agrees = (s: string): boolean => {
    const expected = byPattern(s);
    const got: unknown[] = [parseTaskName(s), isTaskName(s), dueOfTaskName(s)];
    const want: unknown[] = [expected, expected !== undefined, expected?.due];
    if (expected !== undefined) {
      // The fixed offsets the daemon's queue compares by.
      got.push(Number(s.slice(PRIORITY_START, PRIORITY_END)), Number(s.slice(DUE_START, DUE_END)), s.slice(ID_START, ID_END));
      want.push(expected.priority, expected.due, expected.id);
    }
    // expect() only on a difference: it is called ~100,000 times.
    if (!isDeepStrictEqual(got, want)) expect(got, JSON.stringify(s)).toEqual(want);
    return expected !== undefined;
  };

  const valid = [
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-send_email.msgpack',
    '00-0000000000000-00000000000000000000000000000-a0-x.json',
    '99-9999999999999-99999999999990123456789abcdef-a999999-Z.msgpack',
    '07-1763797200000-1763797190000a3f09c2d4e5b6f71-a12-mail.send:v2-x.json',
    '07-1763797200000-1763797190000a3f09c2d4e5b6f71-a1-_.json.msgpack',
    '07-1763797200000-1763797190000a3f09c2d4e5b6f71-a1-a.msgpack.json',
    `07-1763797200000-1763797190000a3f09c2d4e5b6f71-a1-${'n'.repeat(128)}.json`,
    '07-1763797200000-1763797190000a3f09c2d4e5b6f71-a100000-x-.json',
    '07-1763797200000-1763797190000a3f09c2d4e5b6f71-a5-x..json',
  ];
  const invalid = [
    '',
    'not-a-task.json',
    '.50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-send_email.msgpack',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-send_email.msgpack\n',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-send_email.txt',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-1abc.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a00-x.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a01-x.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a1000000-x.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a-x.json',
    '50-1763797200000-1763797190000A3F09C2D4E5B6F71-a0-x.json',
    '5-01763797200000-1763797190000a3f09c2d4e5b6f71-a0-x.json',
    '50-176379720000-01763797190000a3f09c2d4e5b6f71-a0-x.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f7-a0-x.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-b0-x.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-x y.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-x.JSON',
    `50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-${'n'.repeat(129)}.json`,
    '５0-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-x.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-é.json',
    '50-1763797200000-1763797190000a3f09c2d4e5b6f71-a0-x.json\u0000',
  ];

  it('the document gives the pattern', () => {
    expect(source).toBeDefined();
  });

  it('on hand-picked valid and invalid names', () => {
    for (const name of valid) expect(agrees(name), name).toBe(true);
    for (const name of invalid) expect(agrees(name), name).toBe(false);
  });

  it('on every one-character change of valid names, and on made-up ones', () => {
    const rand = random(0x5eed);
    // Characters that matter to the pattern, and some that do not belong anywhere in it.
    const alphabet = '0123456789abcdefgxyzAFGZ_.:-/ \t\n\u00e9\u0660\uff10\ud800.jsonmsgpack';
    const names = [...valid];
    for (let i = 0; i < 150; i++) {
      const attempts = [0, 1, 9, 10, 99999, 999999][Math.floor(rand() * 6)]!;
      const name = 'abcdefghijklmnopqrstuvwxyzAZ_09.:-'.slice(0, 1 + Math.floor(rand() * 20)).replace(/^[0-9.:-]/, 'q');
      names.push(
        formatTaskName({
          priority: Math.floor(rand() * 100),
          due: Math.floor(rand() * 9_999_999_999_999),
          id: String(Math.floor(rand() * 9_999_999_999_999)).padStart(13, '0') + Math.floor(rand() * 2 ** 32).toString(16).padStart(8, '0') + Math.floor(rand() * 2 ** 32).toString(16).padStart(8, '0'),
          attempts,
          name,
          encoding: rand() < 0.5 ? 'json' : 'msgpack',
        }),
      );
    }
    let checked = 0;
    let parsed = 0;
    const compare = (s: string) => {
      if (agrees(s)) parsed++;
      checked++;
    };
    for (const name of names) {
      compare(name);
      for (let i = 0; i <= name.length; i++) {
        compare(name.slice(0, i) + name.slice(i + 1)); // deleted
        compare(name.slice(0, i)); // cut short
        for (let k = 0; k < 3; k++) {
          const c = alphabet[Math.floor(rand() * alphabet.length)]!;
          compare(name.slice(0, i) + c + name.slice(i + 1)); // replaced
          compare(name.slice(0, i) + c + name.slice(i)); // inserted
        }
      }
    }
    for (let i = 0; i < 10_000; i++) {
      let s = '';
      const length = Math.floor(rand() * 80);
      for (let k = 0; k < length; k++) s += alphabet[Math.floor(rand() * alphabet.length)];
      compare(s);
    }
    // Enough of both kinds to mean something.
    expect(checked).toBeGreaterThan(90_000);
    expect(parsed).toBeGreaterThan(10_000);
  });
});
