/**
 * The gate on an LND invoice backend: the real ln-service client against a fake LND speaking LND's own
 * gRPC proto over TLS. Invoices are created on the node; verification never needs it.
 */
import * as grpc from '@grpc/grpc-js';
import { parsePaymentRequest } from 'ln-service';
import {
  type CheckResult,
  checkRaw,
  healthCheck,
  healthClient,
  parseCheckResponse,
} from '../support/envoy-client';
import { type FakeLnd, type FakeLndInvoice, startFakeLnd } from '../support/fake-lnd';
import { dependencyUp, metricValue, type Plannt, sleep, startPlannt, waitFor } from '../support/plannt';

const FORECAST = { method: 'GET', host: 'api.example.com', path: '/v1/forecast?city=porto' };
const TIMEOUT_MS = 500;

function lndConfig(fake: FakeLnd, macaroonHex = fake.macaroonHex) {
  return {
    backend: {
      kind: 'lnd',
      timeout_ms: TIMEOUT_MS,
      lnd: {
        socket: fake.socket,
        cert_base64: fake.certBase64,
        macaroon_base64: Buffer.from(macaroonHex, 'hex').toString('base64'),
      },
    },
    spent_set: { kind: 'memory' },
  };
}

function expectUnavailable(res: CheckResult): void {
  expect(res.allowed).toBe(false);
  expect(res.status).toBe(503);
  expect(res.body.error).toBe('invoice_backend_unavailable');
  expect(res.header('retry-after')).toEqual(['5']);
  expect(res.header('www-authenticate')).toEqual([]);
}

describe('L402 gate with an LND invoice backend', () => {
  let fake: FakeLnd;
  let plannt: Plannt;
  let health: grpc.Client;

  beforeAll(async () => {
    fake = await startFakeLnd();
    plannt = await startPlannt(lndConfig(fake), { readinessIntervalMs: 200 });
    health = healthClient(plannt.app.grpcPort);
  });

  afterEach(() => {
    fake.setDown(false);
    fake.setDelayMs(0);
  });

  afterAll(async () => {
    health?.close();
    await plannt?.stop();
    await fake?.stop();
  });

  /** Challenge on Plannt, then pay with the preimage the node holds (what a payer learns). */
  async function buy(): Promise<{ challenge: CheckResult; invoice: FakeLndInvoice; authorization: string }> {
    const before = fake.invoices.length;
    const challenge = await plannt.check(FORECAST);
    expect(challenge.status).toBe(402);
    expect(fake.invoices).toHaveLength(before + 1);
    const invoice = fake.invoices[before] as FakeLndInvoice;
    return {
      challenge,
      invoice,
      authorization: `L402 ${challenge.body.macaroon}:${invoice.preimage.toString('hex')}`,
    };
  }

  /**
   * A call abandoned at the timeout is still running in ln-service: let LND's delayed reply and the
   * follow-up LookupInvoice land before the next test (see the shutdown test at the end of this file).
   */
  async function drainSlowCall(invoicesBefore: number): Promise<void> {
    fake.setDelayMs(0);
    expect(await waitFor(async () => fake.invoices.length > invoicesBefore, 3000)).toBe(true);
    await sleep(100);
  }

  it('is ready once LND answers its probe', async () => {
    const ready = await plannt.admin('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.json().dependencies).toEqual({ 'invoice_backend:lnd': true, 'spent_set:memory': true });
    expect(await healthCheck(health)).toBe('SERVING');
  });

  it('creates the challenge invoice on LND for the route price', async () => {
    const { challenge, invoice } = await buy();
    expect(challenge.body.error).toBe('payment_required');
    expect(invoice.valueSat).toBe(10);
    expect(invoice.memo).toBe('weather: forecast');
    expect(invoice.paymentRequest).toBe(challenge.body.invoice);
    expect(invoice.paymentHash.toString('hex')).toBe(challenge.body.payment_hash);
    expect(invoice.expirySeconds).toBeGreaterThanOrEqual(598);
    expect(invoice.expirySeconds).toBeLessThanOrEqual(600);
    const decoded = parsePaymentRequest({ request: String(challenge.body.invoice) });
    expect(decoded.tokens).toBe(10);
    expect(decoded.id).toBe(challenge.body.payment_hash);
    expect(decoded.network).toBe('regtest');
    expect(challenge.header('www-authenticate')).toHaveLength(2);
  });

  it('allows a request carrying the preimage of the paid LND invoice, once', async () => {
    const { invoice, authorization } = await buy();
    const res = await plannt.check({ ...FORECAST, headers: { authorization } });
    expect(res.allowed).toBe(true);
    expect(res.upstreamHeaders).toEqual({
      'x-plannt-payment-hash': invoice.paymentHash.toString('hex'),
      'x-plannt-service': 'weather',
      'x-plannt-amount-sats': '10',
    });
    const replay = await plannt.check({ ...FORECAST, headers: { authorization } });
    expect(replay.body.error).toBe('token_spent');
    expect(replay.header('www-authenticate')).toHaveLength(2);
  });

  it('answers a challenge with 503 invoice_backend_unavailable and retry-after while LND is down, yet verifies a token paid earlier', async () => {
    const paid = await buy();
    const spent = await buy();
    expect(
      (await plannt.check({ ...FORECAST, headers: { authorization: spent.authorization } })).allowed,
    ).toBe(true);
    const errorsBefore = metricValue(await plannt.metrics(), 'plannt_backend_errors_total', {
      backend: 'lnd',
    });
    fake.setDown(true);

    const before = fake.invoices.length;
    const challenge = await plannt.check(FORECAST);
    expectUnavailable(challenge);
    expect(challenge.grpcCode).toBe(grpc.status.PERMISSION_DENIED);
    expect(fake.invoices).toHaveLength(before);

    const allowed = await plannt.check({ ...FORECAST, headers: { authorization: paid.authorization } });
    expect(allowed.allowed).toBe(true);
    expect(allowed.upstreamHeaders['x-plannt-payment-hash']).toBe(paid.invoice.paymentHash.toString('hex'));

    // A spent token needs a fresh invoice, which LND cannot make now: told to retry, its reason in the detail.
    const replay = await plannt.check({ ...FORECAST, headers: { authorization: spent.authorization } });
    expect([replay.status, replay.body.error]).toEqual([503, 'invoice_backend_unavailable']);
    expect(String(replay.body.detail)).toMatch(/^token_spent; /);
    expect(replay.header('retry-after')).toHaveLength(1);

    const errorsAfter = metricValue(await plannt.metrics(), 'plannt_backend_errors_total', {
      backend: 'lnd',
    });
    expect(errorsAfter - errorsBefore).toBe(2); // the challenge and the replay each asked LND for an invoice
  });

  it('answers 503 within the backend timeout when LND is slow', async () => {
    fake.setDelayMs(2000);
    const before = fake.invoices.length;
    const started = Date.now();
    const res = await plannt.check(FORECAST);
    const elapsed = Date.now() - started;
    expectUnavailable(res);
    expect(res.body.detail).toMatch(/500 ms/);
    expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(elapsed).toBeLessThan(1500);
    await drainSlowCall(before);
  });

  /** A deadline-bound check's outcome: the HTTP answer, or the gRPC error the caller (Envoy) saw. */
  async function checkWithDeadline(
    deadlineMs: number,
  ): Promise<{ elapsed: number; outcome: Record<string, unknown> }> {
    const started = Date.now();
    const outcome = await checkRaw(plannt.client, { ...FORECAST, deadlineMs }).then(
      (raw) => {
        const res = parseCheckResponse(raw);
        return { allowed: res.allowed, status: res.status, error: res.body.error };
      },
      (err: grpc.ServiceError) => ({ grpcError: grpc.status[err.code] }),
    );
    return { elapsed: Date.now() - started, outcome };
  }

  it('never allows when Envoy’s deadline (300 ms) is shorter than a slow LND', async () => {
    fake.setDelayMs(1000);
    const before = fake.invoices.length;
    const { elapsed, outcome } = await checkWithDeadline(300);
    await drainSlowCall(before);
    expect(elapsed).toBeLessThan(1500); // the caller is never held long past its deadline
    expect([
      { allowed: false, status: 503, error: 'invoice_backend_unavailable' },
      { grpcError: 'DEADLINE_EXCEEDED' },
    ]).toContainEqual(outcome);
  });

  it('answers 503 before a 300 ms deadline expires, so failure_mode_allow cannot turn the timeout into an allow', async () => {
    fake.setDelayMs(1000);
    const before = fake.invoices.length;
    const { outcome } = await checkWithDeadline(300);
    await drainSlowCall(before);
    // The invoice budget must end before the caller's deadline, leaving room for the reply to arrive.
    expect(outcome).toEqual({ allowed: false, status: 503, error: 'invoice_backend_unavailable' });
  });

  it('stays in service while LND is down: free and paid requests are served, the outage is reported', async () => {
    const paid = await buy();
    fake.setDown(true);
    const lndUp = () => dependencyUp(plannt, 'invoice_backend:lnd');
    expect(await waitFor(async () => (await lndUp()) === false, 3000)).toBe(true);
    const ready = await plannt.admin('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.json()).toMatchObject({
      status: 'ready',
      dependencies: { 'invoice_backend:lnd': false, 'spent_set:memory': true },
    });
    expect(await healthCheck(health)).toBe('SERVING');
    expect(
      metricValue(await plannt.metrics(), 'plannt_dependency_ready', { dependency: 'invoice_backend:lnd' }),
    ).toBe(0);
    expect((await plannt.check({ method: 'GET', host: 'api.example.com', path: '/status' })).allowed).toBe(
      true,
    );
    expect(
      (await plannt.check({ ...FORECAST, headers: { authorization: paid.authorization } })).allowed,
    ).toBe(true);
    expectUnavailable(await plannt.check(FORECAST));

    fake.setDown(false);
    expect(await waitFor(async () => (await lndUp()) === true, 3000)).toBe(true);
    expect(await healthCheck(health)).toBe('SERVING');
  });

  describe('with a macaroon LND refuses', () => {
    let refused: Plannt;
    beforeAll(async () => {
      refused = await startPlannt(lndConfig(fake, 'ab'.repeat(32)));
    });
    afterAll(async () => {
      await refused?.stop();
    });

    it('starts reporting LND as down and answers a challenge with 503, creating no invoice', async () => {
      const ready = await refused.admin('/readyz');
      expect(ready.status).toBe(200);
      expect(await dependencyUp(refused, 'invoice_backend:lnd')).toBe(false);
      const before = fake.invoices.length;
      expectUnavailable(await refused.check(FORECAST));
      expect(fake.invoices).toHaveLength(before);
    });
  });

  describe('stopping while an LND call is still in flight', () => {
    it('leaves no ln-service follow-up call to crash on the closed channel', async () => {
      const app = await startPlannt(lndConfig(fake));
      fake.setDelayMs(800);
      const before = fake.invoices.length;
      expectUnavailable(await app.check(FORECAST)); // timed out at 500 ms; AddInvoice still pending
      fake.setDelayMs(0);
      await app.stop();
      // LND answers the abandoned AddInvoice now; ln-service then calls LookupInvoice on the client
      // Plannt closed. Correct behaviour: nothing is thrown (an uncaught error fails this test).
      expect(await waitFor(async () => fake.invoices.length > before, 3000)).toBe(true);
      await sleep(200);
    });
  });
});
