/**
 * The embedded `dev` invoice backend: real BOLT11 invoices signed by a throwaway key, so Plannt runs with no
 * Lightning node. It keeps each invoice's preimage so the dev-only `POST /dev/pay` can "pay" it.
 * Never for production: the preimages live in this process, so anyone who can reach /dev/pay gets access.
 */
import { createHash, randomBytes } from 'node:crypto';
import bolt11 from 'bolt11';
import { LRUCache } from 'lru-cache';
import type { InvoiceBackend, NewInvoice } from '../core/ports';

const REGTEST = { bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] };

export interface DevInvoiceBackend extends InvoiceBackend {
  /** The preimage of an unexpired invoice this backend issued, as a payer would learn it; undefined otherwise. */
  pay(paymentRequest: string): Buffer | undefined;
}

export function devInvoiceBackend(maxInvoices = 100_000): DevInvoiceBackend {
  const nodeKey = randomBytes(32).toString('hex');
  const preimages = new LRUCache<string, Buffer>({ max: maxInvoices, ttlAutopurge: false });

  return {
    name: 'dev',
    async createInvoice(amountSats, memo, expirySeconds): Promise<NewInvoice> {
      const preimage = randomBytes(32);
      const paymentHash = createHash('sha256').update(preimage).digest();
      const timestamp = Math.floor(Date.now() / 1000);
      const unsigned = bolt11.encode({
        network: REGTEST,
        satoshis: amountSats,
        timestamp,
        tags: [
          { tagName: 'payment_hash', data: paymentHash.toString('hex') },
          { tagName: 'payment_secret', data: randomBytes(32).toString('hex') },
          { tagName: 'description', data: memo },
          { tagName: 'expire_time', data: expirySeconds },
        ],
      });
      const paymentRequest = bolt11.sign(unsigned, nodeKey).paymentRequest;
      if (!paymentRequest) throw new Error('bolt11 did not sign the invoice');
      preimages.set(paymentRequest, preimage, { ttl: expirySeconds * 1000 });
      return { paymentRequest, paymentHash, expiresAt: new Date((timestamp + expirySeconds) * 1000) };
    },
    pay(paymentRequest) {
      return preimages.get(paymentRequest);
    },
    async probe() {},
    async close() {},
  };
}
