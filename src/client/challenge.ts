/**
 * Reading a 402: the L402 (or LSAT) challenge of a WWW-Authenticate header, its BOLT11 invoice decoded
 * (signature checked by the `bolt11` library) and its macaroon tied to that invoice. Pure: the clock and
 * the wallet's network are arguments.
 */
import bolt11 from 'bolt11';
import { parseCaveat, VALID_UNTIL_SUFFIX } from '../l402/caveats';
import { decodeBase64, parseWwwAuthenticate } from '../l402/header';
import { decodeIdentifier } from '../l402/identifier';
import { decodeMacaroon } from '../l402/macaroon';
import { ChallengeError } from './errors';
import { BECH32_PREFIX, type Network } from './network';

export type Scheme = 'L402' | 'LSAT';

/** The raw parameters of an L402 or LSAT challenge. */
export interface L402Challenge {
  scheme: Scheme;
  macaroon: string;
  invoice: string;
}

/** What a challenge asks to be paid, decoded and tied together. */
export interface Offer extends L402Challenge {
  paymentHash: string;
  /** The amount rounded up to whole sats (a millisat remainder costs a whole sat of budget). */
  amountSats: number;
  amountMsat: bigint;
  network: Network;
  expiresAt: Date;
  description?: string;
  payee: string;
  /** The token's own expiry, from the macaroon's earliest `*_valid_until` caveat, when it has one. */
  tokenExpiresAt?: Date;
}

/** BOLT11's default when the invoice carries no expiry field. */
const DEFAULT_EXPIRY_SECONDS = 3600;
const MACAROON_LIMITS = { maxBytes: 16 * 1024, maxCaveats: 64 };

/**
 * The L402 challenge of a WWW-Authenticate value (preferred), else its LSAT challenge; undefined when the
 * value has neither, e.g. only `Bearer`. A challenge of ours missing a parameter is a `malformed_challenge`.
 * The macaroon may be named `macaroon` (bLIP-26) or `token` (some servers).
 */
export function findChallenge(wwwAuthenticate: string | null | undefined): L402Challenge | undefined {
  if (!wwwAuthenticate) return undefined;
  const challenges = parseWwwAuthenticate(wwwAuthenticate);
  for (const scheme of ['L402', 'LSAT'] as const) {
    const found = challenges.find((c) => c.scheme.toUpperCase() === scheme);
    if (!found) continue;
    const macaroon = found.params.macaroon ?? found.params.token;
    const invoice = found.params.invoice;
    if (!macaroon || !invoice) {
      throw new ChallengeError(
        'malformed_challenge',
        `the ${scheme} challenge lacks a macaroon or an invoice`,
      );
    }
    return { scheme, macaroon, invoice };
  }
  return undefined;
}

/** Decodes the invoice and the macaroon; refuses a macaroon that is not bound to the invoice's payment hash. */
export function readOffer(challenge: L402Challenge): Offer {
  const invoice = decodeInvoice(challenge.invoice);
  const paymentHash = invoice.tags.find((t) => t.tagName === 'payment_hash')?.data;
  if (typeof paymentHash !== 'string' || !/^[0-9a-f]{64}$/.test(paymentHash)) {
    throw new ChallengeError('invalid_invoice', 'the invoice has no payment hash');
  }
  if (!invoice.millisatoshis || BigInt(invoice.millisatoshis) <= 0n) {
    throw new ChallengeError('amountless_invoice', 'the invoice names no amount; refusing to choose one');
  }
  const amountMsat = BigInt(invoice.millisatoshis);
  const expiry = invoice.tags.find((t) => t.tagName === 'expire_time')?.data;
  const expirySeconds = typeof expiry === 'number' ? expiry : DEFAULT_EXPIRY_SECONDS;
  const description = invoice.tags.find((t) => t.tagName === 'description')?.data;

  const { paymentHash: macaroonHash, validUntil } = macaroonTerms(challenge.macaroon);
  if (macaroonHash !== paymentHash) {
    throw new ChallengeError(
      'unbound_macaroon',
      `the macaroon is bound to payment hash ${macaroonHash}, the invoice to ${paymentHash}; paying would not buy it`,
    );
  }
  return {
    ...challenge,
    paymentHash,
    amountSats: Number((amountMsat + 999n) / 1000n),
    amountMsat,
    network: networkOf(invoice.network?.bech32 ?? ''),
    expiresAt: new Date(((invoice.timestamp ?? 0) + expirySeconds) * 1000),
    ...(typeof description === 'string' && { description }),
    payee: invoice.payeeNodeKey ?? '',
    ...(validUntil !== undefined && { tokenExpiresAt: new Date(validUntil * 1000) }),
  };
}

export interface AcceptPolicy {
  /** The network the wallet pays on. */
  network: Network;
  nowMs: number;
  /** Refuse an invoice that expires sooner than this: the payment might settle after it. */
  minValiditySeconds: number;
}

/** Refuses an offer the wallet must not pay: another network, expired or about to expire. */
export function checkOffer(offer: Offer, policy: AcceptPolicy): void {
  if (offer.network !== policy.network) {
    throw new ChallengeError(
      'wrong_network',
      `the invoice is for ${offer.network}, the wallet pays on ${policy.network}`,
    );
  }
  const remainingMs = offer.expiresAt.getTime() - policy.nowMs;
  if (remainingMs < policy.minValiditySeconds * 1000) {
    throw new ChallengeError(
      'invoice_expired',
      remainingMs <= 0
        ? `the invoice expired at ${offer.expiresAt.toISOString()}`
        : `the invoice expires in ${Math.floor(remainingMs / 1000)} s, less than the ${policy.minValiditySeconds} s a payment needs`,
    );
  }
}

function decodeInvoice(request: string): bolt11.PaymentRequestObject {
  const lower = request.trim().toLowerCase();
  // bolt11 knows bc, tb, bcrt and sb; signet (`lntbs`) must be named or it reads as testnet garbage.
  const signet = lower.startsWith('lntbs')
    ? { bech32: 'tbs', pubKeyHash: 0x6f, scriptHash: 0xc4 }
    : undefined;
  try {
    return bolt11.decode(lower, signet && { ...signet, validWitnessVersions: [0, 1] });
  } catch (err) {
    throw new ChallengeError(
      'invalid_invoice',
      `the invoice is not valid BOLT11: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

function networkOf(bech32: string): Network {
  const entry = Object.entries(BECH32_PREFIX).find(([, prefix]) => prefix === bech32);
  if (!entry) throw new ChallengeError('invalid_invoice', `unknown invoice network prefix ln${bech32}`);
  return entry[0] as Network;
}

/** The payment hash a macaroon is bound to, and its earliest expiry caveat (unix seconds), if any. */
function macaroonTerms(base64: string): { paymentHash: string; validUntil?: number } {
  try {
    const mac = decodeMacaroon(decodeBase64(base64), MACAROON_LIMITS);
    const paymentHash = decodeIdentifier(mac.identifier).paymentHash.toString('hex');
    let validUntil: number | undefined;
    for (const raw of mac.caveats) {
      const caveat = parseCaveat(raw);
      if (!caveat?.condition.endsWith(VALID_UNTIL_SUFFIX) || !/^\d{1,15}$/.test(caveat.value)) continue;
      validUntil = Math.min(validUntil ?? Number.POSITIVE_INFINITY, Number(caveat.value));
    }
    return validUntil === undefined ? { paymentHash } : { paymentHash, validUntil };
  } catch (err) {
    throw new ChallengeError(
      'malformed_macaroon',
      `the macaroon is not an L402 macaroon: ${(err as Error).message}`,
      { cause: err },
    );
  }
}
