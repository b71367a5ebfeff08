/**
 * The setup every daemon test file shares: a fresh temp directory per test
 * holding the spool (<dir>/spool) and the fixtures' record file
 * (<dir>/records.jsonl); after each test every daemon still running is
 * SIGKILLed and waited for, then the directory is removed.
 *
 *   let dir: string, root: string, records: string;
 *   const testSpool = useDaemonSpool('spoolerd-runs-', { bind: (s) => ({ dir, root, records } = s) });
 *   ...
 *   const daemon = await testSpool.serve({ imports: ['basic'], args: ['--concurrency', '1'] });
 *
 * The paths change with each test, so the handle reads them through getters;
 * `bind` hands them to a file's own variables before each test instead, so its
 * tests read as before. Call it at the top level of a file (or in a describe),
 * like beforeEach itself.
 *
 * A test that must show that something did NOT happen waits for an event that
 * proves the daemon got past the point where it would have: waitForStatus (a
 * status file written after now), runMarker (a task due later has run), or a
 * log line (DaemonProcess.waitForLog). Never a fixed sleep: on a slow machine
 * a sleep ends before the daemon gets there, and the test passes vacuously.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { Spooler, type TaskHandle } from '../../runtime/index.js';
import { STATUS_FILE_PREFIX, type DaemonStatusRecord } from '../../spool/status-file.js';
import { tempDir } from './cli.js';
import { describeSpool, killLeftoverDaemons, readRecords, startDaemon, startServing, waitFor, type DaemonProcess, type DaemonStartOptions } from './daemon.js';

/** One test's paths. */
export interface DaemonSpoolPaths {
  /** The test's own temp directory: the spool, the record file, and anything else the test makes (gates, markers). */
  dir: string;
  /** <dir>/spool, the spool the daemons serve (created by the first daemon's --create, or by `open: true`). */
  root: string;
  /** <dir>/records.jsonl, $SPOOLERD_TEST_RECORDS of the daemons this fixture starts (test/fixtures/tasks/_record.mjs). */
  records: string;
}

export interface DaemonSpoolOptions {
  /** Give the current test's paths to the file's own variables, before each test. */
  bind?: (paths: DaemonSpoolPaths) => void;
  /** Create the spool's folders before each test (Spooler.open), for tests that drop files before any daemon runs. */
  open?: boolean;
  /** Runs after the test's daemons are gone and before its directory is removed (e.g. unmount what the test mounted there). */
  afterDaemons?: () => void | Promise<void>;
}

export interface DaemonSpool extends DaemonSpoolPaths {
  /** Spawns spoolerd on this spool with this test's record file (both overridable); does not wait. */
  start(options?: DaemonStartOptions): DaemonProcess;
  /** start(), then waits until it serves each of its spools. */
  serve(options?: DaemonStartOptions): Promise<DaemonProcess>;
  /**
   * Waits for a status file the daemon writes from now on (not one written
   * before the call) for which `match` holds, and returns it. The file is
   * rewritten about once a second, so a match proves the daemon's main loop
   * ran after the call: the event to wait for where a test would otherwise
   * sleep.
   */
  waitForStatus(daemon: DaemonProcess, match: (status: DaemonStatusRecord) => boolean, options?: { timeoutMs?: number; what?: string }): Promise<DaemonStatusRecord>;
  /**
   * Enqueues a marker task due `afterMs` from now at the lowest priority, and
   * waits until it has run: the fixture `done_explicitly` (the daemon must
   * import 'basic'), which records under its own name, so tests that count
   * their `echo` runs are not disturbed. Any task due before it runs before
   * it: once it has run, "no further run came" is an assertion about a
   * daemon that got past that time, not a hope that it did within a sleep.
   */
  runMarker(daemon: DaemonProcess, afterMs: number, options?: { timeoutMs?: number }): Promise<TaskHandle>;
}

/** Registers this file's beforeEach/afterEach for a per-test spool; see the header. */
export function useDaemonSpool(prefix: string, options: DaemonSpoolOptions = {}): DaemonSpool {
  let current: (DaemonSpoolPaths & { cleanup: () => void }) | undefined;
  const paths = (): DaemonSpoolPaths => {
    if (!current) throw new Error('useDaemonSpool: its paths exist only inside a test (from its beforeEach to its afterEach)');
    return current;
  };

  beforeEach(() => {
    const { dir, cleanup } = tempDir(prefix);
    current = { dir, root: join(dir, 'spool'), records: join(dir, 'records.jsonl'), cleanup };
    if (options.open) Spooler.open(current.root);
    options.bind?.({ dir: current.dir, root: current.root, records: current.records });
  });
  afterEach(async () => {
    const test = current;
    current = undefined;
    await killLeftoverDaemons();
    try {
      await options.afterDaemons?.();
    } finally {
      test?.cleanup();
    }
  });

  const withDefaults = (o: DaemonStartOptions): DaemonStartOptions => ({ dir: paths().root, records: paths().records, ...o });

  const handle: DaemonSpool = {
    get dir() {
      return paths().dir;
    },
    get root() {
      return paths().root;
    },
    get records() {
      return paths().records;
    },
    start: (o = {}) => startDaemon(withDefaults(o)),
    serve: (o = {}) => startServing(withDefaults(o)),
    waitForStatus: (daemon, match, o) => waitForDaemonStatus(paths().root, daemon, match, o),
    runMarker: async (daemon, afterMs, o = {}) => {
      const label = `marker-${Date.now()}-${Math.random().toString(16).slice(2, 8)}`;
      const h = await Spooler.open(paths().root).enqueue({ name: 'done_explicitly', args: [label], options: { priority: 99, postpone: afterMs } });
      await waitFor(() => readRecords(paths().records).some((r) => r.task === 'done_explicitly' && (r.args as unknown[])[0] === label), {
        timeoutMs: o.timeoutMs ?? 20_000,
        what: `the marker task due in ${afterMs} ms to run`,
        explain: () => `${describeSpool(paths().root)}\n${daemon.describe(20)}`,
      });
      return h;
    },
  };
  return handle;
}

/** The daemon's status file on spool `root` (state/daemon-<owner>.json) as last written, or undefined while there is none. */
export function readDaemonStatus(root: string, daemon: DaemonProcess): DaemonStatusRecord | undefined {
  return readStatusFile(root, daemon)?.status;
}

/** The status file with the time its content was written (its mtime, set by the kernel: true even for a daemon under a skewed clock). */
function readStatusFile(root: string, daemon: DaemonProcess): { status: DaemonStatusRecord; writtenAt: number } | undefined {
  const path = join(root, 'state', `${STATUS_FILE_PREFIX}${daemon.owner}.json`);
  try {
    const writtenAt = statSync(path).mtimeMs;
    return { status: JSON.parse(readFileSync(path, 'utf8')) as DaemonStatusRecord, writtenAt };
  } catch {
    return undefined; // not written yet, or replaced between the stat and the read
  }
}

/** DaemonSpool.waitForStatus for a spool the fixture did not make (the multi-host rig's). */
export function waitForDaemonStatus(
  root: string,
  daemon: DaemonProcess,
  match: (status: DaemonStatusRecord) => boolean,
  options: { timeoutMs?: number; what?: string } = {},
): Promise<DaemonStatusRecord> {
  // Written after this instant: judged by the file's mtime, not its updatedAt (the writer's clock, which a test may skew).
  // The kernel stamps files from a clock a few ms behind Date.now(), so a write can only look older than it is.
  const since = Date.now();
  const what = options.what ?? `a status file matching ${match.toString()}`;
  return waitFor(
    () => {
      if (daemon.exit) throw new Error(`the daemon exited before ${what}\n${daemon.describe(20)}`);
      const file = readStatusFile(root, daemon);
      return file !== undefined && file.writtenAt > since && match(file.status) && file.status;
    },
    { timeoutMs: options.timeoutMs ?? 20_000, what, explain: () => `last status: ${JSON.stringify(readDaemonStatus(root, daemon))}\n${daemon.describe(20)}` },
  );
}
