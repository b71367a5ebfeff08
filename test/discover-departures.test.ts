/**
 * Departures (spooler/discover/departures.ts): the names this process moved
 * out of incoming/ are recorded only while incoming/ is watched, so that a
 * crowded, unwatched incoming/ drained for a minute between two listings does
 * not leave every claimed name in memory.
 */
import { describe, expect, it } from 'vitest';
import { Departures } from '../spooler/discover/departures.js';

describe('departures from incoming/', () => {
  it('are recorded only between record() and ignore(), which drops what was recorded', () => {
    const d = new Departures();
    d.add('a'); // start-up: not watched yet
    expect(d.has('a')).toBe(false);
    d.record();
    d.add('b');
    expect(d.has('b')).toBe(true);
    expect(d.delete('b')).toBe(true);
    d.add('c');
    d.ignore();
    expect(d.size).toBe(0);
    for (let i = 0; i < 1000; i++) d.add(`claimed-${i}`);
    expect(d.size).toBe(0);
  });
});
