import { createHash, randomBytes } from 'node:crypto';
import { redisSpentSet } from '../../src/adapters/redis-spent-set';
import type { SpentSet } from '../../src/core/ports';
import { type RedisProcs, startCluster, startSentinel } from '../support/redis-procs';

const hash = () => createHash('sha256').update(randomBytes(32)).digest();

async function expectSingleUse(spentSet: SpentSet): Promise<void> {
  await spentSet.probe();
  const hashes = Array.from({ length: 20 }, hash);
  // Across a cluster these keys land on different masters; each must still be spent exactly once.
  const once = { limit: 1, ttlMs: 60_000 };
  expect(await Promise.all(hashes.map((h) => spentSet.consume(h, once)))).toEqual(
    hashes.map(() => ({ ok: true, used: 1 })),
  );
  expect(await Promise.all(hashes.map((h) => spentSet.consume(h, once)))).toEqual(
    hashes.map(() => ({ ok: false, why: 'exhausted' })),
  );
  // Counted tokens go through the script, one key each, on whichever master holds it.
  const bundles = Array.from({ length: 20 }, hash);
  const three = { limit: 3, ttlMs: 60_000, maxPerSecond: 100 };
  for (let use = 1; use <= 3; use++) {
    expect(await Promise.all(bundles.map((h) => spentSet.consume(h, three)))).toEqual(
      bundles.map(() => ({ ok: true, used: use })),
    );
  }
  expect(await Promise.all(bundles.map((h) => spentSet.consume(h, three)))).toEqual(
    bundles.map(() => ({ ok: false, why: 'exhausted' })),
  );
}

describe('the Redis spent-set behind Sentinel', () => {
  let sentinel: RedisProcs;
  beforeAll(async () => {
    sentinel = await startSentinel(6379, 'plannt-test');
  });
  afterAll(() => sentinel.stop());

  test('finds the master through Sentinel and spends each hash once', async () => {
    const spentSet = redisSpentSet({
      target: {
        mode: 'sentinel',
        sentinels: [{ host: '127.0.0.1', port: sentinel.ports[0] ?? 0 }],
        masterName: 'plannt-test',
      },
      keyPrefix: `plannt-test:sentinel:${randomBytes(4).toString('hex')}:`,
      commandTimeoutMs: 1000,
    });
    try {
      await expectSingleUse(spentSet);
    } finally {
      await spentSet.close();
    }
  });
});

describe('the Redis spent-set on a Redis Cluster', () => {
  let cluster: RedisProcs;
  beforeAll(async () => {
    cluster = await startCluster();
  }, 30_000);
  afterAll(() => cluster.stop());

  test('spends each hash once whichever master owns its slot', async () => {
    const spentSet = redisSpentSet({
      target: { mode: 'cluster', nodes: [{ host: '127.0.0.1', port: cluster.ports[0] ?? 0 }] },
      keyPrefix: 'plannt-test:cluster:',
      commandTimeoutMs: 1000,
    });
    try {
      await expectSingleUse(spentSet);
    } finally {
      await spentSet.close();
    }
  });
});
