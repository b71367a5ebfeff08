/**
 * The scheduler of one served spool: enqueues each slot of each schedule
 * exactly once, together with every other daemon that serves the same
 * schedules (spool/protocol.ts, "enqueue a slot", makes the once).
 *
 * Per schedule:
 *
 *   idle --start--> catching-up --(missed slots dealt with)--> waiting
 *   waiting --(timer: the next slot is due)--> enqueuing --> waiting
 *   enqueuing --(a slot could not be written: full disk)--> waiting (the slot again in RETRY_MS)
 *   any --stop--> stopped
 *
 * At start the newest marker in schedules/<name>/ is the last slot any daemon
 * took; the slots between it (or the schedule's first appearance) and now
 * passed while no daemon ran it, and catchUp says what becomes of them. After
 * that, every slot up to now is this daemon's to try: a slot reached late
 * because the event loop was busy is still enqueued. A timer that fires over
 * STALL_MS late means this process stalled (SIGSTOP, a VM pause): it starts
 * over as at start, from the markers, so that it never tries a slot whose
 * marker may have been pruned meanwhile.
 *
 * Each slot is checked against control/pause.json first: a paused schedule's
 * slot is taken with an empty marker and not enqueued (and not caught up later).
 */
import { readdirSync } from 'node:fs';
import { encodeWire, toWire } from '../../spool/wire.js';
import { FORMAT_VERSION } from '../../spool/body.js';
import type { SpoolLayout } from '../../spool/layout.js';
import { formatTaskName } from '../../spool/name.js';
import { isSchedulePaused, NOTHING_PAUSED, type PauseState } from '../../spool/pause.js';
import { pruneMarkers, sweepRecordDebris } from '../../spool/protocol.js';
import { enqueueOnce, finishStagedEnqueues, LinkSupport, STAGE_GRACE_MS, takeMarkerSync, type EnqueueOnceStep } from '../../spool/enqueue-once.js';
import { missedSlots, ScheduleSlots, slotMarkerName, slotOfMarker, slotTaskId, type ScheduleSpec } from '../../spool/schedule.js';
import { ensureScheduleDir, listMarkers, markerPathOf, readScheduleRecord, writeScheduleRecord } from '../../spool/schedules.js';
import type { Logger } from '../logger.js';

/** A timer that fires this much after its slot means the process stalled: start over from the markers. */
export const STALL_MS = 60_000;
/** A slot that failed to be written (full disk) is tried again after this. */
const RETRY_MS = 1000;
export { STAGE_GRACE_MS };
/** schedules/ is scanned for stages at most this often. */
const STAGE_SCAN_EVERY_MS = 1000;
/** Markers are pruned at most this often, those of slots over MARKER_KEEP_MS old, never the newest MARKERS_KEPT. */
const PRUNE_EVERY_MS = 60_000;
export const MARKER_KEEP_MS = 3_600_000;
export const MARKERS_KEPT = 10;
/** The longest a timer waits before the slot is looked at again (setTimeout cannot wait over 24.8 days, and the spool clock drifts). */
export const MAX_WAIT_MS = 3_600_000;

export type ScheduleState = 'idle' | 'catching-up' | 'waiting' | 'enqueuing' | 'stopped';
const NEXT: Readonly<Record<ScheduleState, readonly ScheduleState[]>> = {
  idle: ['catching-up', 'stopped'],
  'catching-up': ['waiting', 'stopped'],
  waiting: ['enqueuing', 'catching-up', 'stopped'],
  enqueuing: ['waiting', 'stopped'],
  stopped: [],
};

/** Time and timers, injected so that tests drive them (a fake clock). */
export interface SchedulerClock {
  /** Spool time, for judging (spool/clock.ts: never ahead of the server's). */
  now(): number;
  /** Calls `fn` after `ms` (local time); returns a cancel function. */
  after(ms: number, fn: () => void): () => void;
}

export const REAL_TIMERS = {
  after(ms: number, fn: () => void): () => void {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return () => clearTimeout(t);
  },
};

export interface SchedulerDeps {
  layout: SpoolLayout;
  log: Logger;
  clock: SchedulerClock;
  /** This daemon's owner id (written into schedules/<name>.json). */
  ownerId: () => string;
  /** Throws unless schedules/ and incoming/ are still the folders checked at start-up (folders.ts). */
  check: () => void;
  readPause: () => Promise<PauseState>;
  fsync: boolean;
  /** Tests: called after each step of a slot's enqueue (SPOOLERD_TEST_SLOT_CRASH kills the process there). */
  afterStep?: (step: EnqueueOnceStep, schedule: string, slot: number) => void;
  /** Told when a task was enqueued (the daemon wakes its discovery). */
  enqueued?: (fileName: string) => void;
}

/** One schedule's state in this daemon. */
class ScheduleRun {
  state: ScheduleState = 'idle';
  /** Every slot up to this one has been dealt with here (enqueued, found taken, skipped or given up as missed). */
  lastConsidered = -1;
  cancelTimer: (() => void) | undefined;
  readonly slots: ScheduleSlots;
  /** The task file body, the same for every slot. */
  readonly bytes: Buffer;

  constructor(readonly spec: ScheduleSpec) {
    this.slots = new ScheduleSlots(spec);
    const body = { version: FORMAT_VERSION, type: 'fcall', args: spec.args, ...spec.fields };
    this.bytes = encodeWire(toWire(body, 'msgpack', `schedule ${spec.name}`), 'msgpack');
  }

  go(next: ScheduleState): void {
    if (!NEXT[this.state].includes(next)) throw new Error(`schedule ${this.spec.name}: ${this.state} -> ${next} is not a transition`);
    this.state = next;
  }

  fileNameOf(slot: number): string {
    return formatTaskName({ priority: this.spec.priority, due: slot, id: slotTaskId(this.spec.name, slot), attempts: 0, name: this.spec.task, encoding: 'msgpack' });
  }
}

export class Scheduler {
  private readonly runs: ScheduleRun[];
  /** Whether this spool's filesystem makes and counts hard links (learnt at the first slot that finds out otherwise). */
  private readonly links: LinkSupport;
  private lastStageScan = -Infinity;
  private lastPrune = -Infinity;

  /** Throws (UnencodableValueError) for a schedule whose arguments cannot be stored. */
  constructor(
    private readonly deps: SchedulerDeps,
    schedules: readonly ScheduleSpec[],
  ) {
    this.runs = schedules.map((s) => new ScheduleRun(s));
    this.links = new LinkSupport((why) => this.deps.log.warn(`${why.replace('a marker is now made before its task', 'a slot marker is now made before its task')}`));
  }

  get names(): string[] {
    return this.runs.map((r) => r.spec.name);
  }

  stateOf(name: string): ScheduleState | undefined {
    return this.runs.find((r) => r.spec.name === name)?.state;
  }

  async start(): Promise<void> {
    if (this.runs.length === 0) return;
    this.scanStages();
    for (const run of this.runs) {
      try {
        await this.catchUp(run);
      } catch (err) {
        this.failed(run, err);
      }
    }
    this.deps.log.info('schedules served', { schedules: this.runs.map((r) => r.spec.name) });
  }

  stop(): void {
    for (const run of this.runs) {
      run.cancelTimer?.();
      run.cancelTimer = undefined;
      if (run.state !== 'stopped') run.go('stopped');
    }
  }

  /** From the markers: the slots missed while no daemon ran the schedule, as its catchUp says; then the timer for the next slot. */
  private async catchUp(run: ScheduleRun): Promise<void> {
    run.go('catching-up');
    const { layout } = this.deps;
    const { spec } = run;
    this.deps.check();
    ensureScheduleDir(layout, spec.name);
    const now = this.deps.clock.now();
    const record = readScheduleRecord(layout, spec.name);
    const markers = listMarkers(layout, spec.name);
    const newest = markers.length > 0 ? slotOfMarker(markers[markers.length - 1]!)! : undefined;
    const since = record?.since ?? now;
    const lastTaken = newest ?? since;
    const missed = missedSlots(run.slots, spec, lastTaken, now);
    if (record === undefined || JSON.stringify(record.spec) !== JSON.stringify(spec)) this.writeRecord(run, since, newest);
    const upTo = run.slots.latest(now, 1)[0] ?? now;
    this.deps.log.info('schedule started from its slot markers', { schedule: spec.name, catchUp: spec.catchUp, lastTaken: newest ?? null, now, missed: missed.length });
    if (missed.length > 0) {
      const pause = await this.readPause();
      if ((run.state as ScheduleState) !== 'catching-up') return; // stopped meanwhile
      this.takeSlots(run, missed, pause);
    }
    // Slots missed and not caught up on are given up.
    run.lastConsidered = Math.max(run.lastConsidered, upTo);
    run.go('waiting');
    this.armNext(run);
  }

  private armNext(run: ScheduleRun): void {
    const next = run.slots.next(run.lastConsidered);
    if (next === undefined) {
      this.deps.log.info('the schedule has no more slots', { schedule: run.spec.name });
      return;
    }
    this.arm(run, next - this.deps.clock.now());
  }

  private arm(run: ScheduleRun, ms: number): void {
    run.cancelTimer?.();
    run.cancelTimer = this.deps.clock.after(Math.min(ms, MAX_WAIT_MS), () => {
      this.tick(run).catch((err: unknown) => this.failed(run, err));
    });
  }

  private async tick(run: ScheduleRun): Promise<void> {
    run.cancelTimer = undefined;
    if (run.state !== 'waiting') return;
    const now = this.deps.clock.now();
    const next = run.slots.next(run.lastConsidered);
    if (next === undefined) return;
    if (next > now) return this.arm(run, next - now); // the spool clock moved: not due yet
    if (now - next > STALL_MS) {
      this.deps.log.warn('the scheduler was held up (a stall?); it starts over from the slot markers', { schedule: run.spec.name, lateMs: now - next });
      return this.catchUp(run);
    }
    run.go('enqueuing');
    const due: number[] = [];
    for (let slot: number | undefined = next; slot !== undefined && slot <= now; slot = run.slots.next(slot)) due.push(slot);
    const pause = await this.readPause();
    if ((run.state as ScheduleState) !== 'enqueuing') return; // stopped meanwhile
    this.takeSlots(run, due, pause);
    this.maintain();
    run.go('waiting');
    this.armNext(run);
  }

  /** A tick that threw (a full disk, a folder check): logged, and the schedule tried again in RETRY_MS from the first slot not dealt with. */
  private failed(run: ScheduleRun, err: unknown): void {
    if (run.state === 'stopped') return;
    this.deps.log.error('a slot of a schedule could not be enqueued; it is tried again in a second', { schedule: run.spec.name, err: (err as Error).message });
    if (run.state !== 'waiting') run.go('waiting');
    this.arm(run, RETRY_MS);
  }

  /** Enqueues (or, paused, skips) `slots`, oldest first; advances lastConsidered past each one dealt with. Throws at the first that fails. */
  private takeSlots(run: ScheduleRun, slots: readonly number[], pause: PauseState): void {
    const { layout, log } = this.deps;
    const paused = isSchedulePaused(pause, run.spec.name);
    this.deps.check();
    let last: number | undefined;
    for (const slot of slots) {
      const marker = markerPathOf(layout, run.spec.name, slot);
      if (paused) {
        if (takeMarkerSync(marker)) log.info('skipped a slot of a paused schedule', { schedule: run.spec.name, slot });
      } else {
        const fileName = run.fileNameOf(slot);
        if (this.enqueue(run, markerDirOf(layout, run.spec.name), fileName, slot) === 'enqueued') {
          log.info('enqueued a periodic task', { schedule: run.spec.name, slot, task: run.spec.task, file: fileName });
          this.deps.enqueued?.(fileName);
          last = slot;
        }
      }
      run.lastConsidered = slot;
    }
    if (last !== undefined) this.writeRecord(run, undefined, last);
  }

  private enqueue(run: ScheduleRun, markerDir: string, fileName: string, slot: number): 'enqueued' | 'exists' {
    return enqueueOnce(this.deps.layout, {
      markerDir,
      marker: slotMarkerName(slot),
      stageDir: this.deps.layout.schedules,
      fileName,
      bytes: run.bytes,
      fsync: this.deps.fsync,
      links: this.links,
      afterStep: this.deps.afterStep && ((step: EnqueueOnceStep) => this.deps.afterStep!(step, run.spec.name, slot)),
    });
  }

  private writeRecord(run: ScheduleRun, since: number | undefined, last: number | undefined): void {
    const { layout } = this.deps;
    try {
      const known = readScheduleRecord(layout, run.spec.name);
      const now = this.deps.clock.now();
      writeScheduleRecord(layout, {
        version: 1,
        spec: run.spec,
        since: known?.since ?? since ?? now,
        updated: now,
        by: this.deps.ownerId(),
        ...(last !== undefined ? { last } : known?.last !== undefined ? { last: known.last } : {}),
        next: run.slots.next(Math.max(now, last ?? -1)),
      });
    } catch (err) {
      // Only `spool schedules` reads it, and catch-up before the first slot: the markers are what count.
      this.deps.log.warn('schedules/<name>.json could not be written', { schedule: run.spec.name, err: (err as Error).message });
    }
  }

  /** The stage scan (every STAGE_SCAN_EVERY_MS) and the marker prune (every PRUNE_EVERY_MS). */
  private maintain(): void {
    const t = performance.now();
    if (t - this.lastStageScan >= STAGE_SCAN_EVERY_MS) this.scanStages();
    if (t - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = t;
    const now = this.deps.clock.now();
    for (const run of this.runs) {
      try {
        const pruned = pruneMarkers(markerDirOf(this.deps.layout, run.spec.name), listMarkers(this.deps.layout, run.spec.name), (m) => slotOfMarker(m)!, now, MARKER_KEEP_MS, MARKERS_KEPT);
        if (pruned > 0) this.deps.log.debug('pruned slot markers', { schedule: run.spec.name, count: pruned });
      } catch (err) {
        this.deps.log.warn('slot markers could not be pruned', { schedule: run.spec.name, err: (err as Error).message });
      }
    }
  }

  /** Publishes the slot tasks of enqueuers that died between link and rename; deletes stage and record debris. */
  private scanStages(): void {
    this.lastStageScan = performance.now();
    try {
      this.deps.check();
      const names = readdirSync(this.deps.layout.schedules);
      const now = this.deps.clock.now();
      for (const fileName of finishStagedEnqueues(this.deps.layout, this.deps.layout.schedules, names, now, STAGE_GRACE_MS)) {
        this.deps.log.warn('published a periodic task whose enqueuer died after taking its slot', { file: fileName });
        this.deps.enqueued?.(fileName);
      }
      sweepRecordDebris(this.deps.layout.schedules, names, now);
    } catch (err) {
      this.deps.log.warn('schedules/ could not be scanned for unfinished enqueues', { err: (err as Error).message });
    }
  }

  private async readPause(): Promise<PauseState> {
    try {
      return await this.deps.readPause();
    } catch (err) {
      // A bad pause file pauses nothing new, and says so (spool resume rewrites it).
      this.deps.log.error('control/pause.json cannot be read; schedules are treated as not paused', { err: (err as Error).message });
      return NOTHING_PAUSED;
    }
  }
}

const markerDirOf = (layout: SpoolLayout, name: string): string => `${layout.schedules}/${name}`;

/**
 * Tests only: with SPOOLERD_TEST_SLOT_CRASH=staged|linked|published, the daemon
 * kills itself (SIGKILL) right after that step of the first slot enqueue it
 * reaches it in, after logging which slot. A real kill -9 at a chosen instant.
 */
export function slotCrashHookFromEnv(log: Logger, env: NodeJS.ProcessEnv = process.env): SchedulerDeps['afterStep'] {
  const at = env.SPOOLERD_TEST_SLOT_CRASH;
  if (at === undefined || at === '') return undefined;
  return (step, schedule, slot) => {
    if (step !== at) return;
    log.warn('test: killing this daemon after a step of a slot enqueue', { step, schedule, slot });
    process.kill(process.pid, 'SIGKILL');
  };
}
