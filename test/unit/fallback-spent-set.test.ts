/**
 * local_fallback: spends made in this pod's memory while the shared set was unavailable are written back to
 * it when it returns, so other replicas refuse those tokens too (issue 10, F2). Counted uses: token-kinds.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { withLocalFallback } from '../../src/adapters/fallback-spent-set';
import { memorySpentSet } from '../../src/adapters/memory-spent-set';
import { DependencyUnavailable, type SpentSet } from '../../src/core/ports';

const once = (ttlMs: number) => ({ limit: 1, ttlMs });

/** A shared set that can be taken down and brought back, like Redis. */
function flakyShared(): SpentSet & { down: boolean; inner: SpentSet } {
  const inner = memorySpentSet(1000, 'redis');
  const flaky: SpentSet & { down: boolean; inner: SpentSet } = {
    name: 'redis',
    down: false,
    inner,
    async consume(hash, use, timeoutMs) {
      if (flaky.down) throw new DependencyUnavailable('spent_set', 'Redis is down');
      return inner.consume(hash, use, timeoutMs);
    },
    async refund(hash) {
      if (flaky.down) throw new DependencyUnavailable('spent_set', 'Redis is down');
      return inner.refund(hash);
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
    expect(await pod.consume(hash, once(60_000))).toEqual({ ok: true, used: 1 });
    await expect(pod.probe()).rejects.toThrow();

    shared.down = false;
    await pod.probe(); // readiness probes in the background; the write-back rides on it
    // Another replica, asking the shared set, now refuses the token.
    expect(await shared.inner.consume(hash, once(60_000))).toEqual({ ok: false, why: 'exhausted' });
  });

  test("holds a token it must write back in memory of its own, not in a slice pinning one of node's 8 KiB pools", async () => {
    const shared = flakyShared();
    const pod = withLocalFallback(shared, memorySpentSet(1000, 'local'), () => {});
    // As a request brings it: a slice of the decoded macaroon, in one of node's shared pools.
    const hash = Buffer.from(randomBytes(32).toString('base64'), 'base64');
    expect(hash.buffer.byteLength).toBeGreaterThan(32);
    shared.down = true;
    await pod.consume(hash, once(60_000));
    shared.down = false;
    const written: Buffer[] = [];
    const consume = shared.consume.bind(shared);
    shared.consume = async (h, use, timeout) => {
      written.push(h);
      return consume(h, use, timeout);
    };
    await pod.probe();
    expect(written).toEqual([hash]);
    expect(written[0]?.buffer.byteLength).toBe(32);
  });

  test('a write-back that fails is kept and retried at the next probe', async () => {
    const shared = flakyShared();
    const pod = withLocalFallback(shared, memorySpentSet(1000, 'local'), () => {});
    const hash = randomBytes(32);
    shared.down = true;
    await pod.consume(hash, once(60_000));
    shared.down = false;
    const consume = shared.consume.bind(shared);
    let failOnce = true;
    shared.consume = async (h, use, timeout) => {
      if (failOnce) {
        failOnce = false;
        throw new DependencyUnavailable('spent_set', 'Redis timed out');
      }
      return consume(h, use, timeout);
    };
    await pod.probe();
    await pod.probe();
    expect(await shared.inner.consume(hash, once(60_000))).toEqual({ ok: false, why: 'exhausted' });
  });

  test('an entry past its life is not written back', async () => {
    const shared = flakyShared();
    let now = 1_000_000;
    const pod = withLocalFallback(shared, memorySpentSet(1000, 'local'), () => {}, { nowMs: () => now });
    const hash = randomBytes(32);
    shared.down = true;
    await pod.consume(hash, once(1000));
    now += 2000;
    shared.down = false;
    await pod.probe();
    expect(await shared.inner.consume(hash, once(60_000))).toEqual({ ok: true, used: 1 });
  });
});
