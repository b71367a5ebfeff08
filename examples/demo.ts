/**
 * The demo's tasks: `spoolerd --demo` (what `npm run demo` runs) enqueues these
 * into ./demo-spool, then serves that spool with the functions of tasks.ts.
 * Most are due at once; one waits a few seconds, and a few are scheduled far
 * enough ahead that `spool ls` still shows them while the demo runs.
 */
import { listSpool } from '../spool/listing.js';
import { SpoolLayout } from '../spool/layout.js';
import { checksum, greet, remind, spooler } from './tasks.js';

/** How long the scheduled tasks wait: long enough to be listed, short enough to be seen to run. */
const SCHEDULED = ['30s', '2m', '10m'] as const;

export async function enqueueExamples(say: (line: string) => void): Promise<void> {
  const before = listSpool(new SpoolLayout(spooler.dir), { locations: ['incoming', 'pending'], checkBodies: false }).length;
  if (before > 0) say(`${spooler.dir} already holds ${before} waiting tasks from an earlier run; they run too.`);
  const due = [
    await greet('world'),
    await greet.with({ priority: 10 })('priority 10, so this runs before the default 50'),
    await checksum('spoolerd', 1000),
    await remind(''),
    ...(await spooler.enqueueMany(Array.from({ length: 5 }, (_, i) => greet.request(`bulk #${i + 1}`)))),
  ];
  const soon = await remind.with({ postpone: '3s' })('this one was postponed by 3 seconds', { loud: true });
  const later = [];
  for (const delay of SCHEDULED) later.push(await remind.with({ postpone: delay })(`this one was scheduled ${delay} ahead`));
  say(
    `enqueued ${due.length + 1 + later.length} tasks into ${spooler.dir}: ${due.length} due now, 1 in 3 s, ` +
      `${later.length} scheduled in ${SCHEDULED.join(', ')} (Ctrl-C leaves those in the spool; the next demo runs them).`,
  );
}
