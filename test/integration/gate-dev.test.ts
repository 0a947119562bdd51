/**
 * The L402 gate end to end with the dev invoice backend: the real server on loopback, called exactly as
 * Envoy's ext_authz filter calls it. The whole suite runs once per spent-set (memory, real Redis).
 */
import { randomBytes } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { parsePaymentRequest } from 'ln-service';
import { inspectToken } from '../../src/l402/inspect';
import { type CheckResult, healthCheck, healthClient, parseChallenge } from '../support/envoy-client';
import {
  deleteRedisKeys,
  metricValue,
  type Plannt,
  REDIS_URL,
  sleep,
  startPlannt,
  uniqueRedisPrefix,
} from '../support/plannt';

const FORECAST = { method: 'GET', host: 'api.example.com', path: '/v1/forecast?city=lisbon&days=3' };
const PLANNT_HEADERS = [
  'x-plannt-payment-hash',
  'x-plannt-service',
  'x-plannt-amount-sats',
  'x-plannt-uses-remaining',
];
const GRPC_OK = 0;
const GRPC_PERMISSION_DENIED = 7;
const GRPC_UNAUTHENTICATED = 16;

/** Key prefixes this file used, removed from Redis when it is done. */
const redisPrefixes: string[] = [];

const SPENT_SETS = [
  { kind: 'memory', spentSet: () => ({ kind: 'memory' }) },
  {
    kind: 'redis',
    spentSet: () => {
      const key_prefix = uniqueRedisPrefix();
      redisPrefixes.push(key_prefix);
      return { kind: 'redis', redis: { url: REDIS_URL, key_prefix } };
    },
  },
];

afterAll(async () => {
  for (const prefix of redisPrefixes) await deleteRedisKeys(prefix);
});

/** A denial that offers a fresh invoice: both WWW-Authenticate schemes and the challenge fields. */
function expectChallenge(res: CheckResult, amountSats: number): void {
  const values = res.header('www-authenticate');
  expect(values).toHaveLength(2);
  const [l402, lsat] = values.map(parseChallenge);
  expect(l402?.scheme).toBe('L402');
  expect(lsat?.scheme).toBe('LSAT');
  expect(l402?.macaroon).toBe(res.body.macaroon);
  expect(l402?.invoice).toBe(res.body.invoice);
  expect(lsat?.macaroon).toBe(res.body.macaroon);
  expect(lsat?.invoice).toBe(res.body.invoice);
  expect(res.body).toMatchObject({
    macaroon: expect.stringMatching(/^[A-Za-z0-9+/]+={0,2}$/),
    invoice: expect.stringMatching(/^lnbcrt/),
    payment_hash: expect.stringMatching(/^[0-9a-f]{64}$/),
    amount_sats: amountSats,
    expires_at: expect.any(String),
  });
}

function expectDenied(res: CheckResult, status: number, reason: string): void {
  expect(res.allowed).toBe(false);
  expect(res.status).toBe(status);
  expect(res.body.error).toBe(reason);
  expect(res.header('content-type')).toEqual(['application/json']);
  expect(res.grpcCode).toBe(status === 401 ? GRPC_UNAUTHENTICATED : GRPC_PERMISSION_DENIED);
}

function expectPaidAllow(res: CheckResult, paymentHash: string, service: string, amountSats: number): void {
  expect(res.allowed).toBe(true);
  expect(res.grpcCode).toBe(GRPC_OK);
  expect(res.upstreamHeaders).toEqual({
    'x-plannt-payment-hash': paymentHash,
    'x-plannt-service': service,
    'x-plannt-amount-sats': String(amountSats),
  });
  for (const option of res.upstreamHeaderOptions)
    expect(option.appendAction).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
  expect(res.removeHeaders).toContain('authorization');
}

describe.each(SPENT_SETS)('L402 gate with the dev backend and a $kind spent-set', ({ kind, spentSet }) => {
  let plannt: Plannt;

  beforeAll(async () => {
    plannt = await startPlannt({ spent_set: spentSet() });
  });

  afterAll(async () => {
    await plannt?.stop();
  });

  describe('a request without a credential is challenged', () => {
    it('answers 402 payment_required with L402 and LSAT WWW-Authenticate headers and the challenge in JSON', async () => {
      const res = await plannt.check(FORECAST);
      expectDenied(res, 402, 'payment_required');
      expectChallenge(res, 10);
      expect(res.raw.status?.code).toBe(GRPC_PERMISSION_DENIED);
      const expiresAt = Date.parse(String(res.body.expires_at));
      expect(Math.abs(expiresAt - (Date.now() + 600_000))).toBeLessThan(5000);
    });

    it('offers an invoice that decodes to the route price and the same payment hash', async () => {
      const res = await plannt.check(FORECAST);
      const invoice = parsePaymentRequest({ request: String(res.body.invoice) });
      expect(invoice.tokens).toBe(10);
      expect(invoice.id).toBe(res.body.payment_hash);
      expect(invoice.network).toBe('regtest');
      expect(invoice.description).toBe('weather: forecast');
      expect(Math.abs(Date.parse(invoice.expires_at) - Date.parse(String(res.body.expires_at)))).toBeLessThan(
        1000,
      );
    });

    it('offers a macaroon bound to the payment hash, service, route and price', async () => {
      const res = await plannt.check(FORECAST);
      const token = inspectToken(String(res.body.macaroon));
      expect(token.payment_hash).toBe(res.body.payment_hash);
      expect(token.key_id).toBe(7);
      expect(token.location).toBe('plannt-test');
      expect(token.caveats).toEqual(
        expect.arrayContaining([
          'services=weather:0',
          expect.stringMatching(/^weather_valid_until=\d+$/),
          'plannt_route=forecast',
          'plannt_price_sats=10',
        ]),
      );
    });

    it('challenges an Authorization header of another scheme (Bearer) like no credential', async () => {
      const res = await plannt.check({ ...FORECAST, headers: { authorization: 'Bearer abc.def.ghi' } });
      expectDenied(res, 402, 'payment_required');
      expectChallenge(res, 10);
    });

    it('issues a new invoice for every challenge', async () => {
      const [a, b] = await Promise.all([plannt.check(FORECAST), plannt.check(FORECAST)]);
      expect(a?.body.payment_hash).not.toBe(b?.body.payment_hash);
    });
  });

  describe('a paid token is allowed exactly once', () => {
    it('allows the paid request with x-plannt-* upstream headers (OVERWRITE_IF_EXISTS_OR_ADD) and strips authorization', async () => {
      const paid = await plannt.buy(FORECAST);
      const res = await plannt.check({ ...FORECAST, headers: { authorization: paid.authorization } });
      expectPaidAllow(res, paid.paymentHash, 'weather', 10);
      expect(res.removeHeaders).toEqual(['authorization', 'x-plannt-uses-remaining']);
    });

    it('answers a replay with 402 token_spent and a fresh challenge', async () => {
      const paid = await plannt.buy(FORECAST);
      const headers = { authorization: paid.authorization };
      expect((await plannt.check({ ...FORECAST, headers })).allowed).toBe(true);
      const replay = await plannt.check({ ...FORECAST, headers });
      expectDenied(replay, 402, 'token_spent');
      expectChallenge(replay, 10);
      expect(replay.body.payment_hash).not.toBe(paid.paymentHash);
      // The fresh challenge is a working offer.
      const next = await plannt.pay(String(replay.body.invoice));
      const again = await plannt.check({
        ...FORECAST,
        headers: { authorization: `L402 ${replay.body.macaroon}:${next}` },
      });
      expectPaidAllow(again, String(replay.body.payment_hash), 'weather', 10);
    });

    it('reads the credential from header_map when Envoy sends raw header bytes (encode_raw_headers)', async () => {
      const challenge = await plannt.check({ ...FORECAST, encodeRawHeaders: true });
      expectDenied(challenge, 402, 'payment_required');
      const preimage = await plannt.pay(String(challenge.body.invoice));
      const res = await plannt.check({
        ...FORECAST,
        encodeRawHeaders: true,
        headers: { authorization: `L402 ${challenge.body.macaroon}:${preimage}` },
      });
      expectPaidAllow(res, String(challenge.body.payment_hash), 'weather', 10);
    });

    it('accepts the older LSAT scheme', async () => {
      const paid = await plannt.buy(FORECAST);
      const res = await plannt.check({
        ...FORECAST,
        headers: { authorization: `LSAT ${paid.macaroon}:${paid.preimage}` },
      });
      expectPaidAllow(res, paid.paymentHash, 'weather', 10);
    });

    it('overwrites x-plannt-* headers a client sent with a paid request', async () => {
      const paid = await plannt.buy(FORECAST);
      const res = await plannt.check({
        ...FORECAST,
        headers: {
          authorization: paid.authorization,
          'x-plannt-payment-hash': '00'.repeat(32),
          'x-plannt-amount-sats': '1000000',
        },
      });
      expectPaidAllow(res, paid.paymentHash, 'weather', 10);
    });

    it('logs the decision with the Envoy request id, never the macaroon or the preimage', async () => {
      const paid = await plannt.buy(FORECAST);
      const requestId = `req-${randomBytes(8).toString('hex')}`;
      await plannt.check({ ...FORECAST, requestId, headers: { authorization: paid.authorization } });
      const line = plannt.logs.find((l) => l.includes(requestId));
      expect(line).toBeDefined();
      expect(JSON.parse(line ?? '{}')).toMatchObject({
        decision: 'allow',
        reason: 'paid',
        service: 'weather',
        route: 'forecast',
        request_id: requestId,
      });
      const all = plannt.logs.join('');
      expect(all).not.toContain(paid.preimage);
      expect(all).not.toContain(paid.macaroon);
    });
  });

  describe('a token is bound to the route, price and lifetime it was bought for', () => {
    it('rejects a forecast token on the history route (same service) with 402 wrong_route, without spending it', async () => {
      const paid = await plannt.buy(FORECAST);
      const headers = { authorization: paid.authorization };
      const res = await plannt.check({
        method: 'GET',
        host: 'api.example.com',
        path: '/v1/history',
        headers,
      });
      expectDenied(res, 402, 'wrong_route');
      expectChallenge(res, 10);
      expectPaidAllow(await plannt.check({ ...FORECAST, headers }), paid.paymentHash, 'weather', 10);
    });

    it('rejects a weather token on an inference route with 402 wrong_service', async () => {
      const paid = await plannt.buy(FORECAST);
      const res = await plannt.check({
        method: 'POST',
        host: 'api.example.com',
        path: '/v1/generate',
        headers: { authorization: paid.authorization },
      });
      expectDenied(res, 402, 'wrong_service');
      expectChallenge(res, 21);
    });

    it('rejects a 10-sat token where context_extensions price the route at 50 with 402 insufficient_price', async () => {
      const paid = await plannt.buy(FORECAST);
      const headers = { authorization: paid.authorization };
      const res = await plannt.check({ ...FORECAST, headers, context: { 'plannt.price_sats': '50' } });
      expectDenied(res, 402, 'insufficient_price');
      expectChallenge(res, 50);
      expectPaidAllow(await plannt.check({ ...FORECAST, headers }), paid.paymentHash, 'weather', 10);
    });

    it('allows a token bought at the higher context price on the cheaper route, reporting what was paid', async () => {
      const paid = await plannt.buy({ ...FORECAST, context: { 'plannt.price_sats': '50' } });
      expect(paid.challenge.body.amount_sats).toBe(50);
      const res = await plannt.check({ ...FORECAST, headers: { authorization: paid.authorization } });
      expectPaidAllow(res, paid.paymentHash, 'weather', 50);
    });

    it('rejects a token after its lifetime with 402 expired and a fresh challenge', async () => {
      const short = { method: 'GET', host: 'api.example.com', path: '/v1/short' };
      const paid = await plannt.buy(short);
      await sleep(3100);
      const res = await plannt.check({ ...short, headers: { authorization: paid.authorization } });
      expectDenied(res, 402, 'expired');
      expectChallenge(res, 2);
    });

    it('rejects a macaroon with an edited caveat byte with 402 invalid_signature', async () => {
      const paid = await plannt.buy(FORECAST);
      const raw = Buffer.from(paid.macaroon, 'base64');
      const condition = Buffer.from('weather_valid_until=');
      const at = raw.indexOf(condition) + condition.length; // first digit of the expiry
      expect(at).toBeGreaterThanOrEqual(condition.length);
      raw[at] = raw[at] === 0x39 ? 0x38 : 0x39; // a later expiry (or at least a different one)
      const res = await plannt.check({
        ...FORECAST,
        headers: { authorization: `L402 ${raw.toString('base64')}:${paid.preimage}` },
      });
      expectDenied(res, 402, 'invalid_signature');
      expect(res.header('www-authenticate')).toHaveLength(2);
    });

    it('rejects a preimage that does not hash to the payment hash with 402 preimage_mismatch', async () => {
      const paid = await plannt.buy(FORECAST);
      const wrong = randomBytes(32).toString('hex');
      const res = await plannt.check({
        ...FORECAST,
        headers: { authorization: `L402 ${paid.macaroon}:${wrong}` },
      });
      expectDenied(res, 402, 'preimage_mismatch');
      // The token is not spent by a failed attempt.
      const ok = await plannt.check({ ...FORECAST, headers: { authorization: paid.authorization } });
      expectPaidAllow(ok, paid.paymentHash, 'weather', 10);
    });

    it('rejects a token signed with another root key with 402 invalid_signature', async () => {
      const other = await startPlannt({ spent_set: { kind: 'memory' } });
      try {
        const paid = await other.buy(FORECAST);
        const res = await plannt.check({ ...FORECAST, headers: { authorization: paid.authorization } });
        expectDenied(res, 402, 'invalid_signature');
      } finally {
        await other.stop();
      }
    });
  });

  describe('a malformed Authorization header is a 402 deny with a fresh challenge, never a gRPC error', () => {
    const hex = 'ab'.repeat(32);
    it.each([
      { name: 'no colon', authorization: 'L402 garbage', reason: 'malformed_header' },
      { name: 'an empty credential', authorization: 'L402 ', reason: 'malformed_header' },
      {
        name: 'a macaroon that is not base64',
        authorization: `L402 !!not*base64!!:${hex}`,
        reason: 'malformed_header',
      },
      { name: 'an empty macaroon', authorization: `L402 :${hex}`, reason: 'malformed_header' },
      {
        name: 'too many macaroons',
        authorization: `L402 ${Array(5).fill('AAAA').join(',')}:${hex}`,
        reason: 'malformed_header',
      },
      { name: 'a short preimage', authorization: 'L402 AAAA:abcd', reason: 'invalid_preimage' },
      {
        name: 'a non-hex preimage',
        authorization: `L402 AAAA:${'zz'.repeat(32)}`,
        reason: 'invalid_preimage',
      },
      {
        name: 'control characters',
        authorization: `LSAT \u0001\u0002:\u00ff${hex}`,
        reason: 'invalid_preimage',
      },
      { name: 'base64 that is no macaroon', authorization: `L402 AAAA:${hex}`, reason: 'malformed_macaroon' },
      {
        name: 'a header over the size limit',
        authorization: `L402 ${'A'.repeat(9000)}:${hex}`,
        reason: 'header_too_large',
      },
    ])('$name → 402 $reason', async ({ authorization, reason }) => {
      const res = await plannt.check({ ...FORECAST, headers: { authorization } });
      expectDenied(res, 402, reason);
      expect(res.header('www-authenticate')).toHaveLength(2);
    });
  });

  describe('free and unmatched routes', () => {
    it('allows a free route without x-plannt headers and removes any the client sent', async () => {
      const res = await plannt.check({
        method: 'GET',
        host: 'api.example.com',
        path: '/status',
        headers: {
          'x-plannt-payment-hash': 'ff'.repeat(32),
          'x-plannt-service': 'weather',
          'x-plannt-amount-sats': '10',
        },
      });
      expect(res.allowed).toBe(true);
      expect(res.grpcCode).toBe(GRPC_OK);
      expect(res.upstreamHeaders).toEqual({});
      expect(res.removeHeaders).toEqual(expect.arrayContaining(PLANNT_HEADERS));
    });

    it('denies a path no route matches with 403 unmatched_route (default action deny)', async () => {
      const res = await plannt.check({ method: 'GET', host: 'api.example.com', path: '/admin/users?all=1' });
      expectDenied(res, 403, 'unmatched_route');
      expect(res.header('www-authenticate')).toEqual([]);
    });

    it('matches on method and host: POST /v1/forecast and /v1/generate on another host are unmatched', async () => {
      const wrongMethod = await plannt.check({ ...FORECAST, method: 'POST' });
      expectDenied(wrongMethod, 403, 'unmatched_route');
      const wrongHost = await plannt.check({
        method: 'POST',
        host: 'evil.example.org',
        path: '/v1/generate',
      });
      expectDenied(wrongHost, 403, 'unmatched_route');
      const withPort = await plannt.check({
        method: 'POST',
        host: 'API.example.com:443',
        path: '/v1/generate',
      });
      expectDenied(withPort, 402, 'payment_required');
      expect(withPort.body.amount_sats).toBe(21);
    });

    describe('with unmatched.action allow', () => {
      let open: Plannt;
      beforeAll(async () => {
        open = await startPlannt({ spent_set: spentSet(), unmatched: { action: 'allow' } });
      });
      afterAll(async () => {
        await open?.stop();
      });

      it('allows an unmatched path, removing client-sent x-plannt headers', async () => {
        const res = await open.check({
          method: 'GET',
          host: 'api.example.com',
          path: '/anything',
          headers: { 'x-plannt-service': 'forged' },
        });
        expect(res.allowed).toBe(true);
        expect(res.upstreamHeaders).toEqual({});
        expect(res.removeHeaders).toEqual(expect.arrayContaining(PLANNT_HEADERS));
      });

      it('still charges the priced routes', async () => {
        expectDenied(await open.check(FORECAST), 402, 'payment_required');
      });
    });
  });

  describe('context_extensions alone price an unmatched path', () => {
    const MAPS = {
      method: 'GET',
      host: 'maps.example.com',
      path: '/tiles/12/2048/1361.png',
      context: { 'plannt.service': 'maps', 'plannt.price_sats': '5', 'plannt.route': 'maps-tiles' },
    };

    it('challenges at the context price and allows the paid token for the context service', async () => {
      const paid = await plannt.buy(MAPS);
      expectChallenge(paid.challenge, 5);
      expect(parsePaymentRequest({ request: paid.invoice }).tokens).toBe(5);
      expect(inspectToken(paid.macaroon).caveats).toEqual(
        expect.arrayContaining(['services=maps:0', 'plannt_route=maps-tiles', 'plannt_price_sats=5']),
      );
      const res = await plannt.check({ ...MAPS, headers: { authorization: paid.authorization } });
      expectPaidAllow(res, paid.paymentHash, 'maps', 5);
    });

    it('denies invalid context values with 403 invalid_route_config', async () => {
      const res = await plannt.check({
        ...MAPS,
        context: { ...MAPS.context, 'plannt.price_sats': '5 sats' },
      });
      expectDenied(res, 403, 'invalid_route_config');
    });

    it('allows a context price of 0 as a free route', async () => {
      const res = await plannt.check({ ...MAPS, context: { ...MAPS.context, 'plannt.price_sats': '0' } });
      expect(res.allowed).toBe(true);
      expect(res.upstreamHeaders).toEqual({});
    });
  });

  describe('health and admin endpoints', () => {
    let health: grpc.Client;
    beforeAll(() => {
      health = healthClient(plannt.app.grpcPort);
    });
    afterAll(() => {
      health?.close();
    });

    it('answers grpc.health.v1 Check with SERVING, overall and for the Authorization service', async () => {
      expect(await healthCheck(health)).toBe('SERVING');
      expect(await healthCheck(health, 'envoy.service.auth.v3.Authorization')).toBe('SERVING');
      await expect(healthCheck(health, 'no.such.Service')).rejects.toMatchObject({ code: 5 });
    });

    it('serves /healthz 200 and /readyz 200 with its dependencies', async () => {
      const alive = await plannt.admin('/healthz');
      expect(alive.status).toBe(200);
      expect(alive.json()).toEqual({ status: 'alive' });
      const ready = await plannt.admin('/readyz');
      expect(ready.status).toBe(200);
      expect(ready.json()).toEqual({
        status: 'ready',
        draining: false,
        dependencies: { 'invoice_backend:dev': true, [`spent_set:${kind}`]: true },
      });
    });

    it('answers POST /dev/pay for an unknown invoice with 404, and bad JSON with 400', async () => {
      const unknown = await plannt.admin('/dev/pay', {
        method: 'POST',
        body: JSON.stringify({ invoice: 'lnbcrt100n1pnotaninvoiceofthisserver' }),
      });
      expect(unknown.status).toBe(404);
      expect(unknown.json().error).toBe('unknown_invoice');
      const bad = await plannt.admin('/dev/pay', { method: 'POST', body: '{not json' });
      expect(bad.status).toBe(400);
      expect((await plannt.admin('/nope')).status).toBe(404);
    });

    it('counts the challenge → pay → allow → replay flow in /metrics', async () => {
      const labels = (decision: string, reason: string) => ({ decision, reason, service: 'weather' });
      const snapshot = async () => {
        const text = await plannt.metrics();
        return {
          text,
          challenged: metricValue(text, 'plannt_checks_total', labels('deny', 'payment_required')),
          paid: metricValue(text, 'plannt_checks_total', labels('allow', 'paid')),
          spent: metricValue(text, 'plannt_checks_total', labels('deny', 'token_spent')),
          paidSats: metricValue(text, 'plannt_paid_sats_total', { service: 'weather' }),
          paidRequests: metricValue(text, 'plannt_paid_requests_total', { service: 'weather' }),
          challenges: metricValue(text, 'plannt_challenges_total', { service: 'weather' }),
          rejections: metricValue(text, 'plannt_rejections_total', {
            reason: 'token_spent',
            service: 'weather',
          }),
          verifies: metricValue(text, 'plannt_check_duration_seconds_count', { path: 'verify' }),
          challengePath: metricValue(text, 'plannt_check_duration_seconds_count', { path: 'challenge' }),
        };
      };
      const before = await snapshot();
      const paid = await plannt.buy(FORECAST);
      const headers = { authorization: paid.authorization };
      expect((await plannt.check({ ...FORECAST, headers })).allowed).toBe(true);
      expect((await plannt.check({ ...FORECAST, headers })).body.error).toBe('token_spent');
      const after = await snapshot();

      expect(after.challenged - before.challenged).toBe(1);
      expect(after.paid - before.paid).toBe(1);
      expect(after.spent - before.spent).toBe(1);
      expect(after.paidSats - before.paidSats).toBe(10);
      expect(after.paidRequests - before.paidRequests).toBe(1);
      expect(after.challenges - before.challenges).toBe(2); // the 402 and the replay's fresh offer
      expect(after.rejections - before.rejections).toBe(1);
      expect(after.verifies - before.verifies).toBe(2);
      expect(after.challengePath - before.challengePath).toBe(1);
      expect(after.text).toMatch(/^plannt_check_duration_seconds_bucket\{le="0\.0001",path="verify"\} \d+$/m);
      expect(after.text).toMatch(
        /^plannt_check_duration_seconds_bucket\{le="0\.00005",path="verify"\} \d+$/m,
      );
      expect(metricValue(after.text, 'plannt_dependency_ready', { dependency: 'invoice_backend:dev' })).toBe(
        1,
      );
      expect(metricValue(after.text, 'plannt_dependency_ready', { dependency: `spent_set:${kind}` })).toBe(1);
    });
  });
});
