/**
 * lsat-js 2.0.6 (Tierion's LSAT library) on Plannt's challenges and tokens. Its `macaroon` dependency is a git
 * URL, overridden in package.json with the registry `macaroon` 3.0.4 (the one Plannt's tests already use).
 * What works: reading the challenge (`Lsat.fromHeader`, either scheme, or fetch's joined value), the payment
 * hash and invoice, `setPreimage`, `getCaveats`, `toToken` (an `LSAT …` credential Plannt serves).
 * What does not: `addFirstPartyCaveat` re-exports the macaroon with 3.0.4's `_exportBinaryV2`, which breaks on
 * macaroons with four or more caveats (every Plannt token); `Lsat.fromToken` wants the `LSAT` prefix only.
 */
import { Caveat, Lsat } from 'lsat-js';
import type { CheckResult } from '../support/envoy-client';
import { httpCall } from '../support/http';
import { type Plannt, startPlannt } from '../support/plannt';

const Macaroon: {
  importMacaroon(base64: string): {
    location: string;
    identifier: Uint8Array;
    caveats: { identifier: Uint8Array }[];
  };
} = require('macaroon');

const FORECAST = { method: 'GET', host: 'api.example.com', path: '/v1/forecast' };

let plannt: Plannt;
beforeAll(async () => {
  plannt = await startPlannt();
});
afterAll(async () => {
  await plannt?.stop();
});

async function challenge(): Promise<{ res: CheckResult; l402: string; lsat: string }> {
  const res = await plannt.check(FORECAST);
  expect(res.status).toBe(402);
  const [l402 = '', lsat = ''] = res.header('www-authenticate');
  return { res, l402, lsat };
}

const useToken = (authorization: string) =>
  httpCall(plannt.httpUrl, { path: '/v1/forecast', headers: { host: 'api.example.com', authorization } });

describe('lsat-js reads Plannt’s challenge', () => {
  it('Lsat.fromHeader takes either value and fetch’s joined value: macaroon, payment hash, invoice', async () => {
    const { res, l402, lsat } = await challenge();
    for (const header of [l402, lsat, `${l402}, ${lsat}`]) {
      const token = Lsat.fromHeader(header);
      expect(token.baseMacaroon).toBe(res.body.macaroon);
      expect(token.paymentHash).toBe(res.body.payment_hash);
      expect(token.invoice).toBe(res.body.invoice);
    }
  });

  it('getCaveats decodes our caveats as condition=value', async () => {
    const { l402 } = await challenge();
    expect(
      Lsat.fromHeader(l402)
        .getCaveats()
        .map((c) => c.encode()),
    ).toEqual(
      expect.arrayContaining(['services=weather:0', 'plannt_route=forecast', 'plannt_price_sats=10']),
    );
  });
});

describe('lsat-js pays and presents the token', () => {
  it('setPreimage accepts the preimage, and its toToken credential (LSAT scheme) is served once', async () => {
    const { res, l402 } = await challenge();
    const token = Lsat.fromHeader(l402);
    token.setPreimage(await plannt.pay(String(res.body.invoice)));
    expect(token.isSatisfied()).toBe(true);
    const authorization = token.toToken();
    expect(authorization.startsWith('LSAT ')).toBe(true);
    expect((await useToken(authorization)).status).toBe(200);
    expect((await useToken(authorization)).json().error).toBe('token_spent');
  });

  it('cannot add the preimage caveat: macaroon 3.0.4 fails to re-export a macaroon with 4+ caveats', async () => {
    const { res, l402 } = await challenge();
    const token = Lsat.fromHeader(l402);
    const preimage = await plannt.pay(String(res.body.invoice));
    expect(() => token.addFirstPartyCaveat(new Caveat({ condition: 'preimage', value: preimage }))).toThrow(
      // Node 20 says "Invalid typed array length", Node 24 "Array buffer allocation failed": the same overflow.
      /typed array length|Array buffer allocation failed/,
    );
  });

  it('Lsat.fromToken reads an LSAT credential but refuses the L402 scheme', async () => {
    const { res } = await challenge();
    const preimage = await plannt.pay(String(res.body.invoice));
    expect(Lsat.fromToken(`LSAT ${res.body.macaroon}:${preimage}`).paymentHash).toBe(res.body.payment_hash);
    expect(() => Lsat.fromToken(`L402 ${res.body.macaroon}:${preimage}`)).toThrow(/LSAT prefix/);
  });
});

describe('the macaroon package (lsat-js’s macaroon library) decodes our macaroon', () => {
  it('version-0 identifier bound to the invoice’s payment hash, our location and caveats', async () => {
    const { res } = await challenge();
    const mac = Macaroon.importMacaroon(String(res.body.macaroon));
    const id = Buffer.from(mac.identifier);
    expect(id).toHaveLength(66);
    expect(id.readUInt16BE(0)).toBe(0);
    expect(id.subarray(2, 34).toString('hex')).toBe(res.body.payment_hash);
    expect(mac.location).toBe('plannt-test');
    expect(mac.caveats.map((c) => Buffer.from(c.identifier).toString('utf8'))).toEqual(
      expect.arrayContaining(['services=weather:0', 'plannt_route=forecast', 'plannt_price_sats=10']),
    );
  });
});
