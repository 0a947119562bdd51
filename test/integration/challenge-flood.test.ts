/**
 * Every 402 creates an invoice on the Lightning node, so an unauthenticated flood is a denial of service on
 * it. challenge_limits bound that: a token bucket per client address, and a cap on invoice creations in
 * flight. Excess gets 429 rate_limited with Retry-After, and no invoice.
 */
import { type CheckResult, checkRaw, parseCheckResponse } from '../support/envoy-client';
import { type FakeLnd, startFakeLnd } from '../support/fake-lnd';
import { metricValue, type Plannt, startPlannt } from '../support/plannt';

const FORECAST = { method: 'GET', host: 'api.example.com', path: '/v1/forecast?city=tavira' };
const ATTACKER = '198.51.100.66';
const HONEST = '203.0.113.20';

/** Retry-After is the time until the client's bucket holds a token again: between `min` and `max` seconds. */
function expectRateLimited(res: CheckResult, min: number, max = min): void {
  expect(res.allowed).toBe(false);
  expect(res.status).toBe(429);
  expect(res.body.error).toBe('rate_limited');
  expect(res.header('retry-after')).toHaveLength(1);
  const retryAfter = Number(res.header('retry-after')[0]);
  expect(retryAfter).toBeGreaterThanOrEqual(min);
  expect(retryAfter).toBeLessThanOrEqual(max);
  expect(res.header('www-authenticate')).toEqual([]);
  expect(res.body.invoice).toBeUndefined();
}

const challenges = async (p: Plannt) => metricValue(await p.metrics(), 'plannt_challenges_total');

describe('per-client challenge rate limit', () => {
  let plannt: Plannt;

  beforeAll(async () => {
    plannt = await startPlannt({
      // A refill takes 100 s, far longer than this suite, so counts are exact.
      challenge_limits: { per_client_per_second: 0.01, per_client_burst: 3, max_concurrent_invoices: 0 },
    });
  });

  afterAll(async () => {
    await plannt?.stop();
  });

  it('answers a flood from one address with 429 after the burst, creating no more invoices', async () => {
    const before = await challenges(plannt);
    const results = await Promise.all(
      Array.from({ length: 200 }, () => plannt.check({ ...FORECAST, sourceAddress: ATTACKER })),
    );
    const tally: Record<number, number> = {};
    for (const r of results) tally[r.status] = (tally[r.status] ?? 0) + 1;
    expect(tally).toEqual({ 402: 3, 429: 197 });
    for (const r of results.filter((x) => x.status === 429)) expectRateLimited(r, 80, 100);
    expect((await challenges(plannt)) - before).toBe(3);
    const text = await plannt.metrics();
    expect(metricValue(text, 'plannt_rejections_total', { reason: 'rate_limited' })).toBe(197);
    expect(metricValue(text, 'plannt_checks_total', { decision: 'deny', reason: 'rate_limited' })).toBe(197);
  });

  it('keeps serving other clients during the flood', async () => {
    const res = await plannt.check({ ...FORECAST, sourceAddress: HONEST });
    expect(res.status).toBe(402);
    expect(res.header('www-authenticate')).toHaveLength(2);
  });

  it('still verifies a paid token from a limited client; its replay is told to come back, token_spent in the detail', async () => {
    const paid = await plannt.buy({ ...FORECAST, sourceAddress: '192.0.2.30' });
    const headers = { authorization: paid.authorization };
    const allowed = await plannt.check({ ...FORECAST, headers, sourceAddress: ATTACKER });
    expect(allowed.allowed).toBe(true);
    const replay = await plannt.check({ ...FORECAST, headers, sourceAddress: ATTACKER });
    expect([replay.status, replay.body.error]).toEqual([429, 'rate_limited']);
    expect(String(replay.body.detail)).toMatch(/^token_spent; /);
    expect(replay.header('retry-after')).toHaveLength(1);
    expect(replay.header('www-authenticate')).toEqual([]);
  });

  it('issues a fresh invoice to every challenge, never a recent unpaid one (no reuse, by design)', async () => {
    const client = '192.0.2.40';
    const first = await plannt.check({ ...FORECAST, sourceAddress: client });
    const second = await plannt.check({ ...FORECAST, sourceAddress: client });
    expect([first.status, second.status]).toEqual([402, 402]);
    expect(first.body.payment_hash).not.toBe(second.body.payment_hash);
    expect(first.body.invoice).not.toBe(second.body.invoice);
  });
});

describe('client address behind trusted proxies (trusted_hops: 1)', () => {
  let plannt: Plannt;

  beforeAll(async () => {
    plannt = await startPlannt({
      client_address: { trusted_hops: 1 },
      challenge_limits: { per_client_per_second: 0.01, per_client_burst: 1, max_concurrent_invoices: 0 },
    });
  });

  afterAll(async () => {
    await plannt?.stop();
  });

  const via = (xff: string) =>
    plannt.check({ ...FORECAST, sourceAddress: '10.0.0.2', headers: { 'x-forwarded-for': xff } });

  it('limits by the address the trusted proxy saw, not by the shared proxy peer', async () => {
    expect((await via('198.51.100.1')).status).toBe(402);
    expect((await via('198.51.100.2')).status).toBe(402);
    expect((await via('198.51.100.1')).status).toBe(429);
  });

  it('cannot be escaped by prepending forged entries to x-forwarded-for', async () => {
    expect((await via('1.2.3.4, 198.51.100.2')).status).toBe(429);
    expect((await via('5.6.7.8, 9.9.9.9, 198.51.100.2')).status).toBe(429);
  });
});

describe('global cap on invoice creations in flight, on a slow LND', () => {
  let fake: FakeLnd;
  let plannt: Plannt;

  beforeAll(async () => {
    fake = await startFakeLnd();
    plannt = await startPlannt({
      backend: {
        kind: 'lnd',
        timeout_ms: 3000,
        lnd: {
          socket: fake.socket,
          cert_base64: fake.certBase64,
          macaroon_base64: Buffer.from(fake.macaroonHex, 'hex').toString('base64'),
        },
      },
      challenge_limits: { per_client_per_second: 0, max_concurrent_invoices: 2 },
    });
  });

  afterAll(async () => {
    await plannt?.stop();
    await fake?.stop();
  });

  it('creates at most max_concurrent_invoices at once; the rest get 429 with Retry-After 1 at once', async () => {
    fake.setDelayMs(400);
    const before = fake.invoices.length;
    const started = Date.now();
    const timed = Array.from({ length: 8 }, async (_, i) => {
      const raw = await checkRaw(plannt.client, { ...FORECAST, sourceAddress: `192.0.2.${i + 1}` });
      return { res: parseCheckResponse(raw), ms: Date.now() - started };
    });
    const results = await Promise.all(timed);
    fake.setDelayMs(0);
    const created = results.filter((r) => r.res.status === 402);
    const limited = results.filter((r) => r.res.status === 429);
    expect([created.length, limited.length]).toEqual([2, 6]);
    for (const r of limited) expectRateLimited(r.res, 1);
    // Refused without waiting on the node: every 429 arrives before the first invoice does.
    expect(Math.max(...limited.map((r) => r.ms))).toBeLessThan(Math.min(...created.map((r) => r.ms)));
    expect(fake.invoices.length - before).toBe(2);
    // Slots come back: the next challenge is served.
    expect((await plannt.check({ ...FORECAST, sourceAddress: '192.0.2.99' })).status).toBe(402);
  });
});

describe('the dev backend, which creates invoices in-process', () => {
  let plannt: Plannt;

  beforeAll(async () => {
    plannt = await startPlannt({
      challenge_limits: { per_client_per_second: 0, max_concurrent_invoices: 1 },
    });
  });

  afterAll(async () => {
    await plannt?.stop();
  });

  // Its invoices are made synchronously, but each slot is given back a few promise hops later: checks decided
  // in one slice would all seem in flight at once. There is no node to protect.
  it('is not capped: a burst of challenges on one connection all get invoices', async () => {
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => plannt.check({ ...FORECAST, sourceAddress: `192.0.2.${i + 1}` })),
    );
    expect(results.map((r) => r.status)).toEqual(results.map(() => 402));
  });
});
