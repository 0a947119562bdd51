import { concurrencyCap, tokenBucketLimiter } from '../../src/core/rate-limit';
import { clientAddressOf } from '../../src/server/envoy-grpc';

const T0 = 1_700_000_000_000;

describe('per-client token bucket', () => {
  const limiter = () => tokenBucketLimiter({ ratePerSecond: 2, burst: 3, maxClients: 100 });

  it('admits a burst, then refuses with the seconds until the next challenge', () => {
    const l = limiter();
    expect([1, 2, 3].map(() => l.take('10.0.0.1', T0).ok)).toEqual([true, true, true]);
    expect(l.take('10.0.0.1', T0)).toEqual({ ok: false, retryAfterSeconds: 1 });
  });

  it('refills at the configured rate, never above the burst', () => {
    const l = limiter();
    for (let i = 0; i < 3; i++) l.take('a', T0);
    expect(l.take('a', T0 + 400).ok).toBe(false); // 0.8 of a token
    expect(l.take('a', T0 + 500).ok).toBe(true); // 1.0
    expect(l.take('a', T0 + 500).ok).toBe(false);
    // An hour idle is still only a burst of 3.
    const later = T0 + 3_600_000;
    expect([1, 2, 3, 4].map(() => l.take('a', later).ok)).toEqual([true, true, true, false]);
  });

  it('keeps clients apart', () => {
    const l = limiter();
    for (let i = 0; i < 3; i++) l.take('a', T0);
    expect(l.take('a', T0).ok).toBe(false);
    expect(l.take('b', T0).ok).toBe(true);
  });

  it('does not mint tokens when the clock steps back', () => {
    const l = limiter();
    for (let i = 0; i < 3; i++) l.take('a', T0);
    expect(l.take('a', T0 - 60_000).ok).toBe(false);
    expect(l.take('a', T0 + 499).ok).toBe(false);
    expect(l.take('a', T0 + 500).ok).toBe(true);
  });

  it('rounds Retry-After up for slow rates', () => {
    const l = tokenBucketLimiter({ ratePerSecond: 0.1, burst: 1, maxClients: 10 });
    expect(l.take('a', T0).ok).toBe(true);
    expect(l.take('a', T0)).toEqual({ ok: false, retryAfterSeconds: 10 });
    expect(l.take('a', T0 + 2500)).toEqual({ ok: false, retryAfterSeconds: 8 });
  });

  it('stays bounded: beyond maxClients the least recently seen is forgotten, never a false refusal', () => {
    const l = tokenBucketLimiter({ ratePerSecond: 1, burst: 1, maxClients: 2 });
    expect(l.take('a', T0).ok).toBe(true);
    expect(l.take('b', T0).ok).toBe(true);
    expect(l.take('c', T0).ok).toBe(true); // evicts a
    expect(l.take('a', T0).ok).toBe(true); // a starts again with a full bucket; evicts b
    expect(l.take('c', T0).ok).toBe(false); // c is remembered
  });

  it('rejects nonsensical settings', () => {
    expect(() => tokenBucketLimiter({ ratePerSecond: 0, burst: 1, maxClients: 1 })).toThrow(RangeError);
    expect(() => tokenBucketLimiter({ ratePerSecond: 1, burst: 0, maxClients: 1 })).toThrow(RangeError);
  });
});

describe('global cap on invoice creations in flight', () => {
  it('hands out at most max slots and takes them back on release', () => {
    const cap = concurrencyCap(2);
    const a = cap.tryAcquire();
    const b = cap.tryAcquire();
    expect(a && b).toBeDefined();
    expect(cap.tryAcquire()).toBeUndefined();
    a?.();
    a?.(); // releasing twice frees one slot only
    expect(cap.inFlight).toBe(1);
    expect(cap.tryAcquire()).toBeDefined();
    expect(cap.tryAcquire()).toBeUndefined();
  });
});

describe('client address from the Envoy peer and x-forwarded-for', () => {
  it('uses the peer address when no proxy hop is trusted, whatever x-forwarded-for says', () => {
    expect(clientAddressOf('203.0.113.7', '1.1.1.1', 0)).toBe('203.0.113.7');
    expect(clientAddressOf('203.0.113.7', undefined, 0)).toBe('203.0.113.7');
  });

  it('takes the Nth entry from the right with N trusted hops, ignoring what the client prepended', () => {
    const xff = 'spoofed-1, spoofed-2, 198.51.100.4, 10.0.0.5';
    expect(clientAddressOf('10.0.0.9', xff, 1)).toBe('10.0.0.5');
    expect(clientAddressOf('10.0.0.9', xff, 2)).toBe('198.51.100.4');
  });

  it('falls back to the peer when x-forwarded-for has fewer entries than trusted hops, or an empty one', () => {
    expect(clientAddressOf('10.0.0.9', '198.51.100.4', 2)).toBe('10.0.0.9');
    expect(clientAddressOf('10.0.0.9', undefined, 2)).toBe('10.0.0.9');
    expect(clientAddressOf('10.0.0.9', 'a, ,b', 2)).toBe('10.0.0.9');
  });

  it('bounds the key length and drops empty addresses', () => {
    expect(clientAddressOf('x'.repeat(5000), undefined, 0)).toHaveLength(64);
    expect(clientAddressOf('', undefined, 0)).toBeUndefined();
    expect(clientAddressOf(undefined, undefined, 0)).toBeUndefined();
  });
});
