import type { DenialReason } from '../../src/core/reasons';
import type { MintedTerms } from '../../src/l402/caveats';
import { encodeIdentifier, newTokenId } from '../../src/l402/identifier';
import { type Keyring, keyring, macaroonRootKey } from '../../src/l402/keys';
import { encodeMacaroon, sign } from '../../src/l402/macaroon';
import {
  type Requirements,
  type Verification,
  verifyCredential,
  verifyCredentials,
} from '../../src/l402/verify';
import {
  attenuate,
  caveatStrings,
  credential,
  decode,
  fixedRandom,
  hmac,
  identifierFor,
  KEY_1,
  KEY_2,
  KEYS,
  LIMITS,
  LOCATION,
  mint,
  NEEDS,
  NOW,
  OTHER_PREIMAGE,
  PAYMENT_HASH,
  PREIMAGE,
  signed,
  TERMS,
  withCaveats,
} from '../support/l402';

const VALID_UNTIL = TERMS.validUntil;

function verify(
  macaroons: Buffer | readonly Buffer[],
  needs: Partial<Requirements> = {},
  options: { keys?: Keyring; preimage?: Buffer } = {},
): Verification {
  const list = Buffer.isBuffer(macaroons) ? [macaroons] : macaroons;
  return verifyCredential(
    credential(list, options.preimage ?? PREIMAGE),
    { ...NEEDS, ...needs },
    options.keys ?? KEYS,
    LIMITS,
  );
}

function reasonOf(result: Verification): DenialReason | 'ok' {
  return result.ok ? 'ok' : result.reason;
}

const token = (terms: Partial<MintedTerms> = {}) => mint(terms);

describe('a valid token', () => {
  it('verifies and reports its payment hash, price and expiry', () => {
    expect(verify(token())).toEqual({
      ok: true,
      token: { paymentHash: PAYMENT_HASH, priceSats: 10, validUntil: VALID_UNTIL, uses: 1 },
    });
  });

  it('verifies when sent as URL-safe base64 without padding', () => {
    const text = token().toString('base64url');
    const result = verifyCredential({ macaroons: [text], preimage: PREIMAGE }, NEEDS, KEYS, LIMITS);
    expect(reasonOf(result)).toBe('ok');
  });
});

describe('malformed_macaroon', () => {
  it.each([
    ['base64 of garbage', Buffer.from('not a macaroon at all')],
    ['an empty macaroon', Buffer.alloc(0)],
    ['a truncated token', token().subarray(0, 40)],
    ['a token with trailing bytes', Buffer.concat([token(), Buffer.from([1])])],
  ])('rejects %s', (_, raw) => {
    expect(reasonOf(verify(raw))).toBe('malformed_macaroon');
  });

  it('rejects a correctly signed token whose identifier is not 66 bytes', () => {
    const identifier = Buffer.concat([identifierFor(), Buffer.from([0])]);
    expect(reasonOf(verify(signed(caveatStrings(), { identifier })))).toBe('malformed_macaroon');
  });

  it('rejects a token with a third-party caveat', () => {
    const raw = token();
    const vidCaveat = Buffer.from([2, 1, 0x63, 4, 1, 0x76, 0]);
    // splice a third-party caveat in before the closing EOS + signature field (1 + 2 + 32 bytes)
    const tampered = Buffer.concat([raw.subarray(0, raw.length - 35), vidCaveat, raw.subarray(-35)]);
    const result = verify(tampered);
    expect(result).toMatchObject({ ok: false, reason: 'malformed_macaroon' });
    expect(!result.ok && result.detail).toMatch(/third-party/);
  });

  it('rejects a token with more caveats than the limit', () => {
    const many = Array.from({ length: LIMITS.maxCaveats + 1 }, () => 'services=weather:0');
    expect(reasonOf(verify(signed(many)))).toBe('malformed_macaroon');
  });

  it('rejects an oversized macaroon before decoding it', () => {
    const result = verify(Buffer.alloc(LIMITS.maxBytes * 2, 2));
    expect(result).toEqual({ ok: false, reason: 'malformed_macaroon', detail: 'too large' });
  });

  it('rejects an empty macaroon list as malformed_header', () => {
    const result = verifyCredential({ macaroons: [], preimage: PREIMAGE }, NEEDS, KEYS, LIMITS);
    expect(reasonOf(result)).toBe('malformed_header');
  });
});

describe('unknown_version', () => {
  it('rejects a correctly signed token whose identifier has version 1', () => {
    const identifier = identifierFor();
    identifier.writeUInt16BE(1, 0);
    expect(reasonOf(verify(signed(caveatStrings(), { identifier })))).toBe('unknown_version');
  });
});

describe('unknown_key', () => {
  it('rejects a token minted with a key this server does not hold', () => {
    const foreign = mint({}, { keys: keyring([KEY_2], KEY_2.id) });
    expect(reasonOf(verify(foreign))).toBe('unknown_key');
  });

  it('rejects a token whose key id was edited (the identifier is signed, so nothing else helps)', () => {
    const tokenId = newTokenId(99, fixedRandom);
    const identifier = encodeIdentifier({ paymentHash: PAYMENT_HASH, tokenId });
    expect(reasonOf(verify(signed(caveatStrings(), { identifier })))).toBe('unknown_key');
  });
});

describe('invalid_signature', () => {
  it('rejects a tampered caveat (price raised without re-signing)', () => {
    const forged = withCaveats(
      token(),
      caveatStrings().map((c) => c.replace('plannt_price_sats=10', 'plannt_price_sats=1000')),
    );
    expect(reasonOf(verify(forged, { priceSats: 1000 }))).toBe('invalid_signature');
  });

  it('rejects a tampered expiry', () => {
    const forged = withCaveats(token(), caveatStrings({ validUntil: VALID_UNTIL + 86400 }));
    expect(reasonOf(verify(forged))).toBe('invalid_signature');
  });

  it('rejects a caveat appended without re-signing', () => {
    const forged = withCaveats(token(), [...caveatStrings(), `weather_valid_until=${NOW + 10}`]);
    expect(reasonOf(verify(forged))).toBe('invalid_signature');
  });

  it('rejects a stripped caveat', () => {
    const stripped = withCaveats(token({ capabilities: ['read'] }), caveatStrings());
    expect(reasonOf(verify(stripped))).toBe('invalid_signature');
  });

  it('rejects reordered caveats', () => {
    const [a = '', b = '', ...rest] = caveatStrings();
    expect(reasonOf(verify(withCaveats(token(), [b, a, ...rest])))).toBe('invalid_signature');
  });

  it('rejects a flipped signature bit', () => {
    const mac = decode(token());
    const signature = Buffer.from(mac.signature);
    signature[0] = (signature[0] ?? 0) ^ 1;
    expect(reasonOf(verify(encodeMacaroon({ ...mac, signature })))).toBe('invalid_signature');
  });

  it('rejects a token signed with another secret under a known key id', () => {
    const impostor = { id: KEY_1.id, secret: Buffer.alloc(32, 0x66) };
    expect(reasonOf(verify(signed(caveatStrings(), { key: impostor })))).toBe('invalid_signature');
  });

  it('rejects a token signed with the server secret instead of the derived root key', () => {
    const identifier = identifierFor();
    const caveats = caveatStrings().map((c) => Buffer.from(c));
    const signature = sign(KEY_1.secret, identifier, caveats);
    const raw = encodeMacaroon({ location: LOCATION, identifier, caveats, signature });
    expect(reasonOf(verify(raw))).toBe('invalid_signature');
  });

  it('checks the signature before the preimage', () => {
    const forged = withCaveats(token(), caveatStrings({ routeId: 'other' }));
    expect(reasonOf(verify(forged, {}, { preimage: OTHER_PREIMAGE }))).toBe('invalid_signature');
  });
});

describe('preimage_mismatch', () => {
  it('rejects a preimage that does not hash to the payment hash', () => {
    expect(reasonOf(verify(token(), {}, { preimage: OTHER_PREIMAGE }))).toBe('preimage_mismatch');
  });

  it('rejects the payment hash itself sent as the preimage', () => {
    expect(reasonOf(verify(token(), {}, { preimage: PAYMENT_HASH }))).toBe('preimage_mismatch');
  });
});

describe('caveats Plannt does not define are skipped (bLIP-26)', () => {
  it.each([
    ['an unknown condition', 'color=blue'],
    ['a caveat that is not condition=value', 'just-some-text'],
    ['a caveat with an empty condition', '=value'],
    ['an aperture-style <service>_constraint', 'weather_max_calls=5'],
    ["another service's expiry", 'maps_valid_until=1'],
    ["another service's capabilities", 'maps_capabilities=none'],
  ])('accepts a token carrying %s', (_, caveat) => {
    expect(reasonOf(verify(signed([...caveatStrings(), caveat])))).toBe('ok');
  });

  it('accepts an unknown caveat appended by a holder with a correct chained signature', () => {
    expect(reasonOf(verify(attenuate(token(), 'ip_addr=10.0.0.1')))).toBe('ok');
  });
});

describe('invalid_caveat: conditions Plannt defines are enforced strictly', () => {
  it.each(['abc', '-1', '1.5', '', '1e3', '9999999999999999'])('rejects plannt_price_sats=%s', (value) => {
    expect(reasonOf(verify(signed([...caveatStrings(), `plannt_price_sats=${value}`])))).toBe(
      'invalid_caveat',
    );
  });

  it.each(['soon', '-1', '', '1.5e9'])('rejects weather_valid_until=%s', (value) => {
    expect(reasonOf(verify(signed([...caveatStrings(), `weather_valid_until=${value}`])))).toBe(
      'invalid_caveat',
    );
  });

  it('rejects a plannt_ condition it does not know: a newer Plannt may have meant it as a limit', () => {
    const result = verify(attenuate(token(), 'plannt_region=eu'));
    expect(result).toEqual({ ok: false, reason: 'invalid_caveat', detail: 'unknown plannt_region' });
  });
});

describe('the preimage caveat (aperture clients append preimage=<hex>)', () => {
  it('accepts a token whose preimage caveat equals the presented preimage', () => {
    const paid = attenuate(token(), `preimage=${PREIMAGE.toString('hex')}`);
    expect(reasonOf(verify(paid))).toBe('ok');
  });

  it('accepts the preimage caveat in upper-case hex', () => {
    const paid = attenuate(token(), `preimage=${PREIMAGE.toString('hex').toUpperCase()}`);
    expect(reasonOf(verify(paid))).toBe('ok');
  });

  it('refuses a token whose preimage caveat differs from the presented preimage', () => {
    const paid = attenuate(token(), `preimage=${OTHER_PREIMAGE.toString('hex')}`);
    expect(reasonOf(verify(paid))).toBe('preimage_mismatch');
  });

  it('refuses a preimage caveat that is not 32 bytes of hex', () => {
    for (const value of ['', 'zz', PREIMAGE.toString('hex').slice(2), `${PREIMAGE.toString('hex')}00`]) {
      expect(reasonOf(verify(attenuate(token(), `preimage=${value}`)))).toBe('preimage_mismatch');
    }
  });

  it('refuses when any of several preimage caveats differs', () => {
    const hex = PREIMAGE.toString('hex');
    const twice = attenuate(
      attenuate(token(), `preimage=${hex}`),
      `preimage=${OTHER_PREIMAGE.toString('hex')}`,
    );
    expect(reasonOf(verify(twice))).toBe('preimage_mismatch');
  });

  it('takes the preimage from the caveat when the credential carries none (a bare macaroon header)', () => {
    const paid = attenuate(token(), `preimage=${PREIMAGE.toString('hex')}`);
    const result = verifyCredential({ macaroons: [paid.toString('base64')] }, NEEDS, KEYS, LIMITS);
    expect(reasonOf(result)).toBe('ok');
  });

  it('refuses a bare macaroon whose preimage caveat does not hash to the payment hash', () => {
    const unpaid = attenuate(token(), `preimage=${OTHER_PREIMAGE.toString('hex')}`);
    const result = verifyCredential({ macaroons: [unpaid.toString('base64')] }, NEEDS, KEYS, LIMITS);
    expect(reasonOf(result)).toBe('preimage_mismatch');
  });

  it('refuses a bare macaroon without a preimage caveat', () => {
    const result = verifyCredential({ macaroons: [token().toString('base64')] }, NEEDS, KEYS, LIMITS);
    expect(reasonOf(result)).toBe('invalid_preimage');
  });
});

describe('missing_expiry', () => {
  const withoutExpiry = caveatStrings().filter((c) => !c.startsWith('weather_valid_until='));

  it('rejects a correctly signed token without <service>_valid_until', () => {
    expect(withoutExpiry).toHaveLength(3);
    expect(reasonOf(verify(signed(withoutExpiry)))).toBe('missing_expiry');
  });

  it('rejects a token whose only expiry is for another service', () => {
    const caveats = [...withoutExpiry, `maps_valid_until=${NOW + 3600}`];
    expect(reasonOf(verify(signed(caveats)))).toBe('missing_expiry');
  });
});

describe('missing_caveat', () => {
  it.each([
    ['services', 'services='],
    ['plannt_route', 'plannt_route='],
    ['plannt_price_sats', 'plannt_price_sats='],
  ])('rejects a correctly signed token without %s', (name, prefix) => {
    const caveats = caveatStrings().filter((c) => !c.startsWith(prefix));
    expect(verify(signed(caveats))).toEqual({ ok: false, reason: 'missing_caveat', detail: name });
  });
});

describe('expired', () => {
  it('rejects a token at exactly its valid_until', () => {
    expect(reasonOf(verify(token(), { now: VALID_UNTIL }))).toBe('expired');
  });

  it('rejects a token after its valid_until', () => {
    expect(reasonOf(verify(token(), { now: VALID_UNTIL + 1 }))).toBe('expired');
    expect(reasonOf(verify(token(), { now: VALID_UNTIL + 86400 }))).toBe('expired');
  });

  it('accepts a token one second before its valid_until', () => {
    expect(reasonOf(verify(token(), { now: VALID_UNTIL - 1 }))).toBe('ok');
  });

  it("ignores another service's expiry", () => {
    const caveats = [...caveatStrings(), `maps_valid_until=${NOW - 1}`];
    expect(reasonOf(verify(signed(caveats)))).toBe('ok');
  });
});

describe('wrong_service', () => {
  it('rejects a token bought for another service', () => {
    expect(reasonOf(verify(token(), { service: 'maps' }))).toBe('wrong_service');
  });

  it('accepts a services caveat listing several services including this one', () => {
    const caveats = caveatStrings().map((c) =>
      c.startsWith('services=') ? 'services=maps:0, weather:1' : c,
    );
    expect(reasonOf(verify(signed(caveats)))).toBe('ok');
  });
});

describe('wrong_route', () => {
  it('rejects a token bought for another route', () => {
    expect(reasonOf(verify(token({ routeId: 'history' })))).toBe('wrong_route');
  });

  it('does not match route ids by prefix', () => {
    expect(reasonOf(verify(token({ routeId: 'forecast' }), { routeId: 'forecast-premium' }))).toBe(
      'wrong_route',
    );
  });
});

describe('insufficient_price', () => {
  it('rejects a token bought for a cheaper route (1 sat used on a 1000-sat route)', () => {
    expect(reasonOf(verify(token({ priceSats: 1 }), { priceSats: 1000 }))).toBe('insufficient_price');
  });

  it('accepts a token bought at exactly the route price', () => {
    expect(reasonOf(verify(token({ priceSats: 1000 }), { priceSats: 1000 }))).toBe('ok');
  });

  it('accepts a token bought at a higher price and reports the price paid', () => {
    const result = verify(token({ priceSats: 50 }), { priceSats: 10 });
    expect(result.ok && result.token.priceSats).toBe(50);
  });
});

describe('capability_denied', () => {
  it('rejects a token whose capabilities lack the one the route needs', () => {
    expect(reasonOf(verify(token({ capabilities: ['read'] }), { capability: 'write' }))).toBe(
      'capability_denied',
    );
  });

  it('accepts a token granting the capability among others', () => {
    expect(reasonOf(verify(token({ capabilities: ['read', 'write'] }), { capability: 'write' }))).toBe('ok');
  });

  it('does not apply capabilities when the route needs none', () => {
    expect(reasonOf(verify(token({ capabilities: ['read'] })))).toBe('ok');
  });

  it("ignores another service's capabilities", () => {
    const caveats = [...caveatStrings({ capabilities: ['write'] }), 'maps_capabilities=none'];
    expect(reasonOf(verify(signed(caveats), { capability: 'write' }))).toBe('ok');
  });
});

describe('attenuation', () => {
  it('honours an extra caveat appended with a correct chained signature', () => {
    const narrowed = attenuate(token(), `weather_valid_until=${NOW + 60}`);
    const mac = decode(narrowed);
    const original = decode(token());
    expect(mac.signature.equals(hmac(original.signature, mac.caveats.at(-1) ?? Buffer.alloc(0)))).toBe(true);
    // The token reports the minted expiry: its spent entry must outlive the original as well as this copy.
    expect(verify(narrowed)).toEqual({
      ok: true,
      token: { paymentHash: PAYMENT_HASH, priceSats: 10, validUntil: VALID_UNTIL, uses: 1 },
    });
  });

  it('an earlier appended valid_until wins and expires the token sooner', () => {
    const narrowed = attenuate(token(), `weather_valid_until=${NOW + 60}`);
    expect(reasonOf(verify(narrowed, { now: NOW + 59 }))).toBe('ok');
    expect(reasonOf(verify(narrowed, { now: NOW + 60 }))).toBe('expired');
  });

  it('a later appended valid_until is refused as violating increasing restrictiveness, as aperture does', () => {
    const widened = attenuate(token(), `weather_valid_until=${VALID_UNTIL + 86400}`);
    expect(verify(widened)).toEqual({
      ok: false,
      reason: 'invalid_caveat',
      detail: 'weather_valid_until violates increasing restrictiveness',
    });
  });

  it('an appended valid_until equal to the minted one is accepted', () => {
    expect(reasonOf(verify(attenuate(token(), `weather_valid_until=${VALID_UNTIL}`)))).toBe('ok');
  });

  it('an appended lower price narrows the token', () => {
    const narrowed = attenuate(token(), 'plannt_price_sats=1');
    expect(reasonOf(verify(narrowed))).toBe('insufficient_price');
  });

  it('an appended higher price does not raise it', () => {
    const raised = attenuate(token({ priceSats: 10 }), 'plannt_price_sats=1000');
    expect(reasonOf(verify(raised, { priceSats: 1000 }))).toBe('insufficient_price');
    const result = verify(raised, { priceSats: 10 });
    expect(result.ok && result.token.priceSats).toBe(10);
  });

  it('an appended services caveat for another service narrows the token out of this one', () => {
    expect(reasonOf(verify(attenuate(token(), 'services=maps:0')))).toBe('wrong_service');
  });

  it('an appended capabilities caveat narrows what the token grants', () => {
    const narrowed = attenuate(token({ capabilities: ['read', 'write'] }), 'weather_capabilities=read');
    expect(reasonOf(verify(narrowed, { capability: 'read' }))).toBe('ok');
    expect(reasonOf(verify(narrowed, { capability: 'write' }))).toBe('capability_denied');
  });

  it('an appended route caveat for another route narrows the token out of this one', () => {
    expect(reasonOf(verify(attenuate(token(), 'plannt_route=history')))).toBe('wrong_route');
  });

  it('a chain of attenuations is honoured', () => {
    const twice = attenuate(attenuate(token(), `weather_valid_until=${NOW + 600}`), 'weather_capabilities=x');
    expect(reasonOf(verify(twice, { now: NOW + 599 }))).toBe('ok');
    expect(reasonOf(verify(twice, { now: NOW + 600 }))).toBe('expired');
  });
});

describe('several macaroons in one credential', () => {
  it('the first valid macaroon wins', () => {
    const first = token({ priceSats: 20 });
    const second = token({ priceSats: 30 });
    const result = verify([first, second]);
    expect(result.ok && result.token.priceSats).toBe(20);
  });

  it('skips invalid macaroons before a valid one', () => {
    const result = verify([Buffer.from('junk'), token({ routeId: 'history' }), token()]);
    expect(reasonOf(result)).toBe('ok');
  });

  it("reports the first macaroon's failure when none verifies", () => {
    const forged = withCaveats(token(), caveatStrings({ priceSats: 9999 }));
    expect(reasonOf(verify([token({ routeId: 'history' }), forged]))).toBe('wrong_route');
    expect(reasonOf(verify([forged, token({ routeId: 'history' })]))).toBe('invalid_signature');
  });
});

describe('key rotation', () => {
  const rotated = keyring([KEY_1, KEY_2], KEY_2.id);

  it('accepts a token minted with key 1 by a keyring {1, 2} whose current key is 2', () => {
    const old = mint({}, { keys: keyring([KEY_1], KEY_1.id) });
    expect(reasonOf(verify(old, {}, { keys: rotated }))).toBe('ok');
  });

  it('accepts a token minted with the new key 2', () => {
    expect(reasonOf(verify(mint({}, { keys: rotated }), {}, { keys: rotated }))).toBe('ok');
  });

  it('rejects a key-1 token with unknown_key once key 1 is removed', () => {
    const old = mint({}, { keys: keyring([KEY_1], KEY_1.id) });
    expect(reasonOf(verify(old, {}, { keys: keyring([KEY_2], KEY_2.id) }))).toBe('unknown_key');
  });

  it('derives a distinct root key per token identifier', () => {
    const a = macaroonRootKey(KEY_1.secret, identifierFor(1, PAYMENT_HASH));
    const b = macaroonRootKey(KEY_1.secret, identifierFor(1, Buffer.alloc(32)));
    expect(a.equals(b)).toBe(false);
    expect(a).toHaveLength(32);
  });
});

describe('keyring', () => {
  it('makes the current key the one new tokens are minted with', () => {
    const ring = keyring([KEY_1, KEY_2], KEY_2.id);
    expect(ring.current).toEqual(KEY_2);
    expect([...ring.byId.keys()]).toEqual([1, 2]);
  });

  it('refuses a current key id that is not configured', () => {
    expect(() => keyring([KEY_1], 7)).toThrow(/current root key id 7/);
  });

  it('refuses duplicate key ids', () => {
    expect(() => keyring([KEY_1, { id: 1, secret: KEY_2.secret }], 1)).toThrow(/unique/);
  });
});

describe('several credentials in one request', () => {
  const one = (mac: Buffer, preimage = PREIMAGE) => credential([mac], preimage);

  it('the first credential that verifies wins, after unusable ones', () => {
    const result = verifyCredentials(
      [one(token(), OTHER_PREIMAGE), one(token({ priceSats: 20 }))],
      NEEDS,
      KEYS,
      LIMITS,
    );
    expect(result.ok && result.token.priceSats).toBe(20);
  });

  it("reports the first credential's failure when none verifies", () => {
    const result = verifyCredentials(
      [one(token(), OTHER_PREIMAGE), one(token({ routeId: 'x' }))],
      NEEDS,
      KEYS,
      LIMITS,
    );
    expect(reasonOf(result)).toBe('preimage_mismatch');
  });
});
