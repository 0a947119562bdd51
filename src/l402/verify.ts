/**
 * Verifies an L402 credential against what the request needs. Pure: the clock and keys come in as arguments.
 * Checks, in order: macaroon decoding, identifier version, root key, signature chain, preimage, caveats.
 * A credential without a preimage (a bare hex macaroon header) takes it from the `preimage=` caveat.
 */
import { timingSafeEqual } from 'node:crypto';
import type { DenialReason } from '../core/reasons';
import {
  CAPABILITIES_SUFFIX,
  fewerUses,
  MAX_RPS_CONDITION,
  PLANNT_PREFIX,
  PREIMAGE_CONDITION,
  PRICE_CONDITION,
  parseCaveat,
  ROUTE_CONDITION,
  SERVICES_CONDITION,
  UNLIMITED,
  USES_CONDITION,
  type Uses,
  VALID_UNTIL_SUFFIX,
} from './caveats';
import { type Credential, decodeBase64 } from './header';
import { sha256 } from './hmac';
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
  /**
   * Unix seconds: the expiry Plannt minted (the first for this service). A holder may only append earlier
   * ones, so the token is unusable after it, and a spent entry that lives until then outlives every copy.
   */
  validUntil: number;
  /**
   * Requests the token buys, the narrowest of its `plannt_uses` caveats; 1 when it has none. A holder may
   * append one to a single-use token too, so the caller also bounds it by what the route sells today.
   */
  uses: Uses;
  /** Requests per second the token allows, the narrowest of its `plannt_max_rps` caveats; absent = no bound. */
  maxRequestsPerSecond?: number;
}

export type Verification =
  | { ok: true; token: VerifiedToken }
  | { ok: false; reason: DenialReason; detail?: string };

const fail = (reason: DenialReason, detail?: string): Verification => ({ ok: false, reason, detail });
const DECIMAL = /^\d{1,15}$/;
const POSITIVE = /^[1-9]\d{0,14}$/;
const PREIMAGE_HEX = /^[0-9a-fA-F]{64}$/;

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

/** The first credential that verifies wins; otherwise the first one's failure is reported. */
export function verifyCredentials(
  credentials: readonly Credential[],
  needs: Requirements,
  keys: Keyring,
  limits: DecodeLimits,
): Verification {
  let first: Verification | undefined;
  for (const credential of credentials) {
    const result = verifyCredential(credential, needs, keys, limits);
    if (result.ok) return result;
    first ??= result;
  }
  return first ?? fail('malformed_header');
}

function verifyOne(
  text: string,
  presented: Buffer | undefined,
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
  const preimage = presented ?? preimageCaveatOf(mac.caveats);
  if (!preimage) return fail('invalid_preimage', `no preimage, and no ${PREIMAGE_CONDITION} caveat`);
  if (!timingSafeEqual(sha256(preimage), paymentHash)) return fail('preimage_mismatch');
  return checkCaveats(mac.caveats, paymentHash, preimage, needs);
}

/** The first `preimage=` caveat's value, for credentials that carry the preimage only there. */
function preimageCaveatOf(raw: readonly Buffer[]): Buffer | undefined {
  for (const bytes of raw) {
    const caveat = parseCaveat(bytes);
    if (caveat?.condition === PREIMAGE_CONDITION && PREIMAGE_HEX.test(caveat.value))
      return Buffer.from(caveat.value, 'hex');
  }
  return undefined;
}

/**
 * Every caveat Plannt defines must hold, as bLIP-26 asks of a verifier; the others are skipped, since any
 * holder may add caveats of their own (aperture's clients add `preimage=`). Repeated conditions all apply, so
 * attenuating a token can only narrow it, and a later expiry than an earlier one is refused outright, as
 * aperture refuses it. The first expiry for this service is the one Plannt minted: the token's true end of
 * life, which a spent entry must outlive whatever shorter expiry a holder appended.
 */
function checkCaveats(
  raw: readonly Buffer[],
  paymentHash: Buffer,
  preimage: Buffer,
  needs: Requirements,
): Verification {
  let validUntil = Number.POSITIVE_INFINITY;
  let mintedValidUntil: number | undefined;
  let priceSats = Number.POSITIVE_INFINITY;
  let hasServices = false;
  let hasRoute = false;
  let uses: Uses | undefined;
  let maxRequestsPerSecond: number | undefined;
  const validUntilCondition = needs.service + VALID_UNTIL_SUFFIX;
  const capabilitiesCondition = needs.service + CAPABILITIES_SUFFIX;

  for (const bytes of raw) {
    const caveat = parseCaveat(bytes);
    if (!caveat) continue;
    const { condition, value } = caveat;

    if (condition === SERVICES_CONDITION) {
      hasServices = true;
      const names = value.split(',').map((s) => s.trim().split(':')[0]);
      if (!names.includes(needs.service)) return fail('wrong_service');
    } else if (condition === ROUTE_CONDITION) {
      hasRoute = true;
      if (value !== needs.routeId) return fail('wrong_route');
    } else if (condition === PRICE_CONDITION) {
      if (!DECIMAL.test(value)) return fail('invalid_caveat', `bad ${PRICE_CONDITION}`);
      priceSats = Math.min(priceSats, Number(value));
      if (priceSats < needs.priceSats) return fail('insufficient_price');
    } else if (condition === validUntilCondition) {
      if (!DECIMAL.test(value)) return fail('invalid_caveat', `bad ${condition}`);
      const until = Number(value);
      if (until > validUntil)
        return fail('invalid_caveat', `${condition} violates increasing restrictiveness`);
      mintedValidUntil ??= until;
      validUntil = until;
      if (needs.now >= validUntil) return fail('expired');
    } else if (condition === capabilitiesCondition) {
      if (needs.capability === undefined) continue;
      if (
        !value
          .split(',')
          .map((c) => c.trim())
          .includes(needs.capability)
      )
        return fail('capability_denied');
    } else if (condition === PREIMAGE_CONDITION) {
      if (!PREIMAGE_HEX.test(value) || !timingSafeEqual(Buffer.from(value, 'hex'), preimage))
        return fail('preimage_mismatch', `the ${PREIMAGE_CONDITION} caveat differs from the preimage`);
    } else if (condition === USES_CONDITION) {
      // Repeats narrow: the smallest count wins, and a count narrows unlimited.
      if (value !== UNLIMITED && !POSITIVE.test(value)) return fail('invalid_caveat', `bad ${condition}`);
      uses = fewerUses(uses ?? UNLIMITED, value === UNLIMITED ? UNLIMITED : Number(value));
    } else if (condition === MAX_RPS_CONDITION) {
      if (!POSITIVE.test(value)) return fail('invalid_caveat', `bad ${condition}`);
      maxRequestsPerSecond = Math.min(maxRequestsPerSecond ?? Number.POSITIVE_INFINITY, Number(value));
    } else if (condition.startsWith(PLANNT_PREFIX)) {
      // Plannt's own namespace: a condition a newer Plannt added must not be skipped by an older one.
      return fail('invalid_caveat', `unknown ${condition}`);
    }
  }

  if (mintedValidUntil === undefined) return fail('missing_expiry');
  if (needs.maxValidUntil !== undefined && mintedValidUntil > needs.maxValidUntil)
    return fail('lifetime_exceeded');
  if (!hasServices) return fail('missing_caveat', SERVICES_CONDITION);
  if (!hasRoute) return fail('missing_caveat', ROUTE_CONDITION);
  if (priceSats === Number.POSITIVE_INFINITY) return fail('missing_caveat', PRICE_CONDITION);
  return {
    ok: true,
    token: {
      paymentHash,
      priceSats,
      validUntil: mintedValidUntil,
      uses: uses ?? 1,
      ...(maxRequestsPerSecond !== undefined && { maxRequestsPerSecond }),
    },
  };
}
