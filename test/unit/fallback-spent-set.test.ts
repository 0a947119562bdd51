/**
 * local_fallback: spends made in this pod's memory while the shared set was unavailable are written back to
 * it when it returns, so other replicas refuse those tokens too (issue 10, F2).
 */
import { randomBytes } from 'node:crypto';
import { withLocalFallback } from '../../src/adapters/fallback-spent-set';
import { memorySpentSet } from '../../src/adapters/memory-spent-set';
import { DependencyUnavailable, type SpentSet } from '../../src/core/ports';

/** A shared set that can be taken down and brought back, like Redis. */
function flakyShared(): SpentSet & { down: boolean; inner: SpentSet } {
  const inner = memorySpentSet(1000, 'redis');
  const flaky = {
    name: 'redis',
    down: false,
    inner,
    async spend(hash: Buffer, ttlMs: number, timeoutMs?: number) {
      if (flaky.down) throw new DependencyUnavailable('spent_set', 'Redis is down');
      return inner.spend(hash, ttlMs, timeoutMs);
    },
    async probe() {
      if (flaky.down) throw new DependencyUnavailable('spent_set', 'Redis is down');
    },
    close: () => inner.close(),
  };
  return flaky;
}

describe('local_fallback writes local spends back', () => {
  test('a token spent locally during an outage is spent in the shared set once it returns', async () => {
    const shared = flakyShared();
    const pod = withLocalFallback(shared, memorySpentSet(1000, 'local'), () => {});
    const hash = randomBytes(32);
    shared.down = true;
    expect(await pod.spend(hash, 60_000)).toBe(true);
    await expect(pod.probe()).rejects.toThrow();

    shared.down = false;
    await pod.probe(); // readiness probes in the background; the write-back rides on it
    // Another replica, asking the shared set, now refuses the token.
    expect(await shared.inner.spend(hash, 60_000)).toBe(false);
  });

  test('a write-back that fails is kept and retried at the next probe', async () => {
    const shared = flakyShared();
    const pod = withLocalFallback(shared, memorySpentSet(1000, 'local'), () => {});
    const hash = randomBytes(32);
    shared.down = true;
    await pod.spend(hash, 60_000);
    shared.down = false;
    const spend = shared.spend.bind(shared);
    let failOnce = true;
    shared.spend = async (h, ttl, timeout) => {
      if (failOnce) {
        failOnce = false;
        throw new DependencyUnavailable('spent_set', 'Redis timed out');
      }
      return spend(h, ttl, timeout);
    };
    await pod.probe();
    await pod.probe();
    expect(await shared.inner.spend(hash, 60_000)).toBe(false);
  });

  test('an entry past its life is not written back', async () => {
    const shared = flakyShared();
    let now = 1_000_000;
    const pod = withLocalFallback(
      shared,
      memorySpentSet(1000, 'local'),
      () => {},
      100,
      () => now,
    );
    const hash = randomBytes(32);
    shared.down = true;
    await pod.spend(hash, 1000);
    now += 2000;
    shared.down = false;
    await pod.probe();
    expect(await shared.inner.spend(hash, 60_000)).toBe(true);
  });
});
