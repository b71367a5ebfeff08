/** Output helpers: aligned columns for people, stable JSON for programs, times both ways. */
import { writeSync } from 'node:fs';
import { jsonForTerminal, printable } from '../spool/printable.js';

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
  // Text that fits is encoded into one buffer kept for the purpose, not a new one each time.
  writeStdoutBytes(text.length * 3 <= outBuffer.length ? outBuffer.subarray(0, outBuffer.write(text, 0, 'utf8')) : Buffer.from(text, 'utf8'));
}

/** writeStdout for text already encoded. */
export function writeStdoutBytes(bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(1, bytes, offset, bytes.length - offset);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') Atomics.wait(nap, 0, 0, 1);
      else if (code === 'EPIPE') process.exit(0);
      else {
        // A full disk under a redirected stdout is not the spool's: the message must say which file failed.
        (err as NodeJS.ErrnoException).path ??= 'the standard output';
        throw err;
      }
    }
  }
}

/** For writeStdout: room for a chunk of CHUNK_CHARS and then some, in UTF-8 at its widest. */
const outBuffer = Buffer.allocUnsafeSlow(3 * 96 * 1024);

/** Renders rows as left-aligned columns (right-aligned where `right` says), two spaces apart; control characters escaped. */
export function table(header: string[], givenRows: string[][], right: ReadonlySet<number> = new Set()): string {
  const rows = givenRows.map((r) => r.map(printable));
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

/** A JSON array of `count` items, given as JSON text, a chunk at a time; the same text as toJson(array) and a newline. */
export function* jsonArrayChunks(count: number, item: (i: number) => string): Generator<string, void, undefined> {
  let chunk = '[';
  for (let i = 0; i < count; i++) {
    if (i > 0) chunk += ',';
    chunk += item(i);
    if (chunk.length >= CHUNK_CHARS) {
      yield chunk;
      chunk = '';
    }
  }
  yield chunk + ']\n';
}

const DAY_MS = 86_400_000;
let cachedDay = NaN;
let cachedDayText = '';
let cachedMinute = NaN;
let cachedMinuteText = '';
/** "00".."59". */
const TWO_DIGITS = Array.from({ length: 60 }, (_, i) => (i < 10 ? `0${i}` : String(i)));
/** "00Z".."59Z". */
const SECONDS_Z = TWO_DIGITS.map((s) => `${s}Z`);

/** "2026-11-22 08:00:00Z": UTC, to the second, sortable. */
export function formatTime(ms: number): string {
  // Outside 0000–9999 toISOString() has six-digit years; let it handle those.
  if (!Number.isSafeInteger(ms) || ms < -62167219200000 || ms >= 253402300800000) {
    return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
  }
  // A listing prints many times from the same few days, and often from the same minute:
  // the date part is made once per day, the text up to the seconds once per minute.
  const minute = Math.floor(ms / 60_000);
  if (minute !== cachedMinute) {
    const day = Math.floor(ms / DAY_MS);
    if (day !== cachedDay) {
      cachedDay = day;
      cachedDayText = new Date(day * DAY_MS).toISOString().slice(0, 10);
    }
    const minuteOfDay = minute - day * 1440;
    cachedMinute = minute;
    cachedMinuteText = `${cachedDayText} ${TWO_DIGITS[Math.floor(minuteOfDay / 60)]!}:${TWO_DIGITS[minuteOfDay % 60]!}:`;
  }
  return cachedMinuteText + SECONDS_Z[Math.floor((ms - minute * 60_000) / 1000)]!;
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

/**
 * formatRelative and formatSpan for one `now`, remembered: a listing prints
 * the same few hundred texts ("3h ago", "2d") for hundreds of thousands of
 * tasks. Each text is made by those functions the first time it is needed.
 */
export class TimeTexts {
  private readonly now: number;
  private readonly spans: string[] = [];
  private readonly future: string[] = [];
  private readonly past: string[] = [];

  constructor(now: number) {
    this.now = now;
  }

  /** formatSpan(ms). */
  span(ms: number): string {
    const key = spanKey(ms);
    if (key < 0) return formatSpan(ms);
    return (this.spans[key] ??= formatSpan(ms));
  }

  /** formatRelative(ms, now). */
  relative(ms: number): string {
    const delta = ms - this.now;
    const key = Math.abs(delta) < 1000 ? -1 : spanKey(Math.abs(delta));
    if (key < 0) return formatRelative(ms, this.now);
    const texts = delta > 0 ? this.future : this.past;
    return (texts[key] ??= formatRelative(ms, this.now));
  }
}

/**
 * Which text formatSpan(ms) gives, as a small number: the unit and the count
 * of it, for 1 s up to 10,000 days; -1 for spans outside that (not remembered).
 */
function spanKey(ms: number): number {
  if (!(ms >= 1000 && ms < 10_000 * 86_400_000)) return -1;
  if (ms < 60_000) return Math.floor(ms / 1000);
  if (ms < 3_600_000) return 60 + Math.floor(ms / 60_000);
  if (ms < 86_400_000) return 120 + Math.floor(ms / 3_600_000);
  return 144 + Math.floor(ms / 86_400_000);
}

/**
 * JSON for programs: bytes become {"$bytes": base64}, so nothing is lost or
 * mangled; characters a terminal would act on are \u escapes (jsonForTerminal).
 */
export function toJson(value: unknown, indent?: number): string {
  return jsonForTerminal(JSON.stringify(
    value,
    function replacer(this: unknown, key: string, v: unknown) {
      // JSON.stringify has already called Buffer's toJSON; look at the raw property instead.
      const raw = (this as Record<string, unknown>)[key];
      if (raw instanceof Uint8Array) return { $bytes: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') };
      return v;
    },
    indent,
  ));
}
