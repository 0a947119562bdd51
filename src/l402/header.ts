/**
 * The L402 HTTP header grammar (bLIP-26), accepting the older LSAT scheme too:
 *   Authorization: L402 <macaroon>[,<macaroon>…]:<preimage hex>
 *   WWW-Authenticate: L402 macaroon="<base64>", invoice="<bolt11>"
 */

export const SCHEMES = ['L402', 'LSAT'] as const;

export interface Credential {
  /** Base64 macaroons as sent, in order; the first valid one is used. */
  macaroons: string[];
  preimage: Buffer;
}

export interface HeaderLimits {
  maxHeaderBytes: number;
  maxMacaroons: number;
}

export type HeaderProblem = 'header_too_large' | 'malformed_header' | 'invalid_preimage';

export type ParsedAuthorization =
  | { kind: 'none' }
  | { kind: 'credential'; credential: Credential }
  | { kind: 'invalid'; problem: HeaderProblem; message: string };

const SCHEME = /^\s*(L402|LSAT)\s+/i;
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;
const PREIMAGE = /^[0-9a-fA-F]{64}$/;

/**
 * Parses an Authorization header value. A header of another scheme (Bearer, Basic…) is `none`:
 * it is not ours to judge, and the request is challenged like one without credentials.
 */
export function parseAuthorization(header: string | undefined, limits: HeaderLimits): ParsedAuthorization {
  if (header === undefined || header === '') return { kind: 'none' };
  const scheme = SCHEME.exec(header);
  if (!scheme) return { kind: 'none' };
  if (Buffer.byteLength(header) > limits.maxHeaderBytes) {
    return invalid('header_too_large', `Authorization header is longer than ${limits.maxHeaderBytes} bytes.`);
  }

  const token = header.slice(scheme[0].length).trim();
  const colon = token.lastIndexOf(':');
  if (colon < 0) return invalid('malformed_header', 'Expected "L402 <macaroon>:<preimage>".');
  const preimageHex = token.slice(colon + 1).trim();
  if (!PREIMAGE.test(preimageHex)) {
    return invalid('invalid_preimage', 'The preimage must be 64 hexadecimal characters (32 bytes).');
  }
  const macaroons = token
    .slice(0, colon)
    .split(',')
    .map((m) => m.trim());
  if (macaroons.length > limits.maxMacaroons) {
    return invalid(
      'malformed_header',
      `At most ${limits.maxMacaroons} macaroons are accepted in one header.`,
    );
  }
  if (macaroons.some((m) => !BASE64.test(m))) {
    return invalid('malformed_header', 'Each macaroon must be base64 encoded.');
  }
  return { kind: 'credential', credential: { macaroons, preimage: Buffer.from(preimageHex, 'hex') } };
}

function invalid(problem: HeaderProblem, message: string): ParsedAuthorization {
  return { kind: 'invalid', problem, message };
}

/** Decodes standard or URL-safe base64, with or without padding (Node's decoder takes both alphabets). */
export function decodeBase64(text: string): Buffer {
  return Buffer.from(text, 'base64');
}

/** One WWW-Authenticate value per scheme, so clients that only know LSAT are served too. */
export function challengeHeaders(macaroonBase64: string, invoice: string): string[] {
  return SCHEMES.map((scheme) => `${scheme} macaroon="${macaroonBase64}", invoice="${invoice}"`);
}
