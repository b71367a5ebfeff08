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

/** Runs the Python kit on `host`: keys <prefix>-0 … <prefix>-(count-1), then one task postponed 2 s. */
function pythonProduceOn(host: RigHost, prefix: string, count: number): Promise<Array<{ key: string; id: string; existing: boolean }>> {
  const script = [
    'import json, sys',
    'from spoolerd_kit import Spool',
    'spool, prefix, count = Spool(sys.argv[1]), sys.argv[2], int(sys.argv[3])',
    'for i in range(count):',
    '    h = spool.enqueue("echo", f"{prefix}-{i}", unique=f"{prefix}-{i}", encoding="json")',
    '    print(json.dumps({"key": f"{prefix}-{i}", "id": h.id, "existing": h.existing}))',
    'spool.enqueue("echo", "later", postpone=2, encoding="json")',
  ].join('\n');
  return new Promise((done, fail) => {
    const [cmd, ...args] = [...host.wrap, '/usr/bin/python3', '-c', script, hostSpool(host), prefix, String(count)];
    const child = spawn(cmd!, args, { env: { ...process.env, PYTHONPATH: join(ROOT, 'kits/python'), PYTHONDONTWRITEBYTECODE: '1' } });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? done(out.split('\n').filter(Boolean).map((l) => JSON.parse(l))) : fail(new Error(`python producer on ${host.name} exited ${code}: ${err}`))));
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

  // The Python kit (kits/python) over sshfs: keys taken by link() from two hosts at once (a held key fails with
  // EEXIST, or EPERM when the SFTP server answers: the kit's unit tests fake that one), and mtimes in whole
  // seconds, so the kit's spool clock must add a second to a postponed task's due time.
  it('Python kit producers on two hosts: one task per key; spool-clock times from whole-second mtimes', { timeout: 120_000 }, async () => {
    Spooler.open(serverSpool(rig));
    const [a, b] = await Promise.all([pythonProduceOn(rig.hosts[0]!, 'py', 30), pythonProduceOn(rig.hosts[1]!, 'py', 30)]);
    const root = serverSpool(rig);
    const files = [...ls(join(root, 'incoming')), ...ls(join(root, 'pending'))].map((f) => parseTaskName(f)!);
    const keyed = files.filter((f) => a.some((r) => r.id === f.id));
    expect(keyed.length).toBe(30);
    for (let i = 0; i < 30; i++) {
      expect(a[i]!.id).toBe(b[i]!.id);
      expect([a[i]!.existing, b[i]!.existing].sort()).toEqual([false, true]);
    }
    expect(ls(join(root, 'unique')).length).toBe(30);
    expect(ls(join(root, 'tmp'))).toEqual([]);
    const postponed = files.filter((f) => f.due > Number(f.id.slice(0, 13)));
    expect(postponed.length).toBe(2);
    for (const f of postponed) {
      const created = Number(f.id.slice(0, 13));
      expect(created % 1000, 'the time of a whole-second mtime').toBe(0);
      expect(f.due - created, 'the delay plus how far a whole-second stamp may lag').toBe(2000 + 1010);
    }
  });
});
