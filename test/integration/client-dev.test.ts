/**
 * The agent side against a real Plannt (dev backend) behind an Envoy-shaped ext_authz proxy: l402Fetch
 * pays the 402 through the dev wallet, retries with the token and reaches the upstream; the caps stop it
 * before any money moves; one challenge is paid at most once.
 */
import {
  BudgetExceededError,
  ChallengeError,
  createL402Client,
  devWallet,
  l402Fetch,
  l402Request,
  memoryTokenStore,
  PaymentError,
  SpendLedger,
  type Wallet,
} from '../../src/client';
import { type AuthzProxy, startEchoUpstream, startExtAuthzProxy } from '../support/ext-authz-proxy';
import { metricValue, type Plannt, startPlannt } from '../support/plannt';

let plannt: Plannt;
let upstream: { url: string; close(): Promise<void> };
let proxy: AuthzProxy;
let wallet: Wallet;
/** Invoices handed to the wallet, in order. */
let paid: string[];

const BUDGET = { maxPerRequestSats: 100, maxTotalSats: 1000 };

beforeAll(async () => {
  plannt = await startPlannt();
  upstream = await startEchoUpstream();
  proxy = await startExtAuthzProxy(plannt.client, upstream.url);
  const dev = devWallet({ payUrl: `${plannt.adminUrl}/dev/pay` });
  wallet = {
    ...dev,
    pay: (invoice, limits) => {
      paid.push(invoice);
      return dev.pay(invoice, limits);
    },
  };
});
beforeEach(() => {
  paid = [];
});
afterAll(async () => {
  await proxy?.close();
  await upstream?.close();
  await plannt?.stop();
});

const paidRequests = async () =>
  metricValue(await plannt.metrics(), 'plannt_checks_total', { decision: 'allow', reason: 'paid' });

describe('paying a 402', () => {
  it('pays the invoice, retries with the token, and returns the upstream answer with a receipt', async () => {
    const ledger = new SpendLedger();
    const before = await paidRequests();
    const { response, receipt } = await l402Request(`${proxy.url}/v1/forecast?city=oslo`, undefined, {
      wallet,
      budget: BUDGET,
      ledger,
    });
    expect(response.status).toBe(200);
    const echoed = (await response.json()) as { path: string; headers: Record<string, string> };
    expect(echoed.path).toBe('/v1/forecast?city=oslo');
    expect(echoed.headers['x-plannt-amount-sats']).toBe('10');
    expect(echoed.headers['x-plannt-service']).toBe('weather');
    expect(echoed.headers.authorization).toBeUndefined(); // stripped by Plannt's allow
    expect(receipt).toMatchObject({ amountSats: 10, feeSats: 0, host: new URL(proxy.url).host });
    expect(echoed.headers['x-plannt-payment-hash']).toBe(receipt?.paymentHash);
    expect(receipt?.settleMs).toBeGreaterThanOrEqual(0);
    expect(paid).toHaveLength(1);
    expect(await paidRequests()).toBe(before + 1);
    expect(proxy.checks.at(-1)?.authorization).toMatch(/^L402 [A-Za-z0-9+/]+=*:[0-9a-f]{64}$/);

    expect(ledger.entries()).toEqual([
      expect.objectContaining({
        status: 'paid',
        amountSats: 10,
        feeSats: 0,
        paymentHash: receipt?.paymentHash,
      }),
    ]);
    expect(ledger.entries()[0]).not.toHaveProperty('preimage');
    expect(ledger.entries({ withPreimages: true })[0]?.preimage).toMatch(/^[0-9a-f]{64}$/);
    expect(ledger.report()).toMatchObject({ totalSats: 10, paidSats: 10, payments: 1 });
  });

  it('sends the body again on the paid retry of a POST', async () => {
    const res = await l402Fetch(
      `${proxy.url}/v1/history`,
      {
        method: 'POST',
        body: JSON.stringify({ from: '2024-01-01' }),
        headers: { 'content-type': 'application/json' },
      },
      { wallet, budget: BUDGET },
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ method: 'POST', body: '{"from":"2024-01-01"}' });
  });

  it('does not pay for a free route or a 403', async () => {
    const free = await l402Request(`${proxy.url}/status`, undefined, { wallet, budget: BUDGET });
    expect(free.response.status).toBe(200);
    expect(free.receipt).toBeUndefined();
    const forbidden = await l402Request(`${proxy.url}/admin`, undefined, { wallet, budget: BUDGET });
    expect(forbidden.response.status).toBe(403);
    expect(forbidden.receipt).toBeUndefined();
    expect(paid).toEqual([]);
  });

  it('with dryRun reports what it would pay and pays nothing', async () => {
    const before = await paidRequests();
    const { response, wouldPay, receipt } = await l402Request(`${proxy.url}/v1/forecast`, undefined, {
      wallet,
      budget: BUDGET,
      dryRun: true,
    });
    expect(response.status).toBe(402);
    expect(receipt).toBeUndefined();
    expect(wouldPay?.offer).toMatchObject({ amountSats: 10, network: 'regtest', scheme: 'L402' });
    expect(wouldPay?.allowance.sats).toBe(100);
    expect(paid).toEqual([]);
    expect(await paidRequests()).toBe(before);
  });
});

describe('the budget stops payments before money moves', () => {
  it('refuses an invoice above the per-request maximum with BudgetExceededError (per_request)', async () => {
    const call = l402Fetch(`${proxy.url}/v1/forecast`, undefined, {
      wallet,
      budget: { maxPerRequestSats: 9, maxTotalSats: 1000 },
    });
    await expect(call).rejects.toBeInstanceOf(BudgetExceededError);
    await expect(call).rejects.toMatchObject({
      code: 'budget_exceeded',
      limit: 'per_request',
      amountSats: 10,
    });
    expect(paid).toEqual([]);
  });

  it('stops at the total: 25 sats buy two 10-sat requests, the third is refused with 5 sats left', async () => {
    const client = createL402Client({ wallet, budget: { maxPerRequestSats: 10, maxTotalSats: 25 } });
    expect((await client.fetch(`${proxy.url}/v1/forecast`)).status).toBe(200);
    expect((await client.fetch(`${proxy.url}/v1/forecast`)).status).toBe(200);
    const third = client.fetch(`${proxy.url}/v1/forecast`);
    await expect(third).rejects.toMatchObject({ limit: 'total', allowanceSats: 5 });
    await expect(third).rejects.toThrow(/total budget allows 5 more sats; nothing was paid/);
    expect(paid).toHaveLength(2);
    expect(client.report()).toMatchObject({ totalSats: 20, payments: 2 });
  });

  it('holds the total under concurrency: five parallel requests with room for two pay twice', async () => {
    const client = createL402Client({ wallet, budget: { maxPerRequestSats: 10, maxTotalSats: 20 } });
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => client.fetch(`${proxy.url}/v1/forecast`)),
    );
    const ok = results.filter((r) => r.status === 'fulfilled' && r.value.status === 200);
    const refused = results.filter((r) => r.status === 'rejected' && r.reason instanceof BudgetExceededError);
    expect(ok).toHaveLength(2);
    expect(refused).toHaveLength(3);
    expect(paid).toHaveLength(2);
    expect(client.report().totalSats).toBe(20);
  });

  it('caps one host and leaves another untouched (per_host)', async () => {
    const other = await startExtAuthzProxy(plannt.client, upstream.url);
    try {
      const client = createL402Client({
        wallet,
        budget: { maxPerRequestSats: 10, maxTotalSats: 100, maxPerHostSats: 10 },
      });
      expect((await client.fetch(`${proxy.url}/v1/forecast`)).status).toBe(200);
      await expect(client.fetch(`${proxy.url}/v1/forecast`)).rejects.toMatchObject({ limit: 'per_host' });
      expect((await client.fetch(`${other.url}/v1/forecast`)).status).toBe(200);
      expect(Object.keys(client.report().byHost)).toHaveLength(2);
    } finally {
      await other.close();
    }
  });

  it('caps a time window', async () => {
    const client = createL402Client({
      wallet,
      budget: { maxPerRequestSats: 10, maxTotalSats: 100, window: { seconds: 3600, maxSats: 15 } },
    });
    expect((await client.fetch(`${proxy.url}/v1/forecast`)).status).toBe(200);
    await expect(client.fetch(`${proxy.url}/v1/forecast`)).rejects.toMatchObject({
      limit: 'window',
      allowanceSats: 5,
    });
  });
});

describe('invoices the wallet must not pay', () => {
  it('refuses a regtest invoice when the wallet pays on mainnet (wrong_network)', async () => {
    const mainnet = devWallet({ payUrl: `${plannt.adminUrl}/dev/pay`, network: 'bitcoin' });
    const call = l402Fetch(`${proxy.url}/v1/forecast`, undefined, { wallet: mainnet, budget: BUDGET });
    await expect(call).rejects.toBeInstanceOf(ChallengeError);
    await expect(call).rejects.toMatchObject({ code: 'wrong_network' });
  });

  it('refuses an invoice that expires sooner than a payment can settle (invoice_expired)', async () => {
    // The `short` route's invoices expire after 2 s.
    const call = l402Fetch(`${proxy.url}/v1/short`, undefined, { wallet, budget: BUDGET });
    await expect(call).rejects.toMatchObject({ code: 'invoice_expired' });
    expect(paid).toEqual([]);
  });
});

describe('one challenge is paid at most once', () => {
  it('returns the second 402 of a server that challenges again after payment, without paying again', async () => {
    const stubborn = await startExtAuthzProxy(plannt.client, upstream.url, { dropAuthorization: true });
    try {
      const { response, receipt } = await l402Request(`${stubborn.url}/v1/forecast`, undefined, {
        wallet,
        budget: BUDGET,
      });
      expect(response.status).toBe(402);
      expect(receipt?.amountSats).toBe(10);
      expect(paid).toHaveLength(1);
      expect(stubborn.checks).toHaveLength(2);
    } finally {
      await stubborn.close();
    }
  });

  it('never hands an invoice that failed to the wallet again (already_attempted)', async () => {
    const ledger = new SpendLedger();
    const failing: Wallet = {
      name: 'failing',
      network: async () => 'regtest',
      pay: async () => {
        throw new PaymentError('payment_failed', 'no route', 'unknown');
      },
    };
    const challenge = await plannt.check({ method: 'GET', host: 'x', path: '/v1/forecast' });
    const invoiceServer = await startFixedChallenge(challenge.header('www-authenticate'));
    try {
      const first = l402Fetch(invoiceServer.url, undefined, { wallet: failing, budget: BUDGET, ledger });
      await expect(first).rejects.toMatchObject({ code: 'payment_failed', settled: 'unknown' });
      // A payment of unknown outcome still counts against the budget.
      expect(ledger.report()).toMatchObject({ totalSats: 15, uncertainSats: 15 });
      const again = l402Fetch(invoiceServer.url, undefined, { wallet, budget: BUDGET, ledger });
      await expect(again).rejects.toMatchObject({ code: 'already_attempted' });
      expect(paid).toEqual([]);
    } finally {
      await invoiceServer.close();
    }
  });

  it('releases the reservation of a payment that definitely failed', async () => {
    const ledger = new SpendLedger();
    const broken = devWallet({ payUrl: `${plannt.adminUrl}/no-such-endpoint` });
    await expect(
      l402Fetch(`${proxy.url}/v1/forecast`, undefined, { wallet: broken, budget: BUDGET, ledger }),
    ).rejects.toMatchObject({ code: 'payment_failed', settled: 'no' });
    expect(ledger.report().totalSats).toBe(0);
    expect(ledger.entries()[0]?.status).toBe('failed');
  });
});

describe('a token store', () => {
  it('sends the stored token first and pays a fresh challenge when Plannt answers token_spent', async () => {
    const tokenStore = memoryTokenStore();
    const client = createL402Client({ wallet, budget: BUDGET, tokenStore });
    expect((await client.fetch(`${proxy.url}/v1/forecast`)).status).toBe(200);
    const checksBefore = proxy.checks.length;
    expect((await client.fetch(`${proxy.url}/v1/forecast`)).status).toBe(200);
    const second = proxy.checks.slice(checksBefore).map((c) => c.status);
    expect(second).toEqual([402, 200]); // spent token → fresh challenge in the 402 → paid → allowed
    expect(paid).toHaveLength(2);
  });
});

describe('tokens that last: a 5-use bundle', () => {
  let bundleProxy: AuthzProxy;
  beforeAll(async () => {
    // Envoy's per-route config sells this route as 5-use bundles.
    bundleProxy = await startExtAuthzProxy(plannt.client, upstream.url, { context: { 'plannt.uses': '5' } });
  });
  afterAll(() => bundleProxy?.close());

  it('makes 5 requests on one payment, drops the token when told 0 are left, and buys again on the 6th', async () => {
    const client = createL402Client({ wallet, budget: BUDGET });
    const left: (string | null)[] = [];
    for (let i = 0; i < 5; i++) {
      const response = await client.fetch(`${bundleProxy.url}/v1/forecast?i=${i}`);
      expect(response.status).toBe(200);
      left.push(response.headers.get('x-l402-uses-remaining'));
      const echoed = (await response.json()) as { headers: Record<string, string> };
      expect(echoed.headers['x-plannt-uses-remaining']).toBe(left[i]);
    }
    expect(left).toEqual(['4', '3', '2', '1', '0']);
    expect(paid).toHaveLength(1);
    expect(client.report()).toMatchObject({ payments: 1, paidSats: 10 });

    const checksBefore = bundleProxy.checks.length;
    expect((await client.fetch(`${bundleProxy.url}/v1/forecast?i=5`)).status).toBe(200);
    // The token was dropped at "0": the 6th goes without one, is challenged, and pays once more.
    expect(bundleProxy.checks.slice(checksBefore).map((c) => [c.status, Boolean(c.authorization)])).toEqual([
      [402, false],
      [200, true],
    ]);
    expect(paid).toHaveLength(2);
    expect(client.report()).toMatchObject({ payments: 2, paidSats: 20 });
  });

  it('a cached token the server refuses (used up elsewhere) is dropped and a new one bought, within the budget', async () => {
    const tokenStore = memoryTokenStore();
    const client = createL402Client({ wallet, budget: BUDGET, tokenStore });
    expect((await client.fetch(`${bundleProxy.url}/v1/forecast`)).status).toBe(200);
    const key = `${bundleProxy.url}/v1/forecast`;
    const token = tokenStore.get(key);
    expect(token?.usesRemaining).toBe(4);
    expect(token?.expiresAtMs).toBeGreaterThan(Date.now());
    // Someone holding a copy uses the rest.
    const authorization = `L402 ${token?.macaroon}:${token?.preimage}`;
    for (let i = 0; i < 4; i++) await fetch(key, { headers: { authorization } });
    const checksBefore = bundleProxy.checks.length;
    expect((await client.fetch(key)).status).toBe(200);
    expect(bundleProxy.checks.slice(checksBefore).map((c) => c.status)).toEqual([402, 200]);
    expect(paid).toHaveLength(2);
  });

  it('an expired cached token is not sent', async () => {
    const tokenStore = memoryTokenStore();
    const client = createL402Client({ wallet, budget: BUDGET, tokenStore });
    expect((await client.fetch(`${bundleProxy.url}/v1/forecast`)).status).toBe(200);
    const key = `${bundleProxy.url}/v1/forecast`;
    const token = tokenStore.get(key);
    if (!token) throw new Error('expected a stored token');
    tokenStore.set(key, { ...token, expiresAtMs: Date.now() - 1 });
    const checksBefore = bundleProxy.checks.length;
    expect((await client.fetch(key)).status).toBe(200);
    expect(bundleProxy.checks.slice(checksBefore).map((c) => Boolean(c.authorization))).toEqual([
      false,
      true,
    ]);
  });
});

/** A server that answers every request with the same 402: the same invoice, over and over. */
async function startFixedChallenge(values: string[]): Promise<{ url: string; close(): Promise<void> }> {
  const { createServer } = await import('node:http');
  const server = createServer((_req, res) => {
    res.writeHead(402, { 'www-authenticate': values });
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
