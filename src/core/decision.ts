/** What the gate decided, as plain data that every adapter (gRPC, HTTP) renders the same way. */
import type { AllowReason, DenialReason } from './reasons';
import type { PricedRoute } from './routes';
import type { TokenKind, Uses } from './token-kind';

export interface Challenge {
  macaroon: string;
  invoice: string;
  paymentHash: string;
  amountSats: number;
  /** When the invoice expires. */
  expiresAt: Date;
  /** Requests the token buys once paid. */
  uses: Uses;
  /** When the token itself expires (its minted expiry); a pass is good until then. */
  tokenExpiresAt: Date;
}

export type Decision =
  | {
      kind: 'allow';
      reason: AllowReason;
      route?: PricedRoute;
      paymentHash?: Buffer;
      /** The price the token was bought at (for all its uses). */
      amountSats?: number;
      tokenKind?: TokenKind;
      /** Uses counted so far, this one included; absent for a pass with no rate bound (not counted). */
      used?: number;
      /** Uses left after this one. */
      remaining?: Uses;
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
