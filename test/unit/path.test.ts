import fc from 'fast-check';
import { normalizePath } from '../../src/core/path';

const normalized = (path: string) => {
  const result = normalizePath(path);
  if (!result.ok) throw new Error(`expected ${path} to normalize, got: ${result.detail}`);
  return result.path;
};
const refused = (path: string) => {
  const result = normalizePath(path);
  if (result.ok) throw new Error(`expected ${path} to be refused, got ${result.path}`);
  return result.detail;
};

describe('RFC 3986 remove_dot_segments (§5.2.4)', () => {
  test.each([
    ['/', '/'],
    ['/a/b/c/./../../g', '/a/g'],
    ['/mid/content=5/../6', '/mid/6'],
    ['/a/./b', '/a/b'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/..', '/'],
    ['/../../a', '/a'],
    ['/public/../v1/generate', '/v1/generate'],
    ['/.well-known/a..b/.c', '/.well-known/a..b/.c'],
  ])('%s → %s', (input, output) => {
    expect(normalized(input)).toBe(output);
  });
});

describe('percent-encoding (§6.2.2)', () => {
  test('unreserved characters are decoded, so %2e is a dot', () => {
    expect(normalized('/public/%2e%2E/v1/%67enerate')).toBe('/v1/generate');
    expect(normalized('/a/.%2e/b')).toBe('/b');
  });

  test('other escapes are kept, with upper-case hex', () => {
    expect(normalized('/a%20b/%c3%a9')).toBe('/a%20b/%C3%A9');
  });
});

describe("Envoy's merge_slashes", () => {
  test('repeated slashes merge; a trailing slash stays', () => {
    expect(normalized('//v1///generate//')).toBe('/v1/generate/');
  });
});

describe('what stays ambiguous is refused', () => {
  test.each([
    ['an encoded slash', '/public/..%2fv1'],
    ['an encoded slash, upper case', '/public/..%2Fv1'],
    ['an encoded backslash', '/public/..%5cv1'],
    ['a backslash', '/public/..\\v1'],
    ['a double encoding', '/public/%252e%252e/v1'],
    ['a triple encoding', '/public/%25252e/v1'],
    ['a dot-dot with a parameter', '/public/..;/v1'],
    ['a dot with a parameter', '/public/.;x/v1'],
    ['a dot-dot with an encoded parameter', '/public/..%3B/v1'],
    ['repeated slashes before a dot-dot', '/public//../v1'],
    ['an encoded control character', '/a%00/b'],
    ['a malformed escape', '/a%2/b'],
    ['a non-hex escape', '/a%zz'],
    ['a non-ASCII character', '/public/．．/v1'],
    ['a raw space', '/a b'],
    ['a path that is not absolute', 'v1/generate'],
    ['an asterisk form', '*'],
  ])('%s: %s', (_name, path) => {
    expect(refused(path)).toEqual(expect.any(String));
  });

  test('a single %25 that is not followed by an escape is kept', () => {
    expect(normalized('/100%25off')).toBe('/100%25off');
  });

  test('a parameter on an ordinary segment is left alone', () => {
    expect(normalized('/v1/generate;v=2')).toBe('/v1/generate;v=2');
  });
});

describe('the shortcut for paths that are already normal', () => {
  // Printable ASCII without % and backslash, weighted towards the characters that make a path not normal.
  const char = fc.oneof(
    fc.constantFrom('/', '.', '.', ';', 'a', 'z', '0', '-', '_', '~'),
    fc
      .integer({ min: 0x21, max: 0x7e })
      .map((c) => String.fromCharCode(c))
      .filter((c) => !'%\\'.includes(c)),
  );
  const path = fc.array(char, { maxLength: 24 }).map((chars) => `/${chars.join('')}`);

  test('gives what the full normalization gives: the path itself, else the same answer', () => {
    fc.assert(
      fc.property(path, fc.nat(), (p, pick) => {
        // An escaped unreserved character decodes to itself, but takes the full normalization.
        const unreserved = [...p].flatMap((c, i) => (/[A-Za-z0-9._~-]/.test(c) ? [i] : []));
        fc.pre(unreserved.length > 0);
        const at = unreserved[pick % unreserved.length] as number;
        const escaped = `${p.slice(0, at)}%${p.charCodeAt(at).toString(16).toUpperCase()}${p.slice(at + 1)}`;
        expect(normalizePath(p)).toEqual(normalizePath(escaped));
      }),
      { seed: 20261203, numRuns: 20_000 },
    );
  });
});
