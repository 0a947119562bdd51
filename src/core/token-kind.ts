/**
 * Token kinds are data: a single-use token, an N-use bundle and a time pass differ only in how many uses
 * (and how fast) one payment buys. The rules live here; adapters only count uses against a limit.
 */
import { fewerUses, UNLIMITED, type Uses } from '../l402/caveats';

export type { Uses } from '../l402/caveats';
export { UNLIMITED } from '../l402/caveats';

export type TokenKind = 'single' | 'bundle' | 'pass';

export const TOKEN_KINDS: readonly TokenKind[] = ['single', 'bundle', 'pass'];

export interface TokenTerms {
  uses: Uses;
  /** Per token, across every replica; absent = no bound. */
  maxRequestsPerSecond?: number;
}

export function kindOf(uses: Uses): TokenKind {
  if (uses === UNLIMITED) return 'pass';
  return uses === 1 ? 'single' : 'bundle';
}

/**
 * What a presented token may do on a route: its own caveats, bounded by what the route sells today. The bound
 * matters because a single-use token carries no `plannt_uses` caveat (older tokens never did), so a holder can
 * append `plannt_uses=unlimited` to it: bounded by the route, a token never buys more than the route now sells
 * for the price it was bought at (the price check guarantees at least that price).
 */
export function termsFor(token: TokenTerms, route: Partial<TokenTerms>): TokenTerms {
  const uses = fewerUses(token.uses, route.uses ?? 1);
  // A rate bound on a single use means nothing; leaving it out keeps single-use tokens on the fast path.
  if (uses === 1) return { uses };
  const rates = [token.maxRequestsPerSecond, route.maxRequestsPerSecond].filter(
    (r): r is number => r !== undefined,
  );
  return rates.length ? { uses, maxRequestsPerSecond: Math.min(...rates) } : { uses };
}

/** Whether a use must be counted in the spent-set: all but a pass with no rate bound, which only expires. */
export function needsCounting(terms: TokenTerms): boolean {
  return terms.uses !== UNLIMITED || terms.maxRequestsPerSecond !== undefined;
}

export function remainingAfter(uses: Uses, used: number): Uses {
  return uses === UNLIMITED ? UNLIMITED : Math.max(0, uses - used);
}
