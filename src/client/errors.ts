/**
 * What the L402 client refuses or fails to do, as typed errors callers match with `instanceof` or `code`,
 * never by message text. Every refusal happens before any money moves, except `PaymentError`.
 */
import type { BudgetLimit } from './budget';

export abstract class L402ClientError extends Error {
  abstract readonly code: string;
}

/** The payment would exceed a cap: nothing was paid. */
export class BudgetExceededError extends L402ClientError {
  readonly code = 'budget_exceeded';
  constructor(
    /** The cap that leaves the least room. */
    readonly limit: BudgetLimit,
    /** What the invoice asks for. */
    readonly amountSats: number,
    /** What the caps still allow for this request (0 when exhausted). */
    readonly allowanceSats: number,
    readonly host: string,
  ) {
    super(
      `budget exceeded: the invoice asks for ${amountSats} sats and the ${LIMIT_NAMES[limit]} allows ` +
        `${allowanceSats} more sats${limit === 'per_host' ? ` for ${host}` : ''}; nothing was paid`,
    );
  }
}

const LIMIT_NAMES: Record<BudgetLimit, string> = {
  per_request: 'per-request maximum',
  per_host: 'per-host maximum',
  total: 'total budget',
  window: 'time-window budget',
};

export type ChallengeProblem =
  /** A WWW-Authenticate L402/LSAT challenge without a readable macaroon or invoice. */
  | 'malformed_challenge'
  /** The invoice is not valid BOLT11 (checksum, signature, unknown network prefix). */
  | 'invalid_invoice'
  /** The invoice names no amount: the payer would choose what to pay. */
  | 'amountless_invoice'
  /** The invoice is for another network than the wallet's. */
  | 'wrong_network'
  /** The invoice has expired, or expires before a payment could reasonably settle. */
  | 'invoice_expired'
  /** The macaroon is unreadable, or its identifier is not the L402 version-0 layout. */
  | 'malformed_macaroon'
  /** The macaroon's payment hash is not the invoice's: paying would not buy this token. */
  | 'unbound_macaroon';

/** The challenge was refused before paying. */
export class ChallengeError extends L402ClientError {
  constructor(
    readonly code: ChallengeProblem,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export type PaymentProblem =
  /** The wallet could not pay; `settled` says whether money may have left. */
  | 'payment_failed'
  /** The wallet returned a preimage that does not hash to the payment hash. */
  | 'bad_preimage'
  /** This invoice was already attempted and did not settle cleanly: never pay one challenge twice. */
  | 'already_attempted';

export class PaymentError extends L402ClientError {
  constructor(
    readonly code: PaymentProblem,
    message: string,
    /** `no`: definitely not paid; `unknown`: the payment may still complete (counted against the budget). */
    readonly settled: 'no' | 'unknown',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
