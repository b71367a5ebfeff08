/**
 * What a runner enqueues when a task with `chain` or `onError` ends (spool/flows.ts
 * has the rules, SPOOL-FORMAT.md "Chains" the protocol): the next step of a
 * processed task's chain, the onError task of a task that ends as dead. Each
 * exactly once, with enqueue-once (spool/enqueue-once.ts) and a marker in
 * flows/, after the task's result is kept and before its file is finished or
 * buried (task-path.ts settle): a kill -9 at any instant leaves the task's file
 * (reclaimed; the marker makes the second enqueue add nothing) or its file gone
 * and the step enqueued.
 *
 * A reclaimed task with a chain (attempts > 0) whose function had returned
 * before the crash is not run again: its next step's marker exists, or its
 * result was kept as processed; the next step is then enqueued from the kept
 * value (finishedBefore).
 *
 * Made by a TaskPath at the first task that has either field: plain tasks pay
 * one property test per field and nothing here.
 */
import { lstatSync } from 'node:fs';
import { enqueueOnce, LinkSupport, type EnqueueOnceStep } from '../../spool/enqueue-once.js';
import { errorStepTask, flowMarkerName, nextStepTask, type FailureArgument, type FlowKind } from '../../spool/flows.js';
import { readResult } from '../../spool/results.js';
import type { EncodedTask, TaskFile } from '../../spool/task-file.js';
import type { Site } from './task-path.js';

/** The instants a test may kill the daemon at (SPOOLERD_TEST_CHAIN_CRASH): after the result is kept, each enqueue-once step, just before the file is finished. */
export type FlowCrashPoint = 'kept' | EnqueueOnceStep | 'before-finish';

/** A step made ready before the task's result is kept: its file, or why there is none. */
export type PreparedStep = { kind: FlowKind; encoded: EncodedTask } | { kind: FlowKind; problem: string };

export class TaskFlows {
  private readonly links: LinkSupport;
  private readonly crashAt: FlowCrashPoint | undefined;

  constructor(private readonly site: Site) {
    this.links = new LinkSupport((why) => site.log.warn(why.replace('a marker', 'a chain marker (flows/)')));
    const at = process.env.SPOOLERD_TEST_CHAIN_CRASH;
    this.crashAt = at === undefined || at === '' ? undefined : (at as FlowCrashPoint);
  }

  /** The next step of a processed task's chain, with its value first; or why it cannot be (the value cannot be stored). */
  prepareNext(task: TaskFile, value: unknown): PreparedStep {
    try {
      return { kind: 'next', encoded: nextStepTask(task, value, this.site.clock.stampNow(), this.site.maxBytes) };
    } catch (err) {
      const problem = `the next step of the chain (${task.body.chain![0]!.name}) was not enqueued: the value cannot be passed on: ${(err as Error).message}`;
      this.site.log.error('a chain stops: the value a step returned cannot be given to the next step; the task is processed and its result says why', { task: task.name, id: task.id, next: task.body.chain![0]!.name, err: (err as Error).message });
      return { kind: 'next', problem };
    }
  }

  /** The onError task of a task that ends dead. */
  prepareError(task: TaskFile, attempts: number, error: { name?: string; message: string }): PreparedStep {
    const failure: FailureArgument = { id: task.id, name: task.name, attempts, error: error.name === undefined ? { message: error.message } : { name: error.name, message: error.message } };
    try {
      return { kind: 'error', encoded: errorStepTask(task, failure, this.site.clock.stampNow(), this.site.maxBytes) };
    } catch (err) {
      this.site.log.error('the onError task of a dead letter cannot be enqueued', { task: task.name, id: task.id, onError: task.body.onError!.name, err: (err as Error).message });
      return { kind: 'error', problem: (err as Error).message };
    }
  }

  /**
   * Enqueues a prepared step once (its marker flows/<id>.<kind>). Throws on a
   * write error (a full disk): the caller's move is then retried as a stuck
   * move, and the enqueue with it ("exists" once the marker is there).
   */
  enqueue(task: TaskFile, prepared: PreparedStep | undefined): void {
    if (prepared !== undefined && 'encoded' in prepared) {
      this.site.check('flows', 'incoming');
      const outcome = enqueueOnce(this.site.layout, {
        markerDir: this.site.layout.flows,
        marker: flowMarkerName(task.id, prepared.kind),
        fileName: prepared.encoded.fileName,
        bytes: prepared.encoded.bytes,
        links: this.links,
        ...(this.crashAt !== undefined && { afterStep: (step: EnqueueOnceStep) => this.crashPoint(step) }),
      });
      if (this.site.log.enabled('debug') || outcome === 'exists') {
        const what = prepared.kind === 'next' ? 'next step of a chain' : 'onError task';
        this.site.log[outcome === 'exists' ? 'info' : 'debug'](outcome === 'exists' ? `the ${what} was enqueued before (a rerun): not again` : `enqueued the ${what}`, { task: task.name, id: task.id, file: prepared.encoded.fileName });
      }
    }
    this.crashPoint('before-finish');
  }

  /**
   * For a reclaimed task with a chain: whether its function returned before
   * (its next step's marker exists, or a processed result is kept), and then
   * the step to enqueue (none if the marker exists). Undefined: run it.
   */
  finishedBefore(task: TaskFile): { prepared?: PreparedStep } | undefined {
    try {
      lstatSync(this.site.layout.flows + '/' + flowMarkerName(task.id, 'next'));
      return {};
    } catch {
      // No marker: look for its result.
    }
    const kept = readResult(this.site.layout, task.id);
    if (!kept.ok || kept.record.ending !== 'processed') return undefined;
    if (kept.record.valueError !== undefined) return { prepared: { kind: 'next', problem: kept.record.valueError } };
    return { prepared: this.prepareNext(task, kept.record.value) };
  }

  /** Tests: SPOOLERD_TEST_CHAIN_CRASH=<point> kills this process (kill -9) the first time it gets there. */
  crashPoint(point: FlowCrashPoint): void {
    if (this.crashAt !== point) return;
    this.site.log.warn('test: killing this daemon at a step of a chain', { point });
    process.kill(process.pid, 'SIGKILL');
  }
}
