/**
 * Example task module with tasks that can fail: what README's "Testing your
 * tasks" tests in the inline mode (test/inline-user.test.ts does the same
 * against this file). It imports 'spoolerd' as a module of your own project would.
 */
import { PermanentError, Spooler, chain, taskContext } from 'spoolerd';

/** The spool the daemon serves ($SPOOL_DIR), or ./spool. */
export const spooler = Spooler.fromEnv();

/** Stands in for a payment service: it times out while `outages` is above 0. */
export const gateway = { outages: 0, charged: [] as string[] };

export interface Receipt {
  orderId: string;
  cents: number;
  receipt: string;
}

export const charge = spooler.task(
  async function charge(orderId: string, cents: number): Promise<Receipt> {
    // Bad input never gets better: a dead letter at once, no retry spent.
    if (!Number.isInteger(cents) || cents <= 0) throw new PermanentError(`order ${orderId}: the amount must be a whole number of cents above 0, got ${cents}`);
    if (gateway.outages > 0) {
      gateway.outages--;
      throw new Error('the payment gateway timed out');
    }
    gateway.charged.push(orderId);
    taskContext().log.info('charged', { orderId, cents });
    return { orderId, cents, receipt: `r-${orderId}` };
  },
  { retries: 3, backoff: { kind: 'exponential', delay: '30s' } },
);

export const sendReceipt = spooler.task(function sendReceipt(paid: Receipt, email: string) {
  return `sent ${paid.receipt} to ${email}`;
});

/** Charges an order, then mails its receipt (a chain: sendReceipt gets charge's value first). */
export const checkout = (orderId: string, cents: number, email: string) => chain(charge.request(orderId, cents), sendReceipt.step(email)).enqueue();
