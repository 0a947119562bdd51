/**
 * Our challenges read by public L402 clients from npm, over real HTTP through the ext_authz proxy:
 * `@getalby/lightning-tools` (fetchWithL402 and parseL402) pays and gets through, and the `macaroon` package
 * decodes the macaroon of the header. `lsat-js` cannot be installed (it depends on a git URL); the last
 * block checks what its challenge parser relies on, with the libraries it parses with (`macaroon`, `bolt11`).
 */

import { get } from 'node:http';
import { fetchWithL402, MemoryStorage, parseL402 } from '@getalby/lightning-tools';
import bolt11 from 'bolt11';
import { type AuthzProxy, startEchoUpstream, startExtAuthzProxy } from '../support/ext-authz-proxy';
import { type Plannt, startPlannt } from '../support/plannt';

/** The parts of the untyped `macaroon` package these tests read. */
const Macaroon: {
  importMacaroon(base64: string): {
    location: string;
    identifier: Uint8Array;
    caveats: { identifier: Uint8Array }[];
  };
} = require('macaroon');

let plannt: Plannt;
let upstream: { url: string; close(): Promise<void> };
let proxy: AuthzProxy;

beforeAll(async () => {
  plannt = await startPlannt();
  upstream = await startEchoUpstream();
  proxy = await startExtAuthzProxy(plannt.client, upstream.url);
});
afterAll(async () => {
  await proxy?.close();
  await upstream?.close();
  await plannt?.stop();
});

/** A WebLN provider whose sendPayment pays through Plannt's dev backend. */
function devWebln(payments: string[]) {
  return {
    enable: async () => {},
    sendPayment: async (invoice: string) => {
      payments.push(invoice);
      return { preimage: await plannt.pay(invoice) };
    },
  } as unknown as Parameters<typeof fetchWithL402>[2]['webln'];
}

/**
 * Alby's own token store. Alby types `store` as the Web Storage interface, which @types/node (22 and later)
 * declares in full; MemoryStorage has only the getItem and setItem that fetchWithL402 calls.
 */
function memoryStore(): Storage {
  return new MemoryStorage() as unknown as Storage;
}

/** One 402 over HTTP: its WWW-Authenticate values as sent (node:http keeps them apart), joined as fetch joins them. */
function challenge(): Promise<{ values: string[]; joined: string; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    get(`${proxy.url}/v1/forecast`, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        expect(res.statusCode).toBe(402);
        const values = res.rawHeaders.filter(
          (_, i, all) => i % 2 === 1 && all[i - 1]?.toLowerCase() === 'www-authenticate',
        );
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        resolve({
          values,
          joined: new Headers(values.map((v) => ['www-authenticate', v])).get('www-authenticate') ?? '',
          body,
        });
      });
    }).on('error', reject);
  });
}

describe('@getalby/lightning-tools', () => {
  it('fetchWithL402 pays our 402 through WebLN and reaches the upstream (L402 scheme)', async () => {
    const payments: string[] = [];
    const res = await fetchWithL402(
      `${proxy.url}/v1/forecast`,
      {},
      { webln: devWebln(payments), store: memoryStore() },
    );
    expect(res.status).toBe(200);
    const echoed = (await res.json()) as { headers: Record<string, string> };
    expect(echoed.headers['x-plannt-amount-sats']).toBe('10');
    expect(payments).toHaveLength(1);
    expect(proxy.checks.at(-1)?.authorization).toMatch(/^L402 /);
  });

  it('fetchWithL402 with headerKey LSAT gets through too', async () => {
    const payments: string[] = [];
    const res = await fetchWithL402(
      `${proxy.url}/v1/forecast`,
      {},
      { webln: devWebln(payments), store: memoryStore(), headerKey: 'LSAT' },
    );
    expect(res.status).toBe(200);
    expect(proxy.checks.at(-1)?.authorization).toMatch(/^LSAT /);
  });

  it('reuses its stored token for the next call; Plannt tokens are single-use, so that call gets 401 token_spent', async () => {
    const payments: string[] = [];
    const options = { webln: devWebln(payments), store: memoryStore() };
    expect((await fetchWithL402(`${proxy.url}/v1/forecast`, {}, options)).status).toBe(200);
    const again = await fetchWithL402(`${proxy.url}/v1/forecast`, {}, options);
    // Alby assumes reusable (aperture-style) tokens and returns the answer to its stored token as is.
    expect(again.status).toBe(401);
    expect(((await again.json()) as { error: string }).error).toBe('token_spent');
    expect(payments).toHaveLength(1);
  });

  it('parseL402 reads each of our header values and the value fetch joins them into', async () => {
    const { values, joined, body } = await challenge();
    expect(values).toHaveLength(2);
    for (const value of [...values, joined]) {
      expect(parseL402(value)).toEqual({ macaroon: body.macaroon, invoice: body.invoice });
    }
  });
});

describe('the macaroon package', () => {
  it('decodes the macaroon of the header: version-0 identifier bound to the invoice, our caveats', async () => {
    const { joined, body } = await challenge();
    const fromHeader = /macaroon="([^"]+)"/.exec(joined)?.[1] ?? '';
    expect(fromHeader).toBe(body.macaroon);
    const mac = Macaroon.importMacaroon(fromHeader);
    const id = Buffer.from(mac.identifier);
    expect(id).toHaveLength(66);
    expect(id.readUInt16BE(0)).toBe(0);
    const invoiceHash = bolt11
      .decode(String(body.invoice))
      .tags.find((t) => t.tagName === 'payment_hash')?.data;
    expect(id.subarray(2, 34).toString('hex')).toBe(invoiceHash);
    const caveats = mac.caveats.map((c) => Buffer.from(c.identifier).toString('utf8'));
    expect(caveats).toEqual(
      expect.arrayContaining(['services=weather:0', 'plannt_route=forecast', 'plannt_price_sats=10']),
    );
    expect(mac.location).toBe('plannt-test');
  });
});

describe('what lsat-js (Lsat.fromHeader / fromChallenge) relies on', () => {
  it('a 4-character scheme, then comma-separated macaroon= and invoice= parts, each value wholly in double quotes', async () => {
    const { values } = await challenge();
    for (const value of values) {
      expect(['L402', 'LSAT']).toContain(value.slice(0, 4));
      const parts = value.slice(4).trim().split(',');
      for (const name of ['macaroon=', 'invoice=']) {
        const part = parts.find((p) => p.includes(name))?.trim() ?? '';
        const quoted = part.slice(part.indexOf('=') + 1);
        expect(quoted).toMatch(/^"[^",]+"$/);
      }
    }
  });

  it('an invoice the bolt11 package decodes without being told the network, and caveats of the condition=value form', async () => {
    const { body } = await challenge();
    const decoded = bolt11.decode(String(body.invoice));
    expect(decoded.satoshis).toBe(10);
    const mac = Macaroon.importMacaroon(String(body.macaroon));
    for (const c of mac.caveats) expect(Buffer.from(c.identifier).toString('utf8')).toMatch(/^[^=<>]+=.+$/);
  });
});
