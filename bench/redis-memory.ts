/**
 * Redis memory per spent token, and verify latency with an empty spent-set vs one holding 1 M+ entries.
 *
 *   npm run build && node dist/bench/redis-memory.js [--entries 1000000] [--rate 400] [--seconds 10]
 *
 * A private redis-server on a free port (never the shared one) is filled with single-use entries as Plannt
 * writes them (redis-spent-set.ts: key = key_prefix + the first 16 bytes of the payment hash, value "1",
 * PX ttl, NX), pipelined. Memory per entry = Δ used_memory / entries (INFO memory), cross-checked with
 * MEMORY USAGE on sampled keys. Variants show what the layout costs: the previous ones kept the whole hash.
 * Token kinds (--consume-entries, default 200,000 tokens each) are written by the adapter's own consume(): a
 * single-use token, a bundle after 3 uses (count as an integer), a paced pass (count|second|uses-in-second).
 * Then Plannt (bench/server-host.js, Redis spent-set on that server) is driven by bench/paths-load.js, open
 * loop at --rate verifies/s: empty set, the same set after --entries spends were added, then empty again.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { redisSpentSet, spentKey } from '../src/adapters/redis-spent-set';
import type { UseLimit } from '../src/core/ports';
import { Child } from './ipc';
import type { PathsLoadCommand, PathsLoadEvent, PathsResult } from './paths-load';
import { BENCH_KEY_ID, type ServerCommand, type ServerEvent } from './protocol';
import { type RedisProcess, startRedisProcess } from './redis-process';

const { values: args } = parseArgs({
  options: {
    entries: { type: 'string', default: '1000000' },
    rate: { type: 'string', default: '400' },
    seconds: { type: 'string', default: '10' },
    json: { type: 'string' },
    'consume-entries': { type: 'string', default: '200000' },
  },
});
const CONSUME_ENTRIES = Number(args['consume-entries']);
const ENTRIES = Number(args.entries);
const RATE = Number(args.rate);
const SECONDS = Number(args.seconds);
const DEFAULT_PREFIX = 'p:s:';
const LEGACY_PREFIX = 'plannt:spent:';
const TTL_MS = 3_600_000;

interface Fill {
  variant: string;
  entries: number;
  bytesPerEntry: number;
  memoryUsageSample: number;
  seconds: number;
}

async function usedMemory(redis: RedisProcess): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.client.info('memory'))?.[1] ?? Number.NaN);
}

/** Adds `count` spent entries in Plannt's format (or a variant), pipelined in batches. */
async function fill(
  redis: RedisProcess,
  count: number,
  prefix: string,
  hashBytes: number,
  value: () => Buffer | string,
): Promise<Buffer[]> {
  const p = Buffer.from(prefix);
  const samples: Buffer[] = [];
  for (let done = 0; done < count; ) {
    const batch = Math.min(5000, count - done);
    const pipeline = redis.client.pipeline();
    for (let i = 0; i < batch; i++) {
      const key = Buffer.concat([p, randomBytes(hashBytes)]);
      if (samples.length < 200 && Math.random() < 0.01) samples.push(key);
      pipeline.set(key, value(), 'PX', TTL_MS, 'NX');
    }
    await pipeline.exec();
    done += batch;
  }
  return samples;
}

async function measureFill(
  redis: RedisProcess,
  variant: string,
  prefix: string,
  hashBytes: number,
): Promise<Fill> {
  await redis.client.flushall();
  const before = await usedMemory(redis);
  const started = Date.now();
  const samples = await fill(redis, ENTRIES, prefix, hashBytes, () => '1');
  const seconds = (Date.now() - started) / 1000;
  const after = await usedMemory(redis);
  const usages = await Promise.all(samples.map((k) => redis.client.memory('USAGE', k)));
  const sample = usages.reduce<number>((s, u) => s + Number(u ?? 0), 0) / (usages.length || 1);
  const result = {
    variant,
    entries: ENTRIES,
    bytesPerEntry: (after - before) / ENTRIES,
    memoryUsageSample: sample,
    seconds,
  };
  process.stdout.write(
    `  ${variant.padEnd(44)} ${result.bytesPerEntry.toFixed(1).padStart(8)} B/entry   MEMORY USAGE ${sample.toFixed(0).padStart(4)} B   (${ENTRIES} entries in ${seconds.toFixed(1)} s)\n`,
  );
  return result;
}

/** Tokens used `uses` times each through the real adapter; fewer entries than the fills: one round trip each. */
async function measureConsumes(
  redis: RedisProcess,
  variant: string,
  use: UseLimit,
  uses: number,
): Promise<Fill> {
  const entries = Math.min(ENTRIES, CONSUME_ENTRIES);
  await redis.client.flushall();
  const spentSet = redisSpentSet({
    target: { mode: 'standalone', url: redis.url },
    keyPrefix: DEFAULT_PREFIX,
    commandTimeoutMs: 10_000,
  });
  try {
    await spentSet.probe();
    const before = await usedMemory(redis);
    const started = Date.now();
    const samples: Buffer[] = [];
    for (let done = 0; done < entries; ) {
      const batch = Array.from({ length: Math.min(2000, entries - done) }, () => randomBytes(32));
      for (let i = 0; i < uses; i++) {
        const results = await Promise.all(batch.map((h) => spentSet.consume(h, use)));
        if (results.some((r) => !r.ok)) throw new Error(`${variant}: a use was refused`);
      }
      if (samples.length < 200)
        samples.push(...batch.slice(0, 10).map((h) => spentKey(Buffer.from(DEFAULT_PREFIX), h)));
      done += batch.length;
    }
    const seconds = (Date.now() - started) / 1000;
    const after = await usedMemory(redis);
    const usages = await Promise.all(samples.map((k) => redis.client.memory('USAGE', k)));
    const sample = usages.reduce<number>((s, u) => s + Number(u ?? 0), 0) / (usages.length || 1);
    const result = {
      variant,
      entries,
      bytesPerEntry: (after - before) / entries,
      memoryUsageSample: sample,
      seconds,
    };
    process.stdout.write(
      `  ${variant.padEnd(44)} ${result.bytesPerEntry.toFixed(1).padStart(8)} B/entry   MEMORY USAGE ${sample.toFixed(0).padStart(4)} B   (${entries} tokens in ${seconds.toFixed(1)} s)\n`,
    );
    return result;
  } finally {
    await spentSet.close();
  }
}

const ms = (us: number) => (us / 1000).toFixed(2);

async function main(): Promise<void> {
  const redis = await startRedisProcess();
  const version = /redis_version:(\S+)/.exec(await redis.client.info('server'))?.[1];
  process.stdout.write(`plannt bench: Redis memory per spent token (redis ${version}, pid ${redis.pid})\n\n`);
  const fills: Fill[] = [];
  const phases: { label: string; keys: number; result: PathsResult }[] = [];
  const server = new Child<ServerCommand, ServerEvent>('plannt', 'server-host.js');
  const load = new Child<PathsLoadCommand, PathsLoadEvent>('load', 'paths-load.js');
  try {
    fills.push(
      await measureFill(redis, `Plannt: prefix "${DEFAULT_PREFIX}", 16-byte hash`, DEFAULT_PREFIX, 16),
    );
    fills.push(
      await measureFill(redis, `before: prefix "${DEFAULT_PREFIX}", whole hash`, DEFAULT_PREFIX, 32),
    );
    fills.push(await measureFill(redis, `0.1.0: prefix "${LEGACY_PREFIX}", whole hash`, LEGACY_PREFIX, 32));
    // Token kinds, written by the adapter itself (redis-spent-set.ts consume()), so the format is Plannt's.
    fills.push(
      await measureConsumes(redis, 'consume(): single-use (SET NX "1")', { limit: 1, ttlMs: TTL_MS }, 1),
    );
    fills.push(
      await measureConsumes(
        redis,
        'consume(): 10-use bundle after 3 uses (script)',
        { limit: 10, ttlMs: TTL_MS },
        3,
      ),
    );
    fills.push(
      await measureConsumes(
        redis,
        'consume(): paced pass, 5/s, after 3 uses',
        { limit: 'unlimited', ttlMs: TTL_MS, maxPerSecond: 5 },
        3,
      ),
    );

    // Verify latency: empty, full, empty again.
    await redis.client.flushall();
    const rootKeyHex = randomBytes(32).toString('hex');
    const ready = await server.request(
      {
        type: 'start',
        kind: 'plannt',
        logLevel: 'silent',
        redisUrl: redis.url,
        keyPrefix: DEFAULT_PREFIX,
        rootKeyHex,
      },
      'ready',
    );
    await load.next('ready');
    const run = async (label: string) => {
      const keys = await redis.client.dbsize();
      const { result } = await load.request(
        {
          type: 'run',
          target: `127.0.0.1:${ready.port}`,
          mix: { verify: 1 },
          tokens: { rootKeyHex, keyId: BENCH_KEY_ID, validUntil: Math.floor(Date.now() / 1000) + 3600 },
          count: RATE * SECONDS,
          concurrency: 64,
          ratePerSecond: RATE,
          deadlineMs: 2000,
        },
        'result',
      );
      if ((result.outcomes.allow ?? 0) !== result.requests)
        throw new Error(`${label}: not every verify was allowed: ${JSON.stringify(result.outcomes)}`);
      phases.push({ label, keys, result });
      process.stdout.write(
        `  verify @${RATE}/s, ${label.padEnd(28)} keys ${String(keys).padStart(8)}   p50 ${ms(result.latency.p50)} ms  p90 ${ms(result.latency.p90)} ms  p99 ${ms(result.latency.p99)} ms  max ${ms(result.latency.max)} ms\n`,
      );
    };
    process.stdout.write('\n');
    await run('warm-up (empty)');
    await redis.client.flushall();
    await run('empty spent-set');
    await fill(redis, ENTRIES, DEFAULT_PREFIX, 16, () => '1');
    await run(`${ENTRIES} entries`);
    await redis.client.flushall();
    await run('empty again');
  } finally {
    await load.stop({ type: 'exit' }, 'closed');
    await server.stop({ type: 'stop' }, 'stopped');
    await redis.stop();
  }
  const [plannt] = fills;
  const empty = phases.filter((p) => p.label.startsWith('empty'));
  const full = phases.find((p) => p.keys >= ENTRIES);
  const emptyP50 = empty.reduce((s, p) => s + p.result.latency.p50, 0) / (empty.length || 1);
  const emptyP99 = empty.reduce((s, p) => s + p.result.latency.p99, 0) / (empty.length || 1);
  process.stdout.write(
    `\n  bytes per spent token: ${plannt?.bytesPerEntry.toFixed(1)} (target <= 120: ${(plannt?.bytesPerEntry ?? 999) <= 120 ? 'met' : 'MISSED'})\n` +
      `  verify p50 / p99, ${ENTRIES} entries vs empty: ${ms(full?.result.latency.p50 ?? 0)} / ${ms(full?.result.latency.p99 ?? 0)} ms vs ` +
      `${ms(emptyP50)} / ${ms(emptyP99)} ms (mean of the two empty runs)\n`,
  );
  if (args.json) writeFileSync(args.json, `${JSON.stringify({ fills, phases }, null, 2)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
