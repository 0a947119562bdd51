import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { compileFunction } from 'node:vm';
import { keyring, macaroonRootKey } from '../../src/l402/keys';
import {
  type DecodeLimits,
  decodeMacaroon,
  encodeMacaroon,
  hasValidSignature,
  type Macaroon,
  MacaroonError,
  sign,
} from '../../src/l402/macaroon';
import { verifyCredential } from '../../src/l402/verify';
import {
  caveatStrings,
  credential,
  decode,
  identifierFor,
  KEY_1,
  KEYS,
  LIMITS,
  LOCATION,
  mint,
  NEEDS,
  PAYMENT_HASH,
  signed,
  TERMS,
} from '../support/l402';

/** The parts of the untyped npm `macaroon` package (v3, go-macaroon's JS twin) these tests use. */
interface JsMacaroon {
  readonly location: string;
  readonly identifier: Uint8Array;
  readonly signature: Uint8Array;
  readonly caveats: Array<{ identifier: Uint8Array; location?: string; vid?: Uint8Array }>;
  addFirstPartyCaveat(condition: string | Uint8Array): void;
  addThirdPartyCaveat(rootKey: Uint8Array, caveatId: string | Uint8Array, location?: string): void;
  exportBinary(): Uint8Array;
  verify(rootKey: Uint8Array, check: (condition: string) => string | null): void;
}
interface JsMacaroonLib {
  newMacaroon(args: {
    identifier: string | Uint8Array;
    location?: string;
    rootKey: string | Uint8Array;
    version?: 1 | 2;
  }): JsMacaroon;
  importMacaroon(bytes: string | Uint8Array): JsMacaroon;
}
const jsMacaroon: JsMacaroonLib = require('macaroon');

/**
 * macaroon@3.0.4's `ByteBuffer._grow` compares against `this._capacity`, which is never set, so every append
 * doubles the buffer and `exportBinary()` dies (RangeError, gigabytes allocated) after about 25 appends:
 * any macaroon with four caveats. This loads the same source with that one comparison fixed, so the
 * package's own v2 serializer can still be compared byte for byte. Import and verify use the pristine package.
 */
function loadWithFixedExport(): JsMacaroonLib {
  const file = require.resolve('macaroon');
  const source = readFileSync(file, 'utf8');
  const broken = 'minCap <= this._capacity';
  if (!source.includes(broken)) return jsMacaroon; // fixed upstream: use the package as is
  const fixed = source.replace(broken, 'minCap <= this._buf.length');
  const mod: { exports: unknown } = { exports: {} };
  compileFunction(fixed, ['module', 'exports', 'require'], { filename: file })(
    mod,
    mod.exports,
    createRequire(file),
  );
  return mod.exports as JsMacaroonLib;
}
const jsExporting = loadWithFixedExport();

function decodeError(raw: Buffer, limits: DecodeLimits = LIMITS): MacaroonError {
  try {
    decodeMacaroon(raw, limits);
  } catch (err) {
    if (err instanceof MacaroonError) return err;
    throw err;
  }
  throw new Error('decodeMacaroon accepted the input');
}

function sample(overrides: Partial<Macaroon> = {}): Macaroon {
  const identifier = identifierFor();
  const caveats = caveatStrings().map((c) => Buffer.from(c));
  return {
    location: LOCATION,
    identifier,
    caveats,
    signature: sign(macaroonRootKey(KEY_1.secret, identifier), identifier, caveats),
    ...overrides,
  };
}

/** A macaroon built by the independent implementation, with Plannt's derived root key. */
function jsBuilt(caveats: readonly string[], location = LOCATION): JsMacaroon {
  const identifier = identifierFor();
  const m = jsExporting.newMacaroon({
    identifier: new Uint8Array(identifier),
    location,
    rootKey: new Uint8Array(macaroonRootKey(KEY_1.secret, identifier)),
    version: 2,
  });
  for (const caveat of caveats) m.addFirstPartyCaveat(caveat);
  return m;
}

describe('macaroon v2 binary encoding', () => {
  it('round-trips location, identifier, caveats and signature', () => {
    const mac = sample();
    const decoded = decodeMacaroon(encodeMacaroon(mac), LIMITS);
    expect(decoded.location).toBe(LOCATION);
    expect(decoded.identifier.equals(mac.identifier)).toBe(true);
    expect(decoded.caveats.map((c) => c.toString())).toEqual(caveatStrings());
    expect(decoded.signature.equals(mac.signature)).toBe(true);
  });

  it('round-trips a macaroon without a location or caveats', () => {
    const mac = sample({ location: '', caveats: [] });
    const raw = encodeMacaroon(mac);
    const decoded = decodeMacaroon(raw, LIMITS);
    expect(decoded.location).toBe('');
    expect(decoded.caveats).toEqual([]);
    expect(encodeMacaroon(decoded).equals(raw)).toBe(true);
  });

  it('round-trips fields longer than 127 bytes (multi-byte length varints)', () => {
    const long = Buffer.alloc(300, 0x61);
    const mac = sample({ location: 'l'.repeat(200), caveats: [long] });
    const decoded = decodeMacaroon(encodeMacaroon(mac), { maxBytes: 4096, maxCaveats: 4 });
    expect(decoded.location).toBe('l'.repeat(200));
    expect(decoded.caveats[0]?.equals(long)).toBe(true);
  });

  it('a decoded minted token keeps a valid signature', () => {
    const mac = decode(mint());
    expect(hasValidSignature(mac, macaroonRootKey(KEY_1.secret, mac.identifier))).toBe(true);
  });
});

describe('decoding rejects malformed input', () => {
  const raw = encodeMacaroon(sample());

  it('rejects every truncation of a valid macaroon', () => {
    for (let length = 0; length < raw.length; length++) {
      expect(decodeError(raw.subarray(0, length)).code).toBe('malformed');
    }
  });

  it('rejects trailing bytes after the signature', () => {
    const err = decodeError(Buffer.concat([raw, Buffer.from([0])]));
    expect(err.code).toBe('malformed');
    expect(err.message).toMatch(/trailing/);
  });

  it('rejects a version byte other than 2', () => {
    for (const version of [0, 1, 3, 0x7b /* '{': JSON */]) {
      const copy = Buffer.from(raw);
      copy[0] = version;
      expect(decodeError(copy).code).toBe('malformed');
    }
  });

  it('rejects a field length larger than the input', () => {
    // version, identifier field claiming 100 bytes, only 3 present
    expect(decodeError(Buffer.from([2, 2, 100, 1, 2, 3])).code).toBe('malformed');
  });

  it('rejects a field length varint longer than four bytes', () => {
    expect(decodeError(Buffer.from([2, 2, 0x80, 0x80, 0x80, 0x80, 0x01])).code).toBe('malformed');
  });

  it('rejects a macaroon without an identifier', () => {
    expect(decodeError(Buffer.from([2, 1, 1, 0x61, 0])).code).toBe('malformed');
  });

  it('rejects a caveat followed by an unexpected field', () => {
    // caveat identifier followed by a signature field instead of EOS or vid
    const bad = Buffer.concat([
      Buffer.from([2, 2, 1, 0x69, 0]),
      Buffer.from([2, 1, 0x63, 6, 1, 0]),
      Buffer.from([0, 6, 32]),
      Buffer.alloc(32),
    ]);
    expect(decodeError(bad).code).toBe('malformed');
  });
});

describe('decoding enforces size limits', () => {
  const raw = encodeMacaroon(sample());

  it('rejects input over maxBytes with too_large', () => {
    expect(decodeError(raw, { maxBytes: raw.length - 1, maxCaveats: 32 }).code).toBe('too_large');
  });

  it('accepts input of exactly maxBytes', () => {
    expect(() => decodeMacaroon(raw, { maxBytes: raw.length, maxCaveats: 32 })).not.toThrow();
  });

  it('rejects more caveats than maxCaveats with too_large', () => {
    const count = caveatStrings().length;
    expect(decodeError(raw, { maxBytes: 4096, maxCaveats: count - 1 }).code).toBe('too_large');
  });

  it('accepts exactly maxCaveats caveats', () => {
    const count = caveatStrings().length;
    expect(decodeMacaroon(raw, { maxBytes: 4096, maxCaveats: count }).caveats).toHaveLength(count);
  });
});

describe('decoding refuses third-party caveats', () => {
  it('rejects a caveat carrying a verification id (field 4) with third_party_caveat', () => {
    const m = jsBuilt(caveatStrings());
    m.addThirdPartyCaveat(new Uint8Array(32).fill(9), 'ask-the-bank', 'https://bank.example');
    expect(decodeError(Buffer.from(m.exportBinary())).code).toBe('third_party_caveat');
  });

  it('rejects a hand-encoded vid field with third_party_caveat', () => {
    const bad = Buffer.concat([
      Buffer.from([2, 2, 1, 0x69, 0]),
      Buffer.from([2, 1, 0x63, 4, 2, 0xaa, 0xbb, 0]),
      Buffer.from([0, 6, 32]),
      Buffer.alloc(32),
    ]);
    expect(decodeError(bad).code).toBe('third_party_caveat');
  });
});

describe('decoding requires a 32-byte signature', () => {
  it.each([0, 31, 33, 64])('rejects a %i-byte signature', (length) => {
    const err = decodeError(encodeMacaroon(sample({ signature: Buffer.alloc(length, 1) })));
    expect(err.code).toBe('malformed');
    expect(err.message).toMatch(/signature/);
  });
});

describe('compatibility with the npm macaroon package', () => {
  const acceptOurCaveats =
    (expected: readonly string[]) =>
    (condition: string): string | null =>
      expected.includes(condition) ? null : `unexpected caveat ${condition}`;

  it('a token minted by Plannt imports and verifies there with the derived root key', () => {
    const raw = mint();
    const ours = decode(raw);
    const theirs = jsMacaroon.importMacaroon(new Uint8Array(raw));
    const rootKey = new Uint8Array(macaroonRootKey(KEY_1.secret, ours.identifier));
    const seen: string[] = [];
    expect(() =>
      theirs.verify(rootKey, (condition) => {
        seen.push(condition);
        return acceptOurCaveats(caveatStrings())(condition);
      }),
    ).not.toThrow();
    expect(seen).toEqual(caveatStrings());
    expect(Buffer.from(theirs.identifier).equals(ours.identifier)).toBe(true);
    expect(theirs.location).toBe(LOCATION);
    expect(theirs.caveats.map((c) => Buffer.from(c.identifier).toString())).toEqual(caveatStrings());
    expect(theirs.caveats.every((c) => c.vid === undefined)).toBe(true);
    expect(Buffer.from(theirs.signature).equals(ours.signature)).toBe(true);
  });

  it('a token minted by Plannt does not verify there with another root key', () => {
    const theirs = jsMacaroon.importMacaroon(new Uint8Array(mint()));
    const wrongKey = new Uint8Array(macaroonRootKey(Buffer.alloc(32, 0x99), identifierFor()));
    expect(() => theirs.verify(wrongKey, acceptOurCaveats(caveatStrings()))).toThrow(/signature/);
  });

  it('a token built there with the derived root key verifies with verifyCredential', () => {
    const m = jsBuilt(caveatStrings());
    const raw = Buffer.from(m.exportBinary());
    const result = verifyCredential(credential([raw]), NEEDS, KEYS, LIMITS);
    expect(result).toEqual({
      ok: true,
      token: { paymentHash: PAYMENT_HASH, priceSats: TERMS.priceSats, validUntil: TERMS.validUntil, uses: 1 },
    });
  });

  it('a token attenuated there is honoured and narrowed by verifyCredential', () => {
    const m = jsExporting.importMacaroon(new Uint8Array(mint()));
    m.addFirstPartyCaveat(`weather_valid_until=${NEEDS.now + 60}`);
    const raw = Buffer.from(m.exportBinary());
    expect(verifyCredential(credential([raw]), NEEDS, KEYS, LIMITS).ok).toBe(true);
    const late = verifyCredential(credential([raw]), { ...NEEDS, now: NEEDS.now + 60 }, KEYS, LIMITS);
    expect(late).toEqual({ ok: false, reason: 'expired' });
  });

  it('a token built there with another root key is rejected by verifyCredential', () => {
    const identifier = identifierFor();
    const m = jsExporting.newMacaroon({
      identifier: new Uint8Array(identifier),
      location: LOCATION,
      rootKey: new Uint8Array(KEY_1.secret), // the server secret itself, not the per-token derived key
      version: 2,
    });
    for (const caveat of caveatStrings()) m.addFirstPartyCaveat(caveat);
    const result = verifyCredential(credential([Buffer.from(m.exportBinary())]), NEEDS, KEYS, LIMITS);
    expect(result).toEqual({ ok: false, reason: 'invalid_signature', detail: undefined });
  });

  it.each([
    ['with a location', LOCATION],
    ['without a location', ''],
  ])('exportBinary equals encodeMacaroon byte for byte %s', (_, location) => {
    const theirs = Buffer.from(jsBuilt(caveatStrings(), location).exportBinary());
    const ours = encodeMacaroon(sample({ location }));
    expect(ours.toString('hex')).toBe(theirs.toString('hex'));
  });

  it('exportBinary equals the bytes mintMacaroon produces', () => {
    const theirs = Buffer.from(jsBuilt(caveatStrings()).exportBinary());
    expect(mint().equals(theirs)).toBe(true);
  });

  it('exportBinary equals a macaroon signed with a rotated key', () => {
    const rotated = keyring([KEY_1, { id: 2, secret: Buffer.alloc(32, 0x22) }], 2);
    const raw = mint({}, { keys: rotated });
    const ours = decode(raw);
    const m = jsExporting.newMacaroon({
      identifier: new Uint8Array(ours.identifier),
      location: LOCATION,
      rootKey: new Uint8Array(macaroonRootKey(Buffer.alloc(32, 0x22), ours.identifier)),
      version: 2,
    });
    for (const caveat of caveatStrings()) m.addFirstPartyCaveat(caveat);
    expect(Buffer.from(m.exportBinary()).equals(raw)).toBe(true);
  });

  it('our signed() fixture matches what the package produces for arbitrary caveats', () => {
    const caveats = ['services=weather:0', 'anything=goes'];
    expect(signed(caveats).equals(Buffer.from(jsBuilt(caveats).exportBinary()))).toBe(true);
  });
});
