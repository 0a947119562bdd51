/**
 * In-process spent-set for a single pod or development. Bounded, but it never evicts a live entry:
 * forgetting a used token would let it be replayed, so a full set fails closed instead.
 * Counts uses exactly as the Redis one does, so the two are interchangeable.
 */
import { LRUCache } from 'lru-cache';
import { DependencyUnavailable, type SpentSet } from '../core/ports';

export interface MemorySpentSet extends SpentSet {
  /** Uses counted for this token (0 when none). */
  usedBy(paymentHash: Buffer): number;
  /** Drops a token's count, once the shared set has been told of its uses (fallback-spent-set.ts). */
  forget(paymentHash: Buffer): void;
}

interface Entry {
  used: number;
  /** Unix second of the rate window, and the uses counted in it. */
  second: number;
  inSecond: number;
}

export function memorySpentSet(
  maxEntries: number,
  name = 'memory',
  nowMs: () => number = Date.now,
): MemorySpentSet {
  const counts = new LRUCache<string, Entry>({ max: maxEntries + 1, ttlAutopurge: false });
  return {
    name,
    async consume(paymentHash, use) {
      const key = paymentHash.toString('hex');
      let entry = counts.get(key);
      if (entry && use.limit !== 'unlimited' && entry.used >= use.limit)
        return { ok: false, why: 'exhausted' };
      const second = Math.floor(nowMs() / 1000);
      if (use.maxPerSecond !== undefined && entry?.second === second && entry.inSecond >= use.maxPerSecond)
        return { ok: false, why: 'rate_limited' };
      if (!entry) {
        if (counts.size >= maxEntries) {
          counts.purgeStale();
          if (counts.size >= maxEntries) {
            throw new DependencyUnavailable(
              'spent_set',
              `in-memory spent-set is full (${maxEntries} live tokens)`,
            );
          }
        }
        entry = { used: 0, second, inSecond: 0 };
        // The TTL is set once, at the first use: the count lives as long as the token.
        counts.set(key, entry, { ttl: use.ttlMs });
      }
      entry.used += 1;
      entry.inSecond = entry.second === second ? entry.inSecond + 1 : 1;
      entry.second = second;
      return { ok: true, used: entry.used };
    },
    async refund(paymentHash) {
      const key = paymentHash.toString('hex');
      const entry = counts.get(key);
      if (!entry) return;
      entry.used -= 1;
      if (entry.inSecond > 0) entry.inSecond -= 1;
      if (entry.used <= 0) counts.delete(key);
    },
    usedBy: (paymentHash) => counts.get(paymentHash.toString('hex'))?.used ?? 0,
    forget: (paymentHash) => {
      counts.delete(paymentHash.toString('hex'));
    },
    async probe() {},
    async close() {
      counts.clear();
    },
  };
}
