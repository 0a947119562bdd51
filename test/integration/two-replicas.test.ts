/**
 * Two Plannt replicas behind one Envoy cluster, sharing only the root key and a real Redis spent-set:
 * a token minted by one verifies on the other, and it is spent exactly once across both.
 */
import type * as grpc from '@grpc/grpc-js';
import { authorizationClient, type CheckResult, check } from '../support/envoy-client';
import {
  deleteRedisKeys,
  metricValue,
  type Plannt,
  REDIS_URL,
  randomRootKey,
  startPlannt,
  uniqueRedisPrefix,
} from '../support/plannt';

const FORECAST = { method: 'GET', host: 'api.example.com', path: '/v1/forecast?city=faro' };
const CONCURRENT = 200;

describe('two replicas sharing a root key and a Redis spent-set', () => {
  let a: Plannt;
  let b: Plannt;
  const extraClients: grpc.Client[] = [];
  const prefix = uniqueRedisPrefix();

  beforeAll(async () => {
    const rootKeyHex = randomRootKey();
    // Both replicas and 200 concurrent callers share one Node event loop here; a generous command timeout
    // keeps loop lag (worse under --detectOpenHandles) from turning into spurious 503s. This suite is about
    // atomicity across replicas; what a Redis timeout does to a token is tested in redis-outage.test.ts.
    const spent = {
      kind: 'redis',
      redis: { url: REDIS_URL, key_prefix: prefix, command_timeout_ms: 2000 },
    };
    [a, b] = await Promise.all([
      startPlannt({ spent_set: spent }, { rootKeyHex }),
      startPlannt({ spent_set: spent }, { rootKeyHex }),
    ]);
  });

  afterAll(async () => {
    for (const client of extraClients) client.close();
    await Promise.all([a?.stop(), b?.stop()]);
    await deleteRedisKeys(prefix);
  });

  const paidAllows = async () =>
    metricValue(await a.metrics(), 'plannt_checks_total', { decision: 'allow', reason: 'paid' }) +
    metricValue(await b.metrics(), 'plannt_checks_total', { decision: 'allow', reason: 'paid' });

  it('verifies on B a token challenged and paid on A, then rejects its replay on A as token_spent', async () => {
    const paid = await a.buy(FORECAST);
    const headers = { authorization: paid.authorization };

    const onB = await b.check({ ...FORECAST, headers });
    expect(onB.allowed).toBe(true);
    expect(onB.upstreamHeaders['x-plannt-payment-hash']).toBe(paid.paymentHash);

    const replayOnA = await a.check({ ...FORECAST, headers });
    expect(replayOnA.status).toBe(402);
    expect(replayOnA.body.error).toBe('token_spent');
    expect(replayOnA.header('www-authenticate')).toHaveLength(2);

    const replayOnB = await b.check({ ...FORECAST, headers });
    expect(replayOnB.body.error).toBe('token_spent');
  });

  it(`allows exactly one of ${CONCURRENT} concurrent uses of one paid token spread over both replicas`, async () => {
    // Several Envoys, each with its own connection to each replica.
    const clients = [a, b, a, b].map((p) => authorizationClient(p.app.grpcPort));
    extraClients.push(...clients);
    const paid = await b.buy(FORECAST);
    const allowsBefore = await paidAllows();

    const results: CheckResult[] = await Promise.all(
      Array.from({ length: CONCURRENT }, (_, i) =>
        check(clients[i % clients.length] as grpc.Client, {
          ...FORECAST,
          headers: { authorization: paid.authorization },
          deadlineMs: 15_000,
        }),
      ),
    );

    const tally: Record<string, number> = {};
    for (const r of results) {
      // A refused replay is offered a fresh invoice (402), or told to come back (429) when the invoice cap is hit.
      const refused = r.body.error === 'token_spent' || String(r.body.detail).startsWith('token_spent; ');
      const outcome = r.allowed ? 'allow' : refused ? 'token_spent' : `${r.status} ${r.body.error}`;
      tally[outcome] = (tally[outcome] ?? 0) + 1;
    }
    expect(tally).toEqual({ allow: 1, token_spent: CONCURRENT - 1 });
    const allowed = results.find((r) => r.allowed);
    expect(allowed?.raw.http_response).toBe('ok_response');
    expect(allowed?.upstreamHeaders['x-plannt-payment-hash']).toBe(paid.paymentHash);
    expect(await paidAllows()).toBe(allowsBefore + 1);
  });
});
