/**
 * The embedded `dev` invoice backend: real BOLT11 invoices signed by a throwaway key, so Plannt runs with no
 * Lightning node. It keeps each invoice's preimage so the dev-only `POST /dev/pay` can "pay" it; the first
 * such payment of an invoice is reported as a settlement, as LND's invoice stream would.
 * Never for production: the preimages live in this process, so anyone who can reach /dev/pay gets access.
 */
import type { InvoiceBackend, NewInvoice, Settlement } from '../core/ports';
import { sha256 } from '../l402/hmac';
import { randomBytes } from '../l402/random';
import { signedInvoice } from './bolt11-invoice';
import { ownCopy } from './own-copy';

/** BOLT11's default min_final_cltv_expiry, which the bolt11 package added to every invoice. */
const MIN_FINAL_CLTV_EXPIRY = 9;

export interface DevInvoiceBackend extends InvoiceBackend {
  /** The preimage of an unexpired invoice this backend issued, as a payer would learn it; undefined otherwise. */
  pay(paymentRequest: string): Buffer | undefined;
}

interface DevInvoice {
  preimage: Buffer;
  settlement: Settlement;
  paid: boolean;
  expiresAtMs: number;
}

export function devInvoiceBackend(maxInvoices = 100_000): DevInvoiceBackend {
  const nodeKey = randomBytes(32);
  // Insertion order (a Map keeps it): past `maxInvoices` the oldest invoice is forgotten.
  const invoices = new Map<string, DevInvoice>();
  const watchers = new Set<(settlement: Settlement) => void>();

  return {
    name: 'dev',
    async createInvoice(amountSats, memo, expirySeconds): Promise<NewInvoice> {
      const random = randomBytes(64);
      // Held until the invoice is forgotten (up to maxInvoices of them): its own 32 bytes (own-copy.ts).
      const preimage = ownCopy(random.subarray(0, 32));
      const paymentHash = sha256(preimage);
      const timestamp = Math.floor(Date.now() / 1000);
      const paymentRequest = signedInvoice(
        {
          network: 'bcrt',
          sats: amountSats,
          timestamp,
          paymentHash,
          paymentSecret: random.subarray(32),
          description: memo,
          expirySeconds,
          minFinalCltvExpiry: MIN_FINAL_CLTV_EXPIRY,
        },
        nodeKey,
      );
      const settlement = { sats: amountSats, memo };
      if (invoices.size >= maxInvoices) invoices.delete(invoices.keys().next().value as string);
      const expiresAtMs = (timestamp + expirySeconds) * 1000;
      invoices.set(paymentRequest, { preimage, settlement, paid: false, expiresAtMs });
      return { paymentRequest, paymentHash, expiresAt: new Date(expiresAtMs) };
    },
    pay(paymentRequest) {
      const invoice = invoices.get(paymentRequest);
      if (!invoice || invoice.expiresAtMs <= Date.now()) return undefined;
      if (!invoice.paid) {
        invoice.paid = true;
        for (const watcher of watchers) watcher(invoice.settlement);
      }
      return invoice.preimage;
    },
    watchSettlements(onSettled) {
      watchers.add(onSettled);
      return () => watchers.delete(onSettled);
    },
    async probe() {},
    async close() {},
  };
}
