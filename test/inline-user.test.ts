/**
 * The inline test mode as a user writes it: import the tasks module (which
 * opens its spool at import), switch it to inline, call the wrappers, assert.
 * Runs against examples/orders.ts and examples/tasks.ts, imported as a
 * project imports them ('spoolerd' is the built package).
 */
import { existsSync } from 'node:fs';
import { beforeEach, describe, expect, it, vi } from 'vitest';

// Before the tasks modules are imported: their Spooler.open() then makes no spool folder.
const spoolDir = vi.hoisted(() => {
  const dir = `${process.env.TMPDIR ?? '/tmp'}/spoolerd-inline-user-${process.pid}-never-made`;
  process.env.SPOOL_DIR = dir;
  process.env.SPOOLERD_INLINE = '1';
  return dir;
});

import { TaskFailedError, TaskSkippedError } from 'spoolerd';
import { charge, checkout, gateway, sendReceipt, spooler } from '../examples/orders.js';
// Opens the same $SPOOL_DIR: the same (inline) spooler.
import { checksum, remind, spooler as demoSpooler } from '../examples/tasks.js';

const inline = spooler.runInline({ backoff: 'skip' });

beforeEach(() => {
  inline.reset();
  gateway.outages = 0;
  gateway.charged.length = 0;
});

describe('orders, inline', () => {
  it('charges an order and keeps its receipt', async () => {
    const handle = await charge('o-1', 1250);
    expect(await handle.result()).toEqual({ orderId: 'o-1', cents: 1250, receipt: 'r-o-1' });
    expect(inline.logs).toEqual([expect.objectContaining({ msg: 'charged', orderId: 'o-1', task: 'charge' })]);
  });

  it('retries through two gateway outages at once (backoff skipped), on attempts 0, 1 and 2', async () => {
    gateway.outages = 2;
    const handle = await charge('o-2', 500);
    expect(await handle.result()).toMatchObject({ receipt: 'r-o-2' });
    expect(inline.runsOf(charge).map((r) => [r.attempt, r.ending])).toEqual([
      [0, 'rescheduled'],
      [1, 'rescheduled'],
      [2, 'processed'],
    ]);
    // The 30 s exponential backoff the daemon would have waited:
    expect(inline.runsOf(charge).map((r) => r.delayMs)).toEqual([30_000, 60_000, undefined]);
  });

  it('a bad amount is a dead letter at once: TaskFailedError names the reason, no retry spent', async () => {
    const handle = await charge('o-3', -5);
    const error = await handle.result().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskFailedError);
    expect((error as TaskFailedError).remote.message).toMatch(/whole number of cents above 0, got -5/);
    expect((error as TaskFailedError).record.attempts).toBe(1);
    expect(gateway.charged).toEqual([]);
  });

  it('an outage that outlasts the retries ends as a dead letter after 4 attempts', async () => {
    gateway.outages = 10;
    await expect((await charge('o-4', 100)).result()).rejects.toMatchObject({ record: { ending: 'dead', attempts: 4 }, remote: { message: 'the payment gateway timed out' } });
  });

  it('checkout chains charge into sendReceipt', async () => {
    const handle = await checkout('o-5', 990, 'ann@example.com');
    expect(await handle.last()).toBe('sent r-o-5 to ann@example.com');
    expect(inline.history.map((r) => r.name)).toEqual(['charge', 'sendReceipt']);
    expect(inline.runsOf(sendReceipt)[0]!.args).toEqual([{ orderId: 'o-5', cents: 990, receipt: 'r-o-5' }, 'ann@example.com']);
  });
});

describe('examples/tasks.ts, inline', () => {
  it('checksum returns its digest; remind with nothing to remind of is skipped', async () => {
    const demo = demoSpooler.runInline();
    const digest = await (await checksum('abc', 1)).result();
    expect(digest).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    await expect((await remind('')).result()).rejects.toThrow(TaskSkippedError);
    await demo.idle();
    expect(demo.history.map((r) => [r.name, r.ending])).toEqual([
      ['checksum', 'processed'],
      ['remind', 'skipped'],
    ]);
  });
});

it('made no spool folder', async () => {
  await spooler.drain();
  expect(spooler.dir).toBe(spoolDir);
  expect(existsSync(spoolDir)).toBe(false);
});
