/**
 * In-process spent-set for a single pod or development. Bounded, but it never evicts a live entry:
 * forgetting a spent token would let it be replayed, so a full set fails closed instead.
 */
import { LRUCache } from 'lru-cache';
import { DependencyUnavailable, type SpentSet } from '../core/ports';

export interface MemorySpentSet extends SpentSet {
  has(paymentHash: Buffer): boolean;
}

export function memorySpentSet(maxEntries: number, name = 'memory'): MemorySpentSet {
  const spent = new LRUCache<string, true>({ max: maxEntries + 1, ttlAutopurge: false });
  return {
    name,
    async spend(paymentHash, ttlMs) {
      const key = paymentHash.toString('hex');
      if (spent.has(key)) return false;
      if (spent.size >= maxEntries) {
        spent.purgeStale();
        if (spent.size >= maxEntries) {
          throw new DependencyUnavailable(
            'spent_set',
            `in-memory spent-set is full (${maxEntries} live tokens)`,
          );
        }
      }
      spent.set(key, true, { ttl: ttlMs });
      return true;
    },
    has: (paymentHash) => spent.has(paymentHash.toString('hex')),
    async probe() {},
    async close() {
      spent.clear();
    },
  };
}
