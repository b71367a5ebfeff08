/**
 * `spool top`: a live view of one or more spools in the terminal, redrawn in
 * place every second on the alternate screen, which is left (and the cursor
 * shown again) on q, Ctrl-C, SIGINT, SIGTERM or SIGHUP, so the shell gets its
 * screen back as it was. With --once, or when stdout is not a terminal, one
 * frame of plain text and no escape sequences.
 */
import { Command } from 'commander';
import { printable } from '../../spool/printable.js';
import { CliError, EXIT } from '../exit-codes.js';
import { SpoolMonitor, type SpoolSnapshot } from '../monitor/spool-monitor.js';
import { SCAN_STATES } from '../monitor/spool-scan.js';
import { spoolsFrom, withDirsOption, type DirsOption } from '../monitor/spools-option.js';
import { writeStdout } from '../output.js';

const ENTER_SCREEN = '\x1b[?1049h\x1b[?25l'; // alternate screen buffer, cursor hidden
const LEAVE_SCREEN = '\x1b[?25h\x1b[?1049l'; // cursor shown, main screen back
const HOME = '\x1b[H';
const CLEAR_LINE_END = '\x1b[K';
const CLEAR_BELOW = '\x1b[J';

export function topCommand(): Command {
  return withDirsOption(new Command('top'))
    .alias('watch')
    .description('watch spools live: counts by state, throughput, running tasks (q or Ctrl-C quits)')
    .option('--once', 'print one frame as plain text and exit (also what happens when stdout is not a terminal)')
    .option('-n, --interval <ms>', 'time between refreshes', '1000')
    .action(async (options: DirsOption & { once?: boolean; interval: string }) => {
      const interval = Number(options.interval);
      if (!Number.isSafeInteger(interval) || interval < 100) throw new CliError('--interval takes a whole number of milliseconds, at least 100', EXIT.USAGE);
      const monitors = spoolsFrom(options).map((layout) => new SpoolMonitor(layout));
      if (options.once || !process.stdout.isTTY) {
        const now = Date.now();
        writeStdout(renderFrame(monitors.map((m) => m.snapshot(now)), now).join('\n') + '\n');
        return;
      }
      await watch(monitors, interval);
    });
}

async function watch(monitors: SpoolMonitor[], interval: number): Promise<void> {
  const out = process.stdout;
  const input = process.stdin.isTTY ? process.stdin : undefined;
  let timer: NodeJS.Timeout | undefined;
  let restored = false;
  let finish: () => void = () => {};
  const finished = new Promise<void>((done) => (finish = done));

  const restore = (): void => {
    if (restored) return;
    restored = true;
    if (timer !== undefined) clearTimeout(timer);
    if (input !== undefined) {
      input.setRawMode(false);
      input.pause();
    }
    out.write(LEAVE_SCREEN);
  };
  const quit = (): void => {
    restore();
    finish();
  };
  // An unexpected error still leaves the terminal as it was found.
  process.once('exit', restore);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, quit);
  if (input !== undefined) {
    input.setRawMode(true);
    input.setEncoding('utf8');
    // In raw mode Ctrl-C is a byte, not a signal.
    input.on('data', (key: string) => {
      if (key === 'q' || key === 'Q' || key === '\x03' || key === '\x04') quit();
    });
    input.resume();
  }
  out.write(ENTER_SCREEN);

  const draw = (): void => {
    if (restored) return;
    const now = Date.now();
    const lines = renderFrame(monitors.map((m) => m.snapshot(now)), now, true);
    // A terminal that tells no size (a pty nobody sized) says 0.
    const rows = out.rows > 0 ? out.rows : 24;
    const columns = out.columns > 0 ? out.columns : 80;
    const shown = lines.slice(0, rows).map((l) => fit(l, columns) + CLEAR_LINE_END);
    out.write(HOME + shown.join('\r\n') + CLEAR_BELOW);
  };
  out.on('resize', draw);
  const loop = (): void => {
    try {
      draw();
    } catch (err) {
      restore();
      throw err;
    }
    timer = setTimeout(loop, interval);
  };
  loop();
  await finished;
  out.off('resize', draw);
}

/** A line cut to the terminal's width (lines are printable(): one column per character, bar wide ones). */
function fit(line: string, columns: number): string {
  return line.length <= columns ? line : line.slice(0, Math.max(columns - 1, 0)) + '…';
}

/**
 * One frame: a block per spool. Every text from the spool (its path, owners,
 * hosts, task names and ids from status files) goes through printable().
 */
export function renderFrame(snapshots: SpoolSnapshot[], now: number, live = false): string[] {
  const lines = [`spool top  ${new Date(now).toISOString().replace('T', ' ').slice(0, 19)}Z${live ? '  (q to quit)' : ''}`];
  for (const s of snapshots) {
    lines.push('', printable(s.dir));
    lines.push('  ' + SCAN_STATES.map((state) => `${state} ${s.counts[state]}`).join('  '));
    const rate =
      s.rate === null
        ? live
          ? 'measuring…'
          : 'needs two samples (run spool top without --once)'
        : `${formatRate(s.rate.rate)} tasks/s${s.rate.source === 'counts' ? ' (estimated from counts: no daemon status files)' : ''}`;
    lines.push(`  throughput ${rate}`);
    const live_ = s.daemons.filter((d) => !d.stale);
    const stale = s.daemons.length - live_.length;
    if (s.daemons.length === 0) {
      lines.push('  daemons: no status files (state/daemon-*.json)');
    } else {
      lines.push(`  daemons: ${live_.length} serving${stale > 0 ? `, ${stale} stale` : ''}`);
      for (const d of live_) {
        lines.push(`    ${printable(d.host)} pid ${d.pid} ${printable(d.owner)}  slots ${d.concurrency}  processed ${d.totals.processed}  dead ${d.totals.dead}  up ${duration(now - d.startedAt)}`);
      }
    }
    if (s.running.length > 0) {
      lines.push(`  RUNNING (${s.running.length})`);
      const rows = s.running.map((r) => [printable(r.id), printable(r.name), String(r.attempt), duration(now - r.startedAt), printable(r.host)]);
      const header = ['ID', 'TASK', 'ATTEMPT', 'FOR', 'HOST'];
      const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
      for (const r of [header, ...rows]) lines.push('    ' + r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd());
    }
  }
  return lines;
}

function formatRate(r: number): string {
  return r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2);
}

function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
}
