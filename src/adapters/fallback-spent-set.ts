/**
 * `local_fallback`: when the shared spent-set is unavailable, spend in this pod's memory instead of failing.
 * Keeps the API up through a Redis outage at a documented cost: during the outage a token could be used
 * once per replica. Every fallback is reported so it is counted. Tokens spent locally are written back to the
 * shared set when it answers again (at the next background probe), so every replica refuses them afterwards.
 * This pod also remembers the tokens it recently spent through the shared set, so it refuses their replay
 * during an outage instead of spending them again from empty memory.
 */
import { LRUCache } from 'lru-cache';
import { DependencyUnavailable, type SpentSet } from '../core/ports';
import type { MemorySpentSet } from './memory-spent-set';

export function withLocalFallback(
  shared: SpentSet,
  local: MemorySpentSet,
  onFallback: () => void,
  recentCapacity = 100_000,
  now: () => number = Date.now,
): SpentSet {
  // Only a shortcut (the shared set holds the truth), so unlike `local` it may evict: bounded memory.
  const recent = new LRUCache<string, true>({ max: recentCapacity, ttlAutopurge: false });
  // Local spends the shared set has not seen yet, with the time their entry may expire. Bounded like `local`,
  // which refuses new spends when full.
  const unsynced = new Map<string, number>();
  let flushing: Promise<void> | undefined;

  const writeBack = async () => {
    for (const [key, expiresAt] of unsynced) {
      const ttlMs = expiresAt - now();
      if (ttlMs <= 0) {
        unsynced.delete(key);
        continue;
      }
      try {
        // false means another replica spent it through the shared set meanwhile: already counted as spent.
        await shared.spend(Buffer.from(key, 'hex'), ttlMs);
        unsynced.delete(key);
      } catch (err) {
        if (!(err instanceof DependencyUnavailable)) throw err;
        return; // still unavailable: the next probe tries again
      }
    }
  };

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
        const first = await local.spend(paymentHash, ttlMs);
        if (first) unsynced.set(key, now() + ttlMs);
        return first;
      }
    },
    // Readiness probes in the background, never on the check path: the write-back rides on it.
    async probe() {
      await shared.probe();
      if (unsynced.size === 0) return;
      flushing ??= writeBack().finally(() => {
        flushing = undefined;
      });
      await flushing;
    },
    async close() {
      await Promise.all([shared.close(), local.close()]);
    },
  };
}
