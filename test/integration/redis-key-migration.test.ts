/**
 * Changing the spent-set's key prefix during a rolling upgrade, on a real Redis. Old pods count uses under the
 * legacy prefix only; pods with `legacy_key_prefix` count under both; pods after the upgrade under the new one
 * only. A token used on any of them is refused by all the others: no use is ever served twice.
 */
import { randomBytes } from 'node:crypto';
import { redisSpentSet } from '../../src/adapters/redis-spent-set';
import type { SpentSet, UseLimit } from '../../src/core/ports';
import { deleteRedisKeys, REDIS_URL, uniqueRedisPrefix } from '../support/plannt';

const legacyPrefix = uniqueRedisPrefix();
const newPrefix = uniqueRedisPrefix();
const spentSet = (keyPrefix: string, legacyKeyPrefix?: string) =>
  redisSpentSet({
    target: { mode: 'standalone', url: REDIS_URL },
    keyPrefix,
    commandTimeoutMs: 2000,
    ...(legacyKeyPrefix !== undefined && { legacyKeyPrefix }),
  });

const SINGLE: UseLimit = { limit: 1, ttlMs: 60_000 };
const BUNDLE: UseLimit = { limit: 3, ttlMs: 60_000 };

let oldPod: SpentSet;
let migrating: SpentSet;
let upgraded: SpentSet;

beforeAll(async () => {
  oldPod = spentSet(legacyPrefix);
  migrating = spentSet(newPrefix, legacyPrefix);
  upgraded = spentSet(newPrefix);
  await Promise.all([oldPod.probe(), migrating.probe(), upgraded.probe()]);
});

afterAll(async () => {
  await Promise.all([oldPod.close(), migrating.close(), upgraded.close()]);
  await deleteRedisKeys(legacyPrefix);
  await deleteRedisKeys(newPrefix);
});

const hash = () => randomBytes(32);

describe('a single-use token during the upgrade', () => {
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
});

describe('a counted token during the upgrade', () => {
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
