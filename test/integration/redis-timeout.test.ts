/**
 * The spent-set's command timeout measures Redis, not this process's event loop: a reply that sits in the
 * socket while the loop was busy is read before the timeout is declared (issue 10, F7).
 */
import { randomBytes } from 'node:crypto';
import { redisSpentSet } from '../../src/adapters/redis-spent-set';
import { DependencyUnavailable, type SpentSet } from '../../src/core/ports';
import { deleteRedisKeys, uniqueRedisPrefix } from '../support/plannt';
import { type RedisProxy, startRedisProxy } from '../support/redis-proxy';

const SINGLE_USE = { limit: 1, ttlMs: 60_000 } as const;
const TIMEOUT_MS = 100;

/** Keeps the event loop from running for `ms`, as a burst of CPU-bound checks would. */
function blockEventLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {}
}

describe('a busy event loop is not a slow Redis', () => {
  const prefix = uniqueRedisPrefix();
  let spentSet: SpentSet;

  beforeAll(async () => {
    spentSet = redisSpentSet({
      target: { mode: 'standalone', url: 'redis://127.0.0.1:6379' },
      keyPrefix: prefix,
      commandTimeoutMs: TIMEOUT_MS,
    });
    await spentSet.probe();
  });

  afterAll(async () => {
    await spentSet?.close();
    await deleteRedisKeys(prefix);
  });

  it('counts a use whose reply arrived while the loop was blocked past the timeout', async () => {
    for (let i = 0; i < 5; i++) {
      const use = spentSet.consume(randomBytes(32), SINGLE_USE);
      blockEventLoop(TIMEOUT_MS * 3);
      await expect(use).resolves.toEqual({ ok: true, used: 1 });
    }
  });

  it('counts a use whose command was sent before the loop blocked', async () => {
    for (let i = 0; i < 5; i++) {
      const use = spentSet.consume(randomBytes(32), SINGLE_USE);
      // Past the check phase: the pipelined command is written and the timeout armed.
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      blockEventLoop(TIMEOUT_MS * 3);
      await expect(use).resolves.toEqual({ ok: true, used: 1 });
    }
  });

  it('counts a script use (a bundle) the same way', async () => {
    const use = spentSet.consume(randomBytes(32), { limit: 5, ttlMs: 60_000 });
    blockEventLoop(TIMEOUT_MS * 3);
    await expect(use).resolves.toEqual({ ok: true, used: 1 });
  });
});

describe('a Redis that does not answer still times out', () => {
  let proxy: RedisProxy;
  let spentSet: SpentSet;
  const prefix = uniqueRedisPrefix();

  beforeAll(async () => {
    proxy = await startRedisProxy();
    spentSet = redisSpentSet({
      target: { mode: 'standalone', url: proxy.url },
      keyPrefix: prefix,
      commandTimeoutMs: TIMEOUT_MS,
    });
    await spentSet.probe();
    // From here on replies are held far beyond the test: a Redis stalled by a long script or a pause.
    proxy.setReplyDelayMs(600_000);
  });

  afterAll(async () => {
    await proxy?.close();
    await spentSet?.close().catch(() => {});
    await deleteRedisKeys(prefix);
  });

  it('rejects with DependencyUnavailable after the timeout, blocked loop or not', async () => {
    const started = performance.now();
    const use = spentSet.consume(randomBytes(32), SINGLE_USE).catch((err: unknown) => err);
    blockEventLoop(TIMEOUT_MS * 2);
    const err = await use;
    expect(err).toBeInstanceOf(DependencyUnavailable);
    expect((err as Error).message).toMatch(/Redis did not answer/);
    expect(performance.now() - started).toBeGreaterThanOrEqual(TIMEOUT_MS);
  });
});
