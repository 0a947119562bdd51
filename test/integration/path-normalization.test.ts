/**
 * A free route must not be a ladder into a paid one. Both ports judge the path an upstream will serve:
 * dot segments are removed and slashes merged before matching (`/public/../v1/generate` is priced as
 * `/v1/generate`), and spellings that servers read differently are refused with `400 ambiguous_path`.
 */
import { type HttpResult, httpCall } from '../support/http';
import { type Plannt, ROUTES, startPlannt } from '../support/plannt';

let plannt: Plannt;

beforeAll(async () => {
  plannt = await startPlannt({
    routes: [{ id: 'public', service: 'public', price_sats: 0, path: { prefix: '/public/' } }, ...ROUTES],
  });
});

afterAll(async () => {
  await plannt.stop();
});

/** Spellings that an RFC 3986 / Envoy normalization turns into the paid `/v1/generate`. */
const CLIMBS = [
  '/public/../v1/generate',
  '/public/./../v1/generate',
  '/public/%2e%2e/v1/generate',
  '/public/%2E%2e/v1/generate',
  '/public/.%2e/v1/generate',
  '/public/a/b/../../../v1/generate',
  '/public/..',
  '/v1//generate',
  '/v1/%67enerate',
];

/** Spellings no single reading of which is safe to price. */
const AMBIGUOUS = [
  '/public/..%2fv1/generate',
  '/public/..%2Fv1/generate',
  '/public/%2e%2e%2fv1/generate',
  '/public/..%5cv1/generate',
  '/public/..\\v1/generate',
  '/public/%252e%252e/v1/generate',
  '/public/..;/v1/generate',
  '/public/..;jsessionid=1/v1/generate',
  '/public/.%2e;/v1/generate',
  '/public/..%3b/v1/generate',
  '/public//../v1/generate',
  '/public/%00/../v1/generate',
  '/public/%zz',
];

/** What the path resolves to for the paid route: 402 with a challenge. '/public/..' resolves to '/'. */
function expectedStatus(path: string): number {
  return path === '/public/..' ? 403 : 402;
}

describe('gRPC: the path is normalized before matching', () => {
  test.each(CLIMBS)('%s is judged as the route it normalizes to', async (path) => {
    const res = await plannt.check({ method: 'POST', host: 'api.example.com', path: `${path}?q=/../x` });
    expect(res.allowed).toBe(false);
    expect(res.status).toBe(expectedStatus(path));
  });

  test.each(AMBIGUOUS)('%s is refused as ambiguous_path', async (path) => {
    const res = await plannt.check({ method: 'POST', host: 'api.example.com', path });
    expect(res.allowed).toBe(false);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('ambiguous_path');
  });

  test('a fullwidth dot, which some servers fold into ".", is refused', async () => {
    const res = await plannt.check({
      method: 'POST',
      host: 'api.example.com',
      path: '/public/．．/v1/generate',
    });
    expect(res.body.error).toBe('ambiguous_path');
  });

  test('the free route itself and a query holding dot segments stay free', async () => {
    expect((await plannt.check({ path: '/public/a.b/..c/x?next=/../v1/generate' })).allowed).toBe(true);
  });
});

function forwardAuth(uri: string): Promise<HttpResult> {
  return httpCall(plannt.httpUrl, {
    path: '/',
    headers: {
      'x-forwarded-method': 'POST',
      'x-forwarded-uri': uri,
      'x-forwarded-host': 'api.example.com',
      'x-forwarded-for': '198.51.100.20',
    },
  });
}

describe('HTTP authorization port: the same normalization', () => {
  test.each(CLIMBS)('%s is judged as the route it normalizes to', async (path) => {
    const res = await forwardAuth(path);
    expect(res.status).toBe(expectedStatus(path));
  });

  test.each(AMBIGUOUS)('%s is refused as ambiguous_path', async (path) => {
    const res = await forwardAuth(path);
    expect(res.status).toBe(400);
    expect(res.json().error).toBe('ambiguous_path');
  });

  test('Envoy http_service: the path after the prefix is normalized too', async () => {
    const res = await httpCall(plannt.httpUrl, {
      method: 'POST',
      path: '/public/%2e%2e/v1/generate',
      headers: { host: 'api.example.com' },
    });
    expect(res.status).toBe(402);
    const refused = await httpCall(plannt.httpUrl, {
      method: 'POST',
      path: '/public/..%2fv1/generate',
      headers: { host: 'api.example.com' },
    });
    expect(refused.json().error).toBe('ambiguous_path');
  });
});
