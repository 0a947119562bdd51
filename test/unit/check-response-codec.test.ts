/**
 * The hand-written CheckResponse bytes decode, with the generic decoder Envoy's side of the tests uses, to
 * exactly what protobufjs makes of toCheckResponse: for every allow and every denial.
 */
import fc from 'fast-check';
import type { Decision } from '../../src/core/decision';
import { DENIALS, type DenialReason } from '../../src/core/reasons';
import { type HttpAnswer, render } from '../../src/core/response';
import { AuthorizationService } from '../../src/envoy/protos';
import { encodeCheckResponse } from '../../src/server/check-response-codec';
import { toCheckResponse } from '../../src/server/envoy-grpc';

const check = AuthorizationService.Check;
if (!check) throw new Error('Check missing');
const { responseDeserialize: decode, responseSerialize: serialize } = check;

function expectSameAsGeneric(answer: HttpAnswer): void {
  expect(decode(encodeCheckResponse(answer))).toStrictEqual(decode(serialize(toCheckResponse(answer))));
}

const route = {
  id: 'forecast',
  service: 'weather',
  priceSats: 10,
  tokenLifetimeSeconds: 3600,
  invoiceExpirySeconds: 600,
};
const challenge = {
  macaroon: 'bWFj'.repeat(40),
  invoice: `lnbcrt10n1${'x'.repeat(300)}`,
  paymentHash: 'ab'.repeat(32),
  amountSats: 10,
  expiresAt: new Date(0),
  uses: 1,
  tokenExpiresAt: new Date(3600_000),
};
const paid: Decision = {
  kind: 'allow',
  reason: 'paid',
  route,
  paymentHash: Buffer.alloc(32, 7),
  amountSats: 10,
  tokenKind: 'single',
};

describe('the CheckResponse encoder', () => {
  describe('allows', () => {
    it.each<[string, Decision]>([
      ['a paid single-use token', paid],
      ['a bundle with uses left', { ...paid, tokenKind: 'bundle', used: 3, remaining: 7 }],
      ['a pass', { ...paid, tokenKind: 'pass', remaining: 'unlimited' }],
      ['a free route', { kind: 'allow', reason: 'free', route: { ...route, priceSats: 0 } }],
      ['an unmatched route allowed', { kind: 'allow', reason: 'unmatched_allowed' }],
      ['a shadow route', { kind: 'allow', reason: 'shadow', route, wouldDeny: 'payment_required' }],
    ])('%s, with and without stripping Authorization', (_name, decision) => {
      for (const stripAuthorization of [true, false])
        expectSameAsGeneric(render(decision, { stripAuthorization }));
    });
  });

  describe('denials', () => {
    it.each(Object.keys(DENIALS) as DenialReason[])(
      '%s, for HTTP and gRPC clients, with and without a challenge',
      (reason) => {
        for (const grpc of [false, true]) {
          for (const extra of [{}, { challenge, detail: 'why ✓ — ünïcode', retryAfterSeconds: 30 }]) {
            expectSameAsGeneric(
              render({ kind: 'deny', reason, route, ...extra }, { stripAuthorization: true }, { grpc }),
            );
          }
        }
      },
    );
  });

  it('any answer: headers, bodies and statuses of any length and text', () => {
    const header = fc.tuple(fc.string({ unit: 'grapheme', maxLength: 20 }), fc.string({ maxLength: 300 }));
    const answer: fc.Arbitrary<HttpAnswer> = fc.oneof(
      fc.record({
        allowed: fc.constant(true as const),
        upstreamHeaders: fc.array(header, { maxLength: 5 }),
        removeHeaders: fc.array(fc.string(), { maxLength: 5 }),
        clientHeaders: fc.array(header, { maxLength: 3 }),
      }),
      fc.record({
        allowed: fc.constant(false as const),
        status: fc.constantFrom(400, 401, 402, 403, 413, 429, 503),
        headers: fc.array(header, { maxLength: 6 }),
        body: fc.oneof(fc.constant(''), fc.string({ unit: 'grapheme', maxLength: 400 })),
      }),
    );
    fc.assert(fc.property(answer, expectSameAsGeneric), { numRuns: 1000 });
  });
});
