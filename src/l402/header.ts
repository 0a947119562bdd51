/**
 * The L402 HTTP header grammar (bLIP-26), accepting the older LSAT scheme too:
 *   Authorization: L402 <macaroon>[,<macaroon>…]:<preimage hex>
 *   Macaroon: <macaroon hex with a preimage=<hex> caveat>   (aperture's gRPC clients; also Grpc-Metadata-…)
 *   WWW-Authenticate: L402 macaroon="<base64>", invoice="<bolt11>", version="0"
 */

export const SCHEMES = ['L402', 'LSAT'] as const;

export interface Credential {
  /** Base64 macaroons as sent, in order; the first valid one is used. */
  macaroons: string[];
  /** Absent when the credential came without one: the macaroon's own `preimage=` caveat must carry it. */
  preimage?: Buffer;
}

/**
 * Headers that carry a hex macaroon alone, its preimage in a `preimage=` caveat: aperture's gRPC client
 * interceptor and the L402 specification's gRPC form. Read when no Authorization credential is usable.
 */
export const MACAROON_HEADERS = [
  'macaroon',
  'grpc-metadata-macaroon',
  'token',
  'grpc-metadata-token',
] as const;

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
const HEX_MACAROON = /^(?:[0-9a-fA-F]{2})+$/;
/** Where Envoy or an HTTP client joined repeated Authorization headers with a comma: before each L402 scheme. */
const NEXT_CREDENTIAL = /,\s*(?=(?:L402|LSAT)\s)/i;
/** A credential's preimage ends at the value's end or at a comma that starts another credential. */
const PREIMAGE_END = /^\s*(?:,|$)/;

/** Every usable credential of a request, in the order sent, and the first problem met among the others. */
export interface CredentialSet {
  credentials: Credential[];
  problem?: { problem: HeaderProblem; message: string };
}

/**
 * Reads every credential a request carries: each L402/LSAT value of the Authorization header (repeated
 * headers arrive comma-joined, as Envoy and node join them), then the hex macaroon headers. The same token
 * sent twice (aperture sends an LSAT and an L402 copy) is kept once, so it is judged once. Unusable extras
 * are only reported when nothing usable came with them.
 */
export function parseCredentials(
  authorization: string | undefined,
  macaroonHeader: string | undefined,
  limits: HeaderLimits,
): CredentialSet {
  const set: CredentialSet = { credentials: [] };
  // The dedup keys of set.credentials, in order: rarely more than two, so a list rather than a Set.
  const keys: string[] = [];
  if (authorization) {
    // One credential, the common case, needs no split.
    const values = authorization.includes(',') ? authorization.split(NEXT_CREDENTIAL) : [authorization];
    for (const value of values) {
      if (tooMany(set, limits)) break;
      const scheme = SCHEME.exec(value);
      add(set, keys, value.slice(scheme?.[0].length ?? 0).trim(), parseAuthorization(value, limits));
    }
  }
  if (macaroonHeader) {
    for (const value of macaroonHeader.split(',')) {
      if (tooMany(set, limits)) break;
      const hex = value.trim();
      add(set, keys, hex.toLowerCase(), parseMacaroonHeader(hex, limits));
    }
  }
  return set;
}

function add(set: CredentialSet, keys: string[], key: string, parsed: ParsedAuthorization): void {
  if (parsed.kind === 'invalid') set.problem ??= { problem: parsed.problem, message: parsed.message };
  if (parsed.kind !== 'credential' || keys.includes(key)) return;
  keys.push(key);
  set.credentials.push(parsed.credential);
}

function tooMany(set: CredentialSet, limits: HeaderLimits): boolean {
  return set.credentials.length + (set.problem ? 1 : 0) >= limits.maxMacaroons;
}

function parseMacaroonHeader(hex: string, limits: HeaderLimits): ParsedAuthorization {
  if (hex.length > limits.maxHeaderBytes)
    return invalid('header_too_large', `The macaroon header is longer than ${limits.maxHeaderBytes} bytes.`);
  if (!HEX_MACAROON.test(hex)) return invalid('malformed_header', 'The macaroon header must be hex encoded.');
  return { kind: 'credential', credential: { macaroons: [Buffer.from(hex, 'hex').toString('base64')] } };
}

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
  // Base64 has no colon: the first one ends the macaroons, whatever another scheme joined after it holds.
  const colon = token.indexOf(':');
  if (colon < 0) return invalid('malformed_header', 'Expected "L402 <macaroon>:<preimage>".');
  const rest = token.slice(colon + 1).trimStart();
  const preimageHex = rest.slice(0, 64);
  if (!PREIMAGE.test(preimageHex) || !PREIMAGE_END.test(rest.slice(64))) {
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

/**
 * One WWW-Authenticate value per scheme, L402 first, so clients that only know LSAT are served too.
 * `macaroon=` then `invoice=` open each value exactly as aperture's and lnget's regular expressions require
 * (`L402 macaroon="…", invoice="…"`, one space, one comma); `version="0"` (the L402 protocol
 * specification's parameter) comes last, where every parser we run ignores it. The macaroon is not repeated
 * as `token=`: every client reads `macaroon=` (Alby's newest falls back to it). See README, "For agent builders".
 */
export function challengeHeaders(macaroonBase64: string, invoice: string): string[] {
  return SCHEMES.map((scheme) => `${scheme} macaroon="${macaroonBase64}", invoice="${invoice}", version="0"`);
}

/** One challenge of a WWW-Authenticate header (RFC 9110 §11.6.1). Parameter names are lower-cased. */
export interface AuthChallenge {
  scheme: string;
  params: Record<string, string>;
  token68?: string;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*/;
const isSpace = (c: string | undefined) => c === ' ' || c === '\t';

/**
 * Parses a WWW-Authenticate value into its challenges, in order. HTTP clients (fetch among them) join
 * repeated headers with ", ", so one value can hold `L402 …, LSAT …, Bearer …`; this reads them all.
 * Lenient where servers differ: parameters in any order, optional spaces around `=` and `,`, values
 * double-quoted (with `\` escapes), single-quoted or bare (a bare value runs to the next comma or space,
 * so unquoted base64 survives). Anything unreadable is skipped up to the next comma.
 */
export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const s = header;
  const out: AuthChallenge[] = [];
  let current: AuthChallenge | undefined;
  let i = 0;
  const skipSpace = () => {
    while (isSpace(s[i])) i++;
  };
  const readToken = () => {
    const start = i;
    while (i < s.length && TCHAR.test(s[i] ?? '')) i++;
    return s.slice(start, i);
  };
  const readValue = (): string => {
    const quote = s[i];
    if (quote === '"' || quote === "'") {
      let value = '';
      for (i++; i < s.length && s[i] !== quote; i++) {
        if (s[i] === '\\' && quote === '"' && i + 1 < s.length) i++;
        value += s[i];
      }
      i++; // the closing quote (or the end of an unterminated value)
      return value;
    }
    const start = i;
    while (i < s.length && s[i] !== ',' && !isSpace(s[i])) i++;
    return s.slice(start, i);
  };

  while (i < s.length) {
    skipSpace();
    if (s[i] === ',') {
      i++;
      continue;
    }
    if (i >= s.length) break;
    const name = readToken();
    if (!name) {
      while (i < s.length && s[i] !== ',') i++;
      continue;
    }
    skipSpace();
    if (current && s[i] === '=') {
      i++;
      skipSpace();
      const value = readValue();
      const key = name.toLowerCase();
      if (!(key in current.params)) current.params[key] = value;
      continue;
    }
    current = { scheme: name, params: {} };
    out.push(current);
    // A token68 credential (`Basic dXNlcg==`) rather than parameters: a run of token68 characters that
    // ends the challenge, i.e. is not the `name=` of a parameter.
    const token68 = TOKEN68.exec(s.slice(i))?.[0];
    if (token68) {
      let j = i + token68.length;
      while (isSpace(s[j])) j++;
      if (j >= s.length || s[j] === ',') {
        current.token68 = token68;
        i = j;
      }
    }
  }
  return out;
}
