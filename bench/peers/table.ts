/**
 * One table for the whole run: a line per measure, a column per system, then
 * spoolerd/peer ratios. A ratio above 1 is good for throughput, below 1 for
 * times, latencies and memory; the "better" column says which.
 */
import type { Row } from './workloads.js';

function fmt(v: number | undefined, unit: string): string {
  if (v === undefined) return '—';
  if (!Number.isFinite(v)) return 'n/a';
  if (unit === 'tasks/s' || unit === 'tasks' || unit === 'MB') return Math.round(v).toLocaleString('en-US');
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

export function renderTable(rows: Row[], systems: string[]): string {
  const peers = systems.filter((s) => s !== 'spoolerd');
  const header = ['measure', 'unit', 'better', ...systems, ...peers.map((p) => `spoolerd/${p}`)];
  const lines = rows.map((r) => {
    const ours = r.figures.get('spoolerd')?.value;
    return [
      r.measure,
      r.unit,
      r.better,
      ...systems.map((s) => fmt(r.figures.get(s)?.value, r.unit)),
      ...peers.map((p) => {
        const theirs = (r.ratioAgainst ?? r.figures).get(p)?.value;
        if (ours === undefined || theirs === undefined) return '—';
        const ratio = ours / theirs;
        return Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : 'n/a';
      }),
    ];
  });
  const all = [header, ...lines];
  const widths = header.map((_, c) => Math.max(...all.map((l) => l[c]!.length)));
  const out: string[] = [];
  for (const [i, l] of all.entries()) {
    out.push('| ' + l.map((cell, c) => (c >= 3 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join(' | ') + ' |');
    if (i === 0) out.push('|' + widths.map((w, c) => (c >= 3 ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|') + '|');
  }
  return out.join('\n');
}

/** Which configuration gave each figure, and what else was tried. */
export function renderConfigs(rows: Row[]): string {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const r of rows) {
    for (const [system, f] of r.figures) {
      // One line per workload and system: the first row of a workload carries what was tried.
      if (seen.has(`${r.workload} ${system}`)) continue;
      seen.add(`${r.workload} ${system}`);
      out.push(`- ${r.workload}, ${system}: ${f.config}${f.tried ? ` (tried ${f.tried})` : ''}`);
    }
  }
  return out.join('\n');
}
