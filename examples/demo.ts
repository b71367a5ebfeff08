/**
 * `npm run demo`: enqueues the example tasks into ./demo-spool and shows the
 * spool with the `spool` command, exactly as a user would run it.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { checksum, greet, remind, spooler } from './tasks.js';

const spoolCli = fileURLToPath(new URL('../cli/spool.js', import.meta.url));

await greet('world');
await greet.with({ priority: 10 })('priority ten, runs before the default 50');
await checksum('spoolerd', 1000);
await remind.with({ postpone: '1m' })('this one is postponed by a minute', { loud: true });
const many = await spooler.enqueueMany(Array.from({ length: 5 }, (_, i) => greet.request(`bulk #${i + 1}`)));
console.log(`enqueued ${4 + many.length} tasks into ${spooler.dir}\n`);

console.log(`$ spool ls --dir ${spooler.dir}`);
spawnSync(process.execPath, [spoolCli, 'ls', '--dir', spooler.dir], { stdio: 'inherit' });
console.log(`\n$ spool stats --dir ${spooler.dir}`);
spawnSync(process.execPath, [spoolCli, 'stats', '--dir', spooler.dir], { stdio: 'inherit' });
