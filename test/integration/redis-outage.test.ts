/**
 * The spent-set's Redis is unreachable. fail_closed: a paid token gets a 503 (never an allow, never a
 * gRPC error) and Plannt reports not ready. local_fallback: spends are recorded in this replica's memory.
 */
import type * as grpc from '@grpc/grpc-js';
import { type CheckResult, healthCheck, healthClient } from '../support/envoy-client';
import {
  deleteRedisKeys,
  dependencyUp,
  metricValue,
  type Plannt,
  sleep,
  startPlannt,
  uniqueRedisPrefix,
  waitFor,
} from '../support/plannt';
import { type RedisProxy, startRedisProxy } from '../support/redis-proxy';

const UNREACHABLE = 'redis://127.0.0.1:1';
const FORECAST = { method: 'GET', host: 'api.example.com', path: '/v1/forecast?city=braga' };

/** Key prefixes this file used, removed from Redis when it is done. */
const redisPrefixes: string[] = [];

afterAll(async () => {
  for (const prefix of redisPrefixes) await deleteRedisKeys(prefix);
});

const redisSpentSet = (url: string, onError: 'fail_closed' | 'local_fallback') => {
  const key_prefix = uniqueRedisPrefix();
  redisPrefixes.push(key_prefix);
  return {
    spent_set: { kind: 'redis', on_error: onError, redis: { url, key_prefix, command_timeout_ms: 200 } },
  };
};

function expectSpentSetUnavailable(res: CheckResult): void {
  expect(res.allowed).toBe(false);
  expect(res.raw.http_response).toBe('denied_response');
  expect(res.status).toBe(503);
  expect(res.body.error).toBe('spent_set_unavailable');
  expect(res.header('retry-after')).toEqual(['5']);
  expect(res.header('www-authenticate')).toEqual([]);
}

describe('spent-set on an unreachable Redis with on_error fail_closed', () => {
  let plannt: Plannt;
  let health: grpc.Client;

  beforeAll(async () => {
    plannt = await startPlannt(redisSpentSet(UNREACHABLE, 'fail_closed'));
    health = healthClient(plannt.app.grpcPort);
  });

  afterAll(async () => {
    health?.close();
    await plannt?.stop();
  });

  it('still challenges: issuing an invoice needs no spent-set', async () => {
    const res = await plannt.check(FORECAST);
    expect(res.status).toBe(402);
    expect(res.body.error).toBe('payment_required');
  });

  it('answers a paid token with 503 spent_set_unavailable and retry-after, never an allow or a gRPC error', async () => {
    const paid = await plannt.buy(FORECAST);
    for (let attempt = 0; attempt < 3; attempt++) {
      expectSpentSetUnavailable(
        await plannt.check({ ...FORECAST, headers: { authorization: paid.authorization } }),
      );
    }
    const text = await plannt.metrics();
    expect(metricValue(text, 'plannt_backend_errors_total', { backend: 'redis' })).toBeGreaterThanOrEqual(3);
    expect(metricValue(text, 'plannt_checks_total', { decision: 'allow' })).toBe(0);
  });

  it('still rejects a bad token for what it is, before touching the spent-set', async () => {
    const paid = await plannt.buy(FORECAST);
    const res = await plannt.check({
      ...FORECAST,
      headers: { authorization: `L402 ${paid.macaroon}:${'00'.repeat(32)}` },
    });
    expect(res.status).toBe(402);
    expect(res.body.error).toBe('preimage_mismatch');
  });

  it('stays in service, reporting Redis as down: free requests and challenges need no Redis', async () => {
    const ready = await plannt.admin('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.json()).toMatchObject({
      status: 'ready',
      dependencies: { 'invoice_backend:dev': true, 'spent_set:redis': false },
    });
    expect(await healthCheck(health)).toBe('SERVING');
    expect((await plannt.check({ method: 'GET', host: 'api.example.com', path: '/status' })).allowed).toBe(
      true,
    );
    expect((await plannt.check(FORECAST)).status).toBe(402);
    expect((await plannt.admin('/healthz')).status).toBe(200);
  });
});

describe('spent-set on an unreachable Redis with on_error local_fallback', () => {
  let plannt: Plannt;

  beforeAll(async () => {
    plannt = await startPlannt(redisSpentSet(UNREACHABLE, 'local_fallback'));
  });

  afterAll(async () => {
    await plannt?.stop();
  });

  it('allows a paid token once from local memory, rejects its replay, and counts the fallbacks', async () => {
    const before = metricValue(await plannt.metrics(), 'plannt_spent_set_fallbacks_total');
    const paid = await plannt.buy(FORECAST);
    const headers = { authorization: paid.authorization };

    const first = await plannt.check({ ...FORECAST, headers });
    expect(first.allowed).toBe(true);
    expect(first.upstreamHeaders['x-plannt-payment-hash']).toBe(paid.paymentHash);

    const replay = await plannt.check({ ...FORECAST, headers });
    expect(replay.status).toBe(402);
    expect(replay.body.error).toBe('token_spent');

    const after = metricValue(await plannt.metrics(), 'plannt_spent_set_fallbacks_total');
    expect(after).toBeGreaterThanOrEqual(1);
    expect(after - before).toBe(2);
  });

  it('stays ready while reporting Redis as down, since serving through the outage is the point', async () => {
    const ready = await plannt.admin('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.json()).toMatchObject({ status: 'ready', dependencies: { 'spent_set:redis': false } });
    expect(await plannt.metrics()).toMatch(/plannt_dependency_ready\{dependency="spent_set:redis"\} 0/);
  });
});

describe('a Redis outage that ends, with on_error fail_closed', () => {
  let plannt: Plannt;
  let proxy: RedisProxy;

  beforeAll(async () => {
    proxy = await startRedisProxy();
    plannt = await startPlannt(redisSpentSet(proxy.url, 'fail_closed'), { readinessIntervalMs: 200 });
  });

  const redisUp = () => dependencyUp(plannt, 'spent_set:redis');

  afterAll(async () => {
    await plannt?.stop();
    await proxy?.close();
  });

  it('does not burn a token refused during the outage: it is allowed once Redis is back', async () => {
    expect(await redisUp()).toBe(true);
    const paid = await plannt.buy(FORECAST);
    const headers = { authorization: paid.authorization };

    proxy.setUp(false);
    expect(await waitFor(async () => (await redisUp()) === false, 3000)).toBe(true);
    expectSpentSetUnavailable(await plannt.check({ ...FORECAST, headers }));

    proxy.setUp(true);
    expect(await waitFor(async () => (await redisUp()) === true, 5000)).toBe(true);
    const allowed = await plannt.check({ ...FORECAST, headers });
    expect(allowed.allowed).toBe(true);
    const replay = await plannt.check({ ...FORECAST, headers });
    expect(replay.body.error).toBe('token_spent');
  });

  it('does not burn a token whose spend timed out: the 503 says retry, so the retry must be served', async () => {
    proxy.setUp(true);
    expect(await waitFor(async () => (await redisUp()) === true, 5000)).toBe(true);
    const paid = await plannt.buy(FORECAST);
    const headers = { authorization: paid.authorization };

    // Redis applies the SET NX at once, but its reply arrives after command_timeout_ms (200 ms).
    proxy.setReplyDelayMs(400);
    expectSpentSetUnavailable(await plannt.check({ ...FORECAST, headers }));
    proxy.setReplyDelayMs(0);
    await sleep(600); // the late reply has landed

    // The client was told "unavailable, retry later" and never granted access: its token is unused.
    const retry = await plannt.check({ ...FORECAST, headers });
    expect({ allowed: retry.allowed, error: retry.body.error }).toEqual({ allowed: true, error: undefined });
  });
});
