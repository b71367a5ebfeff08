/**
 * uWSGI spool files, written the way an external producer must (uWSGI 2.0,
 * core/spooler.c, read for this harness; none of its code is here):
 *
 * - Body: a uwsgi packet. A 4-byte header — modifier1 = 17 (spooler) as one
 *   byte, the size of the vars block as a little-endian uint16, modifier2 = 0 —
 *   then the vars: for each pair, uint16 LE key length, key, uint16 LE value
 *   length, value. Optionally a raw body after it (unused here). The vars block
 *   is limited to 64 KiB.
 * - Name: the spooler only looks at entries named `uwsgi_spoolfile_on_*`, so
 *   the file is written under another name in the spool directory (same
 *   filesystem, so the rename is atomic) and renamed into its real name once
 *   complete; uwsgi's own uwsgi.spool() instead writes the file in place under
 *   an fcntl lock, which the spooler tests before reading.
 * - Due time: a file whose mtime is in the future is skipped until then (whole
 *   seconds); priority directories are honoured only with --spooler-ordered.
 */
import { closeSync, futimesSync, openSync, renameSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

export function encodePacket(vars: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(vars)) {
    const key = Buffer.from(k);
    const value = Buffer.from(v);
    const kl = Buffer.allocUnsafe(2);
    kl.writeUInt16LE(key.length);
    const vl = Buffer.allocUnsafe(2);
    vl.writeUInt16LE(value.length);
    parts.push(kl, key, vl, value);
  }
  const block = Buffer.concat(parts);
  if (block.length > 0xffff) throw new Error('uwsgi spool vars are limited to 64 KiB');
  const header = Buffer.from([17, block.length & 0xff, block.length >> 8, 0]);
  return Buffer.concat([header, block]);
}

let counter = 0;
const host = hostname();

/**
 * Writes one spool file into `dir` atomically; `dueSeconds` (epoch seconds)
 * dates it into the future. Blocking calls, as a producer script would make.
 */
export function writeSpoolFile(dir: string, packet: Buffer, dueSeconds?: number): void {
  counter++;
  const now = Date.now();
  const name = `uwsgi_spoolfile_on_${host}_${process.pid}_${counter}_${(Math.random() * 2 ** 31) >>> 0}_${Math.floor(now / 1000)}_${(now % 1000) * 1000}`;
  const staging = join(dir, `.tmp-${name}`);
  const fd = openSync(staging, 'wx', 0o600);
  try {
    writeSync(fd, packet);
    if (dueSeconds !== undefined) futimesSync(fd, dueSeconds, dueSeconds);
  } finally {
    closeSync(fd);
  }
  renameSync(staging, join(dir, name));
}
