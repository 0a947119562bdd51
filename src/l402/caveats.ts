/**
 * First-party caveats as `condition=value` strings, in the forms aperture and L402 clients use:
 * `services=<name>:<tier>[,…]`, `<service>_valid_until=<unix seconds>`, `<service>_capabilities=<a>[,…]`,
 * plus Plannt's own binding of a token to what was paid for: `plannt_route=<id>`, `plannt_price_sats=<n>`,
 * `plannt_uses=<n|unlimited>` and `plannt_max_rps=<n>` (what was sold: absent = one use, no rate bound),
 * and `preimage=<hex>`, which aperture's clients append to the paid macaroon.
 */

export interface Caveat {
  condition: string;
  value: string;
}

/** Every condition Plannt defines, now or later, starts with this: none of them may be skipped. */
export const PLANNT_PREFIX = 'plannt_';
export const ROUTE_CONDITION = 'plannt_route';
export const PREIMAGE_CONDITION = 'preimage';
export const PRICE_CONDITION = 'plannt_price_sats';
export const USES_CONDITION = 'plannt_uses';
export const MAX_RPS_CONDITION = 'plannt_max_rps';
export const UNLIMITED = 'unlimited';

/** How many requests one token buys: a count, or any number until the token expires (a time pass). */
export type Uses = number | typeof UNLIMITED;
export const SERVICES_CONDITION = 'services';
export const VALID_UNTIL_SUFFIX = '_valid_until';
export const CAPABILITIES_SUFFIX = '_capabilities';

export function formatCaveat({ condition, value }: Caveat): Buffer {
  return Buffer.from(`${condition}=${value}`, 'utf8');
}

/** Returns undefined when the caveat is not of the `condition=value` form. */
export function parseCaveat(raw: Buffer): Caveat | undefined {
  const text = raw.toString('utf8');
  const eq = text.indexOf('=');
  if (eq <= 0) return undefined;
  return { condition: text.slice(0, eq).trim(), value: text.slice(eq + 1).trim() };
}

export interface MintedTerms {
  service: string;
  routeId: string;
  priceSats: number;
  validUntil: number;
  capabilities?: readonly string[];
  /** Absent or 1: a single-use token, minted without the caveat so it stays byte-identical to older ones. */
  uses?: Uses;
  maxRequestsPerSecond?: number;
}

/** The caveats every Plannt token carries; an expiry is always among them. */
export function caveatsFor(terms: MintedTerms): Caveat[] {
  const caveats: Caveat[] = [
    { condition: SERVICES_CONDITION, value: `${terms.service}:0` },
    { condition: `${terms.service}${VALID_UNTIL_SUFFIX}`, value: String(terms.validUntil) },
    { condition: ROUTE_CONDITION, value: terms.routeId },
    { condition: PRICE_CONDITION, value: String(terms.priceSats) },
  ];
  if (terms.capabilities?.length) {
    caveats.push({
      condition: `${terms.service}${CAPABILITIES_SUFFIX}`,
      value: terms.capabilities.join(','),
    });
  }
  if (terms.uses !== undefined && terms.uses !== 1)
    caveats.push({ condition: USES_CONDITION, value: String(terms.uses) });
  if (terms.maxRequestsPerSecond !== undefined)
    caveats.push({ condition: MAX_RPS_CONDITION, value: String(terms.maxRequestsPerSecond) });
  return caveats;
}

/** The narrower of two use counts: any number is narrower than unlimited. */
export function fewerUses(a: Uses, b: Uses): Uses {
  if (a === UNLIMITED) return b;
  if (b === UNLIMITED) return a;
  return Math.min(a, b);
}
