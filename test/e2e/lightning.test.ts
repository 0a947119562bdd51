/**
 * The whole L402 lifecycle over real Lightning: btcd and two lnd nodes on regtest (test/regtest), alice
 * selling through Plannt with an invoice-only macaroon, bob paying over a real bob → alice channel. Two
 * Plannt replicas share only the root key and the real Redis. Needs the binaries test/regtest/build-tools.sh
 * builds; without them every test fails saying so.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { Invoice } from '@getalby/lightning-tools';
import { type AuthenticatedLnd, authenticatedLndGrpc, getWalletInfo } from 'ln-service';
import {
  lncli,
  lndCredentials,
  type RegtestNetwork,
  restartNode,
  startNetwork,
  stopNetwork,
  stopNode,
} from '../regtest/network';
import { authorizationClient, type CheckInput, type CheckResult, check } from '../support/envoy-client';
import { l402Authorization, payInvoice, readChallenge, sha256Hex } from '../support/l402-agent';
import {
  deleteRedisKeys,
  dependencyUp,
  metricValue,
  type Plannt,
  REDIS_URL,
  ROUTES,
  randomRootKey,
  sleep,
  startPlannt,
  uniqueRedisPrefix,
  waitFor,
} from '../support/plannt';
import { serve } from '../support/plannt-process';

// Start-up (btcd, two lnd, mining, a channel) takes 20–60 s on 2 busy cores; the outage test restarts lnd.
jest.setTimeout(120_000);

const FORECAST: CheckInput = { method: 'GET', host: 'api.example.com', path: '/v1/forecast?city=lisbon' };
/** An invoice that expires one second after the challenge. */
const FLASH: CheckInput = { method: 'GET', host: 'api.example.com', path: '/v1/flash' };
/** A token that lives 5 s, its invoice 4 s. */
const BRIEF: CheckInput = { method: 'GET', host: 'api.example.com', path: '/v1/brief' };

const E2E_ROUTES = [
  ...ROUTES,
  { id: 'flash', service: 'weather', price_sats: 3, path: { exact: '/v1/flash' }, invoice_expiry_seconds: 1 },
  {
    id: 'brief',
    service: 'weather',
    price_sats: 4,
    path: { exact: '/v1/brief' },
    token_lifetime_seconds: 5,
    invoice_expiry_seconds: 4,
  },
];

describe('L402 over a real Lightning channel (regtest)', () => {
  let net: RegtestNetwork;
  let bob: AuthenticatedLnd;
  let a: Plannt;
  let b: Plannt;
  const prefix = uniqueRedisPrefix();
  const rootKeyHex = randomRootKey();
  let overrides: Record<string, unknown>;

  beforeAll(async () => {
    net = await startNetwork();
    bob = authenticatedLndGrpc(lndCredentials(net.bob)).lnd;
    overrides = {
      backend: {
        kind: 'lnd',
        timeout_ms: 3000,
        lnd: {
          socket: net.alice.socket,
          cert_file: net.alice.certPath,
          macaroon_file: net.alice.invoiceMacaroonPath,
        },
      },
      spent_set: { kind: 'redis', redis: { url: REDIS_URL, key_prefix: prefix, command_timeout_ms: 2000 } },
      routes: E2E_ROUTES,
    };
    [a, b] = await Promise.all([
      startPlannt(overrides, { rootKeyHex, readinessIntervalMs: 200 }),
      startPlannt(overrides, { rootKeyHex, readinessIntervalMs: 200 }),
    ]);
  }, 240_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    if (bob) for (const client of Object.values(bob)) (client as { close?: () => void }).close?.();
    if (net) await stopNetwork(net);
    await deleteRedisKeys(prefix);
  });

  /** Step 1 of the lifecycle: the request without a credential, answered 402 with a challenge. */
  async function challenge(on: Plannt, input: CheckInput = FORECAST) {
    const res = await on.check(input);
    expect(res.status).toBe(402);
    const [l402, lsat] = res.header('www-authenticate');
    expect(lsat?.startsWith('LSAT ')).toBe(true);
    return { res, ...readChallenge(l402 ?? '') };
  }

  /** Challenge on `on`, pay over the channel from bob; the paid token is not used yet. */
  async function buy(on: Plannt, input: CheckInput = FORECAST) {
    const c = await challenge(on, input);
    const payment = await payInvoice(bob, c.invoice);
    return { ...c, payment, authorization: l402Authorization(c.macaroon, payment.preimage) };
  }

  const use = (on: Plannt, authorization: string, input: CheckInput = FORECAST): Promise<CheckResult> =>
    on.check({ ...input, headers: { authorization } });

  const counter = async (on: Plannt, name: string, labels: Record<string, string> = {}) =>
    metricValue(await on.metrics(), name, labels);

  describe('an agent buys one request', () => {
    it('gets a 402 whose challenge an independent L402 client parses: macaroon bound to the invoice’s payment hash', async () => {
      const c = await challenge(a);
      expect(c.scheme).toBe('L402');
      expect(c.macaroon).toBe(c.res.body.macaroon);
      expect(c.invoice.paymentRequest).toBe(c.res.body.invoice);
      expect(c.invoice.paymentRequest.startsWith('lnbcrt')).toBe(true);
      expect(c.invoice.satoshi).toBe(10);
      expect(c.invoice.description).toBe('weather: forecast');
      expect(c.invoice.hasExpired()).toBe(false);
      expect(c.invoice.paymentHash).toBe(c.res.body.payment_hash);
      expect(c.token.paymentHash).toBe(c.invoice.paymentHash);
      expect(c.token.location).toBe('plannt-test');
      expect(c.token.caveats).toEqual(
        expect.arrayContaining(['services=weather:0', 'plannt_route=forecast', 'plannt_price_sats=10']),
      );
      // The invoice is alice's: her node holds it, open.
      const held = JSON.parse(await lncli(net, 'alice', 'lookupinvoice', c.invoice.paymentHash));
      expect(held.state).toBe('OPEN');
      expect(held.value).toBe('10');
    });

    it('pays over the bob → alice channel, retries with the preimage and is served; the replay is token_spent', async () => {
      const bought = await buy(a);
      expect(sha256Hex(bought.payment.preimage)).toBe(bought.invoice.paymentHash);
      expect(JSON.parse(await lncli(net, 'alice', 'lookupinvoice', bought.invoice.paymentHash)).state).toBe(
        'SETTLED',
      );

      const served = await use(a, bought.authorization);
      expect(served.allowed).toBe(true);
      expect(served.upstreamHeaders).toEqual({
        'x-plannt-payment-hash': bought.invoice.paymentHash,
        'x-plannt-service': 'weather',
        'x-plannt-amount-sats': '10',
      });
      expect(served.removeHeaders).toContain('authorization');

      const replay = await use(a, bought.authorization);
      expect(replay.status).toBe(402);
      expect(replay.body.error).toBe('token_spent');
    });

    it('works with least privilege: the macaroon Plannt holds can create invoices and nothing else', async () => {
      const baked = JSON.parse(
        await lncli(net, 'alice', 'printmacaroon', `--macaroon_file=${net.alice.invoiceMacaroonPath}`),
      );
      expect([...baked.permissions].sort()).toEqual(['invoices:read', 'invoices:write']);
      expect((await a.admin('/readyz')).json().dependencies).toMatchObject({ 'invoice_backend:lnd': true });
      const invoiceOnly = authenticatedLndGrpc(lndCredentials(net.alice, net.alice.invoiceMacaroonPath)).lnd;
      try {
        // ln-service rejects with [503, 'GetWalletInfoErr', { err }]; LND's answer is in err.
        const refused = await getWalletInfo({ lnd: invoiceOnly }).then(
          () => 'allowed',
          (err: unknown) => inspect(err),
        );
        expect(refused).toMatch(/permission denied/);
      } finally {
        for (const client of Object.values(invoiceOnly)) (client as { close?: () => void }).close?.();
      }
    });
  });

  describe('two replicas sharing only the root key and Redis', () => {
    it('serves on B a token challenged on A and paid, then rejects its replay on A', async () => {
      const bought = await buy(a);
      const onB = await use(b, bought.authorization);
      expect(onB.allowed).toBe(true);
      expect(onB.upstreamHeaders['x-plannt-payment-hash']).toBe(bought.invoice.paymentHash);
      const replayOnA = await use(a, bought.authorization);
      expect(replayOnA.status).toBe(402);
      expect(replayOnA.body.error).toBe('token_spent');
    });

    it('allows exactly one of 16 concurrent retries of one paid token spread over both replicas', async () => {
      const bought = await buy(b);
      const results = await Promise.all(
        Array.from({ length: 16 }, (_, i) => use(i % 2 ? a : b, bought.authorization)),
      );
      expect(results.filter((r) => r.allowed)).toHaveLength(1);
      expect(results.filter((r) => r.body.error === 'token_spent')).toHaveLength(15);
    });
  });

  describe('payments that do not buy access', () => {
    it('an expired invoice cannot be paid, and its macaroon with a guessed preimage is rejected', async () => {
      const c = await challenge(a, FLASH);
      await sleep(1500);
      expect(c.invoice.hasExpired()).toBe(true);
      await expect(payInvoice(bob, c.invoice)).rejects.toBeDefined();
      expect(JSON.parse(await lncli(net, 'alice', 'lookupinvoice', c.invoice.paymentHash)).state).not.toBe(
        'SETTLED',
      );
      const guess = await use(a, l402Authorization(c.macaroon, randomBytes(32).toString('hex')), FLASH);
      expect(guess.status).toBe(402);
      expect(guess.body.error).toBe('preimage_mismatch');
    });

    it('a guessed preimage for an unpaid invoice is rejected', async () => {
      const c = await challenge(a);
      const res = await use(a, l402Authorization(c.macaroon, randomBytes(32).toString('hex')));
      expect(res.status).toBe(402);
      expect(res.body.error).toBe('preimage_mismatch');
      expect(JSON.parse(await lncli(net, 'alice', 'lookupinvoice', c.invoice.paymentHash)).state).toBe(
        'OPEN',
      );
    });

    it('paying a different invoice does not unlock the first macaroon', async () => {
      const wanted = await challenge(a);
      const other = await buy(a);
      const res = await use(a, l402Authorization(wanted.macaroon, other.payment.preimage));
      expect(res.status).toBe(402);
      expect(res.body.error).toBe('preimage_mismatch');
      // The preimage still unlocks the token it was paid for.
      expect((await use(a, other.authorization)).allowed).toBe(true);
    });

    it('a paid token used after its lifetime is expired, with a fresh challenge', async () => {
      const bought = await buy(a, BRIEF);
      const validUntil = Number(
        bought.token.caveats.find((c) => c.startsWith('weather_valid_until='))?.split('=')[1],
      );
      await sleep(Math.max(0, validUntil * 1000 - Date.now()) + 1100);
      const res = await use(a, bought.authorization, BRIEF);
      expect(res.status).toBe(402);
      expect(res.body.error).toBe('expired');
      expect(res.header('www-authenticate')).toHaveLength(2);
    });
  });

  describe("payment metrics from LND's settlement stream", () => {
    it('counts a payment when it settles, before (and whether or not) its token is used, on every replica', async () => {
      const labels = { service: 'weather' };
      const before = await Promise.all(
        [a, b].flatMap((p) => [
          counter(p, 'plannt_invoices_settled_total', labels),
          counter(p, 'plannt_invoices_settled_sats_total', labels),
        ]),
      );
      const paidBefore = await counter(a, 'plannt_paid_requests_total');
      await buy(a);
      const counted = await waitFor(async () => {
        const now = await Promise.all(
          [a, b].flatMap((p) => [
            counter(p, 'plannt_invoices_settled_total', labels),
            counter(p, 'plannt_invoices_settled_sats_total', labels),
          ]),
        );
        return now.every((v, i) => v - (before[i] ?? 0) === (i % 2 ? 10 : 1));
      }, 10_000);
      expect(counted).toBe(true);
      expect(await counter(a, 'plannt_paid_requests_total')).toBe(paidBefore);
    });

    it('counts an invoice Plannt did not create under service="other"', async () => {
      const before = await counter(a, 'plannt_invoices_settled_sats_total', { service: 'other' });
      const foreign = JSON.parse(await lncli(net, 'alice', 'addinvoice', '--amt=7', '--memo=coffee')) as {
        payment_request: string;
      };
      await payInvoice(bob, new Invoice({ pr: foreign.payment_request }));
      expect(
        await waitFor(
          async () =>
            (await counter(a, 'plannt_invoices_settled_sats_total', { service: 'other' })) === before + 7,
          10_000,
        ),
      ).toBe(true);
    });
  });

  describe('a pod of two workers (`plannt serve`, workers: 2)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'plannt-e2e-workers-'));
    let pod: ChildProcess | undefined;
    afterAll(() => {
      if (pod?.exitCode === null) pod.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    });

    it('counts a payment once on its /metrics, though both workers watch the settlement stream', async () => {
      const config = path.join(dir, 'plannt.yaml');
      // JSON is YAML: the same settings as the replicas above.
      writeFileSync(
        config,
        JSON.stringify({
          ...overrides,
          listen: { grpc: '127.0.0.1:0', admin: '127.0.0.1:0', http: '127.0.0.1:0' },
          root_keys: [{ id: 7, key: rootKeyHex }],
          current_key_id: 7,
          drain_seconds: 0,
          workers: 2,
        }),
      );
      const served = await serve(config);
      pod = served.child;
      const { logs, ports } = served;
      const metrics = async () => (await fetch(`http://127.0.0.1:${ports.admin_port}/metrics`)).text();
      const settled = async (name: string) => metricValue(await metrics(), name, { service: 'weather' });
      // Ready is the minimum over the workers: both have reached LND.
      expect(
        await waitFor(
          async () =>
            metricValue(await metrics(), 'plannt_dependency_ready', { dependency: 'invoice_backend:lnd' }) ===
            1,
          20_000,
        ),
      ).toBe(true);

      const client = authorizationClient(ports.grpc_port);
      // Each worker logs each settlement it saw.
      const seenBy = () => {
        const counts = new Map<unknown, number>();
        for (const l of logs)
          if (l.msg === 'invoice settled') counts.set(l.pid, (counts.get(l.pid) ?? 0) + 1);
        return counts;
      };
      const everyWorkerSaw = (n: number) => {
        const counts = [...seenBy().values()];
        return counts.length === 2 && counts.every((c) => c === n);
      };
      const buyOnPod = async () => {
        const res = await check(client, FORECAST);
        expect(res.status).toBe(402);
        await payInvoice(bob, readChallenge(res.header('www-authenticate')[0] ?? '').invoice);
      };
      try {
        // A first payment both workers see proves both streams are open (later gaps are replayed).
        await buyOnPod();
        expect(await waitFor(async () => everyWorkerSaw(1), 10_000)).toBe(true);
        const countBefore = await settled('plannt_invoices_settled_total');
        const satsBefore = await settled('plannt_invoices_settled_sats_total');
        await buyOnPod();
        expect(await waitFor(async () => everyWorkerSaw(2), 10_000)).toBe(true);
        expect(await settled('plannt_invoices_settled_total')).toBe(countBefore + 1);
        expect(await settled('plannt_invoices_settled_sats_total')).toBe(satsBefore + 10);
      } finally {
        client.close();
      }
    });
  });

  describe('alice’s LND frozen (SIGSTOP): slower than any deadline', () => {
    it('challenges are a 503 deny before Envoy’s deadline, never a gRPC error; verifies are unaffected; all recovers on SIGCONT', async () => {
      const paidEarlier = await buy(a);
      process.kill(net.alice.pid, 'SIGSTOP');
      try {
        // Envoy's deadline (1 s) is shorter than backend.timeout_ms (3 s): the deadline must bind.
        const started = Date.now();
        const frozen = await a.check({ ...FORECAST, deadlineMs: 1000 });
        expect(Date.now() - started).toBeLessThan(1000);
        expect(frozen.status).toBe(503);
        expect(frozen.body.error).toBe('invoice_backend_unavailable');
        expect(frozen.header('retry-after')).toEqual(['5']);
        expect((await use(b, paidEarlier.authorization)).allowed).toBe(true);
        // The readiness probe gives LND backend.timeout_ms (3 s) before calling it down.
        expect(
          await waitFor(async () => (await dependencyUp(a, 'invoice_backend:lnd')) === false, 8000),
        ).toBe(true);
      } finally {
        process.kill(net.alice.pid, 'SIGCONT');
      }
      expect(await waitFor(async () => (await a.check(FORECAST)).status === 402, 15_000, 250)).toBe(true);
      expect(await waitFor(async () => (await dependencyUp(a, 'invoice_backend:lnd')) === true, 10_000)).toBe(
        true,
      );
    });
  });

  describe('alice’s LND killed mid-run', () => {
    it('challenges get 503 + Retry-After, paid tokens still verify; when LND is back, challenges and settlement counting resume without restarting Plannt', async () => {
      const paidEarlier = await buy(a);
      await stopNode(net, 'alice', 'SIGKILL');

      const down = await a.check(FORECAST);
      expect(down.status).toBe(503);
      expect(down.body.error).toBe('invoice_backend_unavailable');
      expect(down.header('retry-after')).toEqual(['5']);
      expect(down.header('www-authenticate')).toEqual([]);
      expect((await use(a, paidEarlier.authorization)).allowed).toBe(true);
      expect(await waitFor(async () => (await dependencyUp(a, 'invoice_backend:lnd')) === false, 5000)).toBe(
        true,
      );

      await restartNode(net, 'alice');
      const settledBefore = await counter(a, 'plannt_invoices_settled_total', { service: 'weather' });
      expect(await waitFor(async () => (await a.check(FORECAST)).status === 402, 30_000, 500)).toBe(true);
      expect(await waitFor(async () => (await dependencyUp(a, 'invoice_backend:lnd')) === true, 10_000)).toBe(
        true,
      );

      // The settlement stream dropped with LND and reconnected on its own: it counts the next payment.
      expect(a.logs.some((line) => line.includes('LND invoice stream failed; reconnecting'))).toBe(true);
      const bought = await buy(a);
      expect(
        await waitFor(
          async () =>
            (await counter(a, 'plannt_invoices_settled_total', { service: 'weather' })) === settledBefore + 1,
          // The stream's reconnect backoff reaches 10 s while LND restarts; a loaded machine adds to it.
          45_000,
        ),
      ).toBe(true);
      expect((await use(b, bought.authorization)).allowed).toBe(true);
    });
  });
});
