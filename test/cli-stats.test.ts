/**
 * `spool stats [--json]`, through the real binary (README, "The `spool`
 * command"): counts by state, by priority and by task name.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spool, tempDir } from './helpers/cli.js';

const BODY = '{"version":1,"type":"fcall","args":[]}';
const MIN = 60_000;
const HOUR = 60 * MIN;

let seq = 0;
interface TaskSpec {
  priority: number;
  due: number;
  name: string;
  ext?: 'json' | 'msgpack';
}

function nameOf(t: TaskSpec, created: number): string {
  const id = String(created) + (++seq).toString(16).padStart(16, '0');
  return `${String(t.priority).padStart(2, '0')}-${String(t.due).padStart(13, '0')}-${id}-a0-${t.name}.${t.ext ?? 'json'}`;
}

function put(root: string, where: string, t: TaskSpec, body: string | Buffer = BODY): string {
  mkdirSync(join(root, where), { recursive: true });
  const file = nameOf(t, Date.now() - HOUR);
  writeFileSync(join(root, where, file), body);
  return file;
}

let dir: string;
let cleanup: () => void;
let root: string;
beforeEach(() => {
  ({ dir, cleanup } = tempDir('spool-stats-'));
  root = join(dir, 'spool');
  for (const d of ['tmp', 'incoming', 'pending', 'active', 'dead', 'quarantine', 'archive']) mkdirSync(join(root, d), { recursive: true });
});
afterEach(() => cleanup());

/**
 * active 2 (w1: p20 resize; w2: p05 send_email), due 4 (p50 send_email ×2, p10 resize, p00 report),
 * scheduled 2 (p50 send_email, p99 cleanup), invalid 3 (a truncated body named p30 broken, an unknown
 * format version named p50 send_email, a name that is no task name), dead 1 (p50 resize), quarantined 2
 * (one with a task name p40 evil, one without).
 */
function mixedSpool(): void {
  const now = Date.now();
  for (const [owner, t] of [
    ['w1', { priority: 20, due: now - MIN, name: 'resize' }],
    ['w2', { priority: 5, due: now - MIN, name: 'send_email' }],
  ] as const) {
    const file = put(root, 'pending', t);
    mkdirSync(join(root, 'active', owner), { recursive: true });
    renameSync(join(root, 'pending', file), join(root, 'active', owner, file));
  }
  put(root, 'incoming', { priority: 50, due: now - MIN, name: 'send_email' });
  put(root, 'pending', { priority: 50, due: now - 2 * MIN, name: 'send_email' });
  put(root, 'incoming', { priority: 10, due: now - MIN, name: 'resize' });
  put(root, 'pending', { priority: 0, due: now - MIN, name: 'report' });
  put(root, 'pending', { priority: 50, due: now + HOUR, name: 'send_email' });
  put(root, 'incoming', { priority: 99, due: now + 2 * HOUR, name: 'cleanup' });
  put(root, 'incoming', { priority: 30, due: now - MIN, name: 'broken', ext: 'msgpack' }, Buffer.from([0x82, 0xa7, 0x76]));
  put(root, 'pending', { priority: 50, due: now - MIN, name: 'send_email' }, '{"version":3,"type":"fcall","args":[]}');
  writeFileSync(join(root, 'incoming', 'notes.txt'), 'hello');
  put(root, 'dead', { priority: 50, due: now - HOUR, name: 'resize' });
  const evil = nameOf({ priority: 40, due: now - MIN, name: 'evil' }, now - HOUR);
  writeFileSync(join(root, 'quarantine', evil), 'junk');
  writeFileSync(join(root, 'quarantine', evil + '.reason.json'), JSON.stringify({ reason: 'the body must be a map', from: 'incoming', at: now }));
  writeFileSync(join(root, 'quarantine', 'junk.bin'), 'junk');
  writeFileSync(join(root, 'quarantine', 'junk.bin.reason.json'), JSON.stringify({ reason: 'bad name', from: 'pending', at: now }));
}

describe('spool stats', () => {
  it('--json counts by state, priority and task; invalid and quarantined files count only by state', () => {
    mixedSpool();
    const r = spool(['stats', '--dir', root, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const stats = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(Object.keys(stats)).toEqual(['total', 'byState', 'byPriority', 'byTask', 'paused']);
    expect(stats).toEqual({
      total: 14,
      byState: { active: 2, due: 4, scheduled: 2, invalid: 3, dead: 1, quarantined: 2 },
      byPriority: { '00': 1, '05': 1, '10': 1, '20': 1, '50': 4, '99': 1 },
      byTask: { send_email: 4, resize: 3, report: 1, cleanup: 1 },
      paused: { all: false, tasks: [], schedules: [], waiting: 0, problem: null },
    });
  });

  it('prints the same counts for people: a total, then one table per grouping, in order', () => {
    mixedSpool();
    const r = spool(['stats', '--dir', root]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // Trailing blanks and blank lines at the very end are not part of the contract.
    expect(r.stdout.trimEnd().split('\n').map((l) => l.trimEnd())).toEqual([
      'total 14',
      'STATE        COUNT',
      'active           2',
      'due              4',
      'scheduled        2',
      'invalid          3',
      'dead             1',
      'quarantined      2',
      '',
      'PRIORITY  COUNT',
      '00            1',
      '05            1',
      '10            1',
      '20            1',
      '50            4',
      '99            1',
      '',
      'TASK        COUNT',
      'send_email      4',
      'resize          3',
      'cleanup         1',
      'report          1',
    ]);
  });

  it('counts an empty spool as zeros', () => {
    const r = spool(['stats', '--dir', root, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      total: 0,
      byState: { active: 0, due: 0, scheduled: 0, invalid: 0, dead: 0, quarantined: 0 },
      byPriority: {},
      byTask: {},
      paused: { all: false, tasks: [], schedules: [], waiting: 0, problem: null },
    });
  });

  it('exits 2 naming --dir and SPOOL_DIR without a spool, 1 for a missing one, and reads SPOOL_DIR', () => {
    put(root, 'incoming', { priority: 50, due: Date.now() - MIN, name: 'one' });
    const viaEnv = spool(['stats', '--json'], { env: { SPOOL_DIR: root } });
    expect(viaEnv.code).toBe(0);
    expect((JSON.parse(viaEnv.stdout) as { total: number }).total).toBe(1);

    const none = spool(['stats']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--dir');
    expect(none.stderr).toContain('SPOOL_DIR');

    const missing = spool(['stats', '--dir', join(dir, 'nope')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(join(dir, 'nope'));
  });
});
