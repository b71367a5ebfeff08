/**
 * Unique keys between hosts (SPOOL-FORMAT.md, "Unique keys"): two network
 * namespaces, each mounting one exported spool with sshfs (bench/host-rig.ts),
 * each running a producer process over its own mount, both enqueueing the same
 * keys at once: one task per key, and both producers get its id.
 *
 * Needs root, /dev/fuse and network namespaces; skipped with a printed reason
 * only where the machine cannot have them (CI runs as root with sshfs).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTaskName } from '../spool/name.js';
import { ROOT } from './helpers/cli.js';
import { ls } from './helpers/daemon.js';
import { HostRig, hostRigImpossible, hostSpool, serverSpool, useHostRig, type RigHost } from './helpers/hosts.js';
import { Spooler } from '../runtime/index.js';

const impossible = hostRigImpossible();
if (impossible) console.warn(`test/multihost-unique.test.ts skipped: ${impossible}`);

const PRODUCER = join(ROOT, 'test/fixtures/unique-producer.mjs');

function produceOn(host: RigHost, prefix: string, count: number): Promise<Array<{ key: string; id: string; existing: boolean }>> {
  return new Promise((done, fail) => {
    const [cmd, ...args] = [...host.wrap, process.execPath, PRODUCER, hostSpool(host), prefix, String(count)];
    const child = spawn(cmd!, args, { env: { ...process.env, SPOOL_DIR: '' } });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? done(out.split('\n').filter(Boolean).map((l) => JSON.parse(l))) : fail(new Error(`producer on ${host.name} exited ${code}: ${err}`))));
  });
}

describe.skipIf(impossible !== undefined)('two hosts sharing one spool over sshfs', () => {
  let rig!: HostRig;
  useHostRig(2, (created) => (rig = created));

  it('producers on two hosts enqueueing the same 100 keys at once add one task per key', { timeout: 120_000 }, async () => {
    Spooler.open(serverSpool(rig));
    const [a, b] = await Promise.all([produceOn(rig.hosts[0]!, 'k', 100), produceOn(rig.hosts[1]!, 'k', 100)]);
    const root = serverSpool(rig);
    const files = [...ls(join(root, 'incoming')), ...ls(join(root, 'pending'))].filter((f) => parseTaskName(f)?.name === 'echo');
    expect(files.length).toBe(100);
    const ids = new Set(files.map((f) => parseTaskName(f)!.id));
    for (let i = 0; i < 100; i++) {
      expect(a[i]!.id).toBe(b[i]!.id);
      expect(ids.has(a[i]!.id)).toBe(true);
      expect([a[i]!.existing, b[i]!.existing].sort()).toEqual([false, true]);
    }
    expect(ls(join(root, 'unique')).length).toBe(100);
  });
});
