/**
 * Bundles and passes counted exactly in a real Redis shared by two replicas: N uses are N allows whatever the
 * concurrency, over gRPC and the HTTP port alike; a pass lasts until its token expires; a paced pass is held
 * to its rate; a use whose Redis reply came too late is not lost; local_fallback uses are written back.
 */
import type * as grpc from '@grpc/grpc-js';
import { authorizationClient, type CheckResult, check } from '../support/envoy-client';
import { httpCall } from '../support/http';
import {
  deleteRedisKeys,
  type Plannt,
  REDIS_URL,
  ROUTES,
  randomRootKey,
  sleep,
  startPlannt,
  uniqueRedisPrefix,
  waitFor,
} from '../support/plannt';
import { type RedisServer, startRedisServer } from '../support/redis-server';

const KIND_ROUTES = [
  ...ROUTES,
  { id: 'bundle', service: 'weather', price_sats: 50, path: { prefix: '/v1/bundle' }, uses: 10 },
  {
    id: 'pass',
    service: 'weather',
    price_sats: 100,
    path: { prefix: '/v1/pass' },
    uses: 'unlimited',
    // Long enough for 10,000 uses on a busy 2-core machine; the test then waits for the expiry.
    token_lifetime_seconds: 60,
    invoice_expiry_seconds: 2,
  },
  {
    id: 'paced',
    service: 'weather',
    price_sats: 100,
    path: { prefix: '/v1/paced' },
    uses: 'unlimited',
    max_requests_per_second: 5,
  },
  { id: 'pair', service: 'weather', price_sats: 20, path: { prefix: '/v1/pair' }, uses: 2 },
];
const at = (path: string) => ({ method: 'GET', host: 'api.example.com', path });
const BUNDLE = at('/v1/bundle');
const CONCURRENT = 1000;

describe('two replicas, one Redis: tokens that last', () => {
  let a: Plannt;
  let b: Plannt;
  const clients: grpc.Client[] = [];
  const prefix = uniqueRedisPrefix();

  beforeAll(async () => {
    const rootKeyHex = randomRootKey();
    const config = {
      routes: KIND_ROUTES,
      // Every refused use is offered a fresh invoice; these tests count uses, not invoices.
      challenge_limits: { per_client_per_second: 0, max_concurrent_invoices: 0 },
      spent_set: { kind: 'redis', redis: { url: REDIS_URL, key_prefix: prefix, command_timeout_ms: 5000 } },
    };
    [a, b] = await Promise.all([startPlannt(config, { rootKeyHex }), startPlannt(config, { rootKeyHex })]);
    // Several connections per replica, as Envoy keeps: concurrent calls spread over them.
    clients.push(...[a, b, a, b].map((p) => authorizationClient(p.app.grpcPort)));
  });

  afterAll(async () => {
    for (const client of clients) client.close();
    await Promise.all([a?.stop(), b?.stop()]);
    await deleteRedisKeys(prefix);
  });

  /** gRPC through one of several connections, or the HTTP port, of either replica: 'allow:<left>' or the reason. */
  async function use(i: number, path: string, authorization: string): Promise<string> {
    const replica = i % 2 === 0 ? a : b;
    if (i % 4 < 2) {
      const res: CheckResult = await check(clients[i % clients.length] as grpc.Client, {
        ...at(path),
        headers: { authorization },
        deadlineMs: 30_000,
      });
      return res.allowed
        ? `allow:${res.clientHeaders['x-l402-uses-remaining']}`
        : String(res.body.error ?? res.status);
    }
    const res = await httpCall(replica.httpUrl, {
      path,
      headers: { host: 'api.example.com', authorization },
      timeoutMs: 30_000,
    });
    return res.status === 200
      ? `allow:${res.header('x-l402-uses-remaining')[0]}`
      : String(res.json().error ?? res.status);
  }

  it(`a 10-use token hit by ${CONCURRENT} concurrent requests over both replicas, gRPC and HTTP: exactly 10 allows`, async () => {
    const paid = await a.buy(BUNDLE);
    expect(paid.challenge.body.uses).toBe(10);
    const results = await Promise.all(
      Array.from({ length: CONCURRENT }, (_, i) => use(i, BUNDLE.path, paid.authorization)),
    );
    const tally: Record<string, number> = {};
    for (const r of results)
      tally[r.startsWith('allow') ? 'allow' : r] = (tally[r.startsWith('allow') ? 'allow' : r] ?? 0) + 1;
    expect(tally).toEqual({ allow: 10, token_exhausted: CONCURRENT - 10 });
    // Each allow told the client a distinct count of what was left: 9 … 0.
    const left = results.filter((r) => r.startsWith('allow')).map((r) => Number(r.slice(6)));
    expect(left.sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const again = await b.check({ ...BUNDLE, headers: { authorization: paid.authorization } });
    expect(again.status).toBe(402);
    expect(again.body.error).toBe('token_exhausted');
    expect(again.header('www-authenticate')).toHaveLength(2);
  }, 120_000);

  it('a bundle tells the upstream what is left, and a client cannot claim it on a single-use token', async () => {
    const paid = await b.buy(at('/v1/pair'));
    const first = await a.check({
      ...at('/v1/pair'),
      headers: { authorization: paid.authorization, 'x-plannt-uses-remaining': '99' },
    });
    expect(first.upstreamHeaders['x-plannt-uses-remaining']).toBe('1');
    expect(first.clientHeaders).toEqual({ 'x-l402-uses-remaining': '1' });
    const single = await a.buy(at('/v1/forecast'));
    const res = await a.check({ ...at('/v1/forecast'), headers: { authorization: single.authorization } });
    expect(res.allowed).toBe(true);
    expect(res.clientHeaders).toEqual({});
    expect(res.removeHeaders).toContain('x-plannt-uses-remaining');
  });

  it('a time pass serves 10,000 requests over both replicas, then is refused once its token expires', async () => {
    const paid = await a.buy(at('/v1/pass'));
    expect(paid.challenge.body.uses).toBe('unlimited');
    const tokenExpiresAt = Date.parse(String(paid.challenge.body.token_expires_at));
    let allowed = 0;
    for (let batch = 0; batch < 200; batch++) {
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => use(batch * 50 + i, '/v1/pass', paid.authorization)),
      );
      allowed += results.filter((r) => r === 'allow:unlimited').length;
    }
    expect(Date.now()).toBeLessThan(tokenExpiresAt);
    expect(allowed).toBe(10_000);
    await waitFor(
      async () =>
        (await a.check({ ...at('/v1/pass'), headers: { authorization: paid.authorization } })).body.error ===
        'expired',
      70_000,
    );
    expect(
      (await b.check({ ...at('/v1/pass'), headers: { authorization: paid.authorization } })).body.error,
    ).toBe('expired');
  }, 180_000);

  it('a paced pass allows its rate per second across replicas and answers 429 token_rate_limited beyond it', async () => {
    const paid = await a.buy(at('/v1/paced'));
    // Start just after a second begins (Redis and this test share the machine's clock), so the burst fits in one.
    while (Date.now() % 1000 > 50) await sleep(5);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => use(i, '/v1/paced', paid.authorization)),
    );
    expect(results.filter((r) => r === 'allow:unlimited')).toHaveLength(5);
    expect(results.filter((r) => r === 'token_rate_limited')).toHaveLength(15);
    const limited = await httpCall(b.httpUrl, {
      path: '/v1/paced',
      headers: { host: 'api.example.com', authorization: paid.authorization },
    });
    if (limited.status === 429) expect(limited.header('retry-after')).toEqual(['1']);
    await sleep(1100);
    expect(await use(0, '/v1/paced', paid.authorization)).toBe('allow:unlimited');
  });
});

describe('Redis answers too late, or not at all', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer({ persistent: false });
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('a use whose reply comes after the timeout is undone: the bundle keeps every use the client was not served', async () => {
    const plannt = await startPlannt(
      {
        routes: KIND_ROUTES,
        spent_set: { kind: 'redis', redis: { url: redis.url, key_prefix: 'late:', command_timeout_ms: 200 } },
      },
      { readinessIntervalMs: 200 },
    );
    try {
      const paid = await plannt.buy(at('/v1/pair'));
      const headers = { authorization: paid.authorization };
      redis.cli('CLIENT', 'PAUSE', '800', 'WRITE');
      const stalled = await plannt.check({ ...at('/v1/pair'), headers });
      expect(stalled.status).toBe(503);
      expect(stalled.body.error).toBe('spent_set_unavailable');
      // Let the paused script run late, and its undo follow.
      await sleep(1200);
      const outcomes: string[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await plannt.check({ ...at('/v1/pair'), headers });
        outcomes.push(
          res.allowed ? `allow:${res.clientHeaders['x-l402-uses-remaining']}` : String(res.body.error),
        );
      }
      expect(outcomes).toEqual(['allow:1', 'allow:0', 'token_exhausted']);
    } finally {
      await plannt.stop();
    }
  });

  it('local_fallback: uses made on replica A while Redis stalls are written back, so replica B refuses them', async () => {
    const rootKeyHex = randomRootKey();
    const spent = (onError: string) => ({
      routes: KIND_ROUTES,
      spent_set: {
        kind: 'redis',
        on_error: onError,
        redis: { url: redis.url, key_prefix: 'fb:', command_timeout_ms: 200 },
      },
    });
    const [replicaA, replicaB] = await Promise.all([
      startPlannt(spent('local_fallback'), { rootKeyHex, readinessIntervalMs: 200 }),
      startPlannt(spent('fail_closed'), { rootKeyHex }),
    ]);
    try {
      const single = await replicaA.buy(at('/v1/forecast'));
      const pair = await replicaA.buy(at('/v1/pair'));
      redis.cli('CLIENT', 'PAUSE', '1000', 'WRITE');
      const singleOnA = await replicaA.check({
        ...at('/v1/forecast'),
        headers: { authorization: single.authorization },
      });
      const pairOnA = await replicaA.check({
        ...at('/v1/pair'),
        headers: { authorization: pair.authorization },
      });
      const pairOnA2 = await replicaA.check({
        ...at('/v1/pair'),
        headers: { authorization: pair.authorization },
      });
      expect([singleOnA.allowed, pairOnA.allowed, pairOnA2.allowed]).toEqual([true, true, true]);
      // Redis returns; A's next probe (every 200 ms) writes its outage uses back.
      await sleep(2000);
      const singleOnB = await replicaB.check({
        ...at('/v1/forecast'),
        headers: { authorization: single.authorization },
      });
      expect(singleOnB.body.error).toBe('token_spent');
      const pairOnB = await replicaB.check({
        ...at('/v1/pair'),
        headers: { authorization: pair.authorization },
      });
      expect(pairOnB.body.error).toBe('token_exhausted');
    } finally {
      await Promise.all([replicaA.stop(), replicaB.stop()]);
    }
  });
});
