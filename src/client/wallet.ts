/**
 * What the client needs from a wallet: its network and one call that pays a BOLT11 invoice and returns the
 * preimage. Small on purpose, so a Nostr Wallet Connect or CLN wallet is one more file.
 */
import type { Network } from './network';

export interface PayLimits {
  /** Most the routing fee may be; the wallet must fail rather than pay more. */
  maxFeeSats: number;
}

export interface Payment {
  preimage: Buffer;
  feeSats: number;
}

export interface Wallet {
  readonly name: string;
  /** The network whose invoices this wallet pays; invoices for any other are refused before paying. */
  network(): Promise<Network>;
  /**
   * Pays and resolves once settled. On failure throw a PaymentError with `settled: 'no'` only when no
   * money can have left; anything else is counted against the budget as possibly spent.
   */
  pay(invoice: string, limits: PayLimits): Promise<Payment>;
  close?(): Promise<void>;
}
