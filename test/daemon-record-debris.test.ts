/**
 * Records (failure records in state/, reasons in quarantine/) are staged as
 * `.record-*` beside their target, out of the producers' tmp/. A daemon killed
 * between the write and the rename leaves one behind; the next daemon sweeps
 * those older than an hour, and never a fresh one (another daemon may be
 * writing it), nor anything that is not a staged record.
 */
import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { startServing, waitFor } from './helpers/daemon.js';
import { useDaemonSpool } from './helpers/daemon-spool.js';

let root: string;
useDaemonSpool('spoolerd-debris-', { bind: (s) => ({ root } = s) });

it('sweeps staged records older than an hour from state/ and quarantine/, and leaves fresh ones and other files', async () => {
  const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
  const files: Record<string, { path: string; swept: boolean }> = {};
  for (const sub of ['state', 'quarantine']) {
    mkdirSync(join(root, sub), { recursive: true, mode: 0o700 });
    const old = join(root, sub, '.record-1234-deadbeef');
    const fresh = join(root, sub, '.record-1234-0badf00d');
    const other = join(root, sub, 'old-but-not-a-record.json');
    for (const p of [old, fresh, other]) writeFileSync(p, '{"partial":');
    utimesSync(old, twoHoursAgo, twoHoursAgo);
    utimesSync(other, twoHoursAgo, twoHoursAgo);
    Object.assign(files, { [`${sub} old`]: { path: old, swept: true }, [`${sub} fresh`]: { path: fresh, swept: false }, [`${sub} other`]: { path: other, swept: false } });
  }
  const daemon = await startServing({ dir: root, imports: ['basic'], args: ['--scan-interval', '200ms'] });
  // Both old records gone proves the sweep ran over both folders; the rest were seen by that same pass.
  await waitFor(() => !existsSync(files['state old']!.path) && !existsSync(files['quarantine old']!.path), {
    what: 'the old staged records swept',
    explain: () => daemon.describe(),
  });
  for (const [what, f] of Object.entries(files)) expect(existsSync(f.path), what).toBe(!f.swept);
  expect(daemon.logs.filter((l) => l.level === 'error')).toEqual([]);
});
