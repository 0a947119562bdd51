/**
 * Every outcome's stable reason code, in one place: the response body, the log line and the metric label
 * all use these. `challenge` marks denials where buying a fresh token would help, so a new invoice is offered.
 */

interface ReasonSpec {
  status: number;
  message: string;
  challenge: boolean;
}

const spec = (status: number, message: string, challenge = false): ReasonSpec => ({
  status,
  message,
  challenge,
});

export const DENIALS = {
  payment_required: spec(
    402,
    'Payment required: pay the invoice, then retry with Authorization: L402 <macaroon>:<preimage>.',
    true,
  ),
  header_too_large: spec(401, 'The Authorization header is too large.'),
  malformed_header: spec(401, 'The Authorization header is not a valid L402 credential.'),
  invalid_preimage: spec(401, 'The preimage must be 64 hexadecimal characters (32 bytes).'),
  malformed_macaroon: spec(401, 'The macaroon could not be decoded.'),
  unknown_version: spec(401, 'The macaroon identifier has an unknown version.'),
  unknown_key: spec(401, 'The token was minted with a root key this server does not accept.'),
  invalid_signature: spec(401, 'The macaroon signature is invalid.'),
  preimage_mismatch: spec(401, 'The preimage does not match the payment hash: pay the invoice first.'),
  unknown_caveat: spec(401, 'The macaroon carries a caveat this server does not understand.'),
  missing_caveat: spec(401, 'The macaroon lacks a caveat every token must carry.'),
  missing_expiry: spec(401, 'The macaroon has no expiry for this service.'),
  expired: spec(401, 'The token has expired.', true),
  lifetime_exceeded: spec(401, 'The token expires later than this route sells tokens for.', true),
  wrong_service: spec(401, 'The token was bought for another service.', true),
  wrong_route: spec(401, 'The token was bought for another route.', true),
  insufficient_price: spec(401, 'The token was bought for a cheaper price than this route costs.', true),
  capability_denied: spec(401, 'The token does not grant the capability this route needs.', true),
  token_spent: spec(401, 'The token has already been used.', true),
  unmatched_route: spec(403, 'No priced route matches this request.'),
  invalid_route_config: spec(403, 'The route configuration for this request is invalid.'),
  rate_limited: spec(429, 'Too many payment challenges; retry later.'),
  invoice_backend_unavailable: spec(503, 'The Lightning backend is unavailable; retry later.'),
  spent_set_unavailable: spec(503, 'The spent-token store is unavailable; retry later.'),
  deadline_exceeded: spec(503, 'The authorization deadline passed before a decision; retry.'),
} as const satisfies Record<string, ReasonSpec>;

export type DenialReason = keyof typeof DENIALS;

export const ALLOW_REASONS = ['paid', 'free', 'unmatched_allowed'] as const;
export type AllowReason = (typeof ALLOW_REASONS)[number];
