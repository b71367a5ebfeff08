import { spawnSync } from 'node:child_process';

/**
 * Reporting for the producer and listing benchmarks: median and range of
 * repeated runs, the ratio to a target, a readable table, and the same rows
 * collected for `--json`.
 */

export interface Summary {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, runs: values };
}

/** A target: `atLeast` for rates (higher is better), `atMost` for times and memory. */
export interface Target {
  atLeast?: number;
  atMost?: number;
}

export interface Row {
  measure: string;
  unit: string;
  summary: Summary;
  target?: Target;
  /** Digits after the point for the figures (default 0). */
  digits?: number;
}

export interface RowJson {
  measure: string;
  unit: string;
  median: number;
  min: number;
  max: number;
  runs: number[];
  target: string | null;
  /** Median over target for "at least" targets, target over median for "at most": ≥ 1 means met. */
  ratio: number | null;
  met: boolean | null;
}

const collected: Array<{ benchmark: string; title: string; rows: RowJson[]; notes: string[] }> = [];

export function collectedResults(): typeof collected {
  return collected;
}

function targetText(t: Target | undefined, unit: string, digits = 0): string {
  if (t?.atLeast !== undefined) return `≥ ${fmt(t.atLeast, digits)} ${unit}`;
  if (t?.atMost !== undefined) return `≤ ${fmt(t.atMost, digits)} ${unit}`;
  return '';
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function toJsonRow(r: Row): RowJson {
  const s = r.summary;
  let ratio: number | null = null;
  let met: boolean | null = null;
  if (r.target?.atLeast !== undefined) {
    ratio = s.median / r.target.atLeast;
    met = ratio >= 1;
  } else if (r.target?.atMost !== undefined) {
    ratio = r.target.atMost / s.median;
    met = ratio >= 1;
  }
  return {
    measure: r.measure,
    unit: r.unit,
    median: s.median,
    min: s.min,
    max: s.max,
    runs: s.runs,
    target: r.target ? targetText(r.target, r.unit, r.digits) : null,
    ratio,
    met,
  };
}

/**
 * Prints a table: measure, median, min–max, unit, target, margin (how far the
 * median is on the good side of the target: ×1.50 = 50 % to spare), verdict.
 */
export function printRows(benchmark: string, title: string, rows: Row[], notes: string[] = []): void {
  const json = rows.map(toJsonRow);
  collected.push({ benchmark, title, rows: json, notes });
  const header = ['measure', 'median', 'min–max', 'unit', 'target', 'margin', 'verdict'];
  const lines = rows.map((r, i) => {
    const j = json[i]!;
    const d = r.digits ?? 0;
    return [
      r.measure,
      fmt(j.median, d),
      `${fmt(j.min, d)}–${fmt(j.max, d)}`,
      r.unit,
      j.target ?? '',
      j.ratio === null ? '' : `×${j.ratio.toFixed(2)}`,
      j.met === null ? '' : j.met ? 'met' : 'MISSED',
    ];
  });
  const all = [header, ...lines];
  const widths = header.map((_, c) => Math.max(...all.map((l) => l[c]!.length)));
  const right = new Set([1, 2, 5]);
  const out = [`\n${title}`];
  for (const l of all) out.push(l.map((cell, c) => (right.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd());
  for (const n of notes) out.push(`  ${n}`);
  console.log(out.join('\n'));
}

/** Progress lines go to stderr so that `--json` leaves stdout clean. */
export function progress(text: string): void {
  process.stderr.write(text + '\n');
}

/**
 * Marks `dir` with ext4's "top of directory hierarchy" flag (chattr +T), so that
 * ext4 places each directory made in it like a top-level one: in a block group
 * with free inodes and few directories, away from the groups near the temp
 * directory. On ext4 without a journal (this machine's), creating a file in a
 * group where many files were deleted in the last minutes is several times
 * slower: the inode allocator steps over every recently freed inode. Shared
 * machines that run benchmarks delete a lot; --topdir measures away from that.
 * Returns whether the flag took.
 */
export function markTopDir(dir: string): boolean {
  const r = spawnSync('chattr', ['+T', dir], { encoding: 'utf8' });
  if (r.status !== 0) progress(`chattr +T ${dir} failed (${(r.stderr || r.error?.message || '').trim()}); measuring without it`);
  return r.status === 0;
}

const cleanups: Array<() => void> = [];

/**
 * Defers deleting a benchmark's temp directory to the end of the whole run
 * (bench/run.ts calls cleanUpDeferred). On ext4 without a journal, creating
 * files for a minute or more after deleting many is several times slower (see
 * markTopDir), so a benchmark that deleted its 600,000 files at once would slow
 * down the one after it.
 */
export function cleanUpLater(cleanup: () => void): void {
  cleanups.push(cleanup);
}

export function cleanUpDeferred(): void {
  for (const cleanup of cleanups.splice(0)) cleanup();
}
