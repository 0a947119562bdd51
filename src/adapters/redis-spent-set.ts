/**
 * Spent-set on Redis, shared by every replica: one `SET key 1 PX ttl NX` per spend, atomic on the server.
 * Keys are the prefix plus the raw 32-byte payment hash (binary-safe, compact).
 * Commands fail fast while Redis is away (no offline queue) so the gate can answer 503 or fall back.
 */
import { randomInt } from 'node:crypto';
import { once } from 'node:events';
import Redis, { Cluster, type RedisOptions } from 'ioredis';
import { DependencyUnavailable, type SpentSet } from '../core/ports';
import { withTimeout } from './timeout';

const DELETE_IF_EQUAL =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

export type RedisTarget =
  | { mode: 'standalone'; url: string }
  | { mode: 'sentinel'; sentinels: { host: string; port: number }[]; masterName: string; password?: string }
  | { mode: 'cluster'; nodes: { host: string; port: number }[]; password?: string };

export interface RedisSpentSetOptions {
  target: RedisTarget;
  keyPrefix: string;
  commandTimeoutMs: number;
}

export function redisSpentSet(options: RedisSpentSetOptions): SpentSet {
  const client = connect(options);
  // Errors surface per command; without a listener ioredis would log every reconnect attempt as unhandled.
  client.on('error', () => {});
  const prefix = Buffer.from(options.keyPrefix, 'utf8');
  const ms = options.commandTimeoutMs;
  const timedOut =
    (after = ms) =>
    () =>
      new DependencyUnavailable('spent_set', `Redis did not answer in ${Math.round(after)} ms`);
  const failed = (err: unknown): never => {
    throw err instanceof DependencyUnavailable
      ? err
      : new DependencyUnavailable('spent_set', 'Redis failed', { cause: err });
  };

  return {
    name: 'redis',
    async spend(paymentHash, ttlMs, timeoutMs = ms) {
      const key = Buffer.concat([prefix, paymentHash]);
      // A value per attempt: if Redis applies the SET but answers after we gave up (and told the client 503),
      // the late OK undoes exactly this attempt, so a paid token is never burnt unserved. Only an attempt that
      // got OK undoes, and no other attempt can write the key until that undo, so the value is a second
      // safeguard, not the mechanism: a small integer suffices, and Redis stores 0–9999 as shared objects,
      // saving 32 bytes per spent token (docs/benchmarks.md).
      const nonce = String(randomInt(10_000));
      const attempt = client.set(key, nonce, 'PX', Math.ceil(ttlMs), 'NX');
      try {
        // The caller's deadline may be closer than the command timeout: whichever comes first.
        const limit = Math.min(ms, timeoutMs);
        return (await withTimeout(attempt, limit, timedOut(limit))) === 'OK';
      } catch (err) {
        attempt.then(
          (reply) => {
            if (reply === 'OK') client.eval(DELETE_IF_EQUAL, 1, key, nonce).catch(() => {});
          },
          () => {},
        );
        return failed(err);
      }
    },
    async probe() {
      // Right after start the connection may still be opening: give it the timeout to get there.
      if (client.status !== 'ready') await withTimeout(once(client, 'ready'), ms, timedOut()).catch(failed);
      await withTimeout(client.ping(), ms, timedOut()).catch(failed);
    },
    async close() {
      await client.quit().catch(() => client.disconnect());
    },
  };
}

function connect({ target, commandTimeoutMs }: RedisSpentSetOptions): Redis | Cluster {
  const common: RedisOptions = {
    enableOfflineQueue: false,
    // Concurrent checks' SETs leave in one socket write: measured 124 → 44 µs per spend (docs/benchmarks.md).
    enableAutoPipelining: true,
    maxRetriesPerRequest: 1,
    // No ioredis commandTimeout: it would reject the SET and hide a late OK; spend() times out itself.
    connectTimeout: Math.max(1000, commandTimeoutMs),
    // Reconnect at least every 250 ms: checks recover within that of Redis returning (a reconnect is cheap).
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 250),
  };
  if (target.mode === 'standalone') return new Redis(target.url, common);
  if (target.mode === 'sentinel') {
    return new Redis({
      ...common,
      sentinels: target.sentinels,
      name: target.masterName,
      ...(target.password && { password: target.password }),
    });
  }
  // No auto-pipelining on Cluster: ioredis 5 groups binary keys by the wrong slot and fails the batch
  // ("All keys in the pipeline should belong to the same slots allocation group"; see redis-modes.test.ts).
  return new Cluster(target.nodes, {
    enableOfflineQueue: false,
    redisOptions: {
      ...common,
      enableAutoPipelining: false,
      ...(target.password && { password: target.password }),
    },
  });
}
