/** runtime/task-behaviour.ts with fakes: the retry filter, the order of hooks, and hooks that throw, reject or hang. */
import { describe, expect, it } from 'vitest';
import { InvalidOptionError, PermanentError, failed, outcomeOf } from '../runtime/index.js';
import { applyRetryFilter, callHooks, checkBehaviourOptions, hooksFor, type Behaviour, type HookTrouble, type TaskHooks } from '../runtime/task-behaviour.js';

const behaviour = (b: Partial<Behaviour>): Behaviour => ({ retryOn: undefined, noRetryOn: undefined, hooks: [], hookTimeoutMs: 50, ...b });
class NetworkError extends Error {
  override name = 'NetworkError';
}

describe('failing for good', () => {
  it('a thrown PermanentError and failed(reason) are failed outcomes; other throws are rescheduled', () => {
    const e = new PermanentError('no');
    expect(outcomeOf({ error: e })).toEqual({ kind: 'failed', reason: 'no', error: e });
    expect(failed('bad').outcome).toEqual({ kind: 'failed', reason: 'bad' });
    expect(outcomeOf({ error: new Error('x') }).kind).toBe('rescheduled');
    expect(() => failed('')).toThrow(TypeError);
  });

  it('noRetryOn and retryOn match classes by instanceof and names by error.name', () => {
    const t = { kind: 'rescheduled', error: new TypeError('t') } as const;
    const n = { kind: 'rescheduled', error: new NetworkError('n') } as const;
    expect(applyRetryFilter(t, behaviour({ noRetryOn: [TypeError] })).kind).toBe('failed');
    expect(applyRetryFilter(n, behaviour({ noRetryOn: [TypeError] })).kind).toBe('rescheduled');
    expect(applyRetryFilter(n, behaviour({ retryOn: ['NetworkError'] })).kind).toBe('rescheduled');
    expect(applyRetryFilter(t, behaviour({ retryOn: ['NetworkError'] }))).toEqual(expect.objectContaining({ kind: 'failed', reason: 'TypeError is not among the errors retried (retryOn): t' }));
    // rescheduled() without an error is what the task asked for: never filtered.
    expect(applyRetryFilter({ kind: 'rescheduled', reason: 'later' }, behaviour({ retryOn: [] })).kind).toBe('rescheduled');
  });

  it('bad options are refused where the task is defined', () => {
    expect(() => checkBehaviourOptions({ retryOn: [TypeError], noRetryOn: ['X'] }, 'task "t"')).toThrow(InvalidOptionError);
    expect(() => checkBehaviourOptions({ retryOn: [3 as never] }, 'task "t"')).toThrow(/error classes/);
    expect(() => checkBehaviourOptions({ hooks: { onSucess: () => {} } as TaskHooks }, 'task "t"')).toThrow(/unknown hook "onSucess"/);
  });
});

describe('callHooks', () => {
  it('calls nothing and returns undefined when no hook of those names is set', () => {
    expect(callHooks(behaviour({ hooks: [{ onSkip: () => {} }] }), hooksFor({ outcome: 'processed', durationMs: 1 }), () => undefined, () => undefined)).toBeUndefined();
  });

  it('calls each set in order; one that throws, rejects or hangs is reported and the rest still run', async () => {
    const order: string[] = [];
    const trouble: HookTrouble[] = [];
    const hooks: TaskHooks[] = [
      { after: () => void order.push('task:after'), onFailure: () => { throw new Error('boom'); }, onRetry: () => new Promise(() => {}) },
      { after: async () => { order.push('spooler:after'); throw new Error('rejected'); }, onRetry: () => void order.push('spooler:onRetry') },
    ];
    const names = hooksFor({ outcome: 'rescheduled', durationMs: 1, error: new Error('e') });
    expect(names).toEqual(['after', 'onFailure', 'onRetry']);
    await callHooks(behaviour({ hooks }), names, (h) => h({} as never), (t) => trouble.push(t));
    expect(order).toEqual(['task:after', 'spooler:after', 'spooler:onRetry']);
    expect(trouble.map((t) => [t.hook, (t.error as Error | undefined)?.message, t.timedOut])).toEqual([
      ['after', 'rejected', undefined],
      ['onFailure', 'boom', undefined],
      ['onRetry', undefined, 50],
    ]);
  });
});
