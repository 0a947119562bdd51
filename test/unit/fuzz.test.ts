/**
 * Property-based fuzzing (fast-check, fixed seed) of everything that reads attacker-controlled bytes: the
 * Authorization header parser, the macaroon decoder, the credential verifier and the whole decision. Inputs are
 * both generated from scratch and mutated from genuine tokens (bit flips, truncation, insertion, splicing,
 * re-signed attenuation). Over 100 000 inputs in all, each suite bounded in time. Properties:
 *   - no exception escapes (only the typed MacaroonError from the decoder itself);
 *   - nothing is allowed without the preimage of a genuinely paid token, for the route it was bought for;
 *   - no input makes a decision a 5xx while the dependencies are healthy.
 * Replay a failure with its printed seed and path: fc.assert(…, { seed, path }).
 */
import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { memorySpentSet } from '../../src/adapters/memory-spent-set';
import { decide, type Engine } from '../../src/core/decide';
import type { InvoiceBackend } from '../../src/core/ports';
import { DENIALS } from '../../src/core/reasons';
import { render } from '../../src/core/response';
import type { RouteTable } from '../../src/core/routes';
import { parseAuthorization, parseCredentials } from '../../src/l402/header';
import { decodeMacaroon, encodeMacaroon, MacaroonError } from '../../src/l402/macaroon';
import { verifyCredential } from '../../src/l402/verify';
import { attenuate, KEYS, LIMITS, mint, NEEDS, NOW, NOW_MS, sha256 } from '../support/l402';

const SEED = 0x91a7;
const HEADER_LIMITS = { maxHeaderBytes: 8192, maxMacaroons: 4 };
const RUNS = { header: 40_000, decoder: 30_000, verifier: 25_000, decide: 10_000 };
let inputs = 0;

afterAll(() => {
  // The issue asks for at least 100 000 inputs in CI; make the count a fact, not a hope.
  expect(inputs).toBeGreaterThanOrEqual(100_000);
});

/** Genuine tokens with their preimages: the only credentials that may ever be allowed. */
const GENUINE = Array.from({ length: 4 }, (_, i) => {
  const preimage = createHash('sha256').update(`preimage-${i}`).digest();
  const paymentHash = sha256(preimage);
  return { preimage, paymentHash, macaroon: mint({}, { paymentHash }) };
});
const PAID_HASHES = new Set(GENUINE.map((g) => g.paymentHash.toString('hex')));

// ---------------------------------------------------------------------------------------------------------
// Mutations

type Mutation = (b: Buffer) => Buffer;

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })).map(
    ([at, bit]): Mutation =>
      (b) => {
        if (b.length === 0) return b;
        const out = Buffer.from(b);
        const i = at % out.length;
        out[i] = (out[i] ?? 0) ^ (1 << bit);
        return out;
      },
  ),
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })).map(
    ([at, value]): Mutation =>
      (b) => {
        if (b.length === 0) return b;
        const out = Buffer.from(b);
        out[at % out.length] = value;
        return out;
      },
  ),
  fc.nat().map(
    (at): Mutation =>
      (b) =>
        b.subarray(0, at % (b.length + 1)),
  ),
  fc.tuple(fc.nat(), fc.nat({ max: 16 })).map(
    ([at, n]): Mutation =>
      (b) => {
        const i = at % (b.length + 1);
        return Buffer.concat([b.subarray(0, i), b.subarray(Math.min(b.length, i + n))]);
      },
  ),
  fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 16 })).map(
    ([at, bytes]): Mutation =>
      (b) => {
        const i = at % (b.length + 1);
        return Buffer.concat([b.subarray(0, i), Buffer.from(bytes), b.subarray(i)]);
      },
  ),
  fc.tuple(fc.nat(), fc.nat(), fc.nat({ max: 40 })).map(
    ([from, to, n]): Mutation =>
      (b) => {
        if (b.length === 0) return b;
        const i = from % b.length;
        const j = to % (b.length + 1);
        return Buffer.concat([b.subarray(0, j), b.subarray(i, i + n), b.subarray(j)]);
      },
  ),
);

const mutated = (source: fc.Arbitrary<Buffer>) =>
  fc
    .tuple(source, fc.array(mutation, { minLength: 1, maxLength: 4 }))
    .map(([b, ms]) => ms.reduce((acc, m) => m(acc), b));

const genuine = fc.constantFrom(...GENUINE);

/** A genuine token narrowed by caveats a holder may add, re-signed correctly: hostile but well-formed. */
const attenuatedToken = fc
  .tuple(
    genuine,
    fc.array(
      fc.oneof(
        fc.constantFrom(
          'plannt_route=history',
          'plannt_route=forecast',
          'services=weather:0',
          'services=inference:0',
          `weather_valid_until=${NOW - 1}`,
          `weather_valid_until=${NOW + 99_999_999}`,
          'plannt_price_sats=0',
          'plannt_price_sats=99999',
          'weather_capabilities=admin',
          'x=y',
          '=',
          '',
        ),
        fc.string({ maxLength: 40 }),
      ),
      { maxLength: 3 },
    ),
  )
  .map(([g, caveats]) => ({ ...g, macaroon: caveats.reduce((m, c) => attenuate(m, c), g.macaroon) }));

const anyMacaroonBytes = fc.oneof(
  { weight: 4, arbitrary: mutated(genuine.map((g) => g.macaroon)) },
  { weight: 2, arbitrary: attenuatedToken.map((t) => t.macaroon) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: genuine.map((g) => g.macaroon) },
);

const preimageHex = fc.oneof(
  genuine.map((g) => g.preimage.toString('hex')),
  mutated(genuine.map((g) => Buffer.from(g.preimage.toString('hex')))).map((b) => b.toString('latin1')),
  fc.hexaString({ minLength: 60, maxLength: 68 }),
  fc.string({ maxLength: 80 }),
);

const macaroonText = fc.oneof(
  anyMacaroonBytes.map((b) => b.toString('base64')),
  anyMacaroonBytes.map((b) => b.toString('base64url')),
  mutated(genuine.map((g) => Buffer.from(g.macaroon.toString('base64')))).map((b) => b.toString('latin1')),
  fc.base64String({ maxLength: 400 }),
  fc.fullUnicodeString({ maxLength: 60 }),
);

/** Authorization headers: structured L402/LSAT credentials, mutated ones, and arbitrary text. */
const authorization = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .tuple(
        fc.constantFrom('L402 ', 'LSAT ', 'l402 ', 'L402  ', ' L402 ', 'L402\t', 'Bearer ', 'L402', ''),
        fc.array(macaroonText, { minLength: 1, maxLength: 6 }),
        fc.constantFrom(':', ' : ', '::', ';', ''),
        preimageHex,
      )
      .map(([scheme, macs, sep, pre]) => `${scheme}${macs.join(',')}${sep}${pre}`),
  },
  {
    weight: 1,
    arbitrary: fc.string({ maxLength: 200 }),
  },
  {
    weight: 1,
    arbitrary: fc.fullUnicodeString({ maxLength: 200 }).map((s) => `L402 ${s}`),
  },
  {
    weight: 1,
    arbitrary: fc.nat({ max: 20_000 }).map((n) => `L402 ${'A'.repeat(n)}:${'0'.repeat(64)}`),
  },
);

// ---------------------------------------------------------------------------------------------------------

describe('fuzzing the header parser', () => {
  it(`never throws, and only yields credentials within the limits (${RUNS.header} inputs)`, () => {
    fc.assert(
      fc.property(authorization, (header) => {
        inputs++;
        const set = parseCredentials(header, header, HEADER_LIMITS);
        expect(set.credentials.length).toBeLessThanOrEqual(HEADER_LIMITS.maxMacaroons);
        const parsed = parseAuthorization(header, HEADER_LIMITS);
        if (parsed.kind === 'invalid') {
          // Unusable credentials are answered with a fresh invoice.
          expect(DENIALS[parsed.problem].status).toBe(402);
          return;
        }
        if (parsed.kind === 'credential') {
          expect(Buffer.byteLength(header)).toBeLessThanOrEqual(HEADER_LIMITS.maxHeaderBytes);
          expect(parsed.credential.preimage).toHaveLength(32);
          expect(parsed.credential.macaroons.length).toBeLessThanOrEqual(HEADER_LIMITS.maxMacaroons);
          for (const m of parsed.credential.macaroons) expect(m).toMatch(/^[A-Za-z0-9+/_-]+={0,2}$/);
        }
      }),
      { seed: SEED, numRuns: RUNS.header },
    );
  });
});

describe('fuzzing the macaroon decoder', () => {
  it(`throws nothing but MacaroonError, and what it decodes re-encodes to the same bytes (${RUNS.decoder} inputs)`, () => {
    fc.assert(
      fc.property(anyMacaroonBytes, (bytes) => {
        inputs++;
        let mac: ReturnType<typeof decodeMacaroon>;
        try {
          mac = decodeMacaroon(bytes, LIMITS);
        } catch (err) {
          expect(err).toBeInstanceOf(MacaroonError);
          return;
        }
        expect(mac.signature).toHaveLength(32);
        expect(mac.caveats.length).toBeLessThanOrEqual(LIMITS.maxCaveats);
        // Canonical: one decoding per byte string (a uvarint with redundant high zero groups is the exception).
        if (!encodeMacaroon(mac).equals(bytes)) {
          expect(decodeMacaroon(encodeMacaroon(mac), LIMITS)).toEqual(mac);
        }
      }),
      { seed: SEED + 1, numRuns: RUNS.decoder },
    );
  });
});

describe('fuzzing the verifier', () => {
  it(`never throws, and accepts only a genuine token with its own preimage, narrowed to still fit (${RUNS.verifier} inputs)`, () => {
    const credential = fc.tuple(fc.array(macaroonText, { minLength: 1, maxLength: 4 }), preimageHex);
    fc.assert(
      fc.property(
        fc.oneof(
          credential,
          attenuatedToken.map((t) => [[t.macaroon.toString('base64')], t.preimage.toString('hex')] as const),
        ),
        ([macaroons, preimage]) => {
          inputs++;
          const pre = Buffer.from(preimage, 'hex');
          if (pre.length !== 32 || !/^[0-9a-f]{64}$/i.test(preimage)) return;
          const result = verifyCredential({ macaroons: [...macaroons], preimage: pre }, NEEDS, KEYS, LIMITS);
          if (!result.ok) {
            expect(DENIALS[result.reason].status).toBe(402);
            return;
          }
          expect(PAID_HASHES.has(result.token.paymentHash.toString('hex'))).toBe(true);
          expect(sha256(pre).equals(result.token.paymentHash)).toBe(true);
          expect(result.token.priceSats).toBeGreaterThanOrEqual(NEEDS.priceSats);
          expect(result.token.validUntil).toBeGreaterThan(NOW);
        },
      ),
      { seed: SEED + 2, numRuns: RUNS.verifier },
    );
  });
});

describe('fuzzing the whole decision', () => {
  const routes: RouteTable = {
    rules: [
      {
        id: 'forecast',
        service: 'weather',
        priceSats: 10,
        tokenLifetimeSeconds: 3600,
        invoiceExpirySeconds: 600,
        path: { prefix: '/v1/forecast' },
      },
      {
        id: 'history',
        service: 'weather',
        priceSats: 10,
        tokenLifetimeSeconds: 3600,
        invoiceExpirySeconds: 600,
        path: { prefix: '/v1/history' },
      },
    ],
    unmatched: { action: 'deny' },
    defaults: { tokenLifetimeSeconds: 3600, invoiceExpirySeconds: 600 },
  };
  // A cheap, healthy stand-in for LND: the properties are about Plannt's decision, not BOLT11.
  const invoices: InvoiceBackend = {
    name: 'stub',
    async createInvoice(_sats, _memo, expirySeconds) {
      return {
        paymentRequest: 'lnbcrt1stub',
        paymentHash: randomBytes(32),
        expiresAt: new Date(NOW_MS + expirySeconds * 1000),
      };
    },
    probe: async () => {},
    close: async () => {},
  };
  const engine: Engine = {
    routes,
    keys: KEYS,
    invoices,
    spentSet: memorySpentSet(1_000_000),
    limits: { maxAuthorizationBytes: 8192, maxMacaroons: 4, maxMacaroonBytes: 4096, maxCaveats: 32 },
    now: () => NOW_MS,
    clockSkewSeconds: 30,
    invoiceTimeoutMs: 1000,
    retryAfterSeconds: 5,
    location: 'plannt',
  };
  const allowedHashes: string[] = [];

  it(`decides every input without throwing, never a 5xx, allowing each paid token at most once and only on its route (${RUNS.decide} inputs)`, async () => {
    const request = fc.record({
      authorization: fc.option(authorization, { nil: undefined }),
      path: fc.constantFrom('/v1/forecast', '/v1/forecast/x?y', '/v1/history', '/nowhere', ''),
      method: fc.constantFrom('GET', 'POST', 'g\u0000et', ''),
      host: fc.oneof(fc.constant('api.example.com'), fc.string({ maxLength: 20 })),
    });
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        inputs++;
        const decision = await decide(
          {
            host: r.host,
            path: r.path,
            method: r.method,
            contextExtensions: {},
            deadline: NOW_MS + 5000,
            ...(r.authorization !== undefined && { authorization: r.authorization }),
          },
          engine,
        );
        const answer = render(decision, { stripAuthorization: true });
        if (!answer.allowed) {
          expect(answer.status).toBeGreaterThanOrEqual(400);
          expect(answer.status).toBeLessThan(500);
          return;
        }
        if (decision.kind === 'allow' && decision.reason === 'paid') {
          expect(decision.route?.id).toBe('forecast'); // every genuine token was bought for forecast
          allowedHashes.push(decision.paymentHash?.toString('hex') ?? '');
        }
      }),
      { seed: SEED + 3, numRuns: RUNS.decide },
    );
    // Single use: no payment hash allowed twice, and only genuinely paid ones.
    expect(new Set(allowedHashes).size).toBe(allowedHashes.length);
    for (const h of allowedHashes) expect(PAID_HASHES.has(h)).toBe(true);
  });
});
