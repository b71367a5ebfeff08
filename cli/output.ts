/** Output helpers: aligned columns for people, stable JSON for programs, times both ways. */
import { writeSync } from 'node:fs';

/** One shared word to sleep on while a full pipe drains. */
const nap = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes text to standard output before returning, whatever stdout is. Large
 * listings are written in chunks this way: process.stdout.write would queue
 * every chunk a slow reader has not taken yet in memory (tens of MB for a
 * listing of 100,000 tasks). A pipe that Node has made non-blocking answers
 * EAGAIN when full; then this waits a millisecond and tries again. When the
 * reader has gone (`spool ls | head`), the command ends quietly with status 0,
 * as a listing whose reader wants no more has nothing left to do.
 */
export function writeStdout(text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(1, bytes, offset, bytes.length - offset);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') Atomics.wait(nap, 0, 0, 1);
      else if (code === 'EPIPE') process.exit(0);
      else throw err;
    }
  }
}

/** Renders rows as left-aligned columns (right-aligned where `right` says), two spaces apart. */
export function table(header: string[], rows: string[][], right: ReadonlySet<number> = new Set()): string {
  const widths = header.map((h) => h.length);
  for (const r of rows) for (let c = 0; c < r.length; c++) widths[c] = Math.max(widths[c] ?? 0, r[c]!.length);
  const line = (cells: string[]): string =>
    cells
      .map((cell, c) => (right.has(c) ? cell.padStart(widths[c]!) : c === cells.length - 1 ? cell : cell.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  return [header, ...rows].map(line).join('\n') + '\n';
}

/** About 64 KiB of text per write. */
export const CHUNK_CHARS = 64 * 1024;

/** Writes a JSON array of `count` items, given as JSON text, a chunk at a time; the same text as toJson(array). */
export function writeJsonArray(write: (chunk: string) => void, count: number, item: (i: number) => string): void {
  let chunk = '[';
  for (let i = 0; i < count; i++) {
    if (i > 0) chunk += ',';
    chunk += item(i);
    if (chunk.length >= CHUNK_CHARS) {
      write(chunk);
      chunk = '';
    }
  }
  write(chunk + ']\n');
}

const DAY_MS = 86_400_000;
let cachedDay = NaN;
let cachedDayText = '';

/** "2026-11-22 08:00:00Z": UTC, to the second, sortable. */
export function formatTime(ms: number): string {
  const day = Math.floor(ms / DAY_MS);
  // Outside 0000–9999 toISOString() has six-digit years; let it handle those.
  if (!Number.isSafeInteger(ms) || ms < -62167219200000 || ms >= 253402300800000) {
    return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
  }
  // A listing prints many times from the same few days: the date part is made once per day.
  if (day !== cachedDay) {
    cachedDay = day;
    cachedDayText = new Date(day * DAY_MS).toISOString().slice(0, 10);
  }
  const seconds = Math.floor((ms - day * DAY_MS) / 1000);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${cachedDayText} ${h < 10 ? '0' : ''}${h}:${m < 10 ? '0' : ''}${m}:${s < 10 ? '0' : ''}${s}Z`;
}

/** "in 5m", "3s ago", "now". */
export function formatRelative(ms: number, now: number): string {
  const delta = ms - now;
  if (Math.abs(delta) < 1000) return 'now';
  const text = formatSpan(Math.abs(delta));
  return delta > 0 ? `in ${text}` : `${text} ago`;
}

/** A span in its largest whole units: "850ms", "42s", "5m", "3h", "2d". */
export function formatSpan(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${Math.floor(ms / 1000)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m`;
  if (ms < 86_400_000) return `${Math.floor(ms / 3_600_000)}h`;
  return `${Math.floor(ms / 86_400_000)}d`;
}

/** JSON for programs: bytes become {"$bytes": base64}, so nothing is lost or mangled. */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(
    value,
    function replacer(this: unknown, key: string, v: unknown) {
      // JSON.stringify has already called Buffer's toJSON; look at the raw property instead.
      const raw = (this as Record<string, unknown>)[key];
      if (raw instanceof Uint8Array) return { $bytes: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') };
      return v;
    },
    indent,
  );
}
