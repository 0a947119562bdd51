/**
 * Deterministic L402 fixtures for unit tests: fixed keys, a fixed clock, a fixed preimage and helpers to mint,
 * attenuate and re-sign tokens. Nothing here reads the wall clock or the random source.
 */
import { createHash, createHmac } from 'node:crypto';
import { caveatsFor, formatCaveat, type MintedTerms } from '../../src/l402/caveats';
import type { Credential } from '../../src/l402/header';
import { encodeIdentifier, newTokenId } from '../../src/l402/identifier';
import { type Keyring, keyring, macaroonRootKey, type RootKey } from '../../src/l402/keys';
import { decodeMacaroon, encodeMacaroon, type Macaroon, sign } from '../../src/l402/macaroon';
import { mintMacaroon } from '../../src/l402/mint';
import type { Requirements } from '../../src/l402/verify';

/** Unix seconds; every test uses this clock. */
export const NOW = 1_700_000_000;
export const NOW_MS = NOW * 1000;

export const KEY_1: RootKey = { id: 1, secret: Buffer.alloc(32, 0x11) };
export const KEY_2: RootKey = { id: 2, secret: Buffer.alloc(32, 0x22) };
export const KEYS: Keyring = keyring([KEY_1], 1);

export const LIMITS = { maxBytes: 4096, maxCaveats: 32 } as const;
export const LOCATION = 'plannt';

export const PREIMAGE: Buffer = Buffer.alloc(32, 0x07);
export const PAYMENT_HASH: Buffer = sha256(PREIMAGE);
export const OTHER_PREIMAGE: Buffer = Buffer.alloc(32, 0x08);

/** A deterministic stand-in for crypto.randomBytes. */
export const fixedRandom = (n: number): Buffer => Buffer.alloc(n, 0xab);

export const TERMS: MintedTerms = {
  service: 'weather',
  routeId: 'forecast',
  priceSats: 10,
  validUntil: NOW + 3600,
};

export const NEEDS: Requirements = {
  service: 'weather',
  routeId: 'forecast',
  priceSats: 10,
  now: NOW,
};

export function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

export function hmac(key: Buffer, data: Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** A token as the server mints it. */
export function mint(
  terms: Partial<MintedTerms> = {},
  options: { keys?: Keyring; paymentHash?: Buffer } = {},
): Buffer {
  return mintMacaroon(
    options.paymentHash ?? PAYMENT_HASH,
    { ...TERMS, ...terms },
    options.keys ?? KEYS,
    LOCATION,
    fixedRandom,
  );
}

/** The 66-byte identifier `mint` uses for a key. */
export function identifierFor(keyId = KEY_1.id, paymentHash: Buffer = PAYMENT_HASH): Buffer {
  return encodeIdentifier({ paymentHash, tokenId: newTokenId(keyId, fixedRandom) });
}

/** A correctly signed macaroon with arbitrary caveat strings: for tokens the server would never mint. */
export function signed(
  caveats: readonly string[],
  options: { key?: RootKey; identifier?: Buffer } = {},
): Buffer {
  const key = options.key ?? KEY_1;
  const identifier = options.identifier ?? identifierFor(key.id);
  const bytes = caveats.map((c) => Buffer.from(c, 'utf8'));
  const signature = sign(macaroonRootKey(key.secret, identifier), identifier, bytes);
  return encodeMacaroon({ location: LOCATION, identifier, caveats: bytes, signature });
}

/** The standard caveat strings for terms, in minting order. */
export function caveatStrings(terms: Partial<MintedTerms> = {}): string[] {
  return caveatsFor({ ...TERMS, ...terms }).map((c) => formatCaveat(c).toString('utf8'));
}

export function decode(raw: Buffer): Macaroon {
  return decodeMacaroon(raw, LIMITS);
}

/** What a holder does to narrow a token: append a caveat and chain the signature, sig' = HMAC(sig, caveat). */
export function attenuate(raw: Buffer, caveat: string): Buffer {
  const mac = decode(raw);
  const bytes = Buffer.from(caveat, 'utf8');
  return encodeMacaroon({
    ...mac,
    caveats: [...mac.caveats, bytes],
    signature: hmac(mac.signature, bytes),
  });
}

/** Rewrites a macaroon's caveats, keeping the old signature: what a forger without the key can do. */
export function withCaveats(raw: Buffer, caveats: readonly string[]): Buffer {
  const mac = decode(raw);
  return encodeMacaroon({ ...mac, caveats: caveats.map((c) => Buffer.from(c, 'utf8')) });
}

export function credential(macaroons: readonly Buffer[], preimage: Buffer = PREIMAGE): Credential {
  return { macaroons: macaroons.map((m) => m.toString('base64')), preimage };
}
