import { type DevInvoiceBackend, devInvoiceBackend } from '../../src/adapters/dev-invoices';
import { type MemorySpentSet, memorySpentSet } from '../../src/adapters/memory-spent-set';
import { decide, type Engine, type GateRequest } from '../../src/core/decide';
import type { Challenge, Decision } from '../../src/core/decision';
import { DependencyUnavailable, type InvoiceBackend, type SpentSet } from '../../src/core/ports';
import { concurrencyCap } from '../../src/core/rate-limit';
import { DENIALS } from '../../src/core/reasons';
import { type HttpAnswer, render } from '../../src/core/response';
import type { RouteRule, RouteTable } from '../../src/core/routes';
import { verifyCredential } from '../../src/l402/verify';
import { attenuate, decode, KEYS, LIMITS, LOCATION, NOW, NOW_MS, sha256 } from '../support/l402';

const LIFETIME = 3600;
const INVOICE_EXPIRY = 600;
const SKEW = 30;
const RETRY_AFTER = 5;
const INVOICE_TIMEOUT_MS = 3000;

const rule = (id: string, prefix: string, priceSats: number, extra: Partial<RouteRule> = {}): RouteRule => ({
  id,
  service: 'weather',
  priceSats,
  tokenLifetimeSeconds: LIFETIME,
  invoiceExpirySeconds: INVOICE_EXPIRY,
  path: { prefix },
  ...extra,
});

const ROUTES: RouteTable = {
  rules: [
    rule('forecast', '/v1/forecast', 10),
    rule('premium', '/v1/premium', 1000),
    rule('admin', '/v1/admin', 5, { capability: 'write' }),
    rule('status', '/status', 0, { service: 'public' }),
  ],
  unmatched: { action: 'deny' },
  defaults: { tokenLifetimeSeconds: LIFETIME, invoiceExpirySeconds: INVOICE_EXPIRY },
};

interface Harness {
  engine: Engine;
  dev: DevInvoiceBackend;
  spent: MemorySpentSet;
  invoiceCalls: Array<{ amountSats: number; memo: string; expirySeconds: number; timeoutMs: number }>;
  spendCalls: Array<{ paymentHash: Buffer; ttlMs: number }>;
  refundCalls: Buffer[];
  /** The engine's clock, in milliseconds; tests move it explicitly. */
  clock: { now: number };
}

function harness(
  overrides: {
    invoices?: InvoiceBackend;
    spentSet?: SpentSet;
    routes?: RouteTable;
    spentEntries?: number;
  } = {},
): Harness {
  const dev = devInvoiceBackend();
  const spent = memorySpentSet(overrides.spentEntries ?? 1000);
  const invoiceCalls: Harness['invoiceCalls'] = [];
  const spendCalls: Harness['spendCalls'] = [];
  const refundCalls: Buffer[] = [];
  const clock = { now: NOW_MS };
  const invoices = overrides.invoices ?? dev;
  const spentSet = overrides.spentSet ?? spent;
  const engine: Engine = {
    routes: overrides.routes ?? ROUTES,
    keys: KEYS,
    invoices: {
      name: invoices.name,
      createInvoice(amountSats, memo, expirySeconds, timeoutMs) {
        invoiceCalls.push({ amountSats, memo, expirySeconds, timeoutMs });
        return invoices.createInvoice(amountSats, memo, expirySeconds, timeoutMs);
      },
      probe: () => invoices.probe(),
      close: () => invoices.close(),
    },
    spentSet: {
      name: spentSet.name,
      consume(paymentHash, use) {
        spendCalls.push({ paymentHash, ttlMs: use.ttlMs });
        return spentSet.consume(paymentHash, use);
      },
      refund(paymentHash) {
        refundCalls.push(paymentHash);
        return spentSet.refund(paymentHash);
      },
      probe: () => spentSet.probe(),
      close: () => spentSet.close(),
    },
    limits: { maxAuthorizationBytes: 8192, maxMacaroons: 4, maxMacaroonBytes: 4096, maxCaveats: 32 },
    now: () => clock.now,
    clockSkewSeconds: SKEW,
    invoiceTimeoutMs: INVOICE_TIMEOUT_MS,
    retryAfterSeconds: RETRY_AFTER,
    location: LOCATION,
  };
  return { engine, dev, spent, invoiceCalls, spendCalls, refundCalls, clock };
}

function request(h: Harness, overrides: Partial<GateRequest> = {}): GateRequest {
  return {
    host: 'api.example.com',
    path: '/v1/forecast',
    method: 'GET',
    contextExtensions: {},
    deadline: h.clock.now + 5000,
    ...overrides,
  };
}

function challengeOf(decision: Decision): Challenge {
  if (decision.kind !== 'deny' || !decision.challenge) throw new Error(`no challenge in ${decision.reason}`);
  return decision.challenge;
}

/** Asks for a challenge, pays its invoice through the dev backend and returns the Authorization header. */
async function buy(h: Harness, overrides: Partial<GateRequest> = {}): Promise<string> {
  const challenge = challengeOf(await decide(request(h, overrides), h.engine));
  const preimage = h.dev.pay(challenge.invoice);
  if (!preimage) throw new Error('the dev backend did not know the invoice');
  return `L402 ${challenge.macaroon}:${preimage.toString('hex')}`;
}

const failing = (dependency: 'invoice_backend' | 'spent_set', message: string) => () =>
  Promise.reject(new DependencyUnavailable(dependency, message));

function brokenInvoices(error: Error = new DependencyUnavailable('invoice_backend', 'lnd is down')) {
  return {
    name: 'broken',
    createInvoice: () => Promise.reject(error),
    probe: () => Promise.reject(error),
    close: async () => {},
  } satisfies InvoiceBackend;
}

describe('a request without a credential', () => {
  it('is denied with payment_required and a challenge for the route', async () => {
    const h = harness();
    const decision = await decide(request(h), h.engine);
    expect(decision).toMatchObject({
      kind: 'deny',
      reason: 'payment_required',
      route: { id: 'forecast', service: 'weather', priceSats: 10 },
    });
    const challenge = challengeOf(decision);
    expect(challenge.invoice).toMatch(/^lnbcrt/);
    expect(challenge.paymentHash).toMatch(/^[0-9a-f]{64}$/);
    expect(challenge.amountSats).toBe(10);
    expect(challenge.expiresAt).toBeInstanceOf(Date);
  });

  it("mints a token bound to the invoice's payment hash, the route, the price and now + lifetime", async () => {
    const h = harness();
    const challenge = challengeOf(await decide(request(h), h.engine));
    const mac = decode(Buffer.from(challenge.macaroon, 'base64'));
    expect(mac.location).toBe(LOCATION);
    expect(mac.identifier.subarray(2, 34).toString('hex')).toBe(challenge.paymentHash);
    expect(mac.caveats.map(String)).toEqual([
      'services=weather:0',
      `weather_valid_until=${NOW + LIFETIME}`,
      'plannt_route=forecast',
      'plannt_price_sats=10',
    ]);
  });

  it('the invoice preimage hashes to the challenged payment hash', async () => {
    const h = harness();
    const challenge = challengeOf(await decide(request(h), h.engine));
    const preimage = h.dev.pay(challenge.invoice);
    expect(preimage && sha256(preimage).toString('hex')).toBe(challenge.paymentHash);
  });

  it('asks the backend for the price, a memo naming the route, the invoice expiry and the time budget', async () => {
    const h = harness();
    await decide(request(h), h.engine);
    expect(h.invoiceCalls).toEqual([
      {
        amountSats: 10,
        memo: 'weather: forecast',
        expirySeconds: INVOICE_EXPIRY,
        timeoutMs: INVOICE_TIMEOUT_MS,
      },
    ]);
  });

  it('bounds the invoice call by the time left before the deadline', async () => {
    const h = harness();
    await decide(request(h, { deadline: NOW_MS + 1200 }), h.engine);
    // 10% of the time left is kept back so the answer reaches Envoy before its deadline.
    expect(h.invoiceCalls[0]?.timeoutMs).toBe(1080);
    await decide(request(h, { deadline: NOW_MS + 100 }), h.engine);
    expect(h.invoiceCalls[1]?.timeoutMs).toBe(75); // at least 25 ms
  });

  it('keeps back the worst recent event-loop lag too: the call ends by a timer that fires that late', async () => {
    const h = harness();
    h.engine.admission = { worstLagMs: () => 100 };
    await decide(request(h, { deadline: NOW_MS + 1200 }), h.engine);
    expect(h.invoiceCalls[0]?.timeoutMs).toBe(980);
    // At most another tenth: one long stall must not leave no time for any call after it.
    h.engine.admission = { worstLagMs: () => 10_000 };
    await decide(request(h, { deadline: NOW_MS + 1200 }), h.engine);
    expect(h.invoiceCalls[1]?.timeoutMs).toBe(960);
  });

  it('adds the capability of the route to the minted token', async () => {
    const h = harness();
    const challenge = challengeOf(await decide(request(h, { path: '/v1/admin' }), h.engine));
    const caveats = decode(Buffer.from(challenge.macaroon, 'base64')).caveats.map(String);
    expect(caveats).toContain('weather_capabilities=write');
  });

  it('a Bearer header is challenged like no credential', async () => {
    const h = harness();
    const decision = await decide(request(h, { authorization: 'Bearer abc' }), h.engine);
    expect(decision).toMatchObject({ kind: 'deny', reason: 'payment_required' });
    challengeOf(decision);
  });
});

describe('a paid request', () => {
  it("is allowed as 'paid' with the payment hash and amount", async () => {
    const h = harness();
    const challenge = challengeOf(await decide(request(h), h.engine));
    const preimage = h.dev.pay(challenge.invoice)?.toString('hex');
    const authorization = `L402 ${challenge.macaroon}:${preimage}`;
    const decision = await decide(request(h, { authorization }), h.engine);
    expect(decision).toMatchObject({
      kind: 'allow',
      reason: 'paid',
      amountSats: 10,
      route: { id: 'forecast' },
    });
    const paymentHash = decision.kind === 'allow' ? decision.paymentHash : undefined;
    expect(paymentHash?.toString('hex')).toBe(challenge.paymentHash);
    expect(paymentHash && h.spent.usedBy(paymentHash) === 1).toBe(true);
  });

  it('accepts the LSAT scheme too', async () => {
    const h = harness();
    const authorization = (await buy(h)).replace(/^L402/, 'LSAT');
    expect(await decide(request(h, { authorization }), h.engine)).toMatchObject({
      kind: 'allow',
      reason: 'paid',
    });
  });

  it('capability routes allow the token they minted', async () => {
    const h = harness();
    const authorization = await buy(h, { path: '/v1/admin' });
    const decision = await decide(request(h, { path: '/v1/admin/users', authorization }), h.engine);
    expect(decision).toMatchObject({ kind: 'allow', reason: 'paid', amountSats: 5 });
  });
});

describe('replay', () => {
  it('a second use of the same token is denied token_spent with a fresh challenge', async () => {
    const h = harness();
    const authorization = await buy(h);
    const first = await decide(request(h, { authorization }), h.engine);
    expect(first.kind).toBe('allow');
    const second = await decide(request(h, { authorization }), h.engine);
    expect(second).toMatchObject({ kind: 'deny', reason: 'token_spent' });
    const fresh = challengeOf(second);
    expect(fresh.paymentHash).not.toBe(first.kind === 'allow' && first.paymentHash?.toString('hex'));
  });

  it('the fresh challenge can be paid and used', async () => {
    const h = harness();
    const authorization = await buy(h);
    await decide(request(h, { authorization }), h.engine);
    const replay = await decide(request(h, { authorization }), h.engine);
    const challenge = challengeOf(replay);
    const preimage = h.dev.pay(challenge.invoice)?.toString('hex');
    const next = `L402 ${challenge.macaroon}:${preimage}`;
    expect(await decide(request(h, { authorization: next }), h.engine)).toMatchObject({ kind: 'allow' });
  });

  it('an attenuated copy of a spent token is spent too', async () => {
    const h = harness();
    const authorization = await buy(h);
    await decide(request(h, { authorization }), h.engine);
    const [, credential = ''] = authorization.split(' ');
    const [mac = '', preimage = ''] = credential.split(':');
    const narrowed = attenuate(Buffer.from(mac, 'base64'), `weather_valid_until=${NOW + 60}`).toString(
      'base64',
    );
    const decision = await decide(request(h, { authorization: `L402 ${narrowed}:${preimage}` }), h.engine);
    expect(decision).toMatchObject({ kind: 'deny', reason: 'token_spent' });
  });
});

describe('rejected credentials', () => {
  it('a token bought for a cheaper price is denied insufficient_price with a challenge at the new price', async () => {
    const h = harness();
    const authorization = await buy(h);
    const pricier = request(h, { authorization, contextExtensions: { 'plannt.price_sats': '1000' } });
    const decision = await decide(pricier, h.engine);
    expect(decision).toMatchObject({ kind: 'deny', reason: 'insufficient_price' });
    expect(challengeOf(decision).amountSats).toBe(1000);
  });

  it('a token bought for another route is denied wrong_route with a challenge for this one', async () => {
    const h = harness();
    const authorization = await buy(h);
    const decision = await decide(request(h, { path: '/v1/premium', authorization }), h.engine);
    expect(decision).toMatchObject({ kind: 'deny', reason: 'wrong_route', route: { id: 'premium' } });
    expect(challengeOf(decision).amountSats).toBe(1000);
  });

  it('an expired token is denied expired with a challenge', async () => {
    const h = harness();
    const authorization = await buy(h);
    h.clock.now = (NOW + LIFETIME) * 1000;
    const decision = await decide(request(h, { authorization }), h.engine);
    expect(decision).toMatchObject({ kind: 'deny', reason: 'expired' });
    challengeOf(decision);
  });

  it('an unpaid token is denied preimage_mismatch with a fresh invoice: paying cures it', async () => {
    const h = harness();
    const challenge = challengeOf(await decide(request(h), h.engine));
    const authorization = `L402 ${challenge.macaroon}:${'00'.repeat(32)}`;
    const decision = await decide(request(h, { authorization }), h.engine);
    expect(decision).toMatchObject({ kind: 'deny', reason: 'preimage_mismatch' });
    expect(challengeOf(decision).paymentHash).not.toBe(challenge.paymentHash);
    expect(h.invoiceCalls).toHaveLength(2);
  });

  it('a malformed header is denied with its problem and a fresh invoice', async () => {
    const h = harness();
    const decision = await decide(request(h, { authorization: 'L402 abc:xyz' }), h.engine);
    expect(decision).toMatchObject({ kind: 'deny', reason: 'invalid_preimage' });
    challengeOf(decision);
    expect(h.invoiceCalls).toHaveLength(1);
  });

  it('every credential denial offers a fresh invoice: no 401 is left', () => {
    for (const [reason, spec] of Object.entries(DENIALS))
      expect([reason, spec.status]).not.toEqual([reason, 401]);
  });

  it('a failed verification does not spend the token', async () => {
    const h = harness();
    const authorization = await buy(h);
    await decide(request(h, { path: '/v1/premium', authorization }), h.engine);
    expect(h.spendCalls).toHaveLength(0);
    expect(await decide(request(h, { authorization }), h.engine)).toMatchObject({ kind: 'allow' });
  });
});

describe('free and unmatched routes', () => {
  it("a free route is allowed as 'free' without an invoice", async () => {
    const h = harness();
    const decision = await decide(request(h, { path: '/status' }), h.engine);
    expect(decision).toMatchObject({ kind: 'allow', reason: 'free', route: { id: 'status' } });
    expect(h.invoiceCalls).toHaveLength(0);
  });

  it('a free route ignores whatever Authorization header comes with it', async () => {
    const h = harness();
    const decision = await decide(request(h, { path: '/status', authorization: 'L402 !!!:zz' }), h.engine);
    expect(decision).toMatchObject({ kind: 'allow', reason: 'free' });
  });

  it('an unmatched request is denied unmatched_route under the deny policy', async () => {
    const h = harness();
    expect(await decide(request(h, { path: '/nowhere' }), h.engine)).toEqual({
      kind: 'deny',
      reason: 'unmatched_route',
    });
  });

  it("an unmatched request is allowed as 'unmatched_allowed' under the allow policy", async () => {
    const h = harness({ routes: { ...ROUTES, unmatched: { action: 'allow' } } });
    expect(await decide(request(h, { path: '/nowhere' }), h.engine)).toEqual({
      kind: 'allow',
      reason: 'unmatched_allowed',
    });
  });

  it('invalid context extensions are denied invalid_route_config', async () => {
    const h = harness();
    const decision = await decide(
      request(h, { contextExtensions: { 'plannt.price_sats': 'ten' } }),
      h.engine,
    );
    expect(decision).toMatchObject({ kind: 'deny', reason: 'invalid_route_config' });
  });
});

describe('the invoice backend is unavailable', () => {
  it('a request without a credential is denied invoice_backend_unavailable with retryAfterSeconds', async () => {
    const h = harness({ invoices: brokenInvoices() });
    const decision = await decide(request(h), h.engine);
    expect(decision).toEqual({
      kind: 'deny',
      reason: 'invoice_backend_unavailable',
      route: expect.objectContaining({ id: 'forecast' }),
      detail: 'lnd is down',
      retryAfterSeconds: RETRY_AFTER,
    });
  });

  it('a rejected token is told to retry (503), its own reason kept in the detail', async () => {
    const paying = harness();
    const authorization = await buy(paying);
    const h = harness({ invoices: brokenInvoices() });
    h.clock.now = (NOW + LIFETIME + 1) * 1000;
    const decision = await decide(request(h, { authorization }), h.engine);
    expect(decision).toMatchObject({
      kind: 'deny',
      reason: 'invoice_backend_unavailable',
      detail: 'expired; lnd is down',
      retryAfterSeconds: RETRY_AFTER,
    });
    expect(decision.kind === 'deny' && decision.challenge).toBeUndefined();
  });

  it('a paid request does not need the backend', async () => {
    const paying = harness();
    const authorization = await buy(paying);
    const h = harness({ invoices: brokenInvoices() });
    expect(await decide(request(h, { authorization }), h.engine)).toMatchObject({
      kind: 'allow',
      reason: 'paid',
    });
  });

  it('an error that is not DependencyUnavailable is a bug and propagates (the gate fails closed)', async () => {
    const h = harness({ invoices: brokenInvoices(new TypeError('boom')) });
    await expect(decide(request(h), h.engine)).rejects.toThrow('boom');
  });
});

describe('the spent set is unavailable', () => {
  const brokenSpentSet: SpentSet = {
    name: 'broken',
    consume: failing('spent_set', 'redis is down'),
    refund: failing('spent_set', 'redis is down'),
    probe: failing('spent_set', 'redis is down'),
    close: async () => {},
  };

  it('a paid request is denied spent_set_unavailable with retryAfterSeconds', async () => {
    const paying = harness();
    const authorization = await buy(paying);
    const h = harness({ spentSet: brokenSpentSet });
    expect(await decide(request(h, { authorization }), h.engine)).toEqual({
      kind: 'deny',
      reason: 'spent_set_unavailable',
      route: expect.objectContaining({ id: 'forecast' }),
      detail: 'redis is down',
      retryAfterSeconds: RETRY_AFTER,
    });
  });

  it('a full in-memory spent set fails closed rather than forget a token', async () => {
    const h = harness({ spentEntries: 1 });
    const first = await buy(h);
    const second = await buy(h);
    expect(await decide(request(h, { authorization: first }), h.engine)).toMatchObject({ kind: 'allow' });
    expect(await decide(request(h, { authorization: second }), h.engine)).toMatchObject({
      kind: 'deny',
      reason: 'spent_set_unavailable',
    });
    expect(await decide(request(h, { authorization: first }), h.engine)).toMatchObject({
      reason: 'token_spent',
    });
  });
});

describe('the spent entry outlives the token', () => {
  it('spend() gets a TTL of at least (validUntil − now + clockSkew) seconds', async () => {
    const h = harness();
    const authorization = await buy(h);
    h.clock.now = NOW_MS + 1999; // not on a second boundary
    await decide(request(h, { authorization }), h.engine);
    const validUntil = NOW + LIFETIME;
    const ttlMs = h.spendCalls[0]?.ttlMs ?? 0;
    expect(ttlMs).toBeGreaterThanOrEqual((validUntil - h.clock.now / 1000 + SKEW) * 1000);
    expect(ttlMs).toBeLessThanOrEqual((validUntil - h.clock.now / 1000 + SKEW + 1) * 1000);
  });

  it('a copy attenuated to a shorter expiry still keeps the entry until the minted expiry', async () => {
    const h = harness();
    const authorization = await buy(h);
    const [, credential = ''] = authorization.split(' ');
    const [mac = '', preimage = ''] = credential.split(':');
    const narrowed = attenuate(Buffer.from(mac, 'base64'), `weather_valid_until=${NOW + 2}`).toString(
      'base64',
    );
    await decide(request(h, { authorization: `L402 ${narrowed}:${preimage}` }), h.engine);
    expect(h.spendCalls[0]?.ttlMs).toBe((LIFETIME + SKEW) * 1000);
  });
});

describe('the deadline', () => {
  it('a valid credential is not allowed once the deadline has passed, and is not spent', async () => {
    const h = harness();
    const authorization = await buy(h);
    const late = await decide(request(h, { authorization, deadline: h.clock.now }), h.engine);
    expect(late).toMatchObject({ kind: 'deny', reason: 'deadline_exceeded' });
    expect(h.spendCalls).toHaveLength(0);
    expect(await decide(request(h, { authorization }), h.engine)).toMatchObject({ kind: 'allow' });
  });

  it('a late valid credential is answered 503 with retry-after, like every other 503', async () => {
    const h = harness();
    const authorization = await buy(h);
    const late = await decide(request(h, { authorization, deadline: h.clock.now }), h.engine);
    expect(late).toMatchObject({ kind: 'deny', reason: 'deadline_exceeded', retryAfterSeconds: RETRY_AFTER });
    const answer = render(late, { stripAuthorization: true });
    expect(!answer.allowed && answer.status).toBe(503);
    expect(!answer.allowed && answer.headers).toContainEqual(['retry-after', String(RETRY_AFTER)]);
  });

  it('a request without a credential past its deadline is denied deadline_exceeded, not blamed on the backend', async () => {
    const h = harness();
    const decision = await decide(request(h, { deadline: h.clock.now }), h.engine);
    expect(decision).toMatchObject({
      kind: 'deny',
      reason: 'deadline_exceeded',
      retryAfterSeconds: RETRY_AFTER,
    });
  });

  it('a request without a credential gets no invoice once the deadline has passed', async () => {
    const h = harness();
    const decision = await decide(request(h, { deadline: h.clock.now - 1 }), h.engine);
    expect(decision.kind).toBe('deny');
    expect(decision.kind === 'deny' && decision.challenge).toBeUndefined();
    expect(decision.kind === 'deny' && decision.retryAfterSeconds).toBe(RETRY_AFTER);
    expect(h.invoiceCalls).toHaveLength(0);
  });
});

/** The payment hash an `L402 <macaroon>:<preimage>` header pays: the preimage's SHA-256. */
const paymentHashOf = (authorization: string): Buffer =>
  sha256(Buffer.from(authorization.slice(authorization.lastIndexOf(':') + 1), 'hex'));

/** A spent set whose reply comes back once `advanceMs` have passed on the engine's clock. */
function slowSpend(h: Harness, advanceMs: number): void {
  const consume = h.engine.spentSet.consume.bind(h.engine.spentSet);
  h.engine.spentSet = {
    ...h.engine.spentSet,
    consume: async (hash, use, timeoutMs) => {
      const result = await consume(hash, use, timeoutMs);
      h.clock.now += advanceMs;
      return result;
    },
  };
}

describe('an answer that would arrive after the caller gave up', () => {
  it('gives the use back when the spend returns after the deadline, and the token still buys its request', async () => {
    const h = harness();
    const authorization = await buy(h);
    slowSpend(h, 2000);
    const late = await decide(request(h, { authorization, deadline: h.clock.now + 1000 }), h.engine);
    expect(late).toMatchObject({ kind: 'deny', reason: 'deadline_exceeded', retryAfterSeconds: RETRY_AFTER });
    expect(late.kind === 'deny' && late.detail).toMatch(/given back/);
    expect(h.refundCalls).toHaveLength(1);
    expect(await decide(request(h, { authorization, deadline: h.clock.now + 5000 }), h.engine)).toMatchObject(
      {
        kind: 'allow',
        reason: 'paid',
      },
    );
  });

  it('gives the use back when the caller cancelled while the spend was in flight', async () => {
    const h = harness();
    const authorization = await buy(h);
    let cancelled = false;
    const consume = h.engine.spentSet.consume.bind(h.engine.spentSet);
    h.engine.spentSet = {
      ...h.engine.spentSet,
      consume: async (hash, use, timeoutMs) => {
        const result = await consume(hash, use, timeoutMs);
        cancelled = true;
        return result;
      },
    };
    const abandoned = () => cancelled;
    const decision = await decide(request(h, { authorization, abandoned }), h.engine);
    expect(decision).toMatchObject({ kind: 'deny', reason: 'deadline_exceeded' });
    expect(h.spent.usedBy(paymentHashOf(authorization))).toBe(0);
  });

  it('does no work for a caller already gone: no verification, no spend, no invoice', async () => {
    const h = harness();
    const authorization = await buy(h);
    const invoicesBefore = h.invoiceCalls.length;
    for (const headers of [{ authorization }, {}]) {
      const gone = await decide(request(h, { ...headers, abandoned: () => true }), h.engine);
      expect(gone).toMatchObject({ kind: 'deny', reason: 'deadline_exceeded' });
      expect(gone.kind === 'deny' && gone.detail).toMatch(/gave up before the check began/);
    }
    expect(h.spendCalls).toHaveLength(0);
    expect(h.invoiceCalls).toHaveLength(invoicesBefore);
  });

  it('gives back one use of a bundle, not the whole count', async () => {
    const h = harness({ routes: { ...ROUTES, rules: [rule('forecast', '/v1/forecast', 10, { uses: 3 })] } });
    const authorization = await buy(h);
    expect(await decide(request(h, { authorization }), h.engine)).toMatchObject({ used: 1 });
    slowSpend(h, 2000);
    await decide(request(h, { authorization, deadline: h.clock.now + 1000 }), h.engine);
    expect(h.spent.usedBy(paymentHashOf(authorization))).toBe(1);
  });

  it('still answers deadline_exceeded when the use cannot be given back', async () => {
    const h = harness();
    const authorization = await buy(h);
    slowSpend(h, 2000);
    h.engine.spentSet.refund = failing('spent_set', 'redis is down');
    const late = await decide(request(h, { authorization, deadline: h.clock.now + 1000 }), h.engine);
    expect(late).toMatchObject({ kind: 'deny', reason: 'deadline_exceeded' });
    expect(late.kind === 'deny' && late.detail).toMatch(/giving the use back failed: redis is down/);
  });
});

describe('admission under overload', () => {
  /** Lag-based admission with `busy` paid checks already in progress. */
  function loaded(h: Harness, lagMs: number, busy: number): void {
    const inFlight = concurrencyCap(1000);
    for (let i = 0; i < busy; i++) inFlight.tryAcquire();
    h.engine.admission = { lagMs: () => lagMs, inFlight };
  }

  it('sheds a paid check whose deadline is nearer than the busy event loop can answer: 503, Retry-After 1, no work', async () => {
    const h = harness();
    const authorization = await buy(h);
    loaded(h, 300, 10);
    const invoicesBefore = h.invoiceCalls.length;
    for (const headers of [{ authorization }, {}]) {
      const shed = await decide(request(h, { ...headers, deadline: h.clock.now + 500 }), h.engine);
      expect(shed).toMatchObject({ kind: 'deny', reason: 'overloaded', retryAfterSeconds: 1 });
      expect(shed.kind === 'deny' && shed.detail).toMatch(
        /500 ms are left and a check needs 625 \(event loop 300 ms late, recent checks 0 ms, 10 in progress\)/,
      );
      const answer = render(shed, { stripAuthorization: true });
      expect(!answer.allowed && answer.status).toBe(503);
      expect(!answer.allowed && answer.headers).toContainEqual(['retry-after', '1']);
    }
    expect(h.spendCalls).toHaveLength(0);
    expect(h.invoiceCalls).toHaveLength(invoicesBefore);
  });

  it('admits the same check when its deadline leaves room for the lag', async () => {
    const h = harness();
    const authorization = await buy(h);
    loaded(h, 300, 10);
    const decision = await decide(request(h, { authorization, deadline: h.clock.now + 1000 }), h.engine);
    expect(decision).toMatchObject({ kind: 'allow', reason: 'paid' });
  });

  it('does not shed by lag alone: a loop slowed by other processes, with no checks queued, still serves', async () => {
    const h = harness();
    const authorization = await buy(h);
    loaded(h, 300, 0);
    const decision = await decide(request(h, { authorization, deadline: h.clock.now + 500 }), h.engine);
    expect(decision).toMatchObject({ kind: 'allow', reason: 'paid' });
  });

  it('gives the use back when the answer is ready within twice the lag of the deadline, with checks queued', async () => {
    const h = harness();
    const authorization = await buy(h);
    loaded(h, 30, 10);
    // Admitted with 1,000 ms left; the spend's reply comes 40 ms before the deadline: the request may have
    // waited one lag unread, and its answer waits one more to be written.
    slowSpend(h, 960);
    const late = await decide(request(h, { authorization, deadline: h.clock.now + 1000 }), h.engine);
    expect(late).toMatchObject({ kind: 'deny', reason: 'deadline_exceeded', retryAfterSeconds: RETRY_AFTER });
    expect(h.spent.usedBy(paymentHashOf(authorization))).toBe(0);
  });

  it('serves that answer for a lone check: a lag with nothing queued did not delay it', async () => {
    const h = harness();
    const authorization = await buy(h);
    loaded(h, 30, 0);
    slowSpend(h, 960);
    const decision = await decide(request(h, { authorization, deadline: h.clock.now + 1000 }), h.engine);
    expect(decision).toMatchObject({ kind: 'allow', reason: 'paid' });
  });

  it('never sheds a free route: answering it costs no more than refusing it', async () => {
    const h = harness();
    h.engine.admission = { lagMs: () => 10_000, inFlight: concurrencyCap(1) };
    h.engine.admission.inFlight?.tryAcquire();
    const decision = await decide(request(h, { path: '/status', deadline: h.clock.now + 10 }), h.engine);
    expect(decision).toMatchObject({ kind: 'allow', reason: 'free' });
  });

  it('refuses a check its server shed from a congested queue: 503, Retry-After 1, no work; a free route is served', async () => {
    const h = harness();
    const authorization = await buy(h);
    const invoicesBefore = h.invoiceCalls.length;
    for (const headers of [{ authorization }, {}]) {
      const shed = await decide(request(h, { ...headers, shed: true }), h.engine);
      expect(shed).toMatchObject({ kind: 'deny', reason: 'overloaded', retryAfterSeconds: 1 });
      expect(shed.kind === 'deny' && shed.detail).toMatch(/waited half its deadline in a congested queue/);
    }
    expect(h.spendCalls).toHaveLength(0);
    expect(h.invoiceCalls).toHaveLength(invoicesBefore);
    const free = await decide(request(h, { path: '/status', shed: true }), h.engine);
    expect(free).toMatchObject({ kind: 'allow', reason: 'free' });
    // The token was not spent: it still buys its request.
    expect(await decide(request(h, { authorization }), h.engine)).toMatchObject({
      kind: 'allow',
      reason: 'paid',
    });
  });

  it('sheds paid checks beyond the in-flight cap and admits again once one finishes', async () => {
    const h = harness();
    const authorization = await buy(h);
    const cap = concurrencyCap(1);
    h.engine.admission = { inFlight: cap };
    const release = cap.tryAcquire();
    const shed = await decide(request(h, { authorization }), h.engine);
    expect(shed).toMatchObject({ kind: 'deny', reason: 'overloaded', retryAfterSeconds: 1 });
    expect(shed.kind === 'deny' && shed.detail).toMatch(/1 paid checks are already in progress/);
    release?.();
    expect(await decide(request(h, { authorization }), h.engine)).toMatchObject({ kind: 'allow' });
    expect(cap.inFlight).toBe(0);
  });
});

describe('render()', () => {
  const header = (answer: HttpAnswer, name: string): string[] =>
    answer.allowed ? [] : answer.headers.filter(([n]) => n === name).map(([, v]) => v);

  it('renders payment_required as a 402 with the challenge in the body and two WWW-Authenticate headers', async () => {
    const h = harness();
    const decision = await decide(request(h), h.engine);
    const challenge = challengeOf(decision);
    const answer = render(decision, { stripAuthorization: true });
    if (answer.allowed) throw new Error('expected a denial');
    expect(answer.status).toBe(402);
    expect(header(answer, 'content-type')).toEqual(['application/json']);
    expect(header(answer, 'www-authenticate')).toEqual([
      `L402 macaroon="${challenge.macaroon}", invoice="${challenge.invoice}", version="0"`,
      `LSAT macaroon="${challenge.macaroon}", invoice="${challenge.invoice}", version="0"`,
    ]);
    expect(JSON.parse(answer.body)).toEqual({
      error: 'payment_required',
      message: DENIALS.payment_required.message,
      macaroon: challenge.macaroon,
      invoice: challenge.invoice,
      payment_hash: challenge.paymentHash,
      amount_sats: 10,
      expires_at: challenge.expiresAt.toISOString(),
      uses: 1,
      token_expires_at: new Date(Math.floor(NOW_MS / 1000 + LIFETIME) * 1000).toISOString(),
    });
  });

  it('the 402 macaroon and preimage make a credential verifyCredential accepts', async () => {
    const h = harness();
    const answer = render(await decide(request(h), h.engine), { stripAuthorization: true });
    if (answer.allowed) throw new Error('expected a denial');
    const body = JSON.parse(answer.body) as { macaroon: string; invoice: string };
    const preimage = h.dev.pay(body.invoice) ?? Buffer.alloc(0);
    const result = verifyCredential(
      { macaroons: [body.macaroon], preimage },
      { service: 'weather', routeId: 'forecast', priceSats: 10, now: NOW },
      KEYS,
      LIMITS,
    );
    expect(result.ok).toBe(true);
  });

  it('renders a paid allow with the three x-plannt-* upstream headers', async () => {
    const h = harness();
    const authorization = await buy(h);
    const decision = await decide(request(h, { authorization }), h.engine);
    const hash = decision.kind === 'allow' ? decision.paymentHash?.toString('hex') : undefined;
    const answer = render(decision, { stripAuthorization: true });
    expect(answer).toEqual({
      allowed: true,
      upstreamHeaders: [
        ['x-plannt-payment-hash', hash],
        ['x-plannt-service', 'weather'],
        ['x-plannt-amount-sats', '10'],
      ],
      // A single-use token tells nothing of uses left, and a client's claim of them never reaches upstream.
      removeHeaders: ['authorization', 'x-plannt-uses-remaining'],
      clientHeaders: [],
    });
  });

  it('keeps the Authorization header upstream when not told to strip it', async () => {
    const h = harness();
    const authorization = await buy(h);
    const answer = render(await decide(request(h, { authorization }), h.engine), {
      stripAuthorization: false,
    });
    expect(answer.allowed && answer.removeHeaders).toEqual(['x-plannt-uses-remaining']);
  });

  it('a free allow sets no payment headers and removes any the client sent', async () => {
    const h = harness();
    const answer = render(await decide(request(h, { path: '/status' }), h.engine), {
      stripAuthorization: true,
    });
    expect(answer).toEqual({
      allowed: true,
      upstreamHeaders: [],
      removeHeaders: [
        'x-plannt-payment-hash',
        'x-plannt-service',
        'x-plannt-amount-sats',
        'x-plannt-uses-remaining',
      ],
      clientHeaders: [],
    });
  });

  it('renders a 503 with retry-after', async () => {
    const h = harness({ invoices: brokenInvoices() });
    const answer = render(await decide(request(h), h.engine), { stripAuthorization: true });
    if (answer.allowed) throw new Error('expected a denial');
    expect(answer.status).toBe(503);
    expect(header(answer, 'retry-after')).toEqual([String(RETRY_AFTER)]);
    expect(header(answer, 'www-authenticate')).toEqual([]);
    expect(JSON.parse(answer.body)).toMatchObject({
      error: 'invoice_backend_unavailable',
      detail: 'lnd is down',
    });
  });

  it('renders a spent token as a 402 with a fresh challenge, never to be cached', async () => {
    const h = harness();
    const authorization = await buy(h);
    await decide(request(h, { authorization }), h.engine);
    const answer = render(await decide(request(h, { authorization }), h.engine), {
      stripAuthorization: true,
    });
    if (answer.allowed) throw new Error('expected a denial');
    expect(answer.status).toBe(402);
    expect(header(answer, 'www-authenticate')).toHaveLength(2);
    expect(header(answer, 'cache-control')).toEqual(['no-store']);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'token_spent', amount_sats: 10 });
  });

  it('renders an unmatched route as a 403 without a challenge', () => {
    const answer = render({ kind: 'deny', reason: 'unmatched_route' }, { stripAuthorization: true });
    if (answer.allowed) throw new Error('expected a denial');
    expect(answer.status).toBe(403);
    expect(header(answer, 'retry-after')).toEqual([]);
    expect(JSON.parse(answer.body)).toEqual({
      error: 'unmatched_route',
      message: DENIALS.unmatched_route.message,
    });
  });
});

describe('credential forms real clients send', () => {
  const parts = (authorization: string) => {
    const [mac = '', preimage = ''] = authorization.slice('L402 '.length).split(':');
    return { mac, preimage };
  };

  it("aperture's LSAT + L402 pair, comma-joined as Envoy joins repeated headers, is judged and spent once", async () => {
    const h = harness();
    const { mac, preimage } = parts(await buy(h));
    for (const joiner of [',', ', ']) {
      const pair = `LSAT ${mac}:${preimage}${joiner}L402 ${mac}:${preimage}`;
      const decision = await decide(request(h, { authorization: pair }), h.engine);
      expect(decision.reason).toBe(joiner === ',' ? 'paid' : 'token_spent');
    }
    expect(h.spendCalls).toHaveLength(2);
  });

  it('a malformed credential before a valid one does not turn it into a denial', async () => {
    const h = harness();
    const authorization = `L402 garbage,${await buy(h)}`;
    expect(await decide(request(h, { authorization }), h.engine)).toMatchObject({ reason: 'paid' });
  });

  it('a credential of another scheme joined after ours is not read as part of it', async () => {
    const h = harness();
    const authorization = `${await buy(h)}, Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig`;
    expect(await decide(request(h, { authorization }), h.engine)).toMatchObject({ reason: 'paid' });
  });

  it("a bare hex macaroon header with aperture's preimage caveat is a credential", async () => {
    const h = harness();
    const { mac, preimage } = parts(await buy(h));
    const paid = attenuate(Buffer.from(mac, 'base64'), `preimage=${preimage}`).toString('hex');
    expect(await decide(request(h, { macaroonHeader: paid }), h.engine)).toMatchObject({ reason: 'paid' });
    expect(await decide(request(h, { macaroonHeader: paid }), h.engine)).toMatchObject({
      reason: 'token_spent',
    });
  });

  it('a bare macaroon header without a preimage caveat is answered with a fresh invoice', async () => {
    const h = harness();
    const { mac } = parts(await buy(h));
    const macaroonHeader = Buffer.from(mac, 'base64').toString('hex');
    const decision = await decide(request(h, { macaroonHeader }), h.engine);
    expect(decision).toMatchObject({ reason: 'invalid_preimage' });
    challengeOf(decision);
    expect(h.spendCalls).toHaveLength(0);
  });

  it("aperture's PaidMacaroon form in Authorization (preimage caveat and preimage) is served once", async () => {
    const h = harness();
    const { mac, preimage } = parts(await buy(h));
    const paid = attenuate(Buffer.from(mac, 'base64'), `preimage=${preimage}`).toString('base64');
    const authorization = `L402 ${paid}:${preimage}`;
    expect(await decide(request(h, { authorization }), h.engine)).toMatchObject({ reason: 'paid' });
    const again = await decide(request(h, { authorization: `L402 ${mac}:${preimage}` }), h.engine);
    expect(again).toMatchObject({ reason: 'token_spent' });
    challengeOf(again);
  });
});

describe('shadow routes: decided and recorded as if enforced, then allowed', () => {
  const shadowed = (): RouteTable => ({
    ...ROUTES,
    rules: [rule('forecast', '/v1/forecast', 10, { shadow: true }), ...ROUTES.rules],
  });

  it('allows a request without a credential, saying it would be payment_required, and creates no invoice', async () => {
    const h = harness({ routes: shadowed() });
    const decision = await decide(request(h), h.engine);
    expect(decision).toMatchObject({ kind: 'allow', reason: 'shadow', wouldDeny: 'payment_required' });
    expect(h.invoiceCalls).toHaveLength(0);
  });

  it('serves a paid token as paid (spent once), and allows its replay saying it would be token_spent', async () => {
    const enforcing = harness();
    const authorization = await buy(enforcing);
    const h = harness({ routes: shadowed() });
    expect(await decide(request(h, { authorization }), h.engine)).toMatchObject({
      kind: 'allow',
      reason: 'paid',
    });
    expect(await decide(request(h, { authorization }), h.engine)).toMatchObject({
      kind: 'allow',
      reason: 'shadow',
      wouldDeny: 'token_spent',
    });
    expect(h.spendCalls).toHaveLength(2);
  });

  it('is set per request by the plannt.mode context extension too, and a bad value is invalid_route_config', async () => {
    const h = harness();
    const shadow = await decide(request(h, { contextExtensions: { 'plannt.mode': 'shadow' } }), h.engine);
    expect(shadow).toMatchObject({ kind: 'allow', reason: 'shadow', wouldDeny: 'payment_required' });
    const bad = await decide(request(h, { contextExtensions: { 'plannt.mode': 'loud' } }), h.engine);
    expect(bad).toMatchObject({ kind: 'deny', reason: 'invalid_route_config' });
  });

  it('renders the allow as an unpaid one: no x-plannt-* payment headers reach the upstream', async () => {
    const h = harness({ routes: shadowed() });
    const answer = render(await decide(request(h), h.engine), { stripAuthorization: true });
    expect(answer).toMatchObject({ allowed: true, upstreamHeaders: [] });
  });
});
