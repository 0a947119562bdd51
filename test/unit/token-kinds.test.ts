/**
 * Token kinds as data: a single-use token, an N-use bundle and a time pass are one token type whose
 * `plannt_uses` / `plannt_max_rps` caveats say what was sold. Attenuation only narrows them; the route bounds
 * them; the spent-set counts uses exactly, including when it falls back to local memory and writes back.
 */
import { devInvoiceBackend } from '../../src/adapters/dev-invoices';
import { withLocalFallback } from '../../src/adapters/fallback-spent-set';
import { memorySpentSet } from '../../src/adapters/memory-spent-set';
import { decide, type Engine, type GateRequest } from '../../src/core/decide';
import type { Decision } from '../../src/core/decision';
import { type Consumption, DependencyUnavailable, type SpentSet, type UseLimit } from '../../src/core/ports';
import { render } from '../../src/core/response';
import type { RouteRule } from '../../src/core/routes';
import { kindOf, needsCounting, termsFor } from '../../src/core/token-kind';
import { caveatsFor, type MintedTerms } from '../../src/l402/caveats';
import { verifyCredential } from '../../src/l402/verify';
import { attenuate, credential, KEYS, LIMITS, mint, NEEDS, NOW_MS, TERMS } from '../support/l402';

const verify = (raw: Buffer) => verifyCredential(credential([raw]), NEEDS, KEYS, LIMITS);
const usesOf = (raw: Buffer) => {
  const result = verify(raw);
  return result.ok ? result.token.uses : result.reason;
};
const token = (terms: Partial<MintedTerms> = {}) => mint(terms);

describe('the plannt_uses and plannt_max_rps caveats', () => {
  it('are not minted for a single-use token, which stays byte-identical to older ones', () => {
    expect(caveatsFor({ ...TERMS, uses: 1 })).toEqual(caveatsFor(TERMS));
    expect(token({ uses: 1 }).equals(token())).toBe(true);
  });

  it('say what was sold: a token without plannt_uses is single-use', () => {
    expect(usesOf(token())).toBe(1);
    expect(usesOf(token({ uses: 10 }))).toBe(10);
    expect(usesOf(token({ uses: 'unlimited' }))).toBe('unlimited');
  });

  it('narrow only: repeats give the minimum, and a number narrows unlimited', () => {
    expect(usesOf(attenuate(token({ uses: 10 }), 'plannt_uses=5'))).toBe(5);
    expect(usesOf(attenuate(token({ uses: 10 }), 'plannt_uses=50'))).toBe(10);
    expect(usesOf(attenuate(token({ uses: 10 }), 'plannt_uses=unlimited'))).toBe(10);
    expect(usesOf(attenuate(token({ uses: 'unlimited' }), 'plannt_uses=3'))).toBe(3);
  });

  it('refuse a malformed value as invalid_caveat', () => {
    for (const bad of ['0', '-1', '1.5', 'many', '', '01', 'Unlimited']) {
      expect(usesOf(attenuate(token({ uses: 10 }), `plannt_uses=${bad}`))).toBe('invalid_caveat');
    }
    expect(verify(attenuate(token({ uses: 'unlimited' }), 'plannt_max_rps=0'))).toMatchObject({
      ok: false,
      reason: 'invalid_caveat',
    });
  });

  it('narrow the rate too', () => {
    const pass = token({ uses: 'unlimited', maxRequestsPerSecond: 10 });
    expect(verify(attenuate(pass, 'plannt_max_rps=3'))).toMatchObject({
      ok: true,
      token: { maxRequestsPerSecond: 3 },
    });
    expect(verify(attenuate(pass, 'plannt_max_rps=30'))).toMatchObject({
      ok: true,
      token: { maxRequestsPerSecond: 10 },
    });
  });
});

describe('a token is bounded by what its route sells today', () => {
  it('a single-use token widened by an appended plannt_uses=unlimited still buys one use', () => {
    const widened = verify(attenuate(token(), 'plannt_uses=unlimited'));
    if (!widened.ok) throw new Error('expected the caveat to be accepted');
    expect(widened.token.uses).toBe('unlimited');
    expect(termsFor(widened.token, {})).toEqual({ uses: 1 });
    expect(termsFor(widened.token, { uses: 1 })).toEqual({ uses: 1 });
  });

  it('the narrower rate of the token and the route applies; a single use has none', () => {
    expect(termsFor({ uses: 'unlimited', maxRequestsPerSecond: 5 }, { uses: 'unlimited' })).toEqual({
      uses: 'unlimited',
      maxRequestsPerSecond: 5,
    });
    expect(
      termsFor({ uses: 'unlimited' }, { uses: 'unlimited', maxRequestsPerSecond: 2 }).maxRequestsPerSecond,
    ).toBe(2);
    expect(termsFor({ uses: 1, maxRequestsPerSecond: 5 }, { uses: 10 })).toEqual({ uses: 1 });
  });

  it('names the kinds, and counts all but a pass without a rate bound', () => {
    expect([kindOf(1), kindOf(5), kindOf('unlimited')]).toEqual(['single', 'bundle', 'pass']);
    expect(needsCounting({ uses: 'unlimited' })).toBe(false);
    expect(needsCounting({ uses: 'unlimited', maxRequestsPerSecond: 1 })).toBe(true);
    expect(needsCounting({ uses: 1 })).toBe(true);
  });
});

const rule = (id: string, prefix: string, extra: Partial<RouteRule> = {}): RouteRule => ({
  id,
  service: 'weather',
  priceSats: 10,
  tokenLifetimeSeconds: 3600,
  invoiceExpirySeconds: 600,
  path: { prefix },
  ...extra,
});

function engineWith(spentSet: SpentSet, clock = { now: NOW_MS }) {
  const dev = devInvoiceBackend();
  const consumed: UseLimit[] = [];
  const engine: Engine = {
    routes: {
      rules: [
        rule('single', '/single'),
        rule('bundle', '/bundle', { uses: 3 }),
        rule('pass', '/pass', { uses: 'unlimited' }),
        rule('paced', '/paced', { uses: 'unlimited', maxRequestsPerSecond: 2 }),
      ],
      unmatched: { action: 'deny' },
      defaults: { tokenLifetimeSeconds: 3600, invoiceExpirySeconds: 600 },
    },
    keys: KEYS,
    invoices: dev,
    spentSet: {
      name: spentSet.name,
      consume(hash, use, timeoutMs) {
        consumed.push(use);
        return spentSet.consume(hash, use, timeoutMs);
      },
      refund: (hash) => spentSet.refund(hash),
      probe: () => spentSet.probe(),
      close: () => spentSet.close(),
    },
    limits: { maxAuthorizationBytes: 8192, maxMacaroons: 4, maxMacaroonBytes: 4096, maxCaveats: 32 },
    now: () => clock.now,
    clockSkewSeconds: 30,
    invoiceTimeoutMs: 3000,
    retryAfterSeconds: 5,
    location: 'plannt',
  };
  const request = (path: string, authorization?: string): GateRequest => ({
    host: 'api.example.com',
    path,
    method: 'GET',
    contextExtensions: {},
    deadline: clock.now + 5000,
    ...(authorization && { authorization }),
  });
  async function buy(path: string) {
    const decision = await decide(request(path), engine);
    if (decision.kind !== 'deny' || !decision.challenge) throw new Error('expected a challenge');
    const preimage = dev.pay(decision.challenge.invoice);
    if (!preimage) throw new Error('unknown invoice');
    return {
      challenge: decision.challenge,
      authorization: `L402 ${decision.challenge.macaroon}:${preimage.toString('hex')}`,
    };
  }
  return { engine, request, buy, consumed, clock };
}

const summary = (d: Decision) =>
  d.kind === 'allow' ? `allow:${String(d.remaining)}` : `${d.reason}:${d.challenge ? 'challenge' : 'none'}`;

describe('deciding with token kinds', () => {
  it('a 3-use bundle allows exactly three requests, then 402 token_exhausted with a fresh challenge', async () => {
    const t = engineWith(memorySpentSet(100, 'memory', () => NOW_MS));
    const { challenge, authorization } = await t.buy('/bundle');
    expect(challenge.uses).toBe(3);
    const outcomes: string[] = [];
    for (let i = 0; i < 5; i++)
      outcomes.push(summary(await decide(t.request('/bundle', authorization), t.engine)));
    expect(outcomes).toEqual([
      'allow:2',
      'allow:1',
      'allow:0',
      'token_exhausted:challenge',
      'token_exhausted:challenge',
    ]);
    const exhausted = render(await decide(t.request('/bundle', authorization), t.engine), {
      stripAuthorization: true,
    });
    expect(exhausted.allowed === false && exhausted.status).toBe(402);
  });

  it('the challenge body says the uses and the token expiry, keeping expires_at for the invoice', async () => {
    const t = engineWith(memorySpentSet(100));
    const answer = render(await decide(t.request('/pass'), t.engine), { stripAuthorization: true });
    if (answer.allowed) throw new Error('expected a challenge');
    const body = JSON.parse(answer.body);
    expect(body.uses).toBe('unlimited');
    expect(body.token_expires_at).toBe(new Date(NOW_MS + 3600_000).toISOString());
    // The dev backend dates its invoices by the wall clock; what matters is that the two differ.
    expect(body.expires_at).toEqual(expect.any(String));
    expect(body.expires_at).not.toBe(body.token_expires_at);
  });

  it('a pass without a rate bound is never counted: no spent-set call, header "unlimited"', async () => {
    const t = engineWith(memorySpentSet(100));
    const { authorization } = await t.buy('/pass');
    for (let i = 0; i < 50; i++) {
      const decision = await decide(t.request('/pass', authorization), t.engine);
      expect(summary(decision)).toBe('allow:unlimited');
      const answer = render(decision, { stripAuthorization: true });
      expect(answer.allowed && answer.clientHeaders).toEqual([['x-l402-uses-remaining', 'unlimited']]);
    }
    expect(t.consumed).toEqual([]);
  });

  it('a pass is refused once its token expires', async () => {
    const t = engineWith(memorySpentSet(100));
    const { authorization } = await t.buy('/pass');
    t.clock.now += 3600_000;
    expect(summary(await decide(t.request('/pass', authorization), t.engine))).toBe('expired:challenge');
  });

  it('a paced pass answers 429 token_rate_limited with Retry-After 1 past its rate, and not a new invoice', async () => {
    const clock = { now: NOW_MS };
    const t = engineWith(
      memorySpentSet(100, 'memory', () => clock.now),
      clock,
    );
    const { authorization } = await t.buy('/paced');
    const second = async () => {
      const out: string[] = [];
      for (let i = 0; i < 3; i++)
        out.push(summary(await decide(t.request('/paced', authorization), t.engine)));
      return out;
    };
    expect(await second()).toEqual(['allow:unlimited', 'allow:unlimited', 'token_rate_limited:none']);
    const limited = render(await decide(t.request('/paced', authorization), t.engine), {
      stripAuthorization: true,
    });
    expect(limited.allowed === false && limited.status).toBe(429);
    expect(limited.allowed === false && limited.headers).toContainEqual(['retry-after', '1']);
    clock.now += 1000;
    expect(await second()).toEqual(['allow:unlimited', 'allow:unlimited', 'token_rate_limited:none']);
  });

  it('a single-use token widened by its holder is still refused on its second use (token_spent)', async () => {
    const t = engineWith(memorySpentSet(100));
    const { challenge, authorization } = await t.buy('/single');
    const preimage = authorization.split(':')[1];
    const widened = attenuate(Buffer.from(challenge.macaroon, 'base64'), 'plannt_uses=unlimited');
    const auth = `L402 ${widened.toString('base64')}:${preimage}`;
    expect(summary(await decide(t.request('/single', auth), t.engine))).toBe('allow:0');
    expect(summary(await decide(t.request('/single', auth), t.engine))).toBe('token_spent:challenge');
  });

  it('a bundle narrowed to one use by its holder shares the count with the original', async () => {
    const t = engineWith(memorySpentSet(100));
    const { challenge, authorization } = await t.buy('/bundle');
    const preimage = authorization.split(':')[1];
    const narrowed = attenuate(Buffer.from(challenge.macaroon, 'base64'), 'plannt_uses=1');
    const auth = `L402 ${narrowed.toString('base64')}:${preimage}`;
    expect(summary(await decide(t.request('/bundle', authorization), t.engine))).toBe('allow:2');
    expect(summary(await decide(t.request('/bundle', auth), t.engine))).toBe('token_spent:challenge');
  });
});

/** A shared set that can be switched off, as a Redis outage looks to the fallback. */
function switchable(store: SpentSet) {
  const state = { up: true };
  const set: SpentSet = {
    name: 'redis',
    consume: (hash, use, timeoutMs): Promise<Consumption> =>
      state.up
        ? store.consume(hash, use, timeoutMs)
        : Promise.reject(new DependencyUnavailable('spent_set', 'down')),
    refund: (hash) =>
      state.up ? store.refund(hash) : Promise.reject(new DependencyUnavailable('spent_set', 'down')),
    probe: () =>
      state.up ? Promise.resolve() : Promise.reject(new DependencyUnavailable('spent_set', 'down')),
    close: async () => {},
  };
  return { set, state };
}

describe('local_fallback writes local uses back when the shared set returns', () => {
  const hash = Buffer.alloc(32, 9);
  const bundle: UseLimit = { limit: 5, ttlMs: 60_000 };

  it('a token spent on replica A during an outage is refused by replica B afterwards', async () => {
    const shared = memorySpentSet(100, 'shared');
    const a = switchable(shared);
    const b = switchable(shared);
    const replicaA = withLocalFallback(a.set, memorySpentSet(100, 'local'), () => {});
    const replicaB = withLocalFallback(b.set, memorySpentSet(100, 'local'), () => {});
    a.state.up = false;
    expect(await replicaA.consume(hash, { limit: 1, ttlMs: 60_000 })).toEqual({ ok: true, used: 1 });
    a.state.up = true;
    await replicaA.probe();
    expect(await replicaB.consume(hash, { limit: 1, ttlMs: 60_000 })).toEqual({
      ok: false,
      why: 'exhausted',
    });
  });

  it('counts a bundle across the outage exactly: shared uses, local uses, written back once', async () => {
    const shared = memorySpentSet(100, 'shared');
    const a = switchable(shared);
    const replicaA = withLocalFallback(a.set, memorySpentSet(100, 'local'), () => {});
    const replicaB = withLocalFallback(switchable(shared).set, memorySpentSet(100, 'local'), () => {});
    expect(await replicaA.consume(hash, bundle)).toEqual({ ok: true, used: 1 });
    expect(await replicaA.consume(hash, bundle)).toEqual({ ok: true, used: 2 });
    a.state.up = false;
    // Starts from the 2 the shared set reported, not from zero.
    expect(await replicaA.consume(hash, bundle)).toEqual({ ok: true, used: 3 });
    expect(await replicaA.consume(hash, bundle)).toEqual({ ok: true, used: 4 });
    a.state.up = true;
    // Its own pending uses are written first, so the shared count includes them.
    expect(await replicaA.consume(hash, bundle)).toEqual({ ok: true, used: 5 });
    expect(shared.usedBy(hash)).toBe(5);
    expect(await replicaB.consume(hash, bundle)).toEqual({ ok: false, why: 'exhausted' });
    await replicaA.probe();
    expect(shared.usedBy(hash)).toBe(5);
  });

  it('fails closed when too many tokens wait to be written back', async () => {
    const down = switchable(memorySpentSet(100, 'shared'));
    down.state.up = false;
    const replica = withLocalFallback(down.set, memorySpentSet(100, 'local'), () => {}, { maxPending: 2 });
    await replica.consume(Buffer.alloc(32, 1), bundle);
    await replica.consume(Buffer.alloc(32, 2), bundle);
    await expect(replica.consume(Buffer.alloc(32, 3), bundle)).rejects.toBeInstanceOf(DependencyUnavailable);
  });
});
