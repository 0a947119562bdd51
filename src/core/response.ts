/**
 * Renders a decision as the HTTP answer the client (deny) or the upstream (allow) sees.
 * Shared by every adapter, so gRPC and HTTP ext_authz answer identically.
 */
import { challengeHeaders } from '../l402/header';
import type { Decision } from './decision';
import { DENIALS, type DenialReason } from './reasons';

export type Header = readonly [name: string, value: string];

export type HttpAnswer =
  | {
      allowed: true;
      /** Set on the upstream request, overwriting anything the client sent under the same name. */
      upstreamHeaders: Header[];
      /** Removed from the upstream request. */
      removeHeaders: string[];
      /** Added to the response the client gets from the upstream (Envoy's response_headers_to_add). */
      clientHeaders: Header[];
    }
  | { allowed: false; status: number; headers: Header[]; body: string };

export const UPSTREAM_HEADERS = [
  'x-plannt-payment-hash',
  'x-plannt-service',
  'x-plannt-amount-sats',
  'x-plannt-uses-remaining',
] as const;

/** What a token has left, for the client, so a caching agent knows when to buy again. */
export const USES_REMAINING_HEADER = 'x-l402-uses-remaining';
const UPSTREAM_USES_REMAINING = 'x-plannt-uses-remaining';

export interface RenderOptions {
  /** Remove the L402 Authorization header from paid requests before they reach the upstream. */
  stripAuthorization: boolean;
}

/** What the adapter knows about the downstream request that changes the answer's shape. */
export interface Downstream {
  /** The client speaks gRPC (`content-type: application/grpc…`): denials carry grpc-status and grpc-message. */
  grpc?: boolean;
}

export function render(decision: Decision, options: RenderOptions, downstream: Downstream = {}): HttpAnswer {
  if (decision.kind === 'allow') {
    if (decision.reason === 'paid' && decision.route && decision.paymentHash) {
      const upstreamHeaders: Header[] = [
        ['x-plannt-payment-hash', decision.paymentHash.toString('hex')],
        ['x-plannt-service', decision.route.service],
        ['x-plannt-amount-sats', String(decision.amountSats ?? decision.route.priceSats)],
      ];
      const removeHeaders = options.stripAuthorization ? ['authorization'] : [];
      const clientHeaders: Header[] = [];
      // A single-use token has nothing left to tell; the header is only for tokens that last.
      if (decision.tokenKind && decision.tokenKind !== 'single' && decision.remaining !== undefined) {
        upstreamHeaders.push([UPSTREAM_USES_REMAINING, String(decision.remaining)]);
        clientHeaders.push([USES_REMAINING_HEADER, String(decision.remaining)]);
      } else {
        removeHeaders.push(UPSTREAM_USES_REMAINING);
      }
      return { allowed: true, upstreamHeaders, removeHeaders, clientHeaders };
    }
    // An unpaid request must not reach the upstream carrying headers that claim a payment.
    return { allowed: true, upstreamHeaders: [], removeHeaders: [...UPSTREAM_HEADERS], clientHeaders: [] };
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
      // The invoice's expiry, as before; the token's own is token_expires_at (a pass is good until then).
      expires_at: challenge.expiresAt.toISOString(),
      uses: challenge.uses,
      token_expires_at: challenge.tokenExpiresAt.toISOString(),
    });
  }
  const answer = { allowed: false, status: spec.status, headers, body: JSON.stringify(body) } as const;
  return downstream.grpc ? asGrpcDenial(answer, decision.reason) : answer;
}

/** Whether a request's content-type makes it gRPC (aperture's test: the `application/grpc` prefix). */
export function isGrpcContentType(contentType: string | undefined): boolean {
  return contentType?.toLowerCase().startsWith('application/grpc') ?? false;
}

// google.rpc.Code values.
const GRPC_CODE_OF_STATUS: Readonly<Record<number, number>> = {
  // aperture's proxy answers a payment challenge with INTERNAL + "payment required", and its client
  // interceptor pays only on that pair (or UNKNOWN + "payment required", which Envoy's own mapping of 402 gives).
  402: 13,
  401: 16, // UNAUTHENTICATED
  403: 7, // PERMISSION_DENIED
  429: 8, // RESOURCE_EXHAUSTED, as aperture's rate limiter
  503: 14, // UNAVAILABLE
};

/**
 * A denial for a gRPC client, the way aperture's proxy writes it (proxy/proxy.go, sendDirectResponse): the
 * status in `grpc-status` and `grpc-message` headers, `content-type: application/grpc`, no body, the
 * challenge still in WWW-Authenticate (a trailers-only response, so the client reads them as trailers).
 * The HTTP status stays the decision's: Envoy answers every gRPC request's local reply with HTTP 200 and keeps
 * a grpc-status the authorization server set, and it would turn a non-empty body into grpc-message.
 */
function asGrpcDenial(answer: HttpAnswer & { allowed: false }, reason: DenialReason): HttpAnswer {
  const message =
    answer.status === 402
      ? reason === 'payment_required'
        ? 'payment required'
        : `payment required (${reason})`
      : `${reason}: ${DENIALS[reason].message}`;
  return {
    allowed: false,
    status: answer.status,
    headers: [
      ['content-type', 'application/grpc'],
      ['grpc-status', String(GRPC_CODE_OF_STATUS[answer.status] ?? 2)],
      ['grpc-message', percentEncode(message)],
      ...answer.headers.filter(([name]) => name !== 'content-type'),
    ],
    body: '',
  };
}

/** grpc-message encoding (gRPC over HTTP/2): bytes outside printable ASCII, and `%`, as %XX. */
function percentEncode(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
