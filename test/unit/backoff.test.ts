import { backoffDelay } from '../../src/adapters/backoff';

describe('reconnect backoff', () => {
  const bounds = { minMs: 250, maxMs: 10_000 };

  it('doubles from the minimum, between half and all of the step', () => {
    expect(backoffDelay(0, bounds, () => 0)).toBe(125);
    expect(backoffDelay(0, bounds, () => 1)).toBe(250);
    expect(backoffDelay(3, bounds, () => 0)).toBe(1000);
    expect(backoffDelay(3, bounds, () => 1)).toBe(2000);
  });

  it('never exceeds the maximum, however many attempts failed', () => {
    for (const attempt of [6, 7, 50, 1e6]) {
      expect(backoffDelay(attempt, bounds, () => 1)).toBe(10_000);
      expect(backoffDelay(attempt, bounds, () => 0)).toBe(5000);
    }
  });

  it('spreads replicas that failed together', () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(4, bounds)));
    expect(delays.size).toBeGreaterThan(10);
  });
});
