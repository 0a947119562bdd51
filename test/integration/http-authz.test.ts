/**
 * The HTTP authorization port end to end with the dev backend: the real server on loopback, called as
 * Envoy's HTTP ext_authz service calls it (original request, path appended to path_prefix) and as a
 * forward-auth proxy calls it (X-Forwarded-Method / -Uri / -Host). Same engine, same metrics as gRPC.
 */
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { parseChallenge } from '../support/envoy-client';
import { type HttpCall, type HttpResult, httpCall } from '../support/http';
import { metricValue, type Plannt, startPlannt } from '../support/plannt';
import { makePki, type Pki } from '../support/tls-certs';

const PREFIX = '/authz';
const PLANNT_HEADERS = [
  'x-plannt-payment-hash',
  'x-plannt-service',
  'x-plannt-amount-sats',
  'x-plannt-uses-remaining',
];

let plannt: Plannt;

beforeAll(async () => {
  plannt = await startPlannt({ http_authz: { path_prefix: PREFIX } });
});

afterAll(async () => {
  await plannt.stop();
});

/** Envoy's http_service: the original method, Host and headers, the path appended to path_prefix. */
function envoy(method: string, path: string, headers: Record<string, string | string[]> = {}) {
  return httpCall(plannt.httpUrl, {
    method,
    path: PREFIX + path,
    headers: { host: 'api.example.com', 'x-request-id': 'req-envoy-1', ...headers },
  });
}

/** Caddy's forward_auth: always GET / (its `uri`), the original request in X-Forwarded-*. */
function forwardAuth(
  method: string,
  uri: string,
  headers: Record<string, string | string[]> = {},
  call: HttpCall = {},
) {
  return httpCall(plannt.httpUrl, {
    method: 'GET',
    path: '/',
    ...call,
    headers: {
      host: 'proxy.internal:8080',
      'x-forwarded-method': method,
      'x-forwarded-uri': uri,
      'x-forwarded-host': 'api.example.com',
      'x-forwarded-proto': 'https',
      'x-forwarded-for': '198.51.100.20',
      ...headers,
    },
  });
}

function expectChallenge(res: HttpResult, amountSats: number): void {
  const values = res.header('www-authenticate');
  expect(values).toHaveLength(2);
  const [l402, lsat] = values.map(parseChallenge);
  const body = res.json();
  expect(l402).toEqual({ scheme: 'L402', macaroon: body.macaroon, invoice: body.invoice });
  expect(lsat).toEqual({ scheme: 'LSAT', macaroon: body.macaroon, invoice: body.invoice });
  expect(body).toMatchObject({
    invoice: expect.stringMatching(/^lnbcrt/),
    payment_hash: expect.stringMatching(/^[0-9a-f]{64}$/),
    amount_sats: amountSats,
  });
}

function expectDenied(res: HttpResult, status: number, reason: string): void {
  expect(res.status).toBe(status);
  expect(res.header('content-type')).toEqual(['application/json']);
  expect(res.json().error).toBe(reason);
}

async function payFor(res: HttpResult): Promise<{ authorization: string; paymentHash: string }> {
  const body = res.json();
  const preimage = await plannt.pay(String(body.invoice));
  return { authorization: `L402 ${body.macaroon}:${preimage}`, paymentHash: String(body.payment_hash) };
}

describe('Envoy HTTP ext_authz convention', () => {
  test('no token: 402 with both WWW-Authenticate challenges and the JSON body', async () => {
    const res = await envoy('GET', '/v1/forecast?city=lisbon');
    expectDenied(res, 402, 'payment_required');
    expectChallenge(res, 10);
  });

  test('a paid token: 200 whose x-plannt-* headers go upstream, and Envoy is told to drop Authorization', async () => {
    const { authorization, paymentHash } = await payFor(await envoy('GET', '/v1/forecast'));
    const res = await envoy('GET', '/v1/forecast?city=porto', { authorization });
    expect(res.status).toBe(200);
    expect(res.header('x-plannt-payment-hash')).toEqual([paymentHash]);
    expect(res.header('x-plannt-service')).toEqual(['weather']);
    expect(res.header('x-plannt-amount-sats')).toEqual(['10']);
    expect(res.header('x-envoy-auth-headers-to-remove')).toEqual(['authorization,x-plannt-uses-remaining']);
    expect(res.text).toBe('');
  });

  test('replay: 402 token_spent, with a fresh challenge', async () => {
    const { authorization } = await payFor(await envoy('GET', '/v1/forecast'));
    expect((await envoy('GET', '/v1/forecast', { authorization })).status).toBe(200);
    const replay = await envoy('GET', '/v1/forecast', { authorization });
    expectDenied(replay, 402, 'token_spent');
    expectChallenge(replay, 10);
  });

  test('a malformed Authorization header: 402 malformed_header, with a fresh challenge', async () => {
    expectDenied(
      await envoy('GET', '/v1/forecast', { authorization: 'L402 not-a-token' }),
      402,
      'malformed_header',
    );
  });

  test('method and Host come from the request: a POST-only route on api.example.com', async () => {
    expectChallenge(await envoy('POST', '/v1/generate'), 21);
    expectDenied(await envoy('GET', '/v1/generate'), 403, 'unmatched_route');
    expectDenied(await envoy('POST', '/v1/generate', { host: 'other.example.com' }), 403, 'unmatched_route');
  });

  test('a free route: 200, and any x-plannt-* the client sent is to be removed', async () => {
    const res = await envoy('GET', '/status', { 'x-plannt-service': 'forged' });
    expect(res.status).toBe(200);
    expect(res.header('x-plannt-service')).toEqual([]);
    expect(res.header('x-envoy-auth-headers-to-remove')).toEqual([PLANNT_HEADERS.join(',')]);
  });

  test('a client-sent x-envoy-expected-rq-timeout-ms is not believed by default: a paid request is served', async () => {
    const { authorization } = await payFor(await forwardAuth('GET', '/v1/forecast'));
    const res = await forwardAuth('GET', '/v1/forecast', {
      authorization,
      'x-envoy-expected-rq-timeout-ms': '1',
    });
    expect(res.status).toBe(200);
  });

  test('believed only with http_authz.trust_expected_timeout_header, and then at least 100 ms', async () => {
    const trusting = await startPlannt({
      http_authz: { path_prefix: PREFIX, trust_expected_timeout_header: true },
    });
    try {
      const input = { method: 'GET', host: 'api.example.com', path: '/v1/forecast' };
      const { authorization } = await trusting.buy(input);
      const paid = () =>
        httpCall(trusting.httpUrl, {
          path: `${PREFIX}/v1/forecast`,
          headers: { host: 'api.example.com', authorization, 'x-envoy-expected-rq-timeout-ms': '1' },
        });
      // 100 ms is tight on a busy machine: a 503 (nothing spent) is retried, as Envoy's caller would. With
      // the 1 ms believed, every attempt would be 503 deadline_exceeded.
      const statuses: number[] = [];
      for (let i = 0; i < 20 && statuses.at(-1) !== 200; i++) {
        const res = await paid();
        statuses.push(res.status);
        if (res.status !== 200) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(statuses.at(-1)).toBe(200);
      expect(statuses.filter((status) => status !== 200 && status !== 503)).toEqual([]);
    } finally {
      await trusting.stop();
    }
  });

  test('a path outside path_prefix is a 400, not a decision', async () => {
    const res = await httpCall(plannt.httpUrl, {
      path: '/v1/forecast',
      headers: { host: 'api.example.com' },
    });
    expectDenied(res, 400, 'bad_request');
  });

  test('the log line carries Envoy’s x-request-id', async () => {
    await envoy('GET', '/v1/history', { 'x-request-id': 'req-envoy-log-check' });
    const line = plannt.logs.find((l) => l.includes('req-envoy-log-check'));
    expect(JSON.parse(line ?? '{}')).toMatchObject({ decision: 'deny', reason: 'payment_required' });
  });
});

describe('forward-auth convention (Caddy, Traefik, nginx)', () => {
  test('method, URI and host come from X-Forwarded-*, not from the request line', async () => {
    expectChallenge(await forwardAuth('POST', '/v1/generate?stream=1'), 21);
    expectDenied(await forwardAuth('GET', '/v1/generate'), 403, 'unmatched_route');
  });

  test('challenge, pay, allow with x-plannt-* headers, then replay is 402', async () => {
    const { authorization, paymentHash } = await payFor(await forwardAuth('GET', '/v1/forecast?days=2'));
    const ok = await forwardAuth('GET', '/v1/forecast?days=2', { authorization });
    expect(ok.status).toBe(200);
    expect(ok.header('x-plannt-payment-hash')).toEqual([paymentHash]);
    expect(ok.header('x-plannt-amount-sats')).toEqual(['10']);
    expectDenied(await forwardAuth('GET', '/v1/forecast', { authorization }), 402, 'token_spent');
  });

  test('a dot segment in the URI is judged as the path it normalizes to (path-normalization.test.ts)', async () => {
    for (const uri of ['/status/../v1/forecast', '/status/%2E%2e/v1/forecast', '/./v1/forecast']) {
      expectDenied(await forwardAuth('GET', uri), 402, 'payment_required');
    }
    expectDenied(await forwardAuth('GET', '/status/..%2fv1/forecast'), 400, 'ambiguous_path');
  });

  test('a repeated X-Forwarded-Uri is ambiguous: 400', async () => {
    const res = await forwardAuth('GET', '/status', { 'x-forwarded-uri': ['/status', '/v1/forecast'] });
    expectDenied(res, 400, 'bad_request');
  });

  test('a URI that is not a path is refused', async () => {
    expectDenied(await forwardAuth('GET', 'http://api.example.com/status'), 400, 'bad_request');
  });
});

describe('bounded and robust', () => {
  test('headers beyond the size limit get 431 from node, and the server keeps serving', async () => {
    const res = await envoy('GET', '/v1/forecast', { 'x-padding': 'a'.repeat(40 * 1024) });
    expect(res.status).toBe(431);
    expect((await envoy('GET', '/status')).status).toBe(200);
  });

  test('headers that have not arrived within 10 s get a 408 and the connection is closed', async () => {
    const started = Date.now();
    const reply = await rawExchange(
      'GET /authz/status HTTP/1.1\r\nHost: api.example.com\r\nX-Slow: 1',
      25_000,
    );
    const seconds = (Date.now() - started) / 1000;
    expect(reply).toMatch(/^HTTP\/1\.1 408/);
    // headersTimeout is 10 s; node checks it every connectionsCheckingInterval (1 s here, 30 s by default).
    expect(seconds).toBeGreaterThanOrEqual(9);
    expect(seconds).toBeLessThan(16);
  }, 30_000);

  test('HTTP/1.0 (nginx proxy_pass speaks it by default) is judged like HTTP/1.1', async () => {
    const reply = await rawExchange('GET /authz/status HTTP/1.0\r\nHost: api.example.com\r\n\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 200/);
  });

  test('a request that is not HTTP gets a 400 and the connection is closed', async () => {
    expect(await rawExchange('NOT HTTP\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/);
    expect((await envoy('GET', '/status')).status).toBe(200);
  });

  test('a declared body larger than an authorization request needs gets 413 before it is read', async () => {
    const reply = await rawExchange(
      `POST ${PREFIX}/v1/generate HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 10485760\r\n\r\n`,
    );
    expect(reply).toMatch(/^HTTP\/1\.1 413/);
    expect(reply).toMatch(/connection: close/i);
    expect((await envoy('GET', '/status')).status).toBe(200);
  });
});

/** Writes raw bytes to the HTTP port and reads until the server closes the connection. */
function rawExchange(bytes: string, timeoutMs = 5000): Promise<string> {
  const address = new URL(plannt.httpUrl);
  return new Promise<string>((resolve, reject) => {
    const socket = connect(Number(address.port), address.hostname, () => socket.write(bytes));
    let text = '';
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no close after: ${text}`)));
    socket.on('data', (chunk) => {
      text += chunk.toString();
    });
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

describe('metrics', () => {
  const SERIES: [string, Record<string, string>][] = [
    ['plannt_checks_total', { decision: 'deny', reason: 'payment_required', service: 'weather' }],
    ['plannt_checks_total', { decision: 'allow', reason: 'paid', service: 'weather' }],
    ['plannt_checks_total', { decision: 'deny', reason: 'token_spent', service: 'weather' }],
    ['plannt_checks_total', { decision: 'deny', reason: 'malformed_header', service: 'weather' }],
    ['plannt_challenges_total', { service: 'weather' }],
    ['plannt_rejections_total', { reason: 'token_spent', service: 'weather' }],
    ['plannt_paid_requests_total', { service: 'weather' }],
    ['plannt_paid_sats_total', { service: 'weather' }],
    ['plannt_check_duration_seconds_count', { path: 'verify' }],
    ['plannt_check_duration_seconds_count', { path: 'challenge' }],
  ];

  async function snapshot(): Promise<number[]> {
    const text = await plannt.metrics();
    return SERIES.map(([name, labels]) => metricValue(text, name, labels));
  }

  async function delta(scenario: () => Promise<void>): Promise<number[]> {
    const before = await snapshot();
    await scenario();
    const after = await snapshot();
    return after.map((v, i) => v - (before[i] ?? 0));
  }

  test('move exactly as they do for the same requests over gRPC', async () => {
    const viaGrpc = await delta(async () => {
      const input = { method: 'GET', host: 'api.example.com', path: '/v1/forecast' };
      const { authorization } = await plannt.buy(input);
      expect((await plannt.check({ ...input, headers: { authorization } })).allowed).toBe(true);
      expect((await plannt.check({ ...input, headers: { authorization } })).status).toBe(402);
      expect((await plannt.check({ ...input, headers: { authorization: 'L402 x' } })).status).toBe(402);
    });
    const viaHttp = await delta(async () => {
      const { authorization } = await payFor(await envoy('GET', '/v1/forecast'));
      expect((await envoy('GET', '/v1/forecast', { authorization })).status).toBe(200);
      expect((await forwardAuth('GET', '/v1/forecast', { authorization })).status).toBe(402);
      expect((await envoy('GET', '/v1/forecast', { authorization: 'L402 x' })).status).toBe(402);
    });
    // buy() challenges once over gRPC; payFor's challenge is the HTTP one: one each.
    expect(viaHttp).toEqual(viaGrpc);
    expect(viaHttp).toEqual([1, 1, 1, 1, 3, 1, 1, 10, 3, 1]);
  });
});

describe('with tls configured, the HTTP port is HTTPS too', () => {
  let pki: Pki;
  let secure: Plannt;

  beforeAll(async () => {
    pki = makePki();
    secure = await startPlannt({
      tls: { cert_file: pki.serverCert, key_file: pki.serverKey, client_ca_file: pki.caCert },
    });
  });

  afterAll(async () => {
    await secure?.stop();
    pki?.remove();
  });

  /** The status of a forward-auth call over TLS, or the error code when the handshake is refused. */
  function call(client?: { cert: string; key: string }): Promise<number | string> {
    return new Promise((resolve) => {
      const req = httpsRequest(
        {
          host: 'localhost',
          port: secure.app.httpPort,
          path: '/',
          headers: { 'x-forwarded-uri': '/v1/forecast', 'x-forwarded-host': 'api.example.com' },
          ca: pki.read(pki.caCert),
          ...(client && { cert: pki.read(client.cert), key: pki.read(client.key) }),
          agent: false,
          timeout: 5000,
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      req.end();
    });
  }

  test('a client with a certificate from the client CA gets the decision', async () => {
    expect(await call({ cert: pki.clientCert, key: pki.clientKey })).toBe(402);
  });

  test('a client without one, or with a stranger’s, is refused at the handshake', async () => {
    expect(await call()).not.toBe(402);
    expect(await call({ cert: pki.strangerCert, key: pki.strangerKey })).not.toBe(402);
  });

  test('plaintext HTTP gets no decision', async () => {
    await expect(httpCall(`http://127.0.0.1:${secure.app.httpPort}`, { timeoutMs: 3000 })).rejects.toThrow();
  });
});
