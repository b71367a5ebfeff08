/**
 * The task context API in isolation: outside a task there is none, task
 * functions stay plain functions, and enqueueing inside a context records the
 * parent (an explicit `parent` option wins).
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { currentTask, NotInTaskError, Spooler, taskContext, type TaskContext } from '../runtime/index.js';
import { runInTaskContext } from '../runtime/context.js';
import { tempDir } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir('spoolerd-context-unit-')));
afterEach(() => cleanup());

function fakeContext(spooler: Spooler, id: string): TaskContext {
  const noop = () => {};
  const noChildren = () => {
    throw new Error('not in this fake context');
  };
  return {
    id,
    name: 'outer',
    attempt: 2,
    fileName: 'f',
    spooler,
    signal: new AbortController().signal,
    log: { debug: noop, info: noop, warn: noop, error: noop },
    parent: undefined,
    cancelled: false,
    enqueueChild: noChildren,
    enqueueChildren: noChildren,
    enqueueChildOnce: noChildren,
    waitForChildren: noChildren,
    afterChildren: noChildren,
    progress: noop,
  };
}

describe('the task context', () => {
  it('is absent outside a task: currentTask() is undefined and taskContext() throws NotInTaskError', () => {
    expect(currentTask()).toBeUndefined();
    expect(() => taskContext()).toThrow(NotInTaskError);
    expect(() => taskContext()).toThrow('taskContext() was called outside a running task');
  });

  it('leaves task functions callable as plain functions with their own signature', () => {
    const spooler = Spooler.open(join(dir, 'spool'));
    const add = spooler.task(function add(a: number, b: number): number {
      return a + b + (currentTask()?.attempt ?? 0);
    });
    expect(add.fn(1, 2)).toBe(3);
    expect(runInTaskContext(fakeContext(spooler, 'x'), () => add.fn(1, 2))).toBe(5);
  });

  it('is kept across awaits, and tasks enqueued inside it record its id as parent unless one is given', async () => {
    const spooler = Spooler.open(join(dir, 'spool'));
    const work = spooler.task(function work(_n: number) {});
    const parentId = '1763797190000a3f09c2d4e5b6f71';
    const [inside, explicit, afterAwait] = await runInTaskContext(fakeContext(spooler, parentId), async () => {
      const a = await work(1);
      const b = await work.with({ parent: '1763797190000ffffffffffffffff' })(2);
      await new Promise((done) => setTimeout(done, 1));
      const [c] = await spooler.enqueueMany([work.request(3)]);
      return [a, b, c!];
    });
    const outside = await work(4);
    const parentOf = (path: string) => Spooler.readTaskFile(path).body.parent;
    expect(parentOf(inside.path)).toBe(parentId);
    expect(parentOf(explicit.path)).toBe('1763797190000ffffffffffffffff');
    expect(parentOf(afterAwait.path)).toBe(parentId);
    expect(parentOf(outside.path)).toBeUndefined();
  });
});
