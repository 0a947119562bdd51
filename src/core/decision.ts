/** What the gate decided, as plain data that every adapter (gRPC, HTTP) renders the same way. */
import type { AllowReason, DenialReason } from './reasons';
import type { PricedRoute } from './routes';

export interface Challenge {
  macaroon: string;
  invoice: string;
  paymentHash: string;
  amountSats: number;
  /** When the invoice expires. */
  expiresAt: Date;
}

export type Decision =
  | {
      kind: 'allow';
      reason: AllowReason;
      route?: PricedRoute;
      paymentHash?: Buffer;
      amountSats?: number;
      /** On a shadow route: the denial enforcing would have answered. */
      wouldDeny?: DenialReason;
    }
  | {
      kind: 'deny';
      reason: DenialReason;
      route?: PricedRoute;
      detail?: string;
      challenge?: Challenge;
      retryAfterSeconds?: number;
    };
