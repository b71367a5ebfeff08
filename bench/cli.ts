/**
 * cli: the real `spool` binary's bulk commands on a large spool (issue 14).
 *
 * A spool of `tasks` (default 100,000) JSON tasks is written directly (names
 * and bodies as a producer writes them), half in incoming/ and half in
 * pending/, plus 1,000 dead letters with failure records. Then, each run on a
 * fresh copy of the ids it removes (the removed tasks are written back between
 * runs), timed from spawn to exit with Node's start-up included:
 *
 *   ls --limit 5          stops early: names only, five files opened
 *   ls --no-check         the whole listing by name, for comparison
 *   rm of 10 ids          as arguments
 *   rm of 20,000 ids      on standard input (`spool rm -`), one listing for all
 *   rm --state dead       the purge of every dead letter and its record
 *
 * Before this work rm cost one listing per id (~0.42 s each on 100k: 10 ids
 * 4.7 s, 20,000 ids hours) and `ls --limit 5` the full listing with every
 * body checked (~4 s).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SPOOL, tempDir } from './lib.js';
import { cleanUpLater, printRows, progress, summarize, type Row } from './report.js';

export interface CliBenchOptions {
  tasks?: number;
  runs?: number;
}

interface Task {
  where: string;
  file: string;
  id: string;
}

export async function cliBench(options: CliBenchOptions = {}): Promise<void> {
  const total = options.tasks ?? 100_000;
  const runs = options.runs ?? 3;
  const { dir, cleanup } = tempDir('spoolerd-bench-cli-');
  cleanUpLater(cleanup);
  const root = join(dir, 'spool');
  for (const d of ['tmp', 'incoming', 'pending', 'active', 'dead', 'quarantine', 'archive', 'state', 'locks']) mkdirSync(join(root, d), { recursive: true });
  const now = Date.now();
  const write = (t: Task): void => writeFileSync(join(root, t.where, t.file), `{"version":1,"type":"fcall","args":["${t.id}"]}`);
  const make = (i: number, where: string, name: string): Task => {
    const created = now - 3_600_000 + Math.floor(i / 10);
    const id = `${created}${i.toString(16).padStart(16, '0')}`;
    return { where, id, file: `${String(i % 100).padStart(2, '0')}-${created}-${id}-a${where === 'dead' ? 4 : 0}-${name}.json` };
  };
  progress(`cli: writing ${total.toLocaleString('en')} tasks and 1,000 dead letters…`);
  const tasks: Task[] = [];
  for (let i = 0; i < total; i++) {
    const t = make(i, i % 2 === 0 ? 'incoming' : 'pending', 'job');
    write(t);
    tasks.push(t);
  }
  const deadLetters: Task[] = [];
  for (let i = 0; i < 1000; i++) deadLetters.push(make(total + i, 'dead', 'failing'));
  const bury = (): void => {
    for (const t of deadLetters) {
      write(t);
      writeFileSync(join(root, 'state', `${t.id}.json`), JSON.stringify({ id: t.id, name: 'failing', attempts: 3, at: now, error: { message: 'boom', stack: 'Error: boom' } }));
    }
  };
  bury();

  const time = (args: string[], input?: string): number => {
    const start = performance.now();
    const r = spawnSync(process.execPath, [SPOOL, ...args], { input, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
    const ms = performance.now() - start;
    if (r.status !== 0) throw new Error(`spool ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
    return ms;
  };
  // Every run removes a different slice and then puts it back, so the spool is the same size each time.
  const slice = (n: number, run: number): Task[] => tasks.filter((_, i) => i % Math.floor(total / n) === run % Math.floor(total / n)).slice(0, n);

  const limit5: number[] = [];
  const whole: number[] = [];
  const rm10: number[] = [];
  const rm20k: number[] = [];
  const purge: number[] = [];
  time(['ls', '--dir', root, '--limit', '5']); // warms the page cache
  for (let run = 0; run < runs; run++) {
    progress(`cli: run ${run + 1} of ${runs}`);
    limit5.push(time(['ls', '--dir', root, '--limit', '5']));
    whole.push(time(['ls', '--dir', root, '--no-check']));
    const ten = slice(10, run);
    rm10.push(time(['rm', '--dir', root, '-q', ...ten.map((t) => t.id)]));
    for (const t of ten) write(t);
    const many = slice(20_000, run);
    rm20k.push(time(['rm', '--dir', root, '-q', '-'], many.map((t) => t.id).join('\n')));
    for (const t of many) write(t);
    purge.push(time(['rm', '--dir', root, '-q', '--state', 'dead']));
    bury();
  }
  const rows: Row[] = [
    { measure: `ls --limit 5 (${total.toLocaleString('en')} tasks)`, unit: 'ms', summary: summarize(limit5) },
    { measure: 'ls --no-check (the whole listing by name)', unit: 'ms', summary: summarize(whole) },
    { measure: 'rm of 10 ids', unit: 'ms', summary: summarize(rm10) },
    { measure: 'rm of 20,000 ids on stdin', unit: 'ms', summary: summarize(rm20k) },
    { measure: 'rm --state dead (1,000 dead letters and records)', unit: 'ms', summary: summarize(purge) },
  ];
  printRows('cli', `spool's bulk commands on a spool of ${total.toLocaleString('en')} tasks`, rows, [
    'Each time is one spool process, spawn to exit, Node start-up included.',
  ]);
}
