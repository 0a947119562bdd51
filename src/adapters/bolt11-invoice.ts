/**
 * BOLT11 encoding for the dev backend's invoices, straight from the fields to 5-bit words in one reused buffer,
 * then bech32 (BIP-173) over them. The bolt11 package's generic encoder (bn.js amounts, lodash, tag tables),
 * and then the bech32 package's arrays of words, cost more CPU and garbage than the rest of a challenge.
 * secp256k1 (libsecp256k1) signs; the output is the bolt11 package's, character for character
 * (test/unit/bolt11-invoice.test.ts).
 */
import { createHash } from 'node:crypto';
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
/** The timestamp, six tags (the description at most MAX_TAG_WORDS) and the signature's 104 words fit. */
const MAX_WORDS = 2048;

/** An invoice's 5-bit words as they are written. */
class Words {
  readonly words = new Uint8Array(MAX_WORDS);
  length = 0;

  push(word: number): void {
    this.words[this.length++] = word;
  }

  /** Bytes as big-endian 5-bit words, the last padded with zero bits. */
  pushBytes(bytes: Uint8Array): void {
    let acc = 0;
    let bits = 0;
    for (const byte of bytes) {
      acc = ((acc << 8) | byte) & 0xfff;
      bits += 8;
      while (bits >= 5) {
        bits -= 5;
        this.push((acc >> bits) & 31);
      }
    }
    if (bits > 0) this.push((acc << (5 - bits)) & 31);
  }

  /** Big-endian 5-bit words, at least `minWords` of them. */
  pushInteger(value: number, minWords = 1): void {
    for (let i = Math.max(integerWords(value), minWords) - 1; i >= 0; i--)
      this.push(Math.floor(value / 32 ** i) % 32);
  }

  /** A tag's type and its data's length in words; the data follows. */
  tag(type: number, dataWords: number): void {
    if (dataWords > MAX_TAG_WORDS) throw new RangeError(`BOLT11 tag ${type}: ${dataWords} words`);
    this.push(type);
    this.push(dataWords >> 5);
    this.push(dataWords & 31);
  }
}

/** Words of an integer, big-endian: at least one. */
function integerWords(value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`BOLT11 integer ${value}`);
  let count = 1;
  while (32 ** count <= value) count++;
  return count;
}

const bytesAsWords = (bytes: number) => Math.ceil((bytes * 8) / 5);
/** One buffer serves every invoice: encoding is synchronous. */
const scratch = new Words();
/** The signature and its recovery id: 65 bytes, converted to words together (104, no padding between). */
const signed = new Uint8Array(65);

/** A signed payment request. `nodeKey`: the 32-byte secret key that signs it. */
export function signedInvoice(fields: InvoiceFields, nodeKey: Uint8Array): string {
  const prefix = `ln${fields.network}${amount(fields.sats)}`;
  const w = scratch;
  w.length = 0;
  w.pushInteger(fields.timestamp, 7);
  const { paymentHash, paymentSecret, expirySeconds, minFinalCltvExpiry } = fields;
  w.tag(PAYMENT_HASH, bytesAsWords(paymentHash.length));
  w.pushBytes(paymentHash);
  w.tag(PAYMENT_SECRET, bytesAsWords(paymentSecret.length));
  w.pushBytes(paymentSecret);
  const description = Buffer.from(fields.description, 'utf8');
  w.tag(DESCRIPTION, bytesAsWords(description.length));
  w.pushBytes(description);
  w.tag(EXPIRY, integerWords(expirySeconds));
  w.pushInteger(expirySeconds);
  w.tag(FEATURES, FEATURE_WORDS.length);
  for (const word of FEATURE_WORDS) w.push(word);
  w.tag(MIN_FINAL_CLTV_EXPIRY, integerWords(minFinalCltvExpiry));
  w.pushInteger(minFinalCltvExpiry);
  const digest = createHash('sha256')
    .update(prefix, 'latin1')
    .update(wordsToBytes(w.words.subarray(0, w.length)))
    .digest();
  const { signature, recid } = ecdsaSign(digest, nodeKey);
  signed.set(signature);
  signed[64] = recid;
  w.pushBytes(signed);
  return bech32(prefix, w.words.subarray(0, w.length));
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

/** The signed data: the words as bytes, the last one padded with zero bits. */
function wordsToBytes(words: Uint8Array): Buffer {
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

// bech32 (BIP-173): the alphabet, and the checksum's generator.
const CHARSET = Buffer.from('qpzry9x8gf2tvdw0s3jn54khce6mua7l', 'latin1');
const GENERATOR = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

function polymodStep(chk: number, value: number): number {
  const top = chk >>> 25;
  let next = ((chk & 0x1ffffff) << 5) ^ value;
  for (let i = 0; i < 5; i++) if ((top >>> i) & 1) next ^= GENERATOR[i] as number;
  return next;
}

/** `prefix` (lower-case ASCII), `1`, the words and the six-word checksum; no length limit (invoices pass 90). */
function bech32(prefix: string, words: Uint8Array): string {
  let chk = 1;
  for (let i = 0; i < prefix.length; i++) chk = polymodStep(chk, prefix.charCodeAt(i) >> 5);
  chk = polymodStep(chk, 0);
  for (let i = 0; i < prefix.length; i++) chk = polymodStep(chk, prefix.charCodeAt(i) & 31);
  for (const word of words) chk = polymodStep(chk, word);
  for (let i = 0; i < 6; i++) chk = polymodStep(chk, 0);
  chk ^= 1;
  const out = Buffer.allocUnsafe(prefix.length + 1 + words.length + 6);
  let at = out.write(prefix, 'latin1');
  out[at++] = 0x31; // '1'
  for (const word of words) out[at++] = CHARSET[word] as number;
  for (let i = 0; i < 6; i++) out[at++] = CHARSET[(chk >>> (5 * (5 - i))) & 31] as number;
  return out.toString('latin1');
}
