/** The two dependencies the decision needs, as small interfaces the adapters implement. */

export interface NewInvoice {
  paymentRequest: string;
  paymentHash: Buffer;
  expiresAt: Date;
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
  close(): Promise<void>;
}

export interface SpentSet {
  readonly name: string;
  /** Atomically marks the payment hash spent; true the first time, false if it was already spent. */
  spend(paymentHash: Buffer, ttlMs: number): Promise<boolean>;
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
