/**
 * Envoy cancels every ext_authz call it stops waiting for, one RST_STREAM each. Under overload thousands come
 * at once; Node's HTTP/2 rapid-reset guard (1,000 resets, then 33/s) used to close the whole connection with
 * INTERNAL_ERROR, failing every other call on it with a gRPC error (INTERNAL, UNAVAILABLE): the "871 INTERNAL
 * errors" of issue 10. The guard is now sized for ext_authz traffic.
 */
import type * as grpc from '@grpc/grpc-js';
import { AuthorizationService } from '../../src/envoy/protos';
import { checkRequest } from '../support/envoy-client';
import { type Plannt, startPlannt } from '../support/plannt';

jest.setTimeout(120_000);

const CANCELLED_CALLS = 5000;

let plannt: Plannt;

beforeAll(async () => {
  plannt = await startPlannt();
});

afterAll(async () => {
  await plannt?.stop();
});

const method = (() => {
  const check = AuthorizationService.Check;
  if (!check) throw new Error('Authorization/Check is missing from the protos');
  return check;
})();
const bytes = method.requestSerialize(checkRequest({ host: 'api.example.com', path: '/v1/forecast' }));

function call(client: grpc.Client, deadlineMs: number): Promise<string> {
  return new Promise((resolve) =>
    client.makeUnaryRequest(
      method.path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      { deadline: Date.now() + deadlineMs },
      (err) => resolve(err ? `${err.code} ${err.details.split(',')[0]}` : 'answered'),
    ),
  );
}

it('a burst of cancelled calls costs the connection nothing', async () => {
  const outcomes = new Map<string, number>();
  const calls: Promise<void>[] = [];
  for (let i = 0; i < CANCELLED_CALLS; i++) {
    // Deadlines of 5–24 ms: most expire in flight and are cancelled with RST_STREAM.
    const outcome = call(plannt.client, 5 + (i % 20)).then((o) => {
      const key = o.startsWith('4 ') ? 'DEADLINE_EXCEEDED' : o;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    });
    calls.push(outcome);
    if (i % 200 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  await Promise.all(calls);
  const other = [...outcomes].filter(([k]) => k !== 'DEADLINE_EXCEEDED' && k !== 'answered');
  expect(other).toEqual([]);
  expect(outcomes.get('DEADLINE_EXCEEDED') ?? 0).toBeGreaterThan(1000);
  expect(await call(plannt.client, 5000)).toBe('answered');
});
