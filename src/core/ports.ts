/** The two dependencies the decision needs, as small interfaces the adapters implement. */

export interface NewInvoice {
  paymentRequest: string;
  paymentHash: Buffer;
  expiresAt: Date;
}

/** An invoice of the node that was paid, as the node's settlement stream reports it. */
export interface Settlement {
  /** Satoshis received (an invoice can be overpaid). */
  sats: number;
  /** The invoice's description; Plannt's own are `<service>: <route id>` (core/memo.ts). */
  memo: string;
}

export interface InvoiceBackend {
  readonly name: string;
  /** Rejects with DependencyUnavailable when the backend is unreachable, failing or slower than timeoutMs. */
  createInvoice(
    amountSats: number,
    memo: string,
    expirySeconds: number,
    timeoutMs: number,
  ): Promise<NewInvoice>;
  /** Resolves when the backend answers; rejects otherwise. */
  probe(): Promise<void>;
  /**
   * Calls onSettled for each invoice paid from now on, whether or not its token is ever used; keeps
   * watching through outages of the backend. Returns a function that stops watching. Optional: a backend
   * that cannot observe payments leaves it out.
   */
  watchSettlements?(onSettled: (settlement: Settlement) => void): () => void;
  close(): Promise<void>;
}

/** One use of a token: how many it may have in all, how long its count must live, how fast it may be used. */
export interface UseLimit {
  /** Uses allowed in all, across every replica; `unlimited` counts without a bound (for the rate). */
  limit: number | 'unlimited';
  /** The count must outlive the token: its minted expiry plus the tolerated clock skew. */
  ttlMs: number;
  /** Uses allowed per second, per token; absent = no bound. */
  maxPerSecond?: number;
}

export type Consumption =
  /** `used`: this token's uses so far, this one included. */
  { ok: true; used: number } | { ok: false; why: 'exhausted' | 'rate_limited' };

export interface SpentSet {
  readonly name: string;
  /**
   * Atomically counts one use of the token if it stays within the limits, else refuses it without counting.
   * A single-use token is `limit: 1`. Rejects with DependencyUnavailable when the store does not answer within
   * timeoutMs (when given; the caller's deadline) or its own command timeout, whichever is shorter; a use the
   * store applies after that is undone, since the client was never served.
   */
  consume(paymentHash: Buffer, use: UseLimit, timeoutMs?: number): Promise<Consumption>;
  /**
   * Gives back one use that consume() counted but whose answer never reached the caller (it had given up):
   * the holder paid for it and was not served. Rejects with DependencyUnavailable like consume().
   */
  refund(paymentHash: Buffer): Promise<void>;
  probe(): Promise<void>;
  close(): Promise<void>;
}

export class DependencyUnavailable extends Error {
  constructor(
    readonly dependency: 'invoice_backend' | 'spent_set',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
