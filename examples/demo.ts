/**
 * The demo's tasks: `spoolerd --demo` (what `npm run demo` runs) enqueues these
 * into ./demo-spool, then serves that spool with the functions of tasks.ts.
 */
import { checksum, greet, remind, spooler } from './tasks.js';

export async function enqueueExamples(): Promise<void> {
  await greet('world');
  await greet.with({ priority: 10 })('priority 10, so this runs before the default 50');
  await checksum('spoolerd', 1000);
  await remind.with({ postpone: '3s' })('this one was postponed by 3 seconds', { loud: true });
  await remind('');
  const many = await spooler.enqueueMany(Array.from({ length: 5 }, (_, i) => greet.request(`bulk #${i + 1}`)));
  process.stderr.write(
    `demo: enqueued ${5 + many.length} tasks into ${spooler.dir}; watch them run below.\n` +
      `demo: in another terminal, try: node dist/cli/spool.js add greet '"you"' --dir ${spooler.dir}\n` +
      'demo: Ctrl-C stops the daemon.\n',
  );
}
