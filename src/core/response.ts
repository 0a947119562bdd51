/**
 * Renders a decision as the HTTP answer the client (deny) or the upstream (allow) sees.
 * Shared by every adapter, so gRPC and HTTP ext_authz answer identically.
 */
import { challengeHeaders } from '../l402/header';
import type { Decision } from './decision';
import { DENIALS } from './reasons';

export type Header = readonly [name: string, value: string];

export type HttpAnswer =
  | {
      allowed: true;
      /** Set on the upstream request, overwriting anything the client sent under the same name. */
      upstreamHeaders: Header[];
      /** Removed from the upstream request. */
      removeHeaders: string[];
    }
  | { allowed: false; status: number; headers: Header[]; body: string };

export const UPSTREAM_HEADERS = [
  'x-plannt-payment-hash',
  'x-plannt-service',
  'x-plannt-amount-sats',
] as const;

export interface RenderOptions {
  /** Remove the L402 Authorization header from paid requests before they reach the upstream. */
  stripAuthorization: boolean;
}

export function render(decision: Decision, options: RenderOptions): HttpAnswer {
  if (decision.kind === 'allow') {
    if (decision.reason === 'paid' && decision.route && decision.paymentHash) {
      const values = [
        decision.paymentHash.toString('hex'),
        decision.route.service,
        String(decision.amountSats ?? decision.route.priceSats),
      ];
      return {
        allowed: true,
        upstreamHeaders: UPSTREAM_HEADERS.map((name, i) => [name, values[i] ?? ''] as const),
        removeHeaders: options.stripAuthorization ? ['authorization'] : [],
      };
    }
    // An unpaid request must not reach the upstream carrying headers that claim a payment.
    return { allowed: true, upstreamHeaders: [], removeHeaders: [...UPSTREAM_HEADERS] };
  }

  const spec = DENIALS[decision.reason];
  // A denial (above all a challenge, whose invoice is single-use) must never be served from a cache.
  const headers: Header[] = [
    ['content-type', 'application/json'],
    ['cache-control', 'no-store'],
  ];
  const body: Record<string, unknown> = { error: decision.reason, message: spec.message };
  if (decision.detail) body.detail = decision.detail;
  if (decision.retryAfterSeconds !== undefined)
    headers.push(['retry-after', String(decision.retryAfterSeconds)]);
  const { challenge } = decision;
  if (challenge) {
    for (const value of challengeHeaders(challenge.macaroon, challenge.invoice))
      headers.push(['www-authenticate', value]);
    Object.assign(body, {
      macaroon: challenge.macaroon,
      invoice: challenge.invoice,
      payment_hash: challenge.paymentHash,
      amount_sats: challenge.amountSats,
      expires_at: challenge.expiresAt.toISOString(),
    });
  }
  return { allowed: false, status: spec.status, headers, body: JSON.stringify(body) };
}
