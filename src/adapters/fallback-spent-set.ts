/**
 * `local_fallback`: when the shared spent-set is unavailable, spend in this pod's memory instead of failing.
 * Keeps the API up through a Redis outage at a documented cost: during the outage a token could be used
 * once per replica. Every fallback is reported so it is counted. Tokens spent locally stay spent after the
 * shared set returns, since it never saw them. This pod also remembers the tokens it recently spent through the
 * shared set, so it refuses their replay during an outage instead of spending them again from empty memory.
 */
import { LRUCache } from 'lru-cache';
import { DependencyUnavailable, type SpentSet } from '../core/ports';
import type { MemorySpentSet } from './memory-spent-set';

export function withLocalFallback(
  shared: SpentSet,
  local: MemorySpentSet,
  onFallback: () => void,
  recentCapacity = 100_000,
): SpentSet {
  // Only a shortcut (the shared set holds the truth), so unlike `local` it may evict: bounded memory.
  const recent = new LRUCache<string, true>({ max: recentCapacity, ttlAutopurge: false });
  return {
    name: shared.name,
    async spend(paymentHash, ttlMs, timeoutMs) {
      const key = paymentHash.toString('hex');
      try {
        const first = await shared.spend(paymentHash, ttlMs, timeoutMs);
        if (first) recent.set(key, true, { ttl: ttlMs });
        return first && !local.has(paymentHash);
      } catch (err) {
        if (!(err instanceof DependencyUnavailable)) throw err;
        onFallback();
        if (recent.has(key)) return false;
        return local.spend(paymentHash, ttlMs);
      }
    },
    probe: () => shared.probe(),
    async close() {
      await Promise.all([shared.close(), local.close()]);
    },
  };
}
