/**
 * The polling schedule of a directory inotify cannot watch (spooler/discover/poll-policy.ts),
 * on a fake clock: when a poll lists, and how its period adapts. The daemon's
 * real polling over a network mount is tested in test/multihost-pickup.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { filesystemKindOf } from '../spool/fs-kind.js';
import {
  BACKOFF_FACTOR,
  COARSE_RESOLUTION_MS,
  FINE_RESOLUTION_MS,
  HOT_MS,
  LISTING_COST_FACTOR,
  ListingGate,
  PollPace,
  RESOLUTION_MARGIN_MS,
  type DirectoryStamp,
} from '../spooler/discover/poll-policy.js';

const T0 = 1_796_000_000_000; // a whole second
const stamp = (mtimeMs: number, more: Partial<DirectoryStamp> = {}): DirectoryStamp => ({ mtimeMs, ctimeMs: mtimeMs, size: 4096, ino: 7, ...more });

describe('ListingGate: when a poll must list the directory', () => {
  it('lists on the first poll, then only when the stamp moves, once its tick is over', () => {
    const gate = new ListingGate();
    expect(gate.decide(stamp(T0 - 5000), T0)).toEqual({ list: true, changed: false });
    // The stamp is seconds old when first seen, but its tick is only known to be over a resolution later.
    for (let t = T0 + 25; t < T0 + COARSE_RESOLUTION_MS + RESOLUTION_MARGIN_MS; t += 25) expect(gate.decide(stamp(T0 - 5000), t).list).toBe(true);
    expect(gate.decide(stamp(T0 - 5000), T0 + COARSE_RESOLUTION_MS + RESOLUTION_MARGIN_MS).list).toBe(true);
    // That listing started after the tick ended: nothing more until the stamp moves.
    for (let t = T0 + 1200; t < T0 + 60_000; t += 250) expect(gate.decide(stamp(T0 - 5000), t)).toEqual({ list: false, changed: false });
    expect(gate.decide(stamp(T0 + 60_000), T0 + 60_100)).toEqual({ list: true, changed: true });
  });

  it('with whole-second mtimes, keeps listing through the second of a change: a second drop in that second does not move the mtime', () => {
    const gate = new ListingGate();
    gate.listed(stamp(T0), T0 + 2000); // quiet for 2 s before: its tick is long over... once a resolution has passed
    expect(gate.decide(stamp(T0), T0 + 2000 + COARSE_RESOLUTION_MS + RESOLUTION_MARGIN_MS).list).toBe(true);
    expect(gate.decide(stamp(T0), T0 + 4000).list).toBe(false);
    // A drop at T0+5.3 s stamps the directory 5 s; a poll at 5.31 s lists it.
    const changedAt = T0 + 5310;
    expect(gate.decide(stamp(T0 + 5000), changedAt)).toEqual({ list: true, changed: true });
    // A second drop at 5.6 s leaves the mtime at 5 s: the polls after the first listing must list anyway.
    expect(gate.decide(stamp(T0 + 5000), changedAt + 25).list).toBe(true);
    expect(gate.decide(stamp(T0 + 5000), T0 + 5650).list).toBe(true);
    // Until a listing starts a resolution (plus margin) after the stamp was first seen: later drops stamp 6 s or after.
    let last = 0;
    for (let t = T0 + 5675; t <= T0 + 7000; t += 25) if (gate.decide(stamp(T0 + 5000), t).list) last = t;
    expect(last).toBeGreaterThanOrEqual(changedAt + COARSE_RESOLUTION_MS + RESOLUTION_MARGIN_MS);
    expect(last).toBeLessThan(changedAt + COARSE_RESOLUTION_MS + RESOLUTION_MARGIN_MS + 25);
    expect(gate.decide(stamp(T0 + 5000), T0 + 9000).list).toBe(false);
  });

  it('learns a finer resolution from a stamp with a fraction of a second, and then lists only briefly after a change', () => {
    const gate = new ListingGate();
    expect(gate.resolutionMs).toBe(COARSE_RESOLUTION_MS);
    gate.listed(stamp(T0 + 123.456789), T0 + 500);
    expect(gate.resolutionMs).toBe(FINE_RESOLUTION_MS);
    expect(gate.decide(stamp(T0 + 123.456789), T0 + 500 + FINE_RESOLUTION_MS + RESOLUTION_MARGIN_MS).list).toBe(true);
    expect(gate.decide(stamp(T0 + 123.456789), T0 + 1000).list).toBe(false);
    expect(gate.decide(stamp(T0 + 1001.5), T0 + 1002)).toEqual({ list: true, changed: true });
    expect(gate.decide(stamp(T0 + 1001.5), T0 + 1002 + FINE_RESOLUTION_MS + RESOLUTION_MARGIN_MS).list).toBe(true);
    expect(gate.decide(stamp(T0 + 1001.5), T0 + 1300).list).toBe(false);
  });

  it('counts a change of ctime, size or inode (mtime alone can stay put)', () => {
    for (const moved of [{ ctimeMs: T0 + 9000 }, { size: 8192 }, { ino: 8 }]) {
      const gate = new ListingGate();
      gate.listed(stamp(T0), T0 + 10_000);
      expect(gate.decide(stamp(T0), T0 + 12_000).list).toBe(true); // the resolution after first sight
      expect(gate.decide(stamp(T0), T0 + 13_000).list).toBe(false);
      expect(gate.decide(stamp(T0, moved), T0 + 14_000)).toEqual({ list: true, changed: true });
    }
  });
});

describe('PollPace: the adaptive poll period', () => {
  const settings = { fastMs: 25, idleMs: 1000 };

  it('polls fast while the directory changes, then backs off geometrically to the idle period', () => {
    const pace = new PollPace(settings);
    let now = T0;
    pace.changed(now);
    const delays: number[] = [];
    while (now < T0 + HOT_MS + 10_000) {
      const d = pace.next(now);
      delays.push(d);
      now += d;
    }
    // Fast for HOT_MS after the change.
    const hot = delays.filter((_, i) => delays.slice(0, i).reduce((a, b) => a + b, 0) < HOT_MS);
    expect(new Set(hot)).toEqual(new Set([25]));
    expect(hot.length).toBeGreaterThanOrEqual(HOT_MS / 25 - 1);
    // Then doubling, capped at the idle period, where it stays.
    const after = delays.slice(hot.length);
    expect(after.slice(0, 6)).toEqual([25 * BACKOFF_FACTOR, 100, 200, 400, 800, 1000]);
    expect(new Set(after.slice(6))).toEqual(new Set([1000]));

    // A change while idle: fast again at once.
    pace.changed(now);
    expect(pace.next(now)).toBe(25);
    expect(pace.next(now + HOT_MS - 1)).toBe(25);
  });

  it('starts fast and settles at the idle period when nothing ever changes', () => {
    const pace = new PollPace(settings);
    const delays = Array.from({ length: 8 }, (_, i) => pace.next(T0 + i));
    expect(delays).toEqual([50, 100, 200, 400, 800, 1000, 1000, 1000]);
  });

  it('waits for a multiple of a listing\'s cost after a poll that listed, at most the idle period', () => {
    const pace = new PollPace(settings);
    pace.changed(T0);
    expect(pace.next(T0, 3)).toBe(25);
    expect(pace.next(T0, 40)).toBe(LISTING_COST_FACTOR * 40);
    // One slow listing (a busy machine) must not hold back the next poll for seconds.
    expect(pace.next(T0, 2000)).toBe(settings.idleMs);
  });

  it('never polls slower than a short idle period nor faster than it', () => {
    const pace = new PollPace({ fastMs: 10, idleMs: 10 });
    pace.changed(T0);
    expect([pace.next(T0), pace.next(T0 + HOT_MS + 1), pace.next(T0 + 60_000)]).toEqual([10, 10, 10]);
  });
});

describe('filesystemKindOf: filesystems inotify cannot watch for other hosts', () => {
  it('knows network filesystems and FUSE by their statfs magic, and anything else as local', () => {
    expect(filesystemKindOf(0x6969)).toEqual({ name: 'nfs', type: '0x6969', remote: true });
    expect(filesystemKindOf(0x65735546)).toEqual({ name: 'fuse', type: '0x65735546', remote: true });
    expect(filesystemKindOf(0x00c36400).name).toBe('ceph');
    expect(filesystemKindOf(0x01021997).name).toBe('9p');
    expect(filesystemKindOf(0xfe534d42).name).toBe('smb2');
    // statfs's f_type is a signed long on some platforms: the CIFS magic may arrive negative.
    expect(filesystemKindOf(0xff534d42 | 0)).toEqual({ name: 'cifs', type: '0xff534d42', remote: true });
    expect(filesystemKindOf(0xef53)).toEqual({ name: 'local', type: '0xef53', remote: false }); // ext4
    expect(filesystemKindOf(0x01021994)).toEqual({ name: 'local', type: '0x1021994', remote: false }); // tmpfs
  });
});
