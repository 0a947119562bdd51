import {
  decodeIdentifier,
  encodeIdentifier,
  HASH_LENGTH,
  IDENTIFIER_LENGTH,
  IdentifierError,
  keyIdOf,
  newTokenId,
} from '../../src/l402/identifier';
import { keyring } from '../../src/l402/keys';
import { decode, fixedRandom, KEY_1, KEY_2, mint, PAYMENT_HASH } from '../support/l402';

const HASH = Buffer.alloc(32, 0xaa);
const TOKEN_ID = Buffer.from(Array.from({ length: 32 }, (_, i) => i));

function identifierError(raw: Buffer): IdentifierError {
  try {
    decodeIdentifier(raw);
  } catch (err) {
    if (err instanceof IdentifierError) return err;
    throw err;
  }
  throw new Error('decodeIdentifier accepted the input');
}

describe('the version-0 identifier layout', () => {
  it('is 66 bytes: uint16 big-endian version 0, payment hash, token id', () => {
    const raw = encodeIdentifier({ paymentHash: HASH, tokenId: TOKEN_ID });
    expect(IDENTIFIER_LENGTH).toBe(66);
    expect(HASH_LENGTH).toBe(32);
    expect(raw).toHaveLength(66);
    expect(raw.readUInt16BE(0)).toBe(0);
    expect(raw.subarray(0, 2).equals(Buffer.from([0, 0]))).toBe(true);
    expect(raw.subarray(2, 34).equals(HASH)).toBe(true);
    expect(raw.subarray(34, 66).equals(TOKEN_ID)).toBe(true);
  });

  it('round-trips through decodeIdentifier', () => {
    const decoded = decodeIdentifier(encodeIdentifier({ paymentHash: HASH, tokenId: TOKEN_ID }));
    expect(decoded.paymentHash.equals(HASH)).toBe(true);
    expect(decoded.tokenId.equals(TOKEN_ID)).toBe(true);
  });

  it('refuses to encode a payment hash or token id that is not 32 bytes', () => {
    expect(() => encodeIdentifier({ paymentHash: Buffer.alloc(31), tokenId: TOKEN_ID })).toThrow(RangeError);
    expect(() => encodeIdentifier({ paymentHash: HASH, tokenId: Buffer.alloc(33) })).toThrow(RangeError);
  });

  it('is what a minted token carries', () => {
    const { identifier } = decode(mint());
    const { paymentHash, tokenId } = decodeIdentifier(identifier);
    expect(paymentHash.equals(PAYMENT_HASH)).toBe(true);
    expect(tokenId.equals(newTokenId(KEY_1.id, fixedRandom))).toBe(true);
  });
});

describe('the token id carries the key id', () => {
  it('puts the key id big-endian in the first 4 bytes and randomness in the other 28', () => {
    const requested: number[] = [];
    const tokenId = newTokenId(0xdeadbeef, (n) => {
      requested.push(n);
      return Buffer.alloc(n, 0x5a);
    });
    expect(requested).toEqual([28]);
    expect(tokenId).toHaveLength(32);
    expect(tokenId.subarray(0, 4).equals(Buffer.from([0xde, 0xad, 0xbe, 0xef]))).toBe(true);
    expect(tokenId.subarray(4).equals(Buffer.alloc(28, 0x5a))).toBe(true);
    expect(keyIdOf(tokenId)).toBe(0xdeadbeef);
  });

  it.each([0, 1, 0xffffffff])('round-trips key id %i', (keyId) => {
    expect(keyIdOf(newTokenId(keyId))).toBe(keyId);
  });

  it('draws fresh randomness by default', () => {
    expect(newTokenId(1).equals(newTokenId(1))).toBe(false);
  });

  it('a token minted with the current key names that key', () => {
    const rotated = keyring([KEY_1, KEY_2], KEY_2.id);
    const { tokenId } = decodeIdentifier(decode(mint({}, { keys: rotated })).identifier);
    expect(keyIdOf(tokenId)).toBe(KEY_2.id);
  });
});

describe('decoding rejects unknown versions', () => {
  it.each([1, 2, 0x0100, 0xffff])('rejects version %i with unknown_version', (version) => {
    const raw = encodeIdentifier({ paymentHash: HASH, tokenId: TOKEN_ID });
    raw.writeUInt16BE(version, 0);
    const err = identifierError(raw);
    expect(err.code).toBe('unknown_version');
  });
});

describe('decoding rejects bad lengths', () => {
  it.each([0, 2, 65, 67, 100])('rejects a %i-byte identifier with bad_length', (length) => {
    expect(identifierError(Buffer.alloc(length)).code).toBe('bad_length');
  });

  it('checks the length before the version', () => {
    const raw = Buffer.alloc(65);
    raw.writeUInt16BE(1, 0);
    expect(identifierError(raw).code).toBe('bad_length');
  });
});
