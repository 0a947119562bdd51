/**
 * Changing the spent-set's key layout during a rolling upgrade, on a real Redis. Pods of the previous version
 * count uses under their prefix plus the whole payment hash; pods with `legacy_key_prefix` count under that
 * layout and the new one (the prefix plus 16 bytes of the hash); pods after the upgrade under the new one only.
 * A token used on any of them is refused by all the others: no use is ever served twice. Both upgrades are
 * run: to another prefix (the old default `plannt:spent:` to `p:s:`) and keeping a prefix of one's own.
 */
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { CONSUME_SCRIPT, redisSpentSet } from '../../src/adapters/redis-spent-set';
import type { Consumption, UseLimit } from '../../src/core/ports';
import { deleteRedisKeys, REDIS_URL, spentKey, uniqueRedisPrefix } from '../support/plannt';

const spentSet = (keyPrefix: string, legacyKeyPrefix?: string) =>
  redisSpentSet({
    target: { mode: 'standalone', url: REDIS_URL },
    keyPrefix,
    commandTimeoutMs: 2000,
    ...(legacyKeyPrefix !== undefined && { legacyKeyPrefix }),
  });

/** A pod of the previous version: the commands it sent, keyed by its prefix and the whole payment hash. */
function previousVersionPod(redis: Redis, prefix: string) {
  return {
    async consume(paymentHash: Buffer, use: UseLimit): Promise<Consumption> {
      const key = Buffer.concat([Buffer.from(prefix), paymentHash]);
      if (use.limit === 1) {
        const reply = await redis.set(key, '1', 'PX', use.ttlMs, 'NX');
        return reply === 'OK' ? { ok: true, used: 1 } : { ok: false, why: 'exhausted' };
      }
      const limit = use.limit === 'unlimited' ? 0 : use.limit;
      const [verdict, used] = (await redis.eval(CONSUME_SCRIPT, 1, key, limit, use.ttlMs, 0)) as number[];
      return verdict === 1 ? { ok: true, used: used ?? 0 } : { ok: false, why: 'exhausted' };
    },
  };
}

const SINGLE: UseLimit = { limit: 1, ttlMs: 60_000 };
const BUNDLE: UseLimit = { limit: 3, ttlMs: 60_000 };

const ownPrefix = uniqueRedisPrefix();
const upgrades = [
  { name: 'to another prefix', legacyPrefix: uniqueRedisPrefix(), newPrefix: uniqueRedisPrefix() },
  { name: 'keeping its own prefix', legacyPrefix: ownPrefix, newPrefix: ownPrefix },
];

describe.each(upgrades)('an upgrade $name', ({ legacyPrefix, newPrefix }) => {
  const redis = new Redis(REDIS_URL);
  const oldPod = previousVersionPod(redis, legacyPrefix);
  const migrating = spentSet(newPrefix, legacyPrefix);
  const upgraded = spentSet(newPrefix);

  beforeAll(() => Promise.all([migrating.probe(), upgraded.probe()]));

  afterAll(async () => {
    await Promise.all([migrating.close(), upgraded.close(), redis.quit()]);
    await deleteRedisKeys(legacyPrefix);
    await deleteRedisKeys(newPrefix);
  });

  const hash = () => randomBytes(32);

  describe('a single-use token', () => {
    it('is refused by a migrating pod when an old pod spent it under the legacy key', async () => {
      const token = hash();
      expect(await oldPod.consume(token, SINGLE)).toEqual({ ok: true, used: 1 });
      expect(await migrating.consume(token, SINGLE)).toEqual({ ok: false, why: 'exhausted' });
    });

    it('is refused by an old pod and by an upgraded pod when a migrating pod spent it', async () => {
      const token = hash();
      expect(await migrating.consume(token, SINGLE)).toEqual({ ok: true, used: 1 });
      expect(await oldPod.consume(token, SINGLE)).toEqual({ ok: false, why: 'exhausted' });
      expect(await upgraded.consume(token, SINGLE)).toEqual({ ok: false, why: 'exhausted' });
    });

    it('is refused by a migrating pod when an upgraded pod spent it, and leaves the legacy key unspent', async () => {
      const token = hash();
      expect(await upgraded.consume(token, SINGLE)).toEqual({ ok: true, used: 1 });
      expect(await migrating.consume(token, SINGLE)).toEqual({ ok: false, why: 'exhausted' });
      // The refused use was undone under the legacy key: the holder's use was not taken by the refusal.
      await expect(oldPod.consume(token, SINGLE)).resolves.toEqual({ ok: true, used: 1 });
    });

    it('is allowed exactly once among 60 concurrent uses spread over old and migrating pods', async () => {
      const token = hash();
      const results = await Promise.all(
        Array.from({ length: 60 }, (_, i) => (i % 2 ? oldPod : migrating).consume(token, SINGLE)),
      );
      expect(results.filter((r) => r.ok)).toHaveLength(1);
    });
    it('is free again on old and upgraded pods when a migrating pod gave its use back', async () => {
      const token = hash();
      expect(await migrating.consume(token, SINGLE)).toEqual({ ok: true, used: 1 });
      await migrating.refund(token);
      expect(await oldPod.consume(token, SINGLE)).toEqual({ ok: true, used: 1 });
      expect(await upgraded.consume(token, SINGLE)).toEqual({ ok: true, used: 1 });
    });

    it('is keyed by an upgraded pod with the prefix and the first 16 bytes of its hash', async () => {
      const token = hash();
      await upgraded.consume(token, SINGLE);
      expect(await redis.exists(spentKey(newPrefix, token))).toBe(1);
    });
  });

  describe('a counted token', () => {
    it('has only the uses left that an old pod did not serve', async () => {
      const token = hash();
      expect(await oldPod.consume(token, BUNDLE)).toEqual({ ok: true, used: 1 });
      expect(await oldPod.consume(token, BUNDLE)).toEqual({ ok: true, used: 2 });
      expect(await migrating.consume(token, BUNDLE)).toEqual({ ok: true, used: 3 });
      expect(await migrating.consume(token, BUNDLE)).toEqual({ ok: false, why: 'exhausted' });
      expect(await oldPod.consume(token, BUNDLE)).toEqual({ ok: false, why: 'exhausted' });
    });

    it('counts a migrating pod’s uses where old and upgraded pods both see them', async () => {
      const token = hash();
      for (let i = 1; i <= 3; i++)
        expect(await migrating.consume(token, BUNDLE)).toEqual({ ok: true, used: i });
      expect(await oldPod.consume(token, BUNDLE)).toEqual({ ok: false, why: 'exhausted' });
      expect(await upgraded.consume(token, BUNDLE)).toEqual({ ok: false, why: 'exhausted' });
    });
  });
});
