/** spooler/cancel-requests.ts and spool/cancel.ts with a fake daemon: which requests are acted on, kept, expired or refused. */
import { mkdirSync, readdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cancelTask, REQUEST_TTL_MS, requestCancel } from '../spool/cancel.js';
import { SpoolLayout } from '../spool/layout.js';
import { createLogger } from '../spooler/logger.js';
import { CancelRequests } from '../spooler/cancel-requests.js';
import { tempDir } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
let layout: SpoolLayout;
let lines: Array<Record<string, unknown>>;
const ID_RUNNING = '1796190742202186cd83aa484ddba';
const ID_UNKNOWN = '1796190742202186cd83aa484ddbb';

beforeEach(() => {
  ({ dir, cleanup } = tempDir('spoolerd-cancel-unit-'));
  layout = new SpoolLayout(join(dir, 'spool')).ensure();
  lines = [];
});
afterEach(() => cleanup());

function checker(runs: Set<string>, asked: string[]): CancelRequests {
  const c = new CancelRequests({
    layout,
    log: createLogger({ level: 'debug', format: 'json', write: (l) => void lines.push(JSON.parse(l) as Record<string, unknown>) }),
    cancel: (ids) => {
      asked.push(...ids);
      return new Set([...ids].filter((id) => runs.has(id)));
    },
    check: () => undefined,
    active: () => true,
  });
  c.start();
  return c;
}

describe('the daemon\'s cancel requests', () => {
  it('asks its runner to cancel a task it runs, keeps the request until done(), and expires an unknown one only once it is stale', () => {
    const asked: string[] = [];
    const c = checker(new Set([ID_RUNNING]), asked);
    expect(requestCancel(layout, ID_RUNNING)).toBe(true);
    expect(requestCancel(layout, ID_RUNNING)).toBe(false);
    requestCancel(layout, ID_UNKNOWN);
    const now = Date.now();
    c.check(now);
    expect(asked.sort()).toEqual([ID_RUNNING, ID_UNKNOWN]);
    expect(readdirSync(layout.cancel).sort()).toEqual([ID_RUNNING, ID_UNKNOWN]);
    c.check(now + REQUEST_TTL_MS + 1000);
    // The running one's request stays however old: it goes when the task has ended.
    expect(readdirSync(layout.cancel)).toEqual([ID_RUNNING]);
    c.done(ID_RUNNING);
    expect(readdirSync(layout.cancel)).toEqual([]);
    c.stop();
  });

  it('removes what is not a request, unread, never following a link', () => {
    const outside = join(dir, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'f'), 'x');
    symlinkSync(outside, join(layout.cancel, ID_RUNNING));
    writeFileSync(join(layout.cancel, 'zzz'), '');
    writeFileSync(join(layout.cancel, ID_UNKNOWN), 'payload');
    const asked: string[] = [];
    checker(new Set(), asked).check();
    expect(asked).toEqual([]);
    expect(readdirSync(layout.cancel)).toEqual([]);
    expect(readdirSync(outside)).toEqual(['f']);
    expect(lines.filter((l) => l.msg === 'removed a file from cancel/ that is not a cancel request').length).toBe(3);
  });
});

describe('cancelTask (spool/cancel.ts)', () => {
  it('files a request for a running task and refuses what is not an id', () => {
    const owner = join(layout.active, 'host-1-abcdef');
    mkdirSync(owner);
    const name = `50-1796190742202-${ID_RUNNING}-a0-job.msgpack`;
    writeFileSync(join(owner, name), '');
    utimesSync(join(owner, name), new Date(), new Date());
    expect(cancelTask(layout, ID_RUNNING)).toEqual({ kind: 'requested', name, owner: 'host-1-abcdef', already: false });
    expect(cancelTask(layout, ID_RUNNING)).toEqual({ kind: 'requested', name, owner: 'host-1-abcdef', already: true });
    expect(cancelTask(layout, ID_UNKNOWN)).toEqual({ kind: 'not-found' });
    expect(() => cancelTask(layout, '../etc')).toThrow(/not a task id/);
  });
});
