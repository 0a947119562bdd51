import { challengeHeaders, parseWwwAuthenticate } from '../../src/l402/header';

const MAC = 'AgEEbHNhdAJCAABz+/Q9k5xw==';
const INV = 'lnbcrt100n1pjq8x9upp5';

describe('parseWwwAuthenticate reads what Plannt sends', () => {
  it('reads each of the two challenge headers', () => {
    for (const value of challengeHeaders(MAC, INV)) {
      const [challenge] = parseWwwAuthenticate(value);
      expect(challenge).toEqual({
        scheme: value.slice(0, 4),
        params: { macaroon: MAC, invoice: INV, version: '0' },
      });
    }
  });

  it('reads both when fetch joins them into one value with ", "', () => {
    const joined = challengeHeaders(MAC, INV).join(', ');
    expect(parseWwwAuthenticate(joined)).toEqual([
      { scheme: 'L402', params: { macaroon: MAC, invoice: INV, version: '0' } },
      { scheme: 'LSAT', params: { macaroon: MAC, invoice: INV, version: '0' } },
    ]);
  });
});

describe('spacing, quoting and order', () => {
  it.each([
    ['no space after the comma', `L402 macaroon="${MAC}",invoice="${INV}"`],
    ['spaces around = and ,', `L402   macaroon = "${MAC}" ,  invoice =  "${INV}"  `],
    ['a tab after the scheme', `L402\tmacaroon="${MAC}", invoice="${INV}"`],
    ['invoice first', `L402 invoice="${INV}", macaroon="${MAC}"`],
    ['bare (unquoted) values, base64 padding included', `L402 macaroon=${MAC}, invoice=${INV}`],
    ['single quotes', `L402 macaroon='${MAC}', invoice='${INV}'`],
    ['upper-case parameter names', `L402 MACAROON="${MAC}", Invoice="${INV}"`],
    ['a leading comma and empty list elements', `, L402 macaroon="${MAC}",, invoice="${INV}",`],
  ])('%s', (_name, value) => {
    expect(parseWwwAuthenticate(value)).toEqual([
      { scheme: 'L402', params: { macaroon: MAC, invoice: INV } },
    ]);
  });

  it('unescapes backslashes in quoted strings', () => {
    expect(parseWwwAuthenticate('L402 realm="a \\"b\\" c", invoice="x"')[0]?.params).toEqual({
      realm: 'a "b" c',
      invoice: 'x',
    });
  });

  it('keeps the first of a repeated parameter', () => {
    expect(parseWwwAuthenticate('L402 invoice="a", invoice="b"')[0]?.params.invoice).toBe('a');
  });

  it('reads an unterminated quoted value to the end rather than failing', () => {
    expect(parseWwwAuthenticate('L402 macaroon="abc')[0]?.params.macaroon).toBe('abc');
  });
});

describe('other schemes around ours', () => {
  it('separates Bearer, token68 Basic, L402 and LSAT challenges in one value', () => {
    const value = `Bearer realm="api", error="invalid_token", Basic dXNlcjpwYXNz==, L402 macaroon="${MAC}", invoice="${INV}", LSAT macaroon="${MAC}", invoice="${INV}"`;
    expect(parseWwwAuthenticate(value)).toEqual([
      { scheme: 'Bearer', params: { realm: 'api', error: 'invalid_token' } },
      { scheme: 'Basic', params: {}, token68: 'dXNlcjpwYXNz==' },
      { scheme: 'L402', params: { macaroon: MAC, invoice: INV } },
      { scheme: 'LSAT', params: { macaroon: MAC, invoice: INV } },
    ]);
  });

  it('reads a scheme with no parameters', () => {
    expect(parseWwwAuthenticate('Negotiate, L402 invoice="x"')).toEqual([
      { scheme: 'Negotiate', params: {} },
      { scheme: 'L402', params: { invoice: 'x' } },
    ]);
  });

  it('skips garbage up to the next comma', () => {
    expect(parseWwwAuthenticate('"junk", L402 invoice="x"')).toEqual([
      { scheme: 'L402', params: { invoice: 'x' } },
    ]);
  });

  it('returns nothing for an empty value', () => {
    expect(parseWwwAuthenticate('')).toEqual([]);
    expect(parseWwwAuthenticate(' , ')).toEqual([]);
  });
});
