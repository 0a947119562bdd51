/**
 * The HTTP adapter's translation, without a socket: an authorization request (Envoy http_service or a
 * forward-auth proxy) becomes a GateRequest, and an HttpAnswer becomes the reply the proxy acts on.
 */
import { render } from '../../src/core/response';
import {
  type AuthzHttpRequest,
  type DistinctHeaders,
  fromHttpRequest,
  type HttpAuthzOptions,
  toHttpReply,
} from '../../src/server/http-authz';

const NOW = 1_700_000_000_000;
const OPTIONS: HttpAuthzOptions = { pathPrefix: '/authz', defaultTimeoutMs: 3000 };

function headers(values: Record<string, string | string[]>): DistinctHeaders {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Array.isArray(v) ? v : [v]]));
}

function translate(
  req: Partial<AuthzHttpRequest> & { h?: Record<string, string | string[]> },
  options = OPTIONS,
) {
  return fromHttpRequest(
    { method: req.method ?? 'GET', url: req.url ?? '/authz/', headers: headers(req.h ?? {}) },
    options,
    NOW,
  );
}

function accepted(result: ReturnType<typeof translate>) {
  if (!result.ok) throw new Error(`expected a translation, got: ${result.message}`);
  return result;
}

function refused(result: ReturnType<typeof translate>): string {
  if (result.ok) throw new Error('expected a refusal');
  return result.message;
}

describe('Envoy http_service convention', () => {
  test('the path is what follows path_prefix, without the query; method and Host as received', () => {
    const { request } = accepted(
      translate({ method: 'post', url: '/authz/v1/generate?stream=1#x', h: { host: 'API.example.com:443' } }),
    );
    expect(request).toEqual({
      host: 'API.example.com:443',
      path: '/v1/generate',
      method: 'POST',
      contextExtensions: {},
      deadline: NOW + 3000,
    });
  });

  test('an empty path_prefix takes the path as it is', () => {
    const { request } = accepted(translate({ url: '/v1/x' }, { ...OPTIONS, pathPrefix: '' }));
    expect(request.path).toBe('/v1/x');
  });

  test('a path outside path_prefix, or one that only shares its first letters, is refused', () => {
    expect(refused(translate({ url: '/v1/x' }))).toMatch(/path_prefix/);
    expect(refused(translate({ url: '/authzv1/x' }))).toMatch(/start with \//);
  });

  test('x-envoy-expected-rq-timeout-ms is ignored unless the caller is trusted to be Envoy', () => {
    const { request } = accepted(translate({ h: { 'x-envoy-expected-rq-timeout-ms': '1' } }));
    expect(request.deadline - NOW).toBe(3000);
  });

  test('trusted, x-envoy-expected-rq-timeout-ms sets the deadline, at least 100 ms; a malformed one falls back', () => {
    const trusted = { ...OPTIONS, trustExpectedTimeoutHeader: true };
    const deadline = (value?: string) =>
      accepted(
        translate({ h: value === undefined ? {} : { 'x-envoy-expected-rq-timeout-ms': value } }, trusted),
      ).request.deadline - NOW;
    expect(deadline('250')).toBe(250);
    expect(deadline('1')).toBe(100);
    expect(deadline()).toBe(3000);
    expect(deadline('-5')).toBe(3000);
    expect(deadline('0')).toBe(3000);
    expect(deadline('soon')).toBe(3000);
    expect(deadline('999999999')).toBe(600_000);
  });
});

describe('forward-auth convention', () => {
  test('X-Forwarded-Method, -Uri and -Host replace the request line and Host', () => {
    const { request } = accepted(
      translate({
        method: 'GET',
        url: '/',
        h: {
          host: 'plannt:9002',
          'x-forwarded-method': 'delete',
          'x-forwarded-uri': '/v1/items/7?force=1',
          'x-forwarded-host': 'api.example.com',
        },
      }),
    );
    expect(request).toMatchObject({ method: 'DELETE', path: '/v1/items/7', host: 'api.example.com' });
  });

  test('each header stands alone: a missing one leaves that part to the request', () => {
    const { request } = accepted(
      translate({ method: 'PUT', url: '/authz/v1/a', h: { host: 'h.example', 'x-forwarded-uri': '/v1/b' } }),
    );
    expect(request).toMatchObject({ method: 'PUT', path: '/v1/b', host: 'h.example' });
  });

  test.each([
    ['a repeated X-Forwarded-Uri', { 'x-forwarded-uri': ['/a', '/b'] }],
    ['a repeated X-Forwarded-Method', { 'x-forwarded-method': ['GET', 'POST'] }],
    ['a list in X-Forwarded-Host', { 'x-forwarded-host': 'a.example, b.example' }],
    ['a method that is not a token', { 'x-forwarded-method': 'GET /' }],
    ['an absolute URI', { 'x-forwarded-uri': 'https://api.example.com/v1' }],
  ])('refuses %s', (_name, h) => {
    expect(refused(translate({ url: '/', h }))).toEqual(expect.any(String));
  });

  test('dot segments are passed on as sent: the core normalizes every port alike (path.test.ts)', () => {
    const { request } = accepted(translate({ h: { 'x-forwarded-uri': '/free/%2e%2E/paid' } }));
    expect(request.path).toBe('/free/%2e%2E/paid');
  });

  test('dots inside a segment are ordinary characters', () => {
    const { request } = accepted(translate({ h: { 'x-forwarded-uri': '/.well-known/a..b/c.json?x=/../' } }));
    expect(request.path).toBe('/.well-known/a..b/c.json');
  });
});

describe('credentials, client address and request id', () => {
  test('Authorization is passed on; repeated ones are joined with a comma as Envoy joins them', () => {
    expect(accepted(translate({ h: { authorization: 'L402 m:p' } })).request.authorization).toBe('L402 m:p');
    expect(
      accepted(translate({ h: { authorization: ['L402 a:p', 'L402 b:p'] } })).request.authorization,
    ).toBe('L402 a:p,L402 b:p');
    expect(accepted(translate({})).request).not.toHaveProperty('authorization');
  });

  test('the client is the X-Forwarded-For entry the calling proxy appended, moved left by trusted hops', () => {
    const client = (xff: string | undefined, trustedHops?: number) =>
      accepted(
        translate(
          { h: xff === undefined ? {} : { 'x-forwarded-for': xff } },
          { ...OPTIONS, ...(trustedHops !== undefined && { trustedHops }) },
        ),
      ).request.clientAddress;
    expect(client('198.51.100.7')).toBe('198.51.100.7');
    expect(client('203.0.113.9, 198.51.100.7')).toBe('198.51.100.7');
    expect(client('203.0.113.9, 198.51.100.7', 1)).toBe('203.0.113.9');
    // Without the header the only address known is the proxy's: no per-client identity at all.
    expect(client(undefined)).toBeUndefined();
  });

  test('x-request-id becomes the log correlation id only when it is a sane token', () => {
    expect(accepted(translate({ h: { 'x-request-id': 'abc-123' } })).requestId).toBe('abc-123');
    expect(accepted(translate({ h: { 'x-request-id': 'a b' } }))).not.toHaveProperty('requestId');
    expect(accepted(translate({ h: { 'x-request-id': 'x'.repeat(200) } }))).not.toHaveProperty('requestId');
  });
});

describe('the reply', () => {
  const route = { id: 'r', service: 'svc', priceSats: 5, tokenLifetimeSeconds: 60, invoiceExpirySeconds: 30 };

  test('a paid allow is a 200 whose headers carry x-plannt-* and name the headers Envoy should drop', () => {
    const answer = render(
      { kind: 'allow', reason: 'paid', route, paymentHash: Buffer.alloc(32, 1), amountSats: 5 },
      { stripAuthorization: true },
    );
    expect(toHttpReply(answer)).toEqual({
      status: 200,
      headers: [
        ['x-plannt-payment-hash', '01'.repeat(32)],
        ['x-plannt-service', 'svc'],
        ['x-plannt-amount-sats', '5'],
        ['x-envoy-auth-headers-to-remove', 'authorization,x-plannt-uses-remaining'],
      ],
      body: '',
    });
  });

  test('an allow without stripping removes only a client-sent uses-remaining claim', () => {
    const answer = render(
      { kind: 'allow', reason: 'paid', route, paymentHash: Buffer.alloc(32, 1), amountSats: 5 },
      { stripAuthorization: false },
    );
    expect(toHttpReply(answer).headers).toContainEqual([
      'x-envoy-auth-headers-to-remove',
      'x-plannt-uses-remaining',
    ]);
  });

  test('an allow of a bundle tells the client and the upstream the uses left', () => {
    const answer = render(
      {
        kind: 'allow',
        reason: 'paid',
        route,
        paymentHash: Buffer.alloc(32, 1),
        amountSats: 5,
        tokenKind: 'bundle',
        used: 3,
        remaining: 7,
      },
      { stripAuthorization: true },
    );
    const { headers } = toHttpReply(answer);
    expect(headers).toContainEqual(['x-l402-uses-remaining', '7']);
    expect(headers).toContainEqual(['x-plannt-uses-remaining', '7']);
    expect(headers).toContainEqual(['x-envoy-auth-headers-to-remove', 'authorization']);
  });

  test('a denial is relayed as it is: status, headers, JSON body', () => {
    const answer = render(
      { kind: 'deny', reason: 'spent_set_unavailable', route, retryAfterSeconds: 7 },
      { stripAuthorization: true },
    );
    const reply = toHttpReply(answer);
    expect(reply.status).toBe(503);
    expect(reply.headers).toEqual([
      ['content-type', 'application/json'],
      ['cache-control', 'no-store'],
      ['retry-after', '7'],
    ]);
    expect(JSON.parse(reply.body)).toMatchObject({ error: 'spent_set_unavailable' });
  });
});
