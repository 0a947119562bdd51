/**
 * Redis killed (SIGKILL) and started again under a steady stream of paid checks and replays, on a private
 * redis-server (AOF, fsync always). Every allowed payment hash is recorded: none may be allowed twice, before,
 * during or after the outage. Under fail_closed, checks during the outage get 503 + Retry-After and readiness
 * flips; under local_fallback they are spent in the pod's memory and counted. Checks recover within 1 s of
 * Redis answering again, with no crash and no unhandled rejection.
 */
import { createHash, randomBytes } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { keyring } from '../../src/l402/keys';
import { mintMacaroon } from '../../src/l402/mint';
import { authorizationClient, check } from '../support/envoy-client';
import {
  dependencyUp,
  metricValue,
  type Plannt,
  randomRootKey,
  sleep,
  startPlannt,
  waitFor,
} from '../support/plannt';
import { type RedisServer, startRedisServer } from '../support/redis-server';

const FORECAST = { method: 'GET', host: 'api.example.com', path: '/v1/forecast?city=sines' };
const PREFIX = 'plannt-restart:';
const WORKERS = 4;

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => void unhandled.push(reason);
beforeAll(() => process.on('unhandledRejection', onUnhandled));
afterAll(() => process.off('unhandledRejection', onUnhandled));

interface Token {
  authorization: string;
  paymentHash: string;
}

/** Tokens as the server would mint them (same key, route and price), with a preimage only the test knows. */
function tokenFactory(rootKeyHex: string): () => Token {
  const keys = keyring([{ id: 7, secret: Buffer.from(rootKeyHex, 'hex') }], 7);
  const terms = {
    service: 'weather',
    routeId: 'forecast',
    priceSats: 10,
    validUntil: Math.floor(Date.now() / 1000) + 3600,
  };
  return () => {
    const preimage = randomBytes(32);
    const hash = createHash('sha256').update(preimage).digest();
    const macaroon = mintMacaroon(hash, terms, keys, 'plannt-test').toString('base64');
    return {
      authorization: `L402 ${macaroon}:${preimage.toString('hex')}`,
      paymentHash: hash.toString('hex'),
    };
  };
}

interface Outcome {
  /** When the check was sent and when its answer arrived. */
  sent: number;
  at: number;
  kind: string;
  hash: string;
  retryAfter?: string;
}

/** Workers that each keep one check in flight: 70% fresh tokens, 30% replays of tokens already allowed. */
function startLoad(clients: grpc.Client[], mint: () => Token) {
  const outcomes: Outcome[] = [];
  const allowed: Token[] = [];
  const retry: Token[] = [];
  let running = true;
  let n = 0;
  const worker = async () => {
    while (running) {
      const replay = allowed.length > 0 && Math.random() < 0.3;
      const token = replay
        ? (allowed[Math.floor(Math.random() * allowed.length)] as Token)
        : (retry.shift() ?? mint());
      const client = clients[n++ % clients.length] as grpc.Client;
      const outcome: Outcome = { sent: Date.now(), at: 0, kind: '', hash: token.paymentHash };
      try {
        const res = await check(client, {
          ...FORECAST,
          headers: { authorization: token.authorization },
          deadlineMs: 2000,
        });
        // A replay refused while the invoice cap is hit is a 429 whose detail names token_spent: the same refusal.
        const spent = res.body.error === 'token_spent' || String(res.body.detail).startsWith('token_spent; ');
        outcome.kind = res.allowed ? 'allow' : spent ? '402 token_spent' : `${res.status} ${res.body.error}`;
        const retryAfter = res.header('retry-after')[0];
        if (retryAfter !== undefined) outcome.retryAfter = retryAfter;
        if (res.allowed) allowed.push(token);
        else if (res.status === 503 && !replay) retry.push(token); // unused: the client retries it later
      } catch (err) {
        outcome.kind = `grpc error ${(err as grpc.ServiceError).code}`;
      }
      outcome.at = Date.now();
      outcomes.push(outcome);
    }
  };
  const done = Promise.all(Array.from({ length: WORKERS }, worker));
  return {
    outcomes,
    allowed,
    async stop() {
      running = false;
      await done;
    },
  };
}

const redisUp = (p: Plannt) => dependencyUp(p, 'spent_set:redis');

describe.each([
  { mode: 'fail_closed', replicas: 2 },
  { mode: 'local_fallback', replicas: 1 },
] as const)('Redis restart under load, on_error $mode, $replicas replica(s)', ({ mode, replicas }) => {
  let redis: RedisServer;
  let plannts: Plannt[] = [];
  const clients: grpc.Client[] = [];
  const rootKeyHex = randomRootKey();

  beforeAll(async () => {
    redis = await startRedisServer();
    plannts = await Promise.all(
      Array.from({ length: replicas }, () =>
        startPlannt(
          {
            spent_set: {
              kind: 'redis',
              on_error: mode,
              redis: { url: redis.url, key_prefix: PREFIX, command_timeout_ms: 300 },
            },
            // Every replay is offered a fresh invoice: at ~300 checks/s from one address the per-client
            // challenge allowance (burst 100) ran out mid-test. This suite is about the spent-set, not that limit.
            challenge_limits: { per_client_per_second: 0 },
          },
          { rootKeyHex, readinessIntervalMs: 100 },
        ),
      ),
    );
    for (const p of plannts) clients.push(authorizationClient(p.app.grpcPort));
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all(plannts.map((p) => p.stop()));
    await redis?.stop();
  });

  it('never allows a token twice, answers the outage as configured, and recovers within 1 s', async () => {
    const load = startLoad(clients, tokenFactory(rootKeyHex));
    try {
      expect(await waitFor(async () => load.allowed.length >= 20, 10_000)).toBe(true);

      await redis.kill();
      // From here on Redis is gone: a check sent while the kill was on its way may still have been served by it.
      const killedAt = Date.now();
      // Every replica reports the outage within a few probe intervals, and stays in service.
      const reported = await waitFor(
        async () => (await Promise.all(plannts.map(redisUp))).every((up) => up === false),
        3000,
      );
      expect(reported).toBe(true);
      expect(
        await waitFor(async () => load.outcomes.filter((o) => o.sent > killedAt).length >= 30, 10_000),
      ).toBe(true);

      // Until here Redis is gone: start() resolves only after it already answers, so a check answered
      // while it started may have been served by it.
      const restartedAt = Date.now();
      await redis.start();
      const upAt = Date.now();
      expect(
        await waitFor(async () => load.outcomes.some((o) => o.at > upAt && o.kind === 'allow'), 5000, 10),
      ).toBe(true);
      const firstAllow = load.outcomes.find((o) => o.at > upAt && o.kind === 'allow') as Outcome;
      const recoveryMs = firstAllow.at - upAt;
      expect(
        await waitFor(async () => (await Promise.all(plannts.map(redisUp))).every((up) => up === true), 3000),
      ).toBe(true);
      await sleep(500);
      await load.stop();

      // Single use, across the restart: no payment hash was ever allowed twice.
      const allowedHashes = load.outcomes.filter((o) => o.kind === 'allow').map((o) => o.hash);
      expect(allowedHashes.length).toBeGreaterThan(20);
      expect(new Set(allowedHashes).size).toBe(allowedHashes.length);

      // Checks sent once Redis was dead and answered before it was started again.
      const during = load.outcomes.filter((o) => o.sent > killedAt && o.at < restartedAt);
      const kinds = new Set(load.outcomes.map((o) => o.kind));
      const metrics = await Promise.all(plannts.map((p) => p.metrics()));
      if (mode === 'fail_closed') {
        expect([...kinds].sort()).toEqual(['402 token_spent', '503 spent_set_unavailable', 'allow']);
        const outage = during.filter((o) => o.kind.startsWith('503'));
        expect(outage.length).toBeGreaterThan(0);
        expect(during.filter((o) => o.kind === 'allow')).toEqual([]);
        expect(new Set(outage.map((o) => o.retryAfter))).toEqual(new Set(['5']));
      } else {
        // Served through the outage from local memory, each such spend counted.
        expect([...kinds].sort()).toEqual(['402 token_spent', 'allow']);
        const fallbacks = metrics.reduce((n, m) => n + metricValue(m, 'plannt_spent_set_fallbacks_total'), 0);
        expect(during.filter((o) => o.kind === 'allow').length).toBeGreaterThan(0);
        expect(fallbacks).toBeGreaterThanOrEqual(during.length);
      }
      expect(recoveryMs).toBeLessThanOrEqual(1000);

      // And after it: every token allowed so far is refused now, whichever replica sees it.
      for (const [i, token] of load.allowed.slice(0, 60).entries()) {
        const res = await check(clients[i % clients.length] as grpc.Client, {
          ...FORECAST,
          headers: { authorization: token.authorization },
        });
        expect(res.body.error).toBe('token_spent');
      }
      expect(unhandled).toEqual([]);
    } finally {
      await load.stop();
    }
  });
});
