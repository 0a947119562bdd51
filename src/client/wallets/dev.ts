/**
 * A wallet for Plannt's `dev` invoice backend: "pays" through the admin port's `POST /dev/pay`, which hands
 * back the preimage of an invoice that server issued. No money moves; for tests and local demos only.
 */
import { PaymentError } from '../errors';
import type { Network } from '../network';
import type { Wallet } from '../wallet';

export interface DevWalletOptions {
  /** e.g. `http://127.0.0.1:9090/dev/pay` */
  payUrl: string;
  /** The dev backend signs regtest invoices. */
  network?: Network;
  timeoutMs?: number;
}

export function devWallet(options: DevWalletOptions): Wallet {
  const network = options.network ?? 'regtest';
  return {
    name: 'dev',
    network: async () => network,
    async pay(invoice) {
      let res: Response;
      try {
        res = await fetch(options.payUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ invoice }),
          signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
        });
      } catch (err) {
        throw new PaymentError('payment_failed', `dev wallet: ${options.payUrl} unreachable`, 'no', {
          cause: err,
        });
      }
      const text = await res.text();
      const preimage = res.ok ? (JSON.parse(text) as { preimage?: unknown }).preimage : undefined;
      if (typeof preimage !== 'string' || !/^[0-9a-f]{64}$/i.test(preimage)) {
        throw new PaymentError(
          'payment_failed',
          `dev wallet: ${options.payUrl} answered ${res.status} ${text.trim()}`,
          'no',
        );
      }
      return { preimage: Buffer.from(preimage, 'hex'), feeSats: 0 };
    },
  };
}
