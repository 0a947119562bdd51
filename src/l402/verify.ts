/**
 * Verifies an L402 credential against what the request needs. Pure: the clock and keys come in as arguments.
 * Checks, in order: macaroon decoding, identifier version, root key, signature chain, preimage, caveats.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { DenialReason } from '../core/reasons';
import {
  CAPABILITIES_SUFFIX,
  PRICE_CONDITION,
  parseCaveat,
  ROUTE_CONDITION,
  SERVICES_CONDITION,
  VALID_UNTIL_SUFFIX,
} from './caveats';
import { type Credential, decodeBase64 } from './header';
import { decodeIdentifier, IdentifierError, keyIdOf } from './identifier';
import { type Keyring, macaroonRootKey } from './keys';
import {
  type DecodeLimits,
  decodeMacaroon,
  hasValidSignature,
  type Macaroon,
  MacaroonError,
} from './macaroon';

export interface Requirements {
  service: string;
  routeId: string;
  priceSats: number;
  capability?: string;
  /** Unix seconds. */
  now: number;
  /** Unix seconds: the latest expiry a token may carry; a later one is refused as lifetime_exceeded. */
  maxValidUntil?: number;
}

export interface VerifiedToken {
  paymentHash: Buffer;
  /** The price the token was bought at, from its own caveat. */
  priceSats: number;
  /** Unix seconds: the earliest expiry among the token's caveats for this service. */
  validUntil: number;
}

export type Verification =
  | { ok: true; token: VerifiedToken }
  | { ok: false; reason: DenialReason; detail?: string };

const fail = (reason: DenialReason, detail?: string): Verification => ({ ok: false, reason, detail });
const DECIMAL = /^\d{1,15}$/;

/** The first macaroon that verifies wins; otherwise the first macaroon's failure is reported. */
export function verifyCredential(
  credential: Credential,
  needs: Requirements,
  keys: Keyring,
  limits: DecodeLimits,
): Verification {
  let first: Verification | undefined;
  for (const text of credential.macaroons) {
    const result = verifyOne(text, credential.preimage, needs, keys, limits);
    if (result.ok) return result;
    first ??= result;
  }
  return first ?? fail('malformed_header');
}

function verifyOne(
  text: string,
  preimage: Buffer,
  needs: Requirements,
  keys: Keyring,
  limits: DecodeLimits,
): Verification {
  // Base64 expands by 4/3: refuse oversized text before decoding it.
  if (text.length > Math.ceil((limits.maxBytes * 4) / 3) + 4) return fail('malformed_macaroon', 'too large');
  let mac: Macaroon;
  let paymentHash: Buffer;
  let tokenId: Buffer;
  try {
    mac = decodeMacaroon(decodeBase64(text), limits);
    ({ paymentHash, tokenId } = decodeIdentifier(mac.identifier));
  } catch (err) {
    if (err instanceof IdentifierError && err.code === 'unknown_version') return fail('unknown_version');
    if (err instanceof MacaroonError || err instanceof IdentifierError)
      return fail('malformed_macaroon', err.message);
    throw err;
  }

  const secret = keys.byId.get(keyIdOf(tokenId));
  if (!secret) return fail('unknown_key');
  if (!hasValidSignature(mac, macaroonRootKey(secret, mac.identifier))) return fail('invalid_signature');
  if (!timingSafeEqual(createHash('sha256').update(preimage).digest(), paymentHash))
    return fail('preimage_mismatch');
  return checkCaveats(mac.caveats, paymentHash, needs);
}

/**
 * Every caveat must hold. Repeated conditions are all checked, so attenuating a token can only narrow it.
 * Expiry and capability caveats of other services do not apply to this request and are skipped.
 */
function checkCaveats(raw: readonly Buffer[], paymentHash: Buffer, needs: Requirements): Verification {
  let validUntil = Number.POSITIVE_INFINITY;
  let priceSats = Number.POSITIVE_INFINITY;
  let hasServices = false;
  let hasRoute = false;

  for (const bytes of raw) {
    const caveat = parseCaveat(bytes);
    if (!caveat) return fail('unknown_caveat', 'not of the condition=value form');
    const { condition, value } = caveat;

    if (condition === SERVICES_CONDITION) {
      hasServices = true;
      const names = value.split(',').map((s) => s.trim().split(':')[0]);
      if (!names.includes(needs.service)) return fail('wrong_service');
    } else if (condition === ROUTE_CONDITION) {
      hasRoute = true;
      if (value !== needs.routeId) return fail('wrong_route');
    } else if (condition === PRICE_CONDITION) {
      if (!DECIMAL.test(value)) return fail('unknown_caveat', `bad ${PRICE_CONDITION}`);
      priceSats = Math.min(priceSats, Number(value));
      if (priceSats < needs.priceSats) return fail('insufficient_price');
    } else if (condition.endsWith(VALID_UNTIL_SUFFIX)) {
      if (condition !== needs.service + VALID_UNTIL_SUFFIX) continue;
      if (!DECIMAL.test(value)) return fail('unknown_caveat', `bad ${condition}`);
      validUntil = Math.min(validUntil, Number(value));
      if (needs.now >= validUntil) return fail('expired');
    } else if (condition.endsWith(CAPABILITIES_SUFFIX)) {
      if (condition !== needs.service + CAPABILITIES_SUFFIX || needs.capability === undefined) continue;
      if (
        !value
          .split(',')
          .map((c) => c.trim())
          .includes(needs.capability)
      )
        return fail('capability_denied');
    } else {
      return fail('unknown_caveat', condition);
    }
  }

  if (validUntil === Number.POSITIVE_INFINITY) return fail('missing_expiry');
  if (needs.maxValidUntil !== undefined && validUntil > needs.maxValidUntil) return fail('lifetime_exceeded');
  if (!hasServices) return fail('missing_caveat', SERVICES_CONDITION);
  if (!hasRoute) return fail('missing_caveat', ROUTE_CONDITION);
  if (priceSats === Number.POSITIVE_INFINITY) return fail('missing_caveat', PRICE_CONDITION);
  return { ok: true, token: { paymentHash, priceSats, validUntil } };
}
