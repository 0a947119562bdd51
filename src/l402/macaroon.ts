/**
 * Macaroon v2 binary format and the standard HMAC-SHA256 signature chain, as libmacaroons,
 * go-macaroon (used by lnd and aperture) and the npm `macaroon` package implement them.
 * Hand-written because it is the hot path: decoding and verifying is a few HMACs and no allocation-heavy JSON.
 */
import { timingSafeEqual } from 'node:crypto';
import { hmacChain, hmacSha256 } from './hmac';

const VERSION_2 = 2;
const FIELD_EOS = 0;
const FIELD_LOCATION = 1;
const FIELD_IDENTIFIER = 2;
const FIELD_VID = 4;
const FIELD_SIGNATURE = 6;
const SIGNATURE_LENGTH = 32;
/** go-macaroon derives the HMAC key from the root key with this fixed generator. */
const KEY_GENERATOR = Buffer.from('macaroons-key-generator');

export interface Macaroon {
  location: string;
  identifier: Buffer;
  /** First-party caveat ids in order. */
  caveats: Buffer[];
  signature: Buffer;
}

export interface DecodeLimits {
  maxBytes: number;
  maxCaveats: number;
}

export class MacaroonError extends Error {
  constructor(
    readonly code: 'malformed' | 'too_large' | 'third_party_caveat',
    message: string,
  ) {
    super(message);
  }
}

export function sign(rootKey: Buffer, identifier: Buffer, caveats: readonly Buffer[]): Buffer {
  return hmacChain(hmacSha256(KEY_GENERATOR, rootKey), identifier, caveats);
}

export function hasValidSignature(mac: Macaroon, rootKey: Buffer): boolean {
  return timingSafeEqual(sign(rootKey, mac.identifier, mac.caveats), mac.signature);
}

export function encodeMacaroon(mac: Macaroon): Buffer {
  const parts: Buffer[] = [Buffer.from([VERSION_2])];
  if (mac.location) parts.push(field(FIELD_LOCATION, Buffer.from(mac.location, 'utf8')));
  parts.push(field(FIELD_IDENTIFIER, mac.identifier), Buffer.from([FIELD_EOS]));
  for (const caveat of mac.caveats) parts.push(field(FIELD_IDENTIFIER, caveat), Buffer.from([FIELD_EOS]));
  parts.push(Buffer.from([FIELD_EOS]), field(FIELD_SIGNATURE, mac.signature));
  return Buffer.concat(parts);
}

export function decodeMacaroon(raw: Buffer, limits: DecodeLimits): Macaroon {
  if (raw.length > limits.maxBytes) throw new MacaroonError('too_large', 'macaroon exceeds the size limit');
  const reader = new Reader(raw);
  if (reader.byte() !== VERSION_2) throw new MacaroonError('malformed', 'not a version 2 binary macaroon');

  let type = reader.byte();
  let location = '';
  if (type === FIELD_LOCATION) {
    location = reader.bytes().toString('utf8');
    type = reader.byte();
  }
  if (type !== FIELD_IDENTIFIER) throw new MacaroonError('malformed', 'macaroon has no identifier');
  const identifier = reader.bytes();
  reader.expect(FIELD_EOS);

  const caveats: Buffer[] = [];
  for (type = reader.byte(); type !== FIELD_EOS; type = reader.byte()) {
    if (caveats.length === limits.maxCaveats) throw new MacaroonError('too_large', 'too many caveats');
    if (type === FIELD_LOCATION) {
      reader.bytes();
      type = reader.byte();
    }
    if (type !== FIELD_IDENTIFIER) throw new MacaroonError('malformed', 'caveat has no identifier');
    const id = reader.bytes();
    type = reader.byte();
    if (type === FIELD_VID)
      throw new MacaroonError('third_party_caveat', 'third-party caveats are not accepted');
    if (type !== FIELD_EOS) throw new MacaroonError('malformed', 'unexpected field in caveat');
    caveats.push(id);
  }

  reader.expect(FIELD_SIGNATURE);
  const signature = reader.bytes();
  if (signature.length !== SIGNATURE_LENGTH)
    throw new MacaroonError('malformed', 'signature is not 32 bytes');
  if (!reader.done()) throw new MacaroonError('malformed', 'trailing bytes after signature');
  return { location, identifier, caveats, signature };
}

function field(type: number, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([type]), uvarint(data.length), data]);
}

function uvarint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  done(): boolean {
    return this.pos === this.buf.length;
  }

  byte(): number {
    const b = this.buf[this.pos++];
    if (b === undefined) throw new MacaroonError('malformed', 'macaroon is truncated');
    return b;
  }

  expect(value: number): void {
    if (this.byte() !== value) throw new MacaroonError('malformed', 'unexpected field order');
  }

  /** A uvarint length followed by that many bytes; lengths are bounded by the buffer itself. */
  bytes(): Buffer {
    let len = 0;
    for (let shift = 0; ; shift += 7) {
      if (shift > 21) throw new MacaroonError('malformed', 'field length is too large');
      const b = this.byte();
      len += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
    }
    if (this.pos + len > this.buf.length) throw new MacaroonError('malformed', 'macaroon is truncated');
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
}
