/**
 * Spend caps, as plain data and one pure function: how much the next payment to a host may cost given
 * what was already spent. The clock is an argument, so the window is testable to the millisecond.
 * A cost is the invoice amount plus the routing fee, so the caps bound what leaves the wallet.
 */

export interface BudgetLimits {
  /** Most one request may cost, fee included. */
  maxPerRequestSats: number;
  /** Most all payments may cost together. */
  maxTotalSats: number;
  /** Most all payments to one host (`host[:port]`) may cost together. */
  maxPerHostSats?: number;
  /** Most the payments of any sliding window of `seconds` may cost together. */
  window?: { seconds: number; maxSats: number };
}

/** One payment as the budget sees it: when, to whom, and what it costs (or may still cost). */
export interface Spend {
  timeMs: number;
  host: string;
  sats: number;
}

export type BudgetLimit = 'per_request' | 'per_host' | 'total' | 'window';

export interface Allowance {
  /** The most the next payment may cost; 0 when a cap is exhausted. */
  sats: number;
  /** The cap that leaves the least room (the first in the order per_request, per_host, window, total). */
  limitedBy: BudgetLimit;
}

export function allowance(
  limits: BudgetLimits,
  spent: readonly Spend[],
  host: string,
  nowMs: number,
): Allowance {
  const sum = (keep: (s: Spend) => boolean) =>
    spent.reduce((total, s) => (keep(s) ? total + s.sats : total), 0);
  const room: [BudgetLimit, number][] = [['per_request', limits.maxPerRequestSats]];
  if (limits.maxPerHostSats !== undefined) {
    room.push(['per_host', limits.maxPerHostSats - sum((s) => s.host === host)]);
  }
  if (limits.window) {
    const since = nowMs - limits.window.seconds * 1000;
    room.push(['window', limits.window.maxSats - sum((s) => s.timeMs > since)]);
  }
  room.push(['total', limits.maxTotalSats - sum(() => true)]);
  let best: Allowance = { sats: Number.POSITIVE_INFINITY, limitedBy: 'per_request' };
  for (const [limitedBy, sats] of room) if (sats < best.sats) best = { sats, limitedBy };
  return { sats: Math.max(0, best.sats), limitedBy: best.limitedBy };
}

/** Throws a RangeError naming the first cap that is not a non-negative integer. */
export function validateLimits(limits: BudgetLimits): BudgetLimits {
  const check = (name: string, value: number | undefined) => {
    if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) {
      throw new RangeError(`budget ${name} must be a non-negative integer of sats, got ${value}`);
    }
  };
  check('maxPerRequestSats', limits.maxPerRequestSats);
  check('maxTotalSats', limits.maxTotalSats);
  check('maxPerHostSats', limits.maxPerHostSats);
  if (limits.window) {
    check('window.maxSats', limits.window.maxSats);
    if (!(limits.window.seconds > 0)) throw new RangeError('budget window.seconds must be positive');
  }
  return limits;
}
