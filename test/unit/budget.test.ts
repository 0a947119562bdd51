import fc from 'fast-check';
import { allowance, type BudgetLimits, type Spend, validateLimits } from '../../src/client/budget';

const NOW = 1_700_000_000_000;
const spend = (sats: number, host = 'a.example', agoMs = 0): Spend => ({ timeMs: NOW - agoMs, host, sats });

describe('allowance', () => {
  it('is the per-request maximum when nothing was spent', () => {
    expect(allowance({ maxPerRequestSats: 10, maxTotalSats: 100 }, [], 'a.example', NOW)).toEqual({
      sats: 10,
      limitedBy: 'per_request',
    });
  });

  it('is what the total leaves when that is less', () => {
    const limits = { maxPerRequestSats: 10, maxTotalSats: 25 };
    expect(allowance(limits, [spend(10), spend(10)], 'a.example', NOW)).toEqual({
      sats: 5,
      limitedBy: 'total',
    });
    expect(allowance(limits, [spend(10), spend(10), spend(5)], 'a.example', NOW)).toEqual({
      sats: 0,
      limitedBy: 'total',
    });
  });

  it('counts only the host asked about against the per-host maximum', () => {
    const limits = { maxPerRequestSats: 10, maxTotalSats: 100, maxPerHostSats: 12 };
    const spent = [spend(10, 'a.example'), spend(10, 'b.example')];
    expect(allowance(limits, spent, 'a.example', NOW)).toEqual({ sats: 2, limitedBy: 'per_host' });
    expect(allowance(limits, spent, 'c.example', NOW)).toEqual({ sats: 10, limitedBy: 'per_request' });
  });

  it('counts only spends inside the sliding window', () => {
    const limits = { maxPerRequestSats: 10, maxTotalSats: 100, window: { seconds: 60, maxSats: 15 } };
    const spent = [spend(10, 'a.example', 60_000), spend(10, 'a.example', 59_999)];
    // The first is exactly one window old and no longer counts; the second still does.
    expect(allowance(limits, spent, 'a.example', NOW)).toEqual({ sats: 5, limitedBy: 'window' });
    expect(allowance(limits, spent, 'a.example', NOW + 1)).toEqual({ sats: 10, limitedBy: 'per_request' });
  });

  it('never goes below zero when spends overshoot a cap (e.g. a budget lowered between runs)', () => {
    expect(allowance({ maxPerRequestSats: 10, maxTotalSats: 5 }, [spend(20)], 'a.example', NOW).sats).toBe(0);
  });

  it('property: paying only within the allowance never breaks a cap', () => {
    const limitsArb = fc.record({
      maxPerRequestSats: fc.integer({ min: 0, max: 50 }),
      maxTotalSats: fc.integer({ min: 0, max: 300 }),
      maxPerHostSats: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
      window: fc.option(
        fc.record({ seconds: fc.integer({ min: 1, max: 100 }), maxSats: fc.integer({ min: 0, max: 80 }) }),
        {
          nil: undefined,
        },
      ),
    });
    const requestArb = fc.record({
      host: fc.constantFrom('a', 'b', 'c'),
      sats: fc.integer({ min: 1, max: 60 }),
      advanceMs: fc.integer({ min: 0, max: 20_000 }),
    });
    fc.assert(
      fc.property(limitsArb, fc.array(requestArb, { maxLength: 60 }), (limits: BudgetLimits, requests) => {
        const spent: Spend[] = [];
        let now = NOW;
        for (const r of requests) {
          now += r.advanceMs;
          if (r.sats <= allowance(limits, spent, r.host, now).sats)
            spent.push({ timeMs: now, host: r.host, sats: r.sats });
          const sum = (keep: (s: Spend) => boolean) => spent.filter(keep).reduce((t, s) => t + s.sats, 0);
          expect(sum(() => true)).toBeLessThanOrEqual(limits.maxTotalSats);
          for (const s of spent) expect(s.sats).toBeLessThanOrEqual(limits.maxPerRequestSats);
          if (limits.maxPerHostSats !== undefined) {
            for (const host of ['a', 'b', 'c'])
              expect(sum((s) => s.host === host)).toBeLessThanOrEqual(limits.maxPerHostSats);
          }
          const window = limits.window;
          if (window) {
            // Every window ending at a payment holds at most maxSats.
            for (const end of spent) {
              const inside = sum(
                (s) => s.timeMs <= end.timeMs && s.timeMs > end.timeMs - window.seconds * 1000,
              );
              expect(inside).toBeLessThanOrEqual(window.maxSats);
            }
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('validateLimits', () => {
  it.each([
    [{ maxPerRequestSats: -1, maxTotalSats: 10 }, /maxPerRequestSats/],
    [{ maxPerRequestSats: 1.5, maxTotalSats: 10 }, /maxPerRequestSats/],
    [{ maxPerRequestSats: 1, maxTotalSats: Number.NaN }, /maxTotalSats/],
    [{ maxPerRequestSats: 1, maxTotalSats: 10, window: { seconds: 0, maxSats: 1 } }, /window.seconds/],
  ])('rejects %j', (limits, message) => {
    expect(() => validateLimits(limits)).toThrow(message);
  });
});
