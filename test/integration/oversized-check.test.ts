/**
 * A CheckRequest too large to judge, or not protobuf at all, still gets a decision, never a gRPC error: an
 * Envoy with `failure_mode_allow: true` turns a gRPC error into an allow.
 */
import { AuthorizationService } from '../../src/envoy/protos';
import { parseCheckResponse, type RawCheckResponse } from '../support/envoy-client';
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

describe('a CheckRequest that is not protobuf', () => {
  const checkMethod = AuthorizationService.Check;
  test.each([
    ['a truncated field', Buffer.from([0x0a, 0x05, 0x01])],
    ['wire type 7', Buffer.from([0x0f, 0x00])],
  ])('(%s) is denied with 400 malformed_request, as a decision', async (_name, bytes) => {
    if (!checkMethod) throw new Error('Check missing');
    const raw = await new Promise<RawCheckResponse>((resolve, reject) =>
      plannt.client.makeUnaryRequest(
        checkMethod.path,
        (b: Buffer) => b,
        checkMethod.responseDeserialize as (b: Buffer) => RawCheckResponse,
        bytes,
        (err, res) => (err || !res ? reject(err ?? new Error('empty CheckResponse')) : resolve(res)),
      ),
    );
    const res = parseCheckResponse(raw);
    expect(res.allowed).toBe(false);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('malformed_request');
    expect(await plannt.metrics()).toMatch(/plannt_checks_total\{decision="deny",reason="malformed_request"/);
  });
});
