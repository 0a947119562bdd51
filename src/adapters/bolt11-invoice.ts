/**
 * BOLT11 encoding for the dev backend's invoices, straight from the fields to 5-bit words: the bolt11
 * package's generic encoder (bn.js amounts, lodash, tag tables) cost more CPU than the rest of a challenge.
 * bech32 and secp256k1 (libsecp256k1) do the encoding and the signing; the output is the bolt11 package's,
 * character for character (test/unit/bolt11-invoice.test.ts).
 */
import { createHash } from 'node:crypto';
import { encode as bech32, toWords } from 'bech32';
import { ecdsaSign } from 'secp256k1';

export interface InvoiceFields {
  /** The network's prefix after `ln`: `bc`, `tb`, `bcrt`. */
  network: string;
  sats: number;
  /** Seconds since the epoch. */
  timestamp: number;
  paymentHash: Buffer;
  paymentSecret: Buffer;
  description: string;
  expirySeconds: number;
  minFinalCltvExpiry: number;
}

// BOLT11 tag types.
const PAYMENT_HASH = 1;
const PAYMENT_SECRET = 16;
const DESCRIPTION = 13;
const EXPIRY = 6;
const FEATURES = 5;
const MIN_FINAL_CLTV_EXPIRY = 24;

/** Feature bits 9 (var_onion_optin) and 15 (payment_secret), both optional: the bolt11 package's default. */
const FEATURE_WORDS = [1, 0, 16, 0];

/** A tag's data length is two words. */
const MAX_TAG_WORDS = 1023;

/** A signed payment request. `nodeKey`: the 32-byte secret key that signs it. */
export function signedInvoice(fields: InvoiceFields, nodeKey: Uint8Array): string {
  const prefix = `ln${fields.network}${amount(fields.sats)}`;
  const words = integerWords(fields.timestamp, 7);
  tag(words, PAYMENT_HASH, toWords(fields.paymentHash));
  tag(words, PAYMENT_SECRET, toWords(fields.paymentSecret));
  tag(words, DESCRIPTION, toWords(Buffer.from(fields.description, 'utf8')));
  tag(words, EXPIRY, integerWords(fields.expirySeconds));
  tag(words, FEATURES, FEATURE_WORDS);
  tag(words, MIN_FINAL_CLTV_EXPIRY, integerWords(fields.minFinalCltvExpiry));
  const digest = createHash('sha256').update(prefix, 'utf8').update(wordsToBytes(words)).digest();
  const { signature, recid } = ecdsaSign(digest, nodeKey);
  const signed = Buffer.alloc(65);
  signed.set(signature);
  signed[64] = recid;
  for (const w of toWords(signed)) words.push(w);
  // Invoices are longer than bech32's 90-character limit.
  return bech32(prefix, words, Number.MAX_SAFE_INTEGER);
}

/** The amount in the human-readable part: the largest unit that states it exactly, as the bolt11 package. */
function amount(sats: number): string {
  if (!Number.isSafeInteger(sats) || sats < 1) throw new RangeError(`invoice amount ${sats} sats`);
  const msat = `${sats}000`;
  for (const [zeros, unit] of UNITS) {
    if (msat.length > zeros && msat.endsWith('0'.repeat(zeros))) return msat.slice(0, -zeros) + unit;
  }
  throw new RangeError(`invoice amount ${sats} sats`); // unreachable: whole sats end in 000
}

/** Trailing millisat zeros each unit drops: BTC, milli-, micro-, nano-bitcoin. */
const UNITS: readonly (readonly [number, string])[] = [
  [11, ''],
  [8, 'm'],
  [5, 'u'],
  [2, 'n'],
];

function tag(words: number[], type: number, data: number[]): void {
  if (data.length > MAX_TAG_WORDS) throw new RangeError(`BOLT11 tag ${type}: ${data.length} words`);
  words.push(type, data.length >> 5, data.length & 31);
  for (const w of data) words.push(w);
}

/** Big-endian 5-bit words, at least `minWords` of them. */
function integerWords(value: number, minWords = 1): number[] {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`BOLT11 integer ${value}`);
  const words: number[] = [];
  for (let v = value; v > 0; v = Math.floor(v / 32)) words.unshift(v % 32);
  while (words.length < minWords) words.unshift(0);
  return words;
}

/** The signed data: the words as bytes, the last one padded with zero bits. */
function wordsToBytes(words: readonly number[]): Buffer {
  const bytes = Buffer.alloc(Math.ceil((words.length * 5) / 8));
  let acc = 0;
  let bits = 0;
  let i = 0;
  for (const w of words) {
    acc = ((acc << 5) | w) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes[i++] = (acc >> bits) & 0xff;
    }
  }
  if (bits > 0) bytes[i] = (acc << (8 - bits)) & 0xff;
  return bytes;
}
