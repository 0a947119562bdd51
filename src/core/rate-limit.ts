/**
 * Limits on the challenge path. Every 402 creates an invoice on the Lightning node, so unauthenticated
 * callers could flood it; these bound how often one client, and how many clients at once, can make it do so.
 * Pure: the clock is an argument, and the state is a bounded in-memory map.
 */
import { LRUCache } from 'lru-cache';

export type Admission = { ok: true } | { ok: false; retryAfterSeconds: number };

export interface RateLimiter {
  /** Takes one challenge from `client`'s allowance at `nowMs` (milliseconds since the epoch). */
  take(client: string, nowMs: number): Admission;
}

export interface TokenBucketOptions {
  /** Sustained challenges per second per client. */
  ratePerSecond: number;
  /** Challenges a client may make at once after being idle. */
  burst: number;
  /** Clients remembered; beyond that the least recently seen is forgotten (and starts with a full bucket). */
  maxClients: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

/**
 * A token bucket per client in a bounded LRU. Forgetting a client can only be lenient (it gets a full
 * bucket again), never wrongly strict, and memory stays bounded whatever the number of addresses.
 */
export function tokenBucketLimiter({ ratePerSecond, burst, maxClients }: TokenBucketOptions): RateLimiter {
  if (!(ratePerSecond > 0) || !(burst >= 1) || !(maxClients >= 1))
    throw new RangeError('rate must be > 0, burst >= 1 and maxClients >= 1');
  const buckets = new LRUCache<string, Bucket>({ max: maxClients });
  const perMs = ratePerSecond / 1000;
  return {
    take(client, nowMs) {
      let bucket = buckets.get(client);
      if (!bucket) {
        bucket = { tokens: burst, updatedMs: nowMs };
        buckets.set(client, bucket);
      } else {
        // A clock that steps back must not mint tokens: elapsed time is never negative.
        const elapsed = Math.max(0, nowMs - bucket.updatedMs);
        bucket.tokens = Math.min(burst, bucket.tokens + elapsed * perMs);
        bucket.updatedMs = Math.max(bucket.updatedMs, nowMs);
      }
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return { ok: true };
      }
      return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / ratePerSecond)) };
    },
  };
}

export interface ConcurrencyCap {
  /** A release function when a slot is free, undefined when `max` calls are already running. */
  tryAcquire(): (() => void) | undefined;
  readonly inFlight: number;
}

/** At most `max` invoice creations at once across all clients: a ceiling on the load put on the node. */
export function concurrencyCap(max: number): ConcurrencyCap {
  if (!(max >= 1)) throw new RangeError('max must be >= 1');
  let inFlight = 0;
  return {
    tryAcquire() {
      if (inFlight >= max) return undefined;
      inFlight++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        inFlight--;
      };
    },
    get inFlight() {
      return inFlight;
    },
  };
}
