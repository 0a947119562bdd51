/**
 * Spent-set on Redis, shared by every replica: one atomic command per use. A single-use token is one
 * `SET key 1 PX ttl NX`; a counted one (bundle, pass with a rate bound) one Lua script over the same key, so a
 * token narrowed by a holder to one use and its original count against the same number. The value is the
 * count of uses, plus `|<second>|<uses in it>` when a rate bound applies: one key per token (one cluster
 * slot), and an integer below 10,000 is one of Redis's shared objects, so a counted token costs no more
 * memory than a single-use one (docs/benchmarks.md).
 * Keys are the prefix plus the first 16 bytes of the payment hash (binary): the key then fits jemalloc's 24-byte
 * class, 16 B less per token than the whole hash. Two payments sharing a key needs a 128-bit collision of
 * SHA-256 over preimages LND chose, and would only cost one of them its uses, never give either more.
 * `legacyKeyPrefix` keys are the layout of versions before this one: that prefix plus the whole hash.
 * Commands fail fast while Redis is away (no offline queue) so the gate can answer 503 or fall back.
 * The uses asked for in one turn of the event loop leave in one socket write (`oneWritePerTurn`).
 */
import { once } from 'node:events';
import Redis, { Cluster, type RedisOptions } from 'ioredis';
import { type Consumption, DependencyUnavailable, type SpentSet, type UseLimit } from '../core/ports';
import { withTimeout } from './timeout';

/**
 * KEYS[1]: the token's key. ARGV: limit (0 = unlimited), TTL in ms, uses per second (0 = no bound).
 * Returns {1, used} when the use is counted, {0, used} when the limit is reached, {-1, used} when the second
 * is full. Refused uses are not counted, so the count never passes the limit. Redis's own clock keys the
 * second, so replicas whose clocks differ share one window. A value it cannot read counts as used up.
 */
export const CONSUME_SCRIPT = `
local v = redis.call('GET', KEYS[1])
local used, second, inSecond = 0, 0, 0
if v then
  local u, s, n = string.match(v, '^(%d+)|(%d+)|(%d+)$')
  if u then used, second, inSecond = tonumber(u), tonumber(s), tonumber(n) else used = tonumber(v) end
  if not used then return {0, 0} end
end
local limit, perSecond = tonumber(ARGV[1]), tonumber(ARGV[3])
if limit > 0 and used >= limit then return {0, used} end
local value = used + 1
if perSecond > 0 then
  local now = tonumber(redis.call('TIME')[1])
  if now == second then
    if inSecond >= perSecond then return {-1, used} end
    inSecond = inSecond + 1
  else
    second, inSecond = now, 1
  end
  value = value .. '|' .. second .. '|' .. inSecond
end
if v then redis.call('SET', KEYS[1], value, 'KEEPTTL') else redis.call('SET', KEYS[1], value, 'PX', ARGV[2]) end
return {1, used + 1}
`;

/**
 * Undoes one counted use whose reply came after the caller gave up (the client got a 503, never the use).
 * Decrementing is right even if other uses were counted since: this one was never served, whichever it was.
 */
const UNDO = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local u, rest = string.match(v, '^(%d+)(.*)$')
if not u then return 0 end
local used = tonumber(u)
if used <= 1 then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], (used - 1) .. rest, 'KEEPTTL') end
return 1
`;

/** The key a token's uses are counted under: the prefix and the first 16 bytes of its payment hash. */
export function spentKey(prefix: Buffer, paymentHash: Buffer): Buffer {
  return Buffer.concat([prefix, paymentHash.subarray(0, 16)]);
}

interface ScriptedClient {
  planntConsume(key: Buffer, limit: number, ttlMs: number, perSecond: number): Promise<[number, number]>;
  planntUndo(key: Buffer): Promise<number>;
}

export type RedisTarget =
  | { mode: 'standalone'; url: string }
  | { mode: 'sentinel'; sentinels: { host: string; port: number }[]; masterName: string; password?: string }
  | { mode: 'cluster'; nodes: { host: string; port: number }[]; password?: string };

export interface RedisSpentSetOptions {
  target: RedisTarget;
  keyPrefix: string;
  /**
   * Also count every use as pods of the previous version do: under this prefix plus the whole payment hash
   * (docs/upgrading.md). It may equal `keyPrefix`: the two layouts' keys differ in length.
   */
  legacyKeyPrefix?: string;
  commandTimeoutMs: number;
}

export function redisSpentSet(options: RedisSpentSetOptions): SpentSet {
  const client = connect(options);
  // Errors surface per command; without a listener ioredis would log every reconnect attempt as unhandled.
  client.on('error', () => {});
  // EVALSHA, falling back to EVAL once per connection when the script is not cached.
  client.defineCommand('planntConsume', { numberOfKeys: 1, lua: CONSUME_SCRIPT });
  client.defineCommand('planntUndo', { numberOfKeys: 1, lua: UNDO });
  const scripts = client as unknown as ScriptedClient;
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

  // A Cluster keeps a socket per node and writes each command as it comes.
  const batchWrites = client instanceof Redis ? oneWritePerTurn(client) : () => {};
  const keyOf = (paymentHash: Buffer) => spentKey(prefix, paymentHash);
  const legacy =
    options.legacyKeyPrefix === undefined ? undefined : Buffer.from(options.legacyKeyPrefix, 'utf8');
  const legacyKeyOf = (paymentHash: Buffer) => legacy && Buffer.concat([legacy, paymentHash]);
  /** Every key a use of this token is counted under. */
  const keysOf = (paymentHash: Buffer) => {
    const legacyKey = legacyKeyOf(paymentHash);
    return legacyKey ? [legacyKey, keyOf(paymentHash)] : [keyOf(paymentHash)];
  };

  // One use under one key.
  const count = (key: Buffer, use: UseLimit, ttlMs: number): Promise<Consumption> => {
    batchWrites();
    // One use of a single-use token: SET NX, measured cheaper than the script (docs/benchmarks.md). "1" is
    // the count the script reads, so a bundle and its copy narrowed to one use share the key.
    return use.limit === 1 && use.maxPerSecond === undefined
      ? client
          .set(key, '1', 'PX', ttlMs, 'NX')
          .then((reply) => (reply === 'OK' ? { ok: true, used: 1 } : { ok: false, why: 'exhausted' }))
      : scripts
          .planntConsume(key, use.limit === 'unlimited' ? 0 : use.limit, ttlMs, use.maxPerSecond ?? 0)
          .then(([verdict, used]) =>
            verdict === 1
              ? { ok: true, used }
              : { ok: false, why: verdict === 0 ? 'exhausted' : 'rate_limited' },
          );
  };
  const undo = (keys: Buffer[]) => Promise.all(keys.map((key) => scripts.planntUndo(key).catch(() => 0)));

  return {
    name: 'redis',
    async consume(paymentHash, use, timeoutMs = ms) {
      const key = keyOf(paymentHash);
      const ttlMs = Math.ceil(use.ttlMs);
      const legacyKey = legacyKeyOf(paymentHash);
      // During an upgrade the legacy key decides first, as the old pods' only key; the use must then count
      // under the new key too (pods that dropped the legacy prefix count only there), or it is undone.
      const attempt: Promise<Consumption> = legacyKey
        ? count(legacyKey, use, ttlMs).then(async (old) => {
            if (!old.ok) return old;
            const now = await count(key, use, ttlMs).catch(async (err: unknown) => {
              await undo([legacyKey]);
              throw err;
            });
            if (!now.ok) await undo([legacyKey]);
            return now.ok ? { ok: true, used: Math.max(old.used, now.used) } : now;
          })
        : count(key, use, ttlMs);
      try {
        // The caller's deadline may be closer than the command timeout: whichever comes first.
        const limit = Math.min(ms, timeoutMs);
        return await withTimeout(attempt, limit, timedOut(limit));
      } catch (err) {
        // Redis may still apply the use and answer after we gave up (and told the client 503): undo exactly
        // that use, so a paid token never loses a use its holder was not served.
        attempt.then(
          (result) => {
            if (result.ok) void undo(keysOf(paymentHash));
          },
          () => {},
        );
        return failed(err);
      }
    },
    async refund(paymentHash) {
      const undone = Promise.all(keysOf(paymentHash).map((key) => scripts.planntUndo(key)));
      await withTimeout(undone, ms, timedOut()).catch(failed);
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

/**
 * Corks the client's socket at the first command of a turn and uncorks it at the next tick, so the turn's
 * commands leave in one write: less CPU here and in Redis than a write each (docs/benchmarks.md). A check asks
 * from a promise continuation, and a tick queued there runs only once every queued continuation has. This replaces ioredis's auto-pipelining, which batches the same way with a
 * Pipeline object per batch: a Pipeline defines an accessor on each instance, which keeps it and what it holds
 * through V8's scavenges, and under light load every check is a batch of one (bench/scavenge-survival.ts).
 */
function oneWritePerTurn(client: Redis): () => void {
  let corked = false;
  return () => {
    const { stream } = client;
    if (corked || !stream) return;
    corked = true;
    stream.cork();
    process.nextTick(() => {
      corked = false;
      stream.uncork();
    });
  };
}

function connect({ target, commandTimeoutMs }: RedisSpentSetOptions): Redis | Cluster {
  const common: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    // No ioredis commandTimeout: it would reject the command and hide a late OK; consume() times out itself.
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
  return new Cluster(target.nodes, {
    enableOfflineQueue: false,
    redisOptions: {
      ...common,
      ...(target.password && { password: target.password }),
    },
  });
}
