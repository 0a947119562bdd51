/**
 * An agent that follows lnget's algorithm (lightninglabs/lnget, client/transport.go and l402/handler.go),
 * built on aperture's l402 package as lnget is (`plannt-aperture fetch`, test/interop/aperture/main.go): a
 * cached token for the host goes first and is kept unless the answer is a 402; otherwise it asks without a
 * token, discards that 402, asks again, pays the fresh challenge, stores the token for the host (aperture's
 * FileStore), adds the `preimage=` caveat (Token.PaidMacaroon) and retries with it. lnget itself is not on the
 * Go module proxy, so its steps are followed here, over aperture's code.
 * On regtest: bob's lnd pays alice's invoices over a real channel; Plannt sells through the real Caddy.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type RegtestNetwork, startNetwork, stopNetwork } from '../regtest/network';
import { type ApiBehindCaddy, startApiBehindCaddy } from '../support/caddy';
import { metricValue, type Plannt, startPlannt } from '../support/plannt';
import { aperture } from '../support/plannt-aperture';

jest.setTimeout(120_000);

interface FetchOut {
  results: { url: string; status: number; body: string; error: string }[];
  payments: { invoice: string; preimage: string }[];
  trace: { url: string; authorization: string[]; status: number }[];
}

let net: RegtestNetwork;
let plannt: Plannt;
let api: ApiBehindCaddy;
let storeDir = '';

beforeAll(async () => {
  net = await startNetwork();
  plannt = await startPlannt({
    backend: {
      kind: 'lnd',
      timeout_ms: 5000,
      lnd: {
        socket: net.alice.socket,
        cert_file: net.alice.certPath,
        macaroon_file: net.alice.invoiceMacaroonPath,
      },
    },
  });
  api = await startApiBehindCaddy(`127.0.0.1:${plannt.app.httpPort}`, {
    contentType: 'text/plain',
    body: 'forecast: sunny',
  });
  storeDir = mkdtempSync(path.join(tmpdir(), 'plannt-lnget-'));
}, 240_000);

afterAll(async () => {
  await api?.stop();
  await plannt?.stop();
  if (net) await stopNetwork(net);
  if (storeDir) rmSync(storeDir, { recursive: true, force: true });
});

describe('an lnget-style agent buying single-use tokens over a real channel', () => {
  it('three fetches: three payments, three upstream 200s, no paid token refused', async () => {
    const url = `${api.url}/v1/forecast?city=oslo`;
    const out = await aperture<FetchOut>(
      'fetch',
      {
        urls: [url, url, url],
        store_dir: storeDir,
        payer: {
          kind: 'lnd',
          lnd_socket: net.bob.socket,
          lnd_cert_path: net.bob.certPath,
          lnd_macaroon_path: net.bob.adminMacaroonPath,
          max_fee_sat: 10,
        },
      },
      110_000,
    );
    expect(out.results.map((r) => [r.status, r.body, r.error])).toEqual(
      Array(3).fill([200, 'forecast: sunny', '']),
    );
    expect(out.payments).toHaveLength(3);
    const served = api.served.map((r) => String(r.headers['x-plannt-payment-hash']));
    expect(served).toHaveLength(3);
    expect(new Set(served).size).toBe(3);

    // Each freshly paid token is served at its first use: the request right after each payment is a 200.
    const paidUses = out.trace.filter((t) => t.authorization.length > 0);
    const firstUses = paidUses.filter((_, i) => i % 2 === 0);
    expect(firstUses.map((t) => t.status)).toEqual([200, 200, 200]);
    // The token cached from the previous fetch goes first, is refused as spent with a 402, and is re-bought.
    expect(paidUses.filter((_, i) => i % 2 === 1).map((t) => t.status)).toEqual([402, 402]);
    for (const t of paidUses)
      expect(t.authorization).toEqual([expect.stringMatching(/^L402 [^:]+:[0-9a-f]{64}$/)]);

    const metrics = await plannt.metrics();
    expect(metricValue(metrics, 'plannt_paid_requests_total')).toBe(3);
    for (const reason of ['unknown_caveat', 'preimage_mismatch', 'malformed_header', 'invalid_signature']) {
      expect(metricValue(metrics, 'plannt_checks_total', { reason })).toBe(0);
    }
  });
});
