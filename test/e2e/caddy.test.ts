/**
 * A real Caddy, configured by the very Caddyfile users get (deploy/caddy/Caddyfile), reverse-proxies to a
 * small upstream and asks Plannt's HTTP port with forward_auth. Everything a client sees is what Caddy
 * sends back; everything the API sees is what the upstream echoes.
 */
import { type ApiBehindCaddy, type ServedRequest, startApiBehindCaddy } from '../support/caddy';
import { parseChallenge } from '../support/envoy-client';
import { type HttpResult, httpCall } from '../support/http';
import { metricValue, type Plannt, ROUTES, startPlannt } from '../support/plannt';

let plannt: Plannt;
let api: ApiBehindCaddy;

beforeAll(async () => {
  plannt = await startPlannt({
    routes: [
      ...ROUTES,
      { id: 'pair', service: 'weather', price_sats: 4, path: { prefix: '/v1/pair' }, uses: 2 },
    ],
  });
  api = await startApiBehindCaddy(`127.0.0.1:${plannt.app.httpPort}`);
}, 30_000);

afterAll(async () => {
  await api?.stop();
  await plannt?.stop();
});

function viaCaddy(method: string, target: string, headers: Record<string, string> = {}): Promise<HttpResult> {
  return httpCall(api.url, { method, path: target, headers: { host: 'api.example.com', ...headers } });
}

/** The request the upstream saw for this call, or undefined when it never reached the upstream. */
async function reaching(call: () => Promise<HttpResult>): Promise<{ res: HttpResult; echo?: ServedRequest }> {
  const before = api.served.length;
  const res = await call();
  return { res, ...(api.served.length > before && { echo: api.served[api.served.length - 1] }) };
}

describe('Caddy forward_auth in front of an API, Plannt deciding', () => {
  let paid: { authorization: string; paymentHash: string };

  test('no token: the client gets 402 with both challenges and the JSON body; the API sees nothing', async () => {
    const { res, echo } = await reaching(() => viaCaddy('GET', '/v1/forecast?city=lisbon'));
    expect(echo).toBeUndefined();
    expect(res.status).toBe(402);
    expect(res.header('content-type')).toEqual(['application/json']);
    const body = res.json();
    expect(body).toMatchObject({ error: 'payment_required', amount_sats: 10, invoice: expect.any(String) });
    const challenges = res.header('www-authenticate').map(parseChallenge);
    expect(challenges.map((c) => c.scheme)).toEqual(['L402', 'LSAT']);
    for (const c of challenges) expect(c).toMatchObject({ macaroon: body.macaroon, invoice: body.invoice });

    const preimage = await plannt.pay(String(body.invoice));
    paid = { authorization: `L402 ${body.macaroon}:${preimage}`, paymentHash: String(body.payment_hash) };
  });

  test('a paid token: the API answers, receiving the x-plannt-* headers and not the credential', async () => {
    const { res, echo } = await reaching(() =>
      viaCaddy('GET', '/v1/forecast?city=lisbon', { authorization: paid.authorization }),
    );
    expect(res.status).toBe(200);
    expect(res.header('x-upstream')).toEqual(['echo']);
    expect(echo?.url).toBe('/v1/forecast?city=lisbon');
    expect(echo?.headers).toMatchObject({
      'x-plannt-payment-hash': paid.paymentHash,
      'x-plannt-service': 'weather',
      'x-plannt-amount-sats': '10',
    });
    expect(echo?.headers.authorization).toBeUndefined();
  });

  test('a 2-use bundle: the client sees x-l402-uses-remaining, the API x-plannt-uses-remaining; the third is 402', async () => {
    const challenge = await reaching(() => viaCaddy('GET', '/v1/pair'));
    const body = challenge.res.json();
    expect(body).toMatchObject({ uses: 2, token_expires_at: expect.any(String) });
    const preimage = await plannt.pay(String(body.invoice));
    const authorization = `L402 ${body.macaroon}:${preimage}`;
    for (const left of ['1', '0']) {
      const { res, echo } = await reaching(() =>
        viaCaddy('GET', '/v1/pair', { authorization, 'x-plannt-uses-remaining': '99' }),
      );
      expect(res.status).toBe(200);
      expect(res.header('x-l402-uses-remaining')).toEqual([left]);
      expect(echo?.headers['x-plannt-uses-remaining']).toBe(left);
    }
    const { res } = await reaching(() => viaCaddy('GET', '/v1/pair', { authorization }));
    expect(res.status).toBe(402);
    expect(res.json().error).toBe('token_exhausted');
  });

  test('a single-use token: no uses-remaining header for the client, none (not even forged) for the API', async () => {
    const challenge = await reaching(() => viaCaddy('GET', '/v1/forecast'));
    const body = challenge.res.json();
    const preimage = await plannt.pay(String(body.invoice));
    const { res, echo } = await reaching(() =>
      viaCaddy('GET', '/v1/forecast', {
        authorization: `L402 ${body.macaroon}:${preimage}`,
        'x-plannt-uses-remaining': '99',
      }),
    );
    expect(res.status).toBe(200);
    expect(res.header('x-l402-uses-remaining')).toEqual([]);
    expect(echo?.headers['x-plannt-uses-remaining']).toBeUndefined();
  });

  test('replay: 402 token_spent, and the API sees nothing', async () => {
    const { res, echo } = await reaching(() =>
      viaCaddy('GET', '/v1/forecast', { authorization: paid.authorization }),
    );
    expect(echo).toBeUndefined();
    expect(res.status).toBe(402);
    expect(res.json().error).toBe('token_spent');
  });

  test('Plannt judges the original method: a POST-only route is priced, its GET is unmatched', async () => {
    const post = await reaching(() => viaCaddy('POST', '/v1/generate'));
    expect(post.res.status).toBe(402);
    expect(post.res.json().amount_sats).toBe(21);
    const get = await reaching(() => viaCaddy('GET', '/v1/generate'));
    expect(get.res.status).toBe(403);
    expect(post.echo ?? get.echo).toBeUndefined();
  });

  test('a free route: the API gets no x-plannt-* header, not even one the client forged, and keeps Authorization', async () => {
    const forged = { 'x-plannt-payment-hash': 'ab'.repeat(32), 'x-plannt-service': 'weather' };
    const { res, echo } = await reaching(() =>
      viaCaddy('GET', '/status', { ...forged, authorization: 'Bearer for-the-api' }),
    );
    expect(res.status).toBe(200);
    expect(Object.keys(echo?.headers ?? {}).filter((name) => name.startsWith('x-plannt-'))).toEqual([]);
    expect(echo?.headers.authorization).toBe('Bearer for-the-api');
  });

  test('a dot segment Caddy passes on raw is judged as the path it resolves to: a free prefix unlocks nothing', async () => {
    const { res, echo } = await reaching(() => viaCaddy('GET', '/status/../v1/forecast'));
    expect(echo).toBeUndefined();
    expect(res.status).toBe(402);
  });

  test('every decision was counted by the same metrics as gRPC', async () => {
    const text = await plannt.metrics();
    // One single-use token on the forecast route, another on it, and both uses of a 2-use bundle.
    expect(metricValue(text, 'plannt_paid_requests_total', { service: 'weather' })).toBe(4);
    expect(metricValue(text, 'plannt_token_uses_total', { kind: 'bundle' })).toBe(2);
    expect(metricValue(text, 'plannt_tokens_exhausted_total', { kind: 'bundle' })).toBe(1);
    expect(metricValue(text, 'plannt_checks_total', { reason: 'token_exhausted' })).toBe(1);
    expect(metricValue(text, 'plannt_checks_total', { reason: 'token_spent' })).toBe(1);
    expect(metricValue(text, 'plannt_checks_total', { decision: 'allow', reason: 'free' })).toBeGreaterThan(
      0,
    );
  });
});
