/**
 * The uses asked for in one turn of the event loop reach Redis in one socket write, as concurrent checks' do:
 * a write each costs this process and Redis more CPU (docs/benchmarks.md).
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { redisSpentSet } from '../../src/adapters/redis-spent-set';
import type { SpentSet } from '../../src/core/ports';
import { deleteRedisKeys, uniqueRedisPrefix } from '../support/plannt';

const REDIS_PORT = 6379;
const USES = 20;
const SINGLE_USE = { limit: 1, ttlMs: 60_000 } as const;
const BUNDLE = { limit: 3, ttlMs: 60_000 } as const;

/** The chunks of each write a socket to Redis hands to the kernel while `during` runs. */
async function writesToRedis(during: () => Promise<unknown>): Promise<number[]> {
  // net.Socket's own stream methods: `_write` for one chunk, `_writev` for the chunks buffered behind a cork.
  const socket = net.Socket.prototype as unknown as {
    _write(this: net.Socket, ...args: unknown[]): void;
    _writev(this: net.Socket, chunks: unknown[], callback: unknown): void;
  };
  const { _write, _writev } = socket;
  const writes: number[] = [];
  socket._write = function (...args) {
    if (this.remotePort === REDIS_PORT) writes.push(1);
    _write.apply(this, args);
  };
  socket._writev = function (chunks, callback) {
    if (this.remotePort === REDIS_PORT) writes.push(chunks.length);
    _writev.call(this, chunks, callback);
  };
  try {
    await during();
  } finally {
    socket._write = _write;
    socket._writev = _writev;
  }
  return writes;
}

describe('Redis spent-set writes', () => {
  const prefix = uniqueRedisPrefix();
  let spentSet: SpentSet;

  beforeAll(async () => {
    spentSet = redisSpentSet({
      target: { mode: 'standalone', url: `redis://127.0.0.1:${REDIS_PORT}` },
      keyPrefix: prefix,
      commandTimeoutMs: 2000,
    });
    await spentSet.probe();
    // Redis caches the counting script from here on: no EVALSHA falls back to EVAL in the test.
    await spentSet.consume(randomBytes(32), BUNDLE);
  });

  afterAll(async () => {
    await spentSet?.close();
    await deleteRedisKeys(prefix);
  });

  it('sends the uses asked for in one turn in one write', async () => {
    let results: unknown[] = [];
    const writes = await writesToRedis(async () => {
      results = await Promise.all(
        Array.from({ length: USES }, (_, i) =>
          spentSet.consume(randomBytes(32), i % 2 ? SINGLE_USE : BUNDLE),
        ),
      );
    });
    expect(results).toEqual(Array(USES).fill({ ok: true, used: 1 }));
    expect(writes).toHaveLength(1);
  });
});
