/** A bench's spent keys in Redis: counted to prove the spends landed, then deleted. */
import type Redis from 'ioredis';

async function scanKeys(redis: Redis, prefix: string, onBatch: (keys: Buffer[]) => Promise<void>) {
  const stream = redis.scanBufferStream({ match: `${prefix}*`, count: 1000 });
  for await (const batch of stream as AsyncIterable<Buffer[]>) if (batch.length) await onBatch(batch);
}

/** How many keys start with `prefix`, and one of them (for its TTL). */
export async function countKeys(redis: Redis, prefix: string): Promise<{ count: number; sample?: Buffer }> {
  let count = 0;
  let sample: Buffer | undefined;
  await scanKeys(redis, prefix, async (keys) => {
    count += keys.length;
    sample ??= keys[0];
  });
  return { count, ...(sample && { sample }) };
}

export async function deleteKeys(redis: Redis, prefix: string): Promise<number> {
  let deleted = 0;
  await scanKeys(redis, prefix, async (keys) => {
    deleted += await redis.del(...keys);
  });
  return deleted;
}
