import { describe, expect, it } from 'vitest';
import { formatTaskName, parseTaskName, TaskIdGenerator } from '../spool/name.js';

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
