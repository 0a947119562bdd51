/**
 * `local_fallback`: when the shared spent-set is unavailable, count uses in this process's memory instead of
 * failing. Keeps the API up through a Redis outage at a documented cost: during the outage a token could be used
 * up to its limit once per process (a replica, or each of its workers). Every fallback is reported so it is counted.
 *
 * Uses counted locally are written back to the shared set when it answers again (before this pod next counts
 * the same token, and for all of them after the next successful call or probe), so other replicas refuse them
 * afterwards. The queue of uses to write back is bounded: when it is full, a new token fails closed (503)
 * rather than be counted where no other replica will ever see it. This pod also remembers how many uses the
 * shared set last reported per token, so during an outage it starts counting from there, not from zero.
 */
import { LRUCache } from 'lru-cache';
import { type Consumption, DependencyUnavailable, type SpentSet } from '../core/ports';
import type { MemorySpentSet } from './memory-spent-set';
import { ownCopy } from './own-copy';

interface Pending {
  paymentHash: Buffer;
  /** Uses counted here and not yet written to the shared set. */
  uses: number;
  /** Milliseconds since the epoch when the token's count may go: nothing to write back after it. */
  expiresAt: number;
  /** The write-back in progress: another use of the token waits for it, or it could be counted twice over. */
  flushing?: Promise<void>;
}

export interface FallbackOptions {
  /** Tokens whose shared count this pod remembers (a shortcut: it may evict). */
  recentCapacity?: number;
  /** Tokens with uses waiting to be written back; a new one beyond it fails closed. */
  maxPending?: number;
  nowMs?: () => number;
  /** Told the number of tokens waiting to be written back whenever it changes (a metric). */
  onPending?: (tokens: number) => void;
}

export function withLocalFallback(
  shared: SpentSet,
  local: MemorySpentSet,
  onFallback: () => void,
  options: FallbackOptions = {},
): SpentSet {
  const { recentCapacity = 100_000, maxPending = 100_000, nowMs = Date.now, onPending = () => {} } = options;
  // Only a shortcut (the shared set holds the truth), so unlike `local` it may evict: bounded memory.
  const recent = new LRUCache<string, number>({ max: recentCapacity, ttlAutopurge: false });
  const pending = new Map<string, Pending>();
  let flushingAll = false;

  /** Writes a token's local uses to the shared set, one counted use each, whatever its limit: they happened. */
  async function flush(key: string, entry: Pending, until?: number): Promise<void> {
    while (entry.flushing) await entry.flushing;
    const ttlMs = entry.expiresAt - nowMs();
    if (entry.uses > 0 && ttlMs > 0) {
      entry.flushing = (async () => {
        try {
          while (entry.uses > 0) {
            const timeoutMs = until === undefined ? undefined : Math.max(1, until - Date.now());
            const result = await shared.consume(entry.paymentHash, { limit: 'unlimited', ttlMs }, timeoutMs);
            entry.uses -= 1;
            if (result.ok) recent.set(key, result.used, { ttl: ttlMs });
          }
        } finally {
          entry.flushing = undefined;
        }
      })();
      await entry.flushing;
    }
    if (entry.uses > 0 && ttlMs > 0) return;
    pending.delete(key);
    local.forget(entry.paymentHash);
    onPending(pending.size);
  }

  async function flushAll(): Promise<void> {
    if (flushingAll) return;
    flushingAll = true;
    try {
      for (const [key, entry] of [...pending]) await flush(key, entry);
    } catch {
      // Still unavailable: the next call or probe tries again.
    } finally {
      flushingAll = false;
    }
  }

  async function consumeLocally(
    key: string,
    paymentHash: Buffer,
    use: Parameters<SpentSet['consume']>[1],
  ): Promise<Consumption> {
    onFallback();
    const known = recent.get(key) ?? 0;
    if (use.limit !== 'unlimited' && known >= use.limit) return { ok: false, why: 'exhausted' };
    let entry = pending.get(key);
    if (!entry && pending.size >= maxPending) {
      throw new DependencyUnavailable('spent_set', `${maxPending} tokens already wait to be written back`);
    }
    const limit = use.limit === 'unlimited' ? use.limit : use.limit - known;
    const result = await local.consume(paymentHash, { ...use, limit });
    if (!result.ok) return result;
    if (!entry) {
      // Held until written back, maxPending of them at most: its own 32 bytes, not the request's (own-copy.ts).
      entry = { paymentHash: ownCopy(paymentHash), uses: 0, expiresAt: nowMs() + use.ttlMs };
      pending.set(key, entry);
      onPending(pending.size);
    }
    entry.uses += 1;
    return { ok: true, used: known + result.used };
  }

  return {
    name: shared.name,
    async consume(paymentHash, use, timeoutMs) {
      const key = paymentHash.toString('hex');
      // Writing back and counting share the caller's deadline: answering after it would be a gRPC error.
      const until = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
      const left = () => (until === undefined ? undefined : Math.max(1, until - Date.now()));
      let result: Consumption;
      try {
        // This pod's own outage uses first, or the shared count would not include them.
        const entry = pending.get(key);
        if (entry) await flush(key, entry, until);
        result = await shared.consume(paymentHash, use, left());
      } catch (err) {
        if (!(err instanceof DependencyUnavailable)) throw err;
        return consumeLocally(key, paymentHash, use);
      }
      if (result.ok) recent.set(key, result.used, { ttl: use.ttlMs });
      else if (result.why === 'exhausted' && use.limit !== 'unlimited')
        recent.set(key, use.limit, { ttl: use.ttlMs });
      if (pending.size > 0) void flushAll();
      return result;
    },
    async refund(paymentHash) {
      // A use counted here during the outage is given back here; any other was counted in the shared set.
      const entry = pending.get(paymentHash.toString('hex'));
      if (entry && entry.uses > 0 && !entry.flushing) {
        entry.uses -= 1;
        await local.refund(paymentHash);
        return;
      }
      await shared.refund(paymentHash);
    },
    async probe() {
      await shared.probe();
      await flushAll();
    },
    async close() {
      await Promise.all([shared.close(), local.close()]);
    },
  };
}
