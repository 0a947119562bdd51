/**
 * A CheckRequest too large to judge still gets a decision, never a gRPC error: an Envoy with
 * `failure_mode_allow: true` turns a gRPC error into an allow.
 */
import { type Plannt, startPlannt } from '../support/plannt';

let plannt: Plannt;

beforeAll(async () => {
  plannt = await startPlannt();
});

afterAll(async () => {
  await plannt.stop();
});

const paid = { method: 'GET', host: 'api.example.com', path: '/v1/forecast' };

describe('an oversized CheckRequest', () => {
  test.each([
    ['just over 1 MiB', 1024 * 1024 + 1],
    ['4 MiB', 4 * 1024 * 1024],
  ])(
    'of %s is denied with 413 request_too_large, as a decision',
    async (_name, bytes) => {
      const res = await plannt.check({
        ...paid,
        headers: { 'x-padding': 'a'.repeat(bytes) },
        deadlineMs: 20_000,
      });
      expect(res.allowed).toBe(false);
      expect(res.status).toBe(413);
      expect(res.body.error).toBe('request_too_large');
      expect(await plannt.metrics()).toMatch(
        /plannt_checks_total\{decision="deny",reason="request_too_large"/,
      );
    },
    30_000,
  );

  test('a free route is not served either: the request could not be read', async () => {
    const res = await plannt.check({
      path: '/status',
      headers: { 'x-padding': 'a'.repeat(2 * 1024 * 1024) },
    });
    expect(res.status).toBe(413);
  }, 30_000);

  test('a request just under the limit is judged as usual, and the server keeps serving', async () => {
    const res = await plannt.check({ ...paid, headers: { 'x-padding': 'a'.repeat(1000 * 1000) } });
    expect(res.status).toBe(402);
    expect((await plannt.check({ path: '/status' })).allowed).toBe(true);
  }, 30_000);
});
