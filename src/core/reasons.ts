/**
 * Every outcome's stable reason code, in one place: the response body, the log line and the metric label
 * all use these. A 402 is a denial that buying a fresh token cures, so it always carries a new invoice; when
 * none can be made (the invoice backend is down, the client is rate limited) the answer is that 503/429.
 */

interface ReasonSpec {
  status: number;
  message: string;
}

const spec = (status: number, message: string): ReasonSpec => ({ status, message });

export const DENIALS = {
  payment_required: spec(
    402,
    'Payment required: pay the invoice, then retry with Authorization: L402 <macaroon>:<preimage>.',
  ),
  // A credential Plannt cannot use is answered like none at all: 402 and a fresh invoice, since paying
  // again cures it and L402 clients (lnget, aperture) re-buy only on a 402.
  header_too_large: spec(402, 'The Authorization header is too large.'),
  malformed_header: spec(402, 'The Authorization header is not a valid L402 credential.'),
  invalid_preimage: spec(402, 'The preimage must be 64 hexadecimal characters (32 bytes).'),
  malformed_macaroon: spec(402, 'The macaroon could not be decoded.'),
  unknown_version: spec(402, 'The macaroon identifier has an unknown version.'),
  unknown_key: spec(402, 'The token was minted with a root key this server no longer accepts.'),
  invalid_signature: spec(402, 'The macaroon signature is invalid.'),
  preimage_mismatch: spec(402, 'The preimage does not match the payment hash: pay the invoice first.'),
  invalid_caveat: spec(402, 'A caveat Plannt defines is malformed or widens an earlier one.'),
  missing_caveat: spec(402, 'The macaroon lacks a caveat every token must carry.'),
  missing_expiry: spec(402, 'The macaroon has no expiry for this service.'),
  expired: spec(402, 'The token has expired.'),
  lifetime_exceeded: spec(402, 'The token expires later than this route sells tokens for.'),
  wrong_service: spec(402, 'The token was bought for another service.'),
  wrong_route: spec(402, 'The token was bought for another route.'),
  insufficient_price: spec(402, 'The token was bought for a cheaper price than this route costs.'),
  capability_denied: spec(402, 'The token does not grant the capability this route needs.'),
  token_spent: spec(402, 'The token has already been used.'),
  token_exhausted: spec(402, 'The token has used up the requests it was bought for.'),
  // Not a 402: the token is still good, only used faster than the route sells (max_requests_per_second).
  token_rate_limited: spec(429, 'The token is used faster than its requests per second; retry in a second.'),
  ambiguous_path: spec(400, 'The request path reads differently on different servers; send it normalized.'),
  request_too_large: spec(413, 'The request is too large to authorize.'),
  // A CheckRequest that is not valid protobuf: Envoy never sends one, so only a broken or hostile caller.
  malformed_request: spec(400, 'The authorization request could not be decoded.'),
  unmatched_route: spec(403, 'No priced route matches this request.'),
  invalid_route_config: spec(403, 'The route configuration for this request is invalid.'),
  rate_limited: spec(429, 'Too many payment challenges; retry later.'),
  invoice_backend_unavailable: spec(503, 'The Lightning backend is unavailable; retry later.'),
  spent_set_unavailable: spec(503, 'The spent-token store is unavailable; retry later.'),
  deadline_exceeded: spec(503, 'The authorization deadline passed before a decision; retry.'),
  overloaded: spec(503, 'The server is too busy to answer in time; retry shortly.'),
} as const satisfies Record<string, ReasonSpec>;

export type DenialReason = keyof typeof DENIALS;

export const ALLOW_REASONS = ['paid', 'free', 'unmatched_allowed', 'shadow'] as const;
export type AllowReason = (typeof ALLOW_REASONS)[number];
