/** The embedded dev backend: real BOLT11 invoices whose preimage /dev/pay hands out once paid, for a while. */
import { createHash } from 'node:crypto';
import bolt11 from 'bolt11';
import { devInvoiceBackend } from '../../src/adapters/dev-invoices';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();

describe('devInvoiceBackend', () => {
  it('issues an invoice for the amount and hash, and pays it with the preimage, reporting one settlement', async () => {
    const dev = devInvoiceBackend();
    const settled: unknown[] = [];
    dev.watchSettlements?.((s) => settled.push(s));
    const invoice = await dev.createInvoice(21, 'weather/forecast', 600, 1000);
    const decoded = bolt11.decode(invoice.paymentRequest);
    expect(decoded.satoshis).toBe(21);
    expect(decoded.tags.find((t) => t.tagName === 'payment_hash')?.data).toBe(
      invoice.paymentHash.toString('hex'),
    );
    const preimage = dev.pay(invoice.paymentRequest);
    expect(preimage && sha256(preimage)).toEqual(invoice.paymentHash);
    expect(dev.pay(invoice.paymentRequest)).toEqual(preimage);
    expect(settled).toEqual([{ sats: 21, memo: 'weather/forecast' }]);
  });

  it("holds each preimage in memory of its own, not in a slice pinning one of node's 8 KiB pools", async () => {
    const dev = devInvoiceBackend();
    for (let i = 0; i < 3; i++) {
      const invoice = await dev.createInvoice(21, 'x', 600, 1000);
      expect(dev.pay(invoice.paymentRequest)?.buffer.byteLength).toBe(32);
    }
  });

  it('knows no invoice it did not issue, nor one that expired', async () => {
    const dev = devInvoiceBackend();
    const other = await devInvoiceBackend().createInvoice(21, 'x', 600, 1000);
    expect(dev.pay(other.paymentRequest)).toBeUndefined();
    const expired = await dev.createInvoice(21, 'x', 0, 1000);
    expect(dev.pay(expired.paymentRequest)).toBeUndefined();
  });

  it('forgets the oldest invoice past its bound', async () => {
    const dev = devInvoiceBackend(2);
    const [first, second, third] = [
      await dev.createInvoice(1, 'a', 600, 1000),
      await dev.createInvoice(2, 'b', 600, 1000),
      await dev.createInvoice(3, 'c', 600, 1000),
    ];
    expect(dev.pay(first.paymentRequest)).toBeUndefined();
    expect(dev.pay(second.paymentRequest)).toBeDefined();
    expect(dev.pay(third.paymentRequest)).toBeDefined();
  });

  it('gives every invoice its own preimage', async () => {
    const dev = devInvoiceBackend();
    const hashes = new Set<string>();
    for (let i = 0; i < 300; i++)
      hashes.add((await dev.createInvoice(1, 'x', 600, 1000)).paymentHash.toString('hex'));
    expect(hashes.size).toBe(300);
  });
});
