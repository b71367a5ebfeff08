/**
 * The on-disk rules of children/ (spool/children.ts) with fakes and temp
 * folders: counting children and their .done entries, when a continuation is
 * due, when a folder is settled, starting waiting children of a limited batch,
 * and the cancel cascade (spool/cancel.ts cancelChildren).
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addChildEntry, continuationDue, flowSettled, markChildDone, markFlowCancelled, parseFlowNames, promoteQueued, queueChild, readFlow, removeFlow, listFlows, removeGone } from '../spool/children.js';
import { cancelChildren, cancelTask } from '../spool/cancel.js';
import { derivedId } from '../spool/derived-id.js';
import { SpoolLayout } from '../spool/layout.js';
import { encodeTask } from '../spool/task-file.js';
import { writeTaskSync } from '../spool/protocol.js';
import { tempDir } from './helpers/cli.js';

const P = '1796000000000aaaaaaaaaaaaaaaa';
const ids = Array.from({ length: 4 }, (_, i) => derivedId(P, `child:0:0:${i}`));
const then = { children: ids.map((id) => ({ id, name: 'leaf' })) };

describe('counting a flow (pure)', () => {
  it('a continuation is due only with .then, without .cancelled, and with every listed child done', () => {
    const all = [...ids, ...ids.map((id) => `${id}.done`)];
    expect(continuationDue(parseFlowNames(all), then)).toBe(false); // no .then yet
    expect(continuationDue(parseFlowNames([...all, '.then']), then)).toBe(true);
    expect(continuationDue(parseFlowNames([...all.slice(0, -1), '.then']), then)).toBe(false); // the last child runs
    expect(continuationDue(parseFlowNames([...all, '.then', '.cancelled']), then)).toBe(false);
    // A child of an earlier run that is not listed does not hold it back; debris and stages are ignored.
    const earlier = derivedId(P, 'child:0:9:0');
    expect(continuationDue(parseFlowNames([...all, earlier, '.then', '.then-123-abcd', 'junk']), then)).toBe(true);
  });

  it('a folder is settled once cancelled, its continuation enqueued, or (without one) every child done', () => {
    const running = parseFlowNames([...ids, `${ids[0]}.done`]);
    expect(flowSettled(running, false)).toBe(false);
    expect(flowSettled(parseFlowNames([...ids, ...ids.map((id) => `${id}.done`)]), false)).toBe(true);
    expect(flowSettled(parseFlowNames([...ids, ...ids.map((id) => `${id}.done`), '.then']), false)).toBe(false);
    expect(flowSettled(parseFlowNames([...ids, ...ids.map((id) => `${id}.done`), '.then']), true)).toBe(true);
    expect(flowSettled(parseFlowNames([...ids, '.cancelled']), false)).toBe(true);
  });
});

describe('children/ on disk', () => {
  let dir: string;
  let cleanup: () => void;
  let layout: SpoolLayout;
  beforeEach(() => {
    ({ dir, cleanup } = tempDir('spoolerd-children-unit-'));
    layout = new SpoolLayout(join(dir, 'spool')).ensure();
  });
  afterEach(() => cleanup());

  const encoded = (i: number, body: Record<string, unknown> = {}) => encodeTask({ id: ids[i], name: 'leaf', priority: 50, body: { type: 'fcall', args: [i], flow: P, ...body } });

  it('an entry is made once: a second add says it was there', () => {
    expect(addChildEntry(layout, P, ids[0]!)).toBe(true);
    expect(addChildEntry(layout, P, ids[0]!)).toBe(false);
    expect(markChildDone(layout, P, ids[0]!)).toBe(true);
    expect(markChildDone(layout, P, ids[0]!)).toBe(true);
    expect(readFlow(layout, P)).toMatchObject({ children: [ids[0]], done: new Set([ids[0]]) });
    // No folder (removed as settled): a late .done is dropped, not an error.
    expect(markChildDone(layout, derivedId(P, 'other'), ids[1]!)).toBe(false);
  });

  it('each ending sibling starts one waiting child of its pool, lowest first; none once cancelled', () => {
    for (const i of [1, 2, 3]) {
      addChildEntry(layout, P, ids[i]!);
      const e = encoded(i, { flowPool: 'a0c0' });
      queueChild(layout, P, 'a0c0', i, e.fileName, e.bytes);
    }
    expect(readFlow(layout, P)!.queued).toEqual([ids[1], ids[2], ids[3]]);
    const first = promoteQueued(layout, P, 'a0c0');
    expect(readdirSync(layout.incoming)).toEqual([first]);
    expect(first!.slice(17, 46)).toBe(ids[1]);
    expect(promoteQueued(layout, P, 'other')).toBeUndefined();
    markFlowCancelled(layout, P);
    expect(promoteQueued(layout, P, 'a0c0')).toBeUndefined();
    expect(readFlow(layout, P)!.queued).toEqual([ids[2], ids[3]]);
  });

  it('cancelling a parent marks its flow cancelled, revokes waiting children, drops held-back ones, and goes down to grandchildren', () => {
    // Child 0 waits in incoming/; child 1 is held back by a limit; child 2 ended; child 0 has a waiting child of its own.
    addChildEntry(layout, P, ids[0]!);
    writeTaskSync(layout, encoded(0).fileName, encoded(0).bytes);
    addChildEntry(layout, P, ids[1]!);
    const q = encoded(1, { flowPool: 'a0c1' });
    queueChild(layout, P, 'a0c1', 1, q.fileName, q.bytes);
    addChildEntry(layout, P, ids[2]!);
    markChildDone(layout, P, ids[2]!);
    const grandchild = derivedId(ids[0]!, 'child:0:0:0');
    addChildEntry(layout, ids[0]!, grandchild);
    const g = encodeTask({ id: grandchild, name: 'leaf', priority: 50, body: { type: 'fcall', args: [], flow: ids[0] } });
    writeTaskSync(layout, g.fileName, g.bytes);

    expect(cancelChildren(layout, P)).toBe(3);
    expect(readdirSync(layout.incoming)).toEqual([]);
    const listing = readFlow(layout, P)!;
    expect(listing.cancelled).toBe(true);
    expect(listing.queued).toEqual([]);
    expect(readFlow(layout, ids[0]!)!.cancelled).toBe(true);
    // The parent itself has ended (no file): cancelTask says so and cancels nothing more.
    expect(cancelTask(layout, P)).toEqual({ kind: 'children', children: 0 });
  });

  it('removes a folder by renaming it away first; a .gone- folder left by a crash is removed by the next sweep', () => {
    addChildEntry(layout, P, ids[0]!);
    removeFlow(layout, P);
    expect(existsSync(join(layout.children, P))).toBe(false);
    expect(readdirSync(layout.children)).toEqual([]);
    // A crash after the rename: the .gone- folder stays until the sweep.
    mkdirSync(join(layout.children, `.gone-${P}-0000`));
    writeFileSync(join(layout.children, `.gone-${P}-0000`, ids[1]!), '');
    expect(listFlows(layout)).toEqual({ parents: [], gone: [`.gone-${P}-0000`] });
    removeGone(layout, `.gone-${P}-0000`);
    expect(readdirSync(layout.children)).toEqual([]);
  });
});
