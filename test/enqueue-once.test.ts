/**
 * The shared primitives of chains and continuations: enqueue-once
 * (spool/enqueue-once.ts) with flows/ markers, its recovery and fallback,
 * derivedId (spool/derived-id.ts) and toStep (runtime/steps.ts). The slot
 * enqueue of schedules runs on the same function: test/scheduler.test.ts.
 */
import { linkSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { derivedId } from '../spool/derived-id.js';
import { enqueueOnce, finishStagedEnqueues, LinkSupport, pruneEndedMarkers, STAGE_DEBRIS_AGE_MS, STAGE_PREFIX, stagedFileName, type EnqueueOnceStep } from '../spool/enqueue-once.js';
import { InvalidOptionError, UnencodableValueError } from '../spool/errors.js';
import { SpoolLayout } from '../spool/layout.js';
import { TASK_ID_PATTERN } from '../spool/name.js';
import { toStep } from '../runtime/steps.js';
import { Spooler } from '../runtime/spooler.js';

let root: string;
let layout: SpoolLayout;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'enqueue-once-'));
  layout = new SpoolLayout(root).ensure();
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const id = '1796000000000' + '0123456789abcdef';
const nextId = derivedId(id, 'next');
const fileName = `50-1796000000000-${nextId}-a0-resize.msgpack`;
const bytes = Buffer.from('not parsed here');
const incoming = () => readdirSync(layout.incoming);
const stages = () => readdirSync(layout.flows).filter((n) => n.startsWith(STAGE_PREFIX));
class Crash extends Error {}
const crashAfter = (at: EnqueueOnceStep) => (step: EnqueueOnceStep) => {
  if (step === at) throw new Crash(step);
};
const request = (more: Partial<Parameters<typeof enqueueOnce>[1]> = {}) => ({ markerDir: layout.flows, marker: `${id}.next`, fileName, bytes, links: new LinkSupport(), ...more });

describe('enqueueOnce into flows/', () => {
  it('enqueues once: the task in incoming/, its marker a second name of it; a second call adds nothing', () => {
    expect(enqueueOnce(layout, request())).toBe('enqueued');
    expect(incoming()).toEqual([fileName]);
    expect(lstatSync(join(layout.flows, `${id}.next`)).ino).toBe(lstatSync(join(layout.incoming, fileName)).ino);
    expect(lstatSync(join(layout.flows, `${id}.next`)).nlink).toBe(2);
    expect(stages()).toEqual([]);
    expect(enqueueOnce(layout, request())).toBe('exists');
    expect(incoming()).toEqual([fileName]);
    expect(stages()).toEqual([]);
    // Once the task has finished (its file unlinked) the marker is alone, and still says "enqueued before".
    rmSync(join(layout.incoming, fileName));
    expect(lstatSync(join(layout.flows, `${id}.next`)).nlink).toBe(1);
    expect(enqueueOnce(layout, request())).toBe('exists');
    expect(incoming()).toEqual([]);
  });

  it('a crash after staging: nothing enqueued, the marker not made (the rerun enqueues); the stage is debris swept after an hour', () => {
    expect(() => enqueueOnce(layout, request({ afterStep: crashAfter('staged') }))).toThrow(Crash);
    const now = Date.now();
    expect(finishStagedEnqueues(layout, layout.flows, readdirSync(layout.flows), now + 60_000)).toEqual([]);
    expect(incoming()).toEqual([]);
    expect(enqueueOnce(layout, request())).toBe('enqueued');
    expect(incoming()).toEqual([fileName]);
    expect(stages()).toHaveLength(1);
    expect(finishStagedEnqueues(layout, layout.flows, readdirSync(layout.flows), now + STAGE_DEBRIS_AGE_MS + 1000)).toEqual([]);
    expect(stages()).toEqual([]);
    expect(incoming()).toEqual([fileName]);
  });

  it('a crash after the link: the rerun sees "exists"; the scan publishes the stage once (link count 2), after the grace', () => {
    expect(() => enqueueOnce(layout, request({ afterStep: crashAfter('linked') }))).toThrow(Crash);
    expect(enqueueOnce(layout, request())).toBe('exists');
    expect(incoming()).toEqual([]);
    const now = Date.now();
    expect(finishStagedEnqueues(layout, layout.flows, readdirSync(layout.flows), now)).toEqual([]); // within the grace
    expect(finishStagedEnqueues(layout, layout.flows, readdirSync(layout.flows), now + 10_000)).toEqual([fileName]);
    expect(incoming()).toEqual([fileName]);
    expect(finishStagedEnqueues(layout, layout.flows, readdirSync(layout.flows), now + 10_000)).toEqual([]);
    expect(lstatSync(join(layout.flows, `${id}.next`)).ino).toBe(lstatSync(join(layout.incoming, fileName)).ino);
  });

  it('a stalled enqueuer whose stage was published by a scan meanwhile: its rename finds nothing, no second task', () => {
    let scanned = false;
    const outcome = enqueueOnce(layout, request({
      afterStep: (step) => {
        if (step !== 'linked' || scanned) return;
        scanned = true;
        expect(finishStagedEnqueues(layout, layout.flows, readdirSync(layout.flows), Date.now() + 60_000)).toEqual([fileName]);
      },
    }));
    expect(outcome).toBe('enqueued');
    expect(incoming()).toEqual([fileName]);
  });

  it('a crash after publishing: done, nothing left to recover', () => {
    expect(() => enqueueOnce(layout, request({ afterStep: crashAfter('published') }))).toThrow(Crash);
    expect(incoming()).toEqual([fileName]);
    expect(stages()).toEqual([]);
    expect(finishStagedEnqueues(layout, layout.flows, readdirSync(layout.flows), Date.now() + 60_000)).toEqual([]);
  });

  it('the stage can live elsewhere than the marker (schedules stage in schedules/, mark in schedules/<S>/)', () => {
    expect(enqueueOnce(layout, request({ stageDir: layout.schedules }))).toBe('enqueued');
    expect(incoming()).toEqual([fileName]);
    expect(readdirSync(layout.schedules)).toEqual([]);
  });

  it('without hard links: marker first (an empty file), then the task by way of tmp/; the memo says so once', () => {
    const told: string[] = [];
    const links = new LinkSupport((why) => told.push(why));
    links.fallBack('no links here');
    links.fallBack('twice');
    expect(told).toEqual(['no links here']);
    expect(() => enqueueOnce(layout, request({ links, afterStep: crashAfter('linked') }))).toThrow(Crash);
    // The documented window: the marker is there, the task is not.
    expect(lstatSync(join(layout.flows, `${id}.next`)).size).toBe(0);
    expect(incoming()).toEqual([]);
    expect(enqueueOnce(layout, request({ links }))).toBe('exists');
    rmSync(join(layout.flows, `${id}.next`));
    expect(enqueueOnce(layout, request({ links }))).toBe('enqueued');
    expect(incoming()).toEqual([fileName]);
    expect(readFileSync(join(layout.incoming, fileName))).toEqual(bytes);
    expect(readdirSync(layout.tmp)).toEqual([]);
  });

  it('stage names carry the task file name; anything else in flows/ is never published', () => {
    expect(stagedFileName(`${STAGE_PREFIX}123-abcd1234-${fileName}`)).toBe(fileName);
    expect(stagedFileName(`${STAGE_PREFIX}123`)).toBeUndefined();
    expect(stagedFileName(`${id}.next`)).toBeUndefined();
    writeFileSync(join(layout.flows, `${STAGE_PREFIX}1-abcd-not-a-task`), 'x');
    linkSync(join(layout.flows, `${STAGE_PREFIX}1-abcd-not-a-task`), join(layout.flows, `${id}.error`));
    expect(finishStagedEnqueues(layout, layout.flows, readdirSync(layout.flows), Date.now() + 60_000)).toEqual([]);
    expect(incoming()).toEqual([]);
  });

  it('prune: only markers whose task has ended (one link) and that the rule calls old', () => {
    expect(enqueueOnce(layout, request())).toBe('enqueued');
    writeFileSync(join(layout.flows, 'old.error'), '');
    writeFileSync(join(layout.flows, 'young.error'), '');
    const old = new Date(Date.now() - 2 * 86_400_000);
    utimesSync(join(layout.flows, 'old.error'), old, old);
    utimesSync(join(layout.flows, `${id}.next`), old, old);
    const isOld = (_: string, mtimeMs: number) => mtimeMs < Date.now() - 86_400_000;
    // The .next marker is old but its task is still in incoming/ (two links): kept.
    expect(pruneEndedMarkers(layout.flows, readdirSync(layout.flows), isOld)).toBe(1);
    expect(readdirSync(layout.flows).sort()).toEqual([`${id}.next`, 'young.error']);
    rmSync(join(layout.incoming, fileName));
    expect(pruneEndedMarkers(layout.flows, readdirSync(layout.flows), isOld)).toBe(1);
    expect(readdirSync(layout.flows)).toEqual(['young.error']);
  });
});

describe('derivedId', () => {
  it('is deterministic: the source id\'s 13 digits of time, then 16 hex of SHA-256(id + "\\n" + what)', () => {
    expect(derivedId(id, 'next')).toBe(derivedId(id, 'next'));
    expect(derivedId(id, 'next')).not.toBe(derivedId(id, 'error'));
    expect(derivedId(id, 'next')).toMatch(TASK_ID_PATTERN);
    expect(derivedId(id, 'next').slice(0, 13)).toBe(id.slice(0, 13));
    // The rule as SPOOL-FORMAT.md gives it, for other languages: sha256("1796000000000" + "0123456789abcdef" + "\n" + "next").
    expect(derivedId(id, 'next')).toBe('1796000000000' + '94c7036af755170e');
    expect(derivedId(derivedId(id, 'next'), 'next')).toMatch(TASK_ID_PATTERN);
  });
  it('refuses what is not a task id', () => {
    expect(() => derivedId('x', 'next')).toThrow(InvalidOptionError);
  });
});

describe('toStep', () => {
  const spooler = Spooler.open(mkdtempSync(join(tmpdir(), 'steps-')));
  const resize = spooler.task(async function resize(_v: unknown, size: number) {
    return size;
  }, { retries: 2, priority: 10, keepResult: '1h' });
  it('a request: its name, arguments and the options a later enqueue takes', () => {
    expect(toStep(resize.request(null, 64))).toEqual({ name: 'resize', args: [null, 64], priority: 10, retry: { limit: 2 }, keepResult: 3_600_000 });
    expect(toStep({ name: 'notify', args: ['a', undefined], options: { postpone: '2s', timeout: '1m', meta: { k: 1 }, encoding: 'json', backoff: 'constant' } })).toEqual({
      name: 'notify',
      args: ['a'],
      delay: 2000,
      timeout: 60_000,
      meta: { k: 1 },
      encoding: 'json',
      retry: { limit: 3, backoff: { kind: 'constant', delay: 1000 } },
    });
  });
  it('a task function: its name and its own options, no arguments', () => {
    expect(toStep(resize)).toEqual({ name: 'resize', priority: 10, retry: { limit: 2 }, keepResult: 3_600_000 });
  });
  it('refuses what cannot be a step', () => {
    expect(() => toStep({ name: '9x' })).toThrow(InvalidOptionError);
    expect(() => toStep({ name: 'a', options: { postpone: new Date() } })).toThrow(/not a Date/);
    expect(() => toStep({ name: 'a', options: { unique: 'k' } })).toThrow(/unique key/);
    expect(() => toStep({ name: 'a', options: { priority: 100 } })).toThrow(InvalidOptionError);
    expect(() => toStep({ name: 'a', args: [() => 1] })).toThrow(UnencodableValueError);
    expect(() => toStep(42 as never)).toThrow(/must be a task/);
  });
});
