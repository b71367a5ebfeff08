/** Output helpers: aligned columns for people, stable JSON for programs, times both ways. */

/** Renders rows as left-aligned columns (right-aligned where `right` says), two spaces apart. */
export function table(header: string[], rows: string[][], right: ReadonlySet<number> = new Set()): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 && !right.has(i) ? c : right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const out = [line(header)];
  for (const r of rows) out.push(line(r));
  return out.join('\n') + '\n';
}

/** "2026-11-22 08:00:00Z": UTC, to the second, sortable. */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
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
