/**
 * Deadline discipline: whatever the dependencies do, every check is answered with a CheckResponse before the
 * caller's gRPC deadline (Envoy's ext_authz `timeout`, sent as `grpc-timeout`). A check whose deadline runs out
 * mid-flight ends as a deny, never as an allow and never as a gRPC error, which an Envoy configured with
 * `failure_mode_allow: true` would turn into an allow. Dependencies: a fake LND that can be slow or down, and
 * a private redis-server whose writes can be paused (CLIENT PAUSE … WRITE), so the SET NX stalls.
 */
import * as grpc from '@grpc/grpc-js';
import { type CheckInput, checkRaw, parseCheckResponse } from '../support/envoy-client';
import { type FakeLnd, startFakeLnd } from '../support/fake-lnd';
import { dependencyUp, type Plannt, type Purchase, sleep, startPlannt, waitFor } from '../support/plannt';
import { type RedisServer, startRedisServer } from '../support/redis-server';

const FORECAST = { method: 'GET', host: 'api.example.com', path: '/v1/forecast?city=elvas' };
/**
 * Plannt keeps back 10% of the deadline (at least 25 ms) for its answer to travel. That must also absorb
 * event-loop lag, which reached ~120 ms on the shared 2-core CI machine under load, so the sweep uses 1 s and
 * the 3 s README recommends; gate-lnd.test.ts covers a single check against a 300 ms deadline.
 */
const DEADLINES = [1000, 3000];
const PARALLEL = 4;

let fake: FakeLnd;
let redis: RedisServer;
let plannt: Plannt;

beforeAll(async () => {
  [fake, redis] = await Promise.all([startFakeLnd(), startRedisServer({ persistent: false })]);
  plannt = await startPlannt(
    {
      // Both dependency timeouts are longer than every deadline here: the deadline is what must bind.
      backend: {
        kind: 'lnd',
        timeout_ms: 5000,
        lnd: {
          socket: fake.socket,
          cert_base64: fake.certBase64,
          macaroon_base64: Buffer.from(fake.macaroonHex, 'hex').toString('base64'),
        },
      },
      spent_set: { kind: 'redis', redis: { url: redis.url, key_prefix: 'dl:', command_timeout_ms: 5000 } },
      challenge_limits: { per_client_per_second: 0 },
    },
    { readinessIntervalMs: 200 },
  );
  // Warm every path once (connections, lazy code), so the cases below measure faults, not a cold start.
  const paid = await buy();
  await timedCheck({ ...FORECAST, headers: { authorization: paid.authorization } }, 5000);
  await timedCheck({ ...FORECAST, headers: { authorization: paid.authorization } }, 5000);
});

afterEach(() => {
  fake.setDown(false);
  fake.setDelayMs(0);
});

afterAll(async () => {
  await plannt?.stop();
  await Promise.all([fake?.stop(), redis?.stop()]);
});

/**
 * One check as Envoy sends it: 'allow', '<status> <reason>', or 'grpc <CODE>' when no CheckResponse came.
 * The client enforces the deadline, so any CheckResponse arrived in time.
 */
function timedCheck(input: CheckInput, deadlineMs: number): Promise<string> {
  return checkRaw(plannt.client, { ...input, deadlineMs }).then(
    (raw) => {
      const res = parseCheckResponse(raw);
      return res.allowed ? 'allow' : `${res.status} ${String(res.body.error)}`;
    },
    (err: grpc.ServiceError) => `grpc ${grpc.status[err.code]}`,
  );
}

const parallel = (input: CheckInput, deadlineMs: number, n = PARALLEL) =>
  Promise.all(Array.from({ length: n }, () => timedCheck(input, deadlineMs)));

/** Challenge, then pay with the preimage the node holds (found by hash: abandoned slow calls land late). */
async function buy(): Promise<Purchase> {
  const challenge = await plannt.check(FORECAST);
  const invoice = fake.invoices.find((i) => i.paymentHash.toString('hex') === challenge.body.payment_hash);
  if (challenge.status !== 402 || !invoice) throw new Error(`no challenge: ${challenge.status}`);
  const macaroon = String(challenge.body.macaroon);
  const preimage = invoice.preimage.toString('hex');
  return {
    challenge,
    macaroon,
    invoice: invoice.paymentRequest,
    paymentHash: invoice.paymentHash.toString('hex'),
    preimage,
    authorization: `L402 ${macaroon}:${preimage}`,
  };
}

/** Let calls abandoned at the deadline finish on the node before the next case. */
async function drainLnd(): Promise<void> {
  fake.setDelayMs(0);
  await sleep(300);
}

describe.each(DEADLINES)('with a %i ms deadline', (deadlineMs) => {
  it('a challenge on an LND slower than the deadline is a 503 deny before the deadline', async () => {
    fake.setDelayMs(deadlineMs + 2000);
    const results = await parallel(FORECAST, deadlineMs);
    await drainLnd();
    for (const r of results) expect(r).toBe('503 invoice_backend_unavailable');
  });

  it('a challenge on a down LND is a 503 deny, well before the deadline', async () => {
    fake.setDown(true);
    const results = await parallel(FORECAST, deadlineMs);
    for (const r of results) expect(r).toBe('503 invoice_backend_unavailable');
  });

  it('a verify whose spend stalls in Redis is a 503 deny before the deadline, and the token is not burnt', async () => {
    const paid = await buy();
    const headers = { authorization: paid.authorization };
    redis.cli('CLIENT', 'PAUSE', String(deadlineMs + 1000), 'WRITE');
    const results = await parallel({ ...FORECAST, headers }, deadlineMs, 4);
    for (const r of results) expect(r).toBe('503 spent_set_unavailable');
    redis.cli('CLIENT', 'UNPAUSE');
    // The stalled SETs landed after Plannt gave up; each late OK was undone, so the retry is served.
    const served = await waitFor(
      async () => (await timedCheck({ ...FORECAST, headers }, 2000)) === 'allow',
      3000,
    );
    expect(served).toBe(true);
    expect(await timedCheck({ ...FORECAST, headers }, 2000)).toBe('402 token_spent');
  });

  it('a spent token replayed while LND is slow is told to retry before the deadline, token_spent in the detail', async () => {
    const paid = await buy();
    const headers = { authorization: paid.authorization };
    expect(await timedCheck({ ...FORECAST, headers }, 2000)).toBe('allow');
    fake.setDelayMs(deadlineMs + 2000);
    const results = await Promise.all(
      Array.from({ length: 4 }, () => checkRaw(plannt.client, { ...FORECAST, headers, deadlineMs })),
    );
    await drainLnd();
    for (const res of results.map(parseCheckResponse)) {
      expect([res.status, res.body.error]).toEqual([503, 'invoice_backend_unavailable']);
      expect(String(res.body.detail)).toMatch(/^token_spent; /);
    }
  });

  it('free, unmatched and malformed requests are answered before the deadline, whatever the dependencies do', async () => {
    // A malformed credential is answered like none: with a fresh invoice, or a 503 when none comes in time.
    fake.setDelayMs(deadlineMs + 2000);
    redis.cli('CLIENT', 'PAUSE', String(deadlineMs + 1000), 'WRITE');
    try {
      const [free, unmatched, garbage] = await Promise.all([
        timedCheck({ path: '/status' }, deadlineMs),
        timedCheck({ path: '/nowhere' }, deadlineMs),
        timedCheck({ ...FORECAST, headers: { authorization: 'L402 !!!:zz' } }, deadlineMs),
      ]);
      expect([free, unmatched, garbage]).toEqual([
        'allow',
        '403 unmatched_route',
        '503 invoice_backend_unavailable',
      ]);
    } finally {
      redis.cli('CLIENT', 'UNPAUSE');
      await drainLnd();
    }
  });
});

describe('LND faults do not touch the verify path', () => {
  it('while LND is slower than every deadline, concurrent verifies are allowed and challenges denied, each in time', async () => {
    const tokens: Purchase[] = [];
    for (let i = 0; i < 20; i++) tokens.push(await buy());
    fake.setDelayMs(3000);
    const deadlineMs = 2000;
    const [verifies, challenges] = await Promise.all([
      Promise.all(
        tokens.map((t) =>
          timedCheck({ ...FORECAST, headers: { authorization: t.authorization } }, deadlineMs),
        ),
      ),
      parallel(FORECAST, deadlineMs, 10),
    ]);
    await drainLnd();
    expect(new Set(verifies.map((v) => v))).toEqual(new Set(['allow']));
    expect(new Set(challenges.map((c) => c))).toEqual(new Set(['503 invoice_backend_unavailable']));
  });

  it('recovers by itself: LND is reported down and back when it returns, and challenges resume', async () => {
    fake.setDown(true);
    const lndUp = () => dependencyUp(plannt, 'invoice_backend:lnd');
    expect(await waitFor(async () => (await lndUp()) === false, 3000)).toBe(true);
    fake.setDown(false);
    await fake.restart(); // a restarted node: the client must reconnect on its own
    expect(await waitFor(async () => (await lndUp()) === true, 5000)).toBe(true);
    expect(
      await waitFor(async () => (await timedCheck(FORECAST, 2000)) === '402 payment_required', 5000),
    ).toBe(true);
  });
});
