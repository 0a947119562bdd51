import {
  challengeHeaders,
  decodeBase64,
  type HeaderLimits,
  type ParsedAuthorization,
  parseAuthorization,
  parseCredentials,
  SCHEMES,
} from '../../src/l402/header';
import { mint, PREIMAGE } from '../support/l402';

const LIMITS: HeaderLimits = { maxHeaderBytes: 8192, maxMacaroons: 4 };
const MAC = mint().toString('base64');
const MAC_2 = mint({ routeId: 'other' }).toString('base64');
const HEX = PREIMAGE.toString('hex');

const parse = (header: string | undefined, limits = LIMITS): ParsedAuthorization =>
  parseAuthorization(header, limits);

function expectCredential(parsed: ParsedAuthorization, macaroons: string[], preimage = PREIMAGE): void {
  expect(parsed).toEqual({ kind: 'credential', credential: { macaroons, preimage } });
}

function problemOf(parsed: ParsedAuthorization): string | undefined {
  return parsed.kind === 'invalid' ? parsed.problem : undefined;
}

const urlSafe = (b64: string): string => b64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

describe('the L402 and LSAT schemes', () => {
  it.each(['L402', 'LSAT'])('parses "%s <macaroon>:<preimage>"', (scheme) => {
    expectCredential(parse(`${scheme} ${MAC}:${HEX}`), [MAC]);
  });

  it.each(['l402', 'lsat', 'Lsat', 'L402', 'lSaT'])('matches the scheme %s case-insensitively', (scheme) => {
    expectCredential(parse(`${scheme} ${MAC}:${HEX}`), [MAC]);
  });

  it('accepts an upper-case preimage', () => {
    expectCredential(parse(`L402 ${MAC}:${HEX.toUpperCase()}`), [MAC]);
  });
});

describe('whitespace', () => {
  it('tolerates extra spaces around the scheme, macaroons, colon and preimage', () => {
    expectCredential(parse(`   L402    ${MAC}  :  ${HEX}   `), [MAC]);
  });

  it('tolerates a tab after the scheme', () => {
    expectCredential(parse(`L402\t${MAC}:${HEX}`), [MAC]);
  });

  it('tolerates spaces around the commas between macaroons', () => {
    expectCredential(parse(`L402 ${MAC} , ${MAC_2}:${HEX}`), [MAC, MAC_2]);
  });
});

describe('several macaroons', () => {
  it('keeps comma-separated macaroons in order', () => {
    expectCredential(parse(`L402 ${MAC_2},${MAC}:${HEX}`), [MAC_2, MAC]);
  });

  it('accepts exactly maxMacaroons macaroons', () => {
    const four = [MAC, MAC_2, MAC, MAC_2];
    expectCredential(parse(`L402 ${four.join(',')}:${HEX}`), four);
  });

  it('rejects more than maxMacaroons macaroons as malformed_header', () => {
    const parsed = parse(`L402 ${[MAC, MAC, MAC, MAC, MAC].join(',')}:${HEX}`);
    expect(problemOf(parsed)).toBe('malformed_header');
    expect(parsed.kind === 'invalid' && parsed.message).toMatch(/At most 4 macaroons/);
  });
});

describe('base64 variants', () => {
  it('accepts URL-safe base64 without padding', () => {
    const safe = urlSafe(MAC);
    expect(safe).not.toBe(MAC);
    expectCredential(parse(`L402 ${safe}:${HEX}`), [safe]);
  });

  it('decodes URL-safe and standard base64 to the same bytes', () => {
    const raw = Buffer.from([0xfb, 0xff, 0xbf, 0x00, 0x3e, 0x3f]);
    expect(decodeBase64(raw.toString('base64')).equals(raw)).toBe(true);
    expect(decodeBase64(raw.toString('base64url')).equals(raw)).toBe(true);
    expect(decodeBase64(urlSafe(MAC)).equals(Buffer.from(MAC, 'base64'))).toBe(true);
  });

  it('decodes base64 with or without padding', () => {
    const raw = Buffer.from('ab');
    expect(decodeBase64('YWI=').equals(raw)).toBe(true);
    expect(decodeBase64('YWI').equals(raw)).toBe(true);
  });
});

describe('headers that are not ours', () => {
  it.each([
    ['undefined', undefined],
    ['empty', ''],
    ['Bearer', 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig'],
    ['Basic', 'Basic dXNlcjpwYXNz'],
    ['a scheme that only starts with L402', `L402x ${MAC}:${HEX}`],
    ['the scheme with nothing after it', 'L402'],
  ])('treats %s as none', (_, header) => {
    expect(parse(header)).toEqual({ kind: 'none' });
  });
});

describe('malformed credentials', () => {
  it.each([
    ['no colon', `L402 ${MAC}`],
    ['garbage', 'L402 this is not a credential'],
    ['an empty macaroon', `L402 :${HEX}`],
    ['an empty macaroon between commas', `L402 ${MAC},,${MAC_2}:${HEX}`],
    ['a trailing comma', `L402 ${MAC},:${HEX}`],
    ['non-base64 characters', `L402 ${MAC.slice(0, 10)}!${MAC.slice(10)}:${HEX}`],
    ['padding in the middle', `L402 YW=I:${HEX}`],
    ['a space inside a macaroon', `L402 ${MAC.slice(0, 10)} ${MAC.slice(10)}:${HEX}`],
  ])('rejects %s as malformed_header', (_, header) => {
    const parsed = parse(header);
    expect(problemOf(parsed)).toBe('malformed_header');
    expect(parsed.kind === 'invalid' && parsed.message.length).toBeGreaterThan(0);
  });
});

describe('the preimage', () => {
  it.each([
    ['non-hex', 'zz'.repeat(32)],
    ['63 hex characters', HEX.slice(1)],
    ['65 hex characters', `${HEX}0`],
    ['16 bytes', HEX.slice(0, 32)],
    ['64 bytes', HEX + HEX],
    ['empty', ''],
    ['0x-prefixed', `0x${HEX.slice(2)}`],
    ['base64', PREIMAGE.toString('base64')],
  ])('rejects a %s preimage as invalid_preimage', (_, preimage) => {
    expect(problemOf(parse(`L402 ${MAC}:${preimage}`))).toBe('invalid_preimage');
  });

  it('decodes the preimage from hex', () => {
    const parsed = parse(`L402 ${MAC}:${HEX}`);
    expect(parsed.kind === 'credential' && parsed.credential.preimage?.equals(PREIMAGE)).toBe(true);
  });
});

describe('the size limit', () => {
  const base = `L402 ${MAC}:${HEX}`;

  it('rejects a header longer than maxHeaderBytes as header_too_large', () => {
    expect(problemOf(parse(base, { maxHeaderBytes: base.length - 1, maxMacaroons: 4 }))).toBe(
      'header_too_large',
    );
  });

  it('accepts a header of exactly maxHeaderBytes', () => {
    expectCredential(parse(base, { maxHeaderBytes: base.length, maxMacaroons: 4 }), [MAC]);
  });

  it('rejects a huge header before parsing it', () => {
    const huge = `L402 ${'A'.repeat(100_000)}:${HEX}`;
    expect(problemOf(parse(huge))).toBe('header_too_large');
  });
});

describe('challengeHeaders', () => {
  it('gives one L402 and one LSAT value: macaroon, invoice, then version="0"', () => {
    expect(SCHEMES).toEqual(['L402', 'LSAT']);
    expect(challengeHeaders('bWFj', 'lnbcrt10n1xyz')).toEqual([
      'L402 macaroon="bWFj", invoice="lnbcrt10n1xyz", version="0"',
      'LSAT macaroon="bWFj", invoice="lnbcrt10n1xyz", version="0"',
    ]);
  });
});

describe('parseCredentials: every form a request carries', () => {
  const cred = (mac: string) => `L402 ${mac}:${HEX}`;

  it('splits comma-joined Authorization values at each L402/LSAT scheme, keeping macaroon lists whole', () => {
    const set = parseCredentials(`LSAT ${MAC}:${HEX},L402 ${MAC},${MAC_2}:${HEX}`, undefined, LIMITS);
    expect(set.credentials.map((c) => c.macaroons)).toEqual([[MAC], [MAC, MAC_2]]);
    expect(set.problem).toBeUndefined();
  });

  it('keeps the same token sent under both schemes once', () => {
    const set = parseCredentials(`LSAT ${MAC}:${HEX}, L402 ${MAC}:${HEX}`, undefined, LIMITS);
    expect(set.credentials).toEqual([{ macaroons: [MAC], preimage: PREIMAGE }]);
  });

  it('skips other schemes and reports a malformed extra only as a problem beside the usable credential', () => {
    const set = parseCredentials(`Bearer abc, L402 junk, ${cred(MAC)}, Basic dXNlcg==`, undefined, LIMITS);
    expect(set.credentials).toEqual([{ macaroons: [MAC], preimage: PREIMAGE }]);
    expect(set.problem?.problem).toBe('malformed_header');
  });

  it('reads a hex macaroon header as a credential without a preimage', () => {
    const hex = Buffer.from(MAC, 'base64').toString('hex');
    expect(parseCredentials(undefined, hex.toUpperCase(), LIMITS)).toEqual({
      credentials: [{ macaroons: [Buffer.from(hex, 'hex').toString('base64')] }],
    });
  });

  it('refuses a macaroon header that is not hex, or too long', () => {
    expect(parseCredentials(undefined, MAC, LIMITS).problem?.problem).toBe('malformed_header');
    const long = 'ab'.repeat(LIMITS.maxHeaderBytes);
    expect(parseCredentials(undefined, long, LIMITS).problem?.problem).toBe('header_too_large');
  });

  it('reads at most maxMacaroons credentials from one request', () => {
    const many = Array.from({ length: 10 }, (_, i) => cred(mint({ routeId: `r${i}` }).toString('base64')));
    expect(parseCredentials(many.join(','), undefined, LIMITS).credentials).toHaveLength(LIMITS.maxMacaroons);
  });

  it('gives nothing and no problem for a request without credentials', () => {
    expect(parseCredentials(undefined, undefined, LIMITS)).toEqual({ credentials: [] });
    expect(parseCredentials('Bearer x', '', LIMITS)).toEqual({ credentials: [] });
  });
});
