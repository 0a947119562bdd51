/**
 * `local_fallback`: when the shared spent-set is unavailable, spend in this pod's memory instead of failing.
 * Keeps the API up through a Redis outage at a documented cost: during the outage a token could be used
 * once per replica. Every fallback is reported so it is counted. Tokens spent locally stay spent after the
 * shared set returns, since it never saw them.
 */
import { DependencyUnavailable, type SpentSet } from '../core/ports';
import type { MemorySpentSet } from './memory-spent-set';

export function withLocalFallback(shared: SpentSet, local: MemorySpentSet, onFallback: () => void): SpentSet {
  return {
    name: shared.name,
    async spend(paymentHash, ttlMs) {
      try {
        const first = await shared.spend(paymentHash, ttlMs);
        return first && !local.has(paymentHash);
      } catch (err) {
        if (!(err instanceof DependencyUnavailable)) throw err;
        onFallback();
        return local.spend(paymentHash, ttlMs);
      }
    },
    probe: () => shared.probe(),
    async close() {
      await Promise.all([shared.close(), local.close()]);
    },
  };
}
