/**
 * Lightning Labs' aperture (v0.5.0, the reference L402 implementation that Go agents and lnget build on)
 * against Plannt, running aperture's own code (test/interop/aperture: a JSON CLI over its l402 and mint
 * packages): the LSAT+L402 pair of `l402.SetHeader`, the `preimage=` caveat of `Token.PaidMacaroon()`,
 * `l402.FromHeader`, the gRPC client interceptor through an Envoy-like gRPC front, and `mint.VerifyL402`
 * accepting Plannt's tokens.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CheckInput } from '../support/envoy-client';
import { type GrpcAuthzProxy, startGrpcAuthzProxy, startHealthUpstream } from '../support/grpc-authz-proxy';
import { httpCall } from '../support/http';
import { metricValue, type Plannt, type Purchase, ROUTES, startPlannt } from '../support/plannt';
import { aperture } from '../support/plannt-aperture';

const Macaroon: {
  importMacaroon(bytes: Uint8Array): { caveats: { identifier: Uint8Array }[] };
} = require('macaroon');

const FORECAST: CheckInput = { method: 'GET', host: 'api.example.com', path: '/v1/forecast?city=oslo' };
const HEALTH_PATH = '/grpc.health.v1.Health/Check';

interface SetHeaderOut {
  authorization: string[];
  macaroon_hex: string;
  caveats: string[];
}

let plannt: Plannt;
const dirs: string[] = [];

beforeAll(async () => {
  plannt = await startPlannt({
    routes: [
      ...ROUTES,
      { id: 'health', service: 'status', price_sats: 5, path: { exact: HEALTH_PATH }, methods: ['POST'] },
    ],
  });
});
afterAll(async () => {
  await plannt?.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const tempDir = () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'plannt-aperture-'));
  dirs.push(dir);
  return dir;
};

const setHeader = (bought: Purchase, paid: boolean) =>
  aperture<SetHeaderOut>('set-header', { macaroon: bought.macaroon, preimage: bought.preimage, paid });

/** The request on Plannt's HTTP authorization port (Envoy http_service / forward auth), headers as given. */
const viaHttpPort = (headers: Record<string, string | string[]>) =>
  httpCall(plannt.httpUrl, {
    path: '/v1/forecast?city=oslo',
    headers: { host: 'api.example.com', ...headers },
  });

describe('l402.SetHeader sends the LSAT + L402 pair of one token', () => {
  it('writes two Authorization values, LSAT first, both carrying the same macaroon and preimage', async () => {
    const bought = await plannt.buy(FORECAST);
    const { authorization } = await setHeader(bought, false);
    expect(authorization).toEqual([
      `LSAT ${bought.macaroon}:${bought.preimage}`,
      `L402 ${bought.macaroon}:${bought.preimage}`,
    ]);
  });

  it('HTTP port, two Authorization headers: served once, and the replay is refused as spent', async () => {
    const bought = await plannt.buy(FORECAST);
    const { authorization } = await setHeader(bought, false);
    const first = await viaHttpPort({ authorization });
    expect(first.status).toBe(200);
    expect(first.header('x-plannt-payment-hash')).toEqual([bought.paymentHash]);
    const replay = await viaHttpPort({ authorization });
    expect(replay.json().error).toBe('token_spent');
  });

  it('gRPC Check, joined with "," in headers as Envoy forwards it: served once, spent once', async () => {
    const bought = await plannt.buy(FORECAST);
    const { authorization } = await setHeader(bought, false);
    const paidBefore = metricValue(await plannt.metrics(), 'plannt_paid_requests_total');
    expect((await plannt.check({ ...FORECAST, headers: { authorization } })).allowed).toBe(true);
    const replay = await plannt.check({ ...FORECAST, headers: { authorization } });
    expect(replay.allowed).toBe(false);
    expect(replay.body.error).toBe('token_spent');
    expect(metricValue(await plannt.metrics(), 'plannt_paid_requests_total') - paidBefore).toBe(1);
  });

  it('gRPC Check, two entries in header_map (encode_raw_headers): served once, spent once', async () => {
    const bought = await plannt.buy(FORECAST);
    const { authorization } = await setHeader(bought, false);
    const input = { ...FORECAST, headers: { authorization }, encodeRawHeaders: true };
    expect((await plannt.check(input)).allowed).toBe(true);
    expect((await plannt.check(input)).body.error).toBe('token_spent');
  });
});

describe('Token.PaidMacaroon adds a preimage=<hex> caveat', () => {
  it('the paid macaroon carries our caveats and then preimage=<the preimage>', async () => {
    const bought = await plannt.buy(FORECAST);
    const { caveats } = await setHeader(bought, true);
    expect(caveats.at(-1)).toBe(`preimage=${bought.preimage}`);
    expect(caveats).toEqual(expect.arrayContaining(['services=weather:0', 'plannt_route=forecast']));
  });

  it('is served on the HTTP port (a caveat Plannt does not define, checked against the preimage)', async () => {
    const bought = await plannt.buy(FORECAST);
    const { authorization } = await setHeader(bought, true);
    const res = await viaHttpPort({ authorization });
    expect({ status: res.status, body: res.text }).toEqual({ status: 200, body: '' });
  });

  it('is served through gRPC Check', async () => {
    const bought = await plannt.buy(FORECAST);
    const { authorization } = await setHeader(bought, true);
    const res = await plannt.check({ ...FORECAST, headers: { authorization } });
    expect({ allowed: res.allowed, body: res.body }).toEqual({ allowed: true, body: {} });
  });
});

describe('l402.FromHeader reads the credential forms Plannt documents', () => {
  it('Authorization: L402 <base64 macaroon>:<preimage>, as Plannt’s client and README send it', async () => {
    const bought = await plannt.buy(FORECAST);
    const out = await aperture('from-header', { headers: { Authorization: [bought.authorization] } });
    expect(out).toMatchObject({ ok: true, preimage: bought.preimage });
    expect(String(out.identifier_hex).slice(4, 68)).toBe(bought.paymentHash);
  });

  it('the pair and the hex macaroon headers aperture’s own clients send', async () => {
    const bought = await plannt.buy(FORECAST);
    const { authorization, macaroon_hex } = await setHeader(bought, true);
    for (const headers of [{ Authorization: authorization }, { Macaroon: [macaroon_hex] }]) {
      expect(await aperture('from-header', { headers })).toMatchObject({
        ok: true,
        preimage: bought.preimage,
      });
    }
  });
});

describe('mint.VerifyL402, aperture’s verifier, accepts Plannt’s tokens', () => {
  const verify = (bought: Purchase, extra: Record<string, unknown>) =>
    aperture('verify', {
      macaroon: bought.macaroon,
      preimage: bought.preimage,
      root_key_hex: plannt.rootKeyHex,
      service: 'weather',
      ...extra,
    });

  it('with Plannt’s per-macaroon root key, for the service bought, as bought and with the preimage caveat', async () => {
    const bought = await plannt.buy(FORECAST);
    expect(await verify(bought, {})).toEqual({ ok: true, error: '' });
    expect(await verify(bought, { paid: true })).toEqual({ ok: true, error: '' });
  });

  it('not for another service, nor under another root key', async () => {
    const bought = await plannt.buy(FORECAST);
    expect((await verify(bought, { service: 'inference' })).ok).toBe(false);
    expect((await verify(bought, { root_key_hex: '11'.repeat(32) })).ok).toBe(false);
  });
});

describe('aperture’s gRPC client interceptor through an Envoy-like gRPC front', () => {
  let front: GrpcAuthzProxy;
  let upstream: Awaited<ReturnType<typeof startHealthUpstream>>;

  beforeAll(async () => {
    upstream = await startHealthUpstream();
    front = await startGrpcAuthzProxy(plannt.client, upstream.target);
  });
  afterAll(async () => {
    await front?.close();
    await upstream?.close();
  });

  const call = (storeDir: string, calls: number) =>
    aperture<{
      results: { ok: boolean; code: string; message: string; payment_required: boolean; serving?: string }[];
      invoices_paid: string[];
    }>('grpc', {
      target: front.target,
      calls,
      store_dir: storeDir,
      payer: { kind: 'dev', dev_pay_url: `${plannt.adminUrl}/dev/pay` },
    });

  it('the challenge is a "payment required" gRPC status it pays; the retry’s macaroon metadata is served', async () => {
    const before = front.checks.length;
    const out = await call(tempDir(), 1);
    expect(out.invoices_paid).toHaveLength(1);
    expect(out.results).toEqual([expect.objectContaining({ ok: true, serving: 'SERVING' })]);

    const [challenged, retried] = front.checks.slice(before);
    expect(challenged).toMatchObject({ path: HEALTH_PATH, status: 402, allowed: false });
    expect(challenged?.headers['content-type']).toBe('application/grpc');
    // What aperture's interceptor sends on the retry: the paid macaroon, hex, in `macaroon` metadata.
    const hex = retried?.headers.macaroon ?? '';
    expect(hex).toMatch(/^[0-9a-f]+$/);
    const caveats = Macaroon.importMacaroon(Buffer.from(hex, 'hex')).caveats.map((c) =>
      Buffer.from(c.identifier).toString(),
    );
    expect(caveats.at(-1)).toMatch(/^preimage=[0-9a-f]{64}$/);
    expect(retried).toMatchObject({ allowed: true });
    expect(upstream.served.at(-1)?.['x-plannt-service']).toBe('status');
  });

  it('a second call resends the spent token; the interceptor reports "payment required" and never buys again', async () => {
    // aperture assumes tokens that can be reused; its store refuses to replace a paid token, so a single-use
    // Plannt token serves one call per store. Documented in README ("For agent builders").
    const out = await call(tempDir(), 2);
    expect(out.invoices_paid).toHaveLength(1);
    expect(out.results[0]).toMatchObject({ ok: true });
    expect(out.results[1]).toMatchObject({ ok: false, code: 'Internal', payment_required: true });
    expect(out.results[1]?.message).toContain('token_spent');
  });
});
