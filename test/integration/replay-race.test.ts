/**
 * The replay race: one paid token retried concurrently many times over two replicas that share only the root
 * key and a Redis spent-set. Exactly one use is allowed; every other is token_spent. No other outcome.
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

const FORECAST = { method: 'GET', host: 'api.example.com', path: '/v1/forecast?city=braga' };
const RACERS = 1200;
const CONNECTIONS_PER_REPLICA = 4;

describe('replay race over two replicas', () => {
  let a: Plannt;
  let b: Plannt;
  const clients: grpc.Client[] = [];
  const prefix = uniqueRedisPrefix();

  beforeAll(async () => {
    const rootKeyHex = randomRootKey();
    // Both replicas and every racer share one event loop here: a generous timeout keeps loop lag from
    // turning into 503s, which would hide the property under test.
    const spent = { kind: 'redis', redis: { url: REDIS_URL, key_prefix: prefix, command_timeout_ms: 5000 } };
    // Every racer shares one client address; each refused replay is offered a fresh invoice, which the
    // per-client challenge limit (tested in challenge-flood.test.ts) would soon refuse with 429.
    const challenge_limits = { per_client_per_second: 1e6, per_client_burst: 1e6 };
    [a, b] = await Promise.all([
      startPlannt({ spent_set: spent, challenge_limits }, { rootKeyHex }),
      startPlannt({ spent_set: spent, challenge_limits }, { rootKeyHex }),
    ]);
    for (let i = 0; i < CONNECTIONS_PER_REPLICA; i++) {
      clients.push(authorizationClient(a.app.grpcPort), authorizationClient(b.app.grpcPort));
    }
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all([a?.stop(), b?.stop()]);
    await deleteRedisKeys(prefix);
  });

  const paidAllows = async () =>
    metricValue(await a.metrics(), 'plannt_paid_requests_total') +
    metricValue(await b.metrics(), 'plannt_paid_requests_total');

  const race = (authorizations: string[], perToken: number): Promise<CheckResult[]> =>
    Promise.all(
      Array.from({ length: perToken * authorizations.length }, (_, i) =>
        check(clients[i % clients.length] as grpc.Client, {
          ...FORECAST,
          headers: { authorization: authorizations[i % authorizations.length] as string },
          deadlineMs: 60_000,
        }),
      ),
    );

  const tally = (results: CheckResult[]) => {
    const out: Record<string, number> = {};
    for (const r of results) {
      // A refused replay is offered a fresh invoice (402), or told to come back (429) when the invoice cap is hit.
      const refused = r.body.error === 'token_spent' || String(r.body.detail).startsWith('token_spent; ');
      const key = r.allowed ? 'allow' : refused ? 'token_spent' : `${r.status} ${String(r.body.error)}`;
      out[key] = (out[key] ?? 0) + 1;
    }
    return out;
  };

  it(`allows exactly one of ${RACERS} concurrent uses of one paid token`, async () => {
    const paid = await a.buy(FORECAST);
    const before = await paidAllows();
    const results = await race([paid.authorization], RACERS);
    expect(tally(results)).toEqual({ allow: 1, token_spent: RACERS - 1 });
    const winner = results.find((r) => r.allowed);
    expect(winner?.upstreamHeaders['x-plannt-payment-hash']).toBe(paid.paymentHash);
    expect((await paidAllows()) - before).toBe(1);
  });

  it('allows exactly one use per token when several paid tokens race at once', async () => {
    const tokens = [await a.buy(FORECAST), await b.buy(FORECAST), await a.buy(FORECAST)];
    const results = await race(
      tokens.map((t) => t.authorization),
      300,
    );
    expect(tally(results)).toEqual({ allow: 3, token_spent: 897 });
    const winners = results.filter((r) => r.allowed).map((r) => r.upstreamHeaders['x-plannt-payment-hash']);
    expect(winners.sort()).toEqual(tokens.map((t) => t.paymentHash).sort());
  });
});
