/**
 * HMAC-SHA256 (RFC 2104) as two one-shot hashes over one reused scratch buffer: ipad|data, then opad|inner.
 * The verify path chains seven HMACs whose keys change every step; a Node Hmac object per step, or a hash
 * returned as a Buffer, costs more than the hashing itself, so digests travel as latin1 strings (one char per
 * byte) until the chain's end. Figures: bench/hmac.ts.
 */
import { hash } from 'node:crypto';

const BLOCK = 64;
let scratch = Buffer.alloc(BLOCK + 512);
/** Where a latin1 digest is written back as bytes to key the next step. */
const chainKey = Buffer.alloc(32);

/** HMAC-SHA256 of `data` under `key`, as a latin1 string. */
function hmacLatin1(key: Buffer, data: Buffer): string {
  const k = key.length > BLOCK ? Buffer.from(hash('sha256', key, 'binary'), 'latin1') : key;
  if (scratch.length < BLOCK + data.length) scratch = Buffer.alloc(BLOCK + data.length);
  const pad = scratch;
  for (let i = 0; i < k.length; i++) pad[i] = (k[i] as number) ^ 0x36;
  pad.fill(0x36, k.length, BLOCK);
  data.copy(pad, BLOCK);
  const inner = hash('sha256', pad.subarray(0, BLOCK + data.length), 'binary');
  for (let i = 0; i < k.length; i++) pad[i] = (k[i] as number) ^ 0x5c;
  pad.fill(0x5c, k.length, BLOCK);
  const end = BLOCK + pad.write(inner, BLOCK, 'latin1');
  return hash('sha256', pad.subarray(0, end), 'binary');
}

export function hmacSha256(key: Buffer, data: Buffer): Buffer {
  return Buffer.from(hmacLatin1(key, data), 'latin1');
}

/** HMAC(…HMAC(HMAC(key, first), rest[0])…, rest[n-1]): each digest keys the next step. */
export function hmacChain(key: Buffer, first: Buffer, rest: readonly Buffer[] = []): Buffer {
  let digest = hmacLatin1(key, first);
  for (const data of rest) {
    chainKey.write(digest, 0, 'latin1');
    digest = hmacLatin1(chainKey, data);
  }
  return Buffer.from(digest, 'latin1');
}

export function sha256(data: Buffer): Buffer {
  return Buffer.from(hash('sha256', data, 'binary'), 'latin1');
}
