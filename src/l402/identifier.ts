/**
 * The L402 version-0 macaroon identifier, byte-compatible with aperture and its clients:
 * uint16 big-endian version (0) | payment_hash (32) | token_id (32) = 66 bytes.
 * Plannt puts the id of the signing root key in the first 4 bytes of token_id so keys can rotate.
 */
import { randomBytes } from './random';

export const IDENTIFIER_LENGTH = 66;
export const HASH_LENGTH = 32;
const VERSION = 0;

export interface Identifier {
  paymentHash: Buffer;
  tokenId: Buffer;
}

export class IdentifierError extends Error {
  constructor(readonly code: 'bad_length' | 'unknown_version') {
    super(code === 'bad_length' ? 'identifier is not 66 bytes' : 'identifier version is not 0');
  }
}

export function encodeIdentifier(id: Identifier): Buffer {
  if (id.paymentHash.length !== HASH_LENGTH || id.tokenId.length !== HASH_LENGTH) {
    throw new RangeError('payment hash and token id must be 32 bytes');
  }
  const out = Buffer.alloc(IDENTIFIER_LENGTH);
  out.writeUInt16BE(VERSION, 0);
  id.paymentHash.copy(out, 2);
  id.tokenId.copy(out, 2 + HASH_LENGTH);
  return out;
}

export function decodeIdentifier(raw: Buffer): Identifier {
  if (raw.length !== IDENTIFIER_LENGTH) throw new IdentifierError('bad_length');
  if (raw.readUInt16BE(0) !== VERSION) throw new IdentifierError('unknown_version');
  return { paymentHash: raw.subarray(2, 2 + HASH_LENGTH), tokenId: raw.subarray(2 + HASH_LENGTH) };
}

/** A fresh token id: key id (uint32 BE) followed by 28 random bytes. */
export function newTokenId(keyId: number, random: (n: number) => Buffer = randomBytes): Buffer {
  const out = Buffer.alloc(HASH_LENGTH);
  out.writeUInt32BE(keyId, 0);
  random(HASH_LENGTH - 4).copy(out, 4);
  return out;
}

export function keyIdOf(tokenId: Buffer): number {
  return tokenId.readUInt32BE(0);
}
