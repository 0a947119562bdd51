/**
 * Alby's `@getalby/lightning-tools`, 5.x (WebLN, a token store per URL) and the newest release (a wallet with
 * payInvoice, reusable `credentials`), paying Plannt through a real Caddy with the project's Caddyfile; the
 * payments go through Plannt's dev backend (/dev/pay). Also both parseL402s on our challenge, and Plannt's
 * own client reading the challenge Alby's server helper writes (`version="0" token=…`).
 */
import * as alby5 from '@getalby/lightning-tools';
import * as albyLatest from '@getalby/lightning-tools-latest';
import { findChallenge } from '../../src/client/challenge';
import { type ApiBehindCaddy, startApiBehindCaddy } from '../support/caddy';
import { type Plannt, startPlannt } from '../support/plannt';

/**
 * Alby 5's own token store. Alby types `store` as the Web Storage interface, which @types/node (22 and later)
 * declares in full; MemoryStorage has only the getItem and setItem that fetchWithL402 calls.
 */
function albyStore(): Storage {
  return new alby5.MemoryStorage() as unknown as Storage;
}

let plannt: Plannt;
let api: ApiBehindCaddy;

beforeAll(async () => {
  plannt = await startPlannt();
  api = await startApiBehindCaddy(`127.0.0.1:${plannt.app.httpPort}`, {
    contentType: 'application/json',
    body: '{"forecast":"sunny"}',
  });
}, 30_000);

afterAll(async () => {
  await api?.stop();
  await plannt?.stop();
});

const forecast = () => `${api.url}/v1/forecast?city=oslo`;

/** A WebLN provider (Alby 5.x) paying through Plannt's dev backend. */
function webln(paid: string[]) {
  return {
    enable: async () => {},
    sendPayment: async (invoice: string) => {
      paid.push(invoice);
      return { preimage: await plannt.pay(invoice) };
    },
  } as unknown as Parameters<typeof alby5.fetchWithL402>[2]['webln'];
}

/** A wallet (newest Alby) paying through Plannt's dev backend. */
function wallet(paid: string[]): albyLatest.Wallet {
  return {
    payInvoice: async ({ invoice }) => {
      paid.push(invoice);
      return { preimage: await plannt.pay(invoice) };
    },
  };
}

describe('@getalby/lightning-tools 5.x through Caddy', () => {
  it('fetchWithL402 pays the 402 and the API answers', async () => {
    const paid: string[] = [];
    const before = api.served.length;
    const res = await alby5.fetchWithL402(forecast(), {}, { webln: webln(paid), store: albyStore() });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ forecast: 'sunny' });
    expect(paid).toHaveLength(1);
    expect(api.served.slice(before)).toHaveLength(1);
  });

  it('with headerKey LSAT too', async () => {
    const paid: string[] = [];
    const options = { webln: webln(paid), store: albyStore(), headerKey: 'LSAT' };
    expect((await alby5.fetchWithL402(forecast(), {}, options)).status).toBe(200);
  });

  it('reuses its stored token for the URL: Plannt answers 402 token_spent with a fresh challenge, which 5.x returns unpaid', async () => {
    const paid: string[] = [];
    const options = { webln: webln(paid), store: albyStore() };
    expect((await alby5.fetchWithL402(forecast(), {}, options)).status).toBe(200);
    const before = api.served.length;
    const again = await alby5.fetchWithL402(forecast(), {}, options);
    expect(again.status).toBe(402);
    expect(again.headers.get('www-authenticate')).toMatch(/^L402 macaroon="/);
    expect(((await again.json()) as { error: string }).error).toBe('token_spent');
    expect(paid).toHaveLength(1);
    expect(api.served.length).toBe(before);
  });
});

describe('@getalby/lightning-tools newest (fetchWithL402 with a wallet)', () => {
  it('pays the 402 and the API answers; the response carries the credential it sent', async () => {
    const paid: string[] = [];
    const res = await albyLatest.fetchWithL402(forecast(), {}, { wallet: wallet(paid) });
    expect(res.status).toBe(200);
    expect(paid).toHaveLength(1);
    expect(res.payment).toMatchObject({ paid: true, amountSat: 10 });
    expect(res.payment?.credentials).toMatchObject({
      header: 'Authorization',
      value: expect.stringMatching(/^L402 /),
    });
  });

  it('given the spent credential back, gets 402 token_spent and never pays again (its guarantee)', async () => {
    const paid: string[] = [];
    const first = await albyLatest.fetchWithL402(forecast(), {}, { wallet: wallet(paid) });
    const credentials = first.payment?.credentials;
    if (!credentials) throw new Error('no credential on the paid response');
    const again = await albyLatest.fetchWithL402(forecast(), {}, { wallet: wallet(paid), credentials });
    expect(again.status).toBe(402);
    expect(((await again.json()) as { error: string }).error).toBe('token_spent');
    expect(paid).toHaveLength(1);
    // A new call without credentials buys a new token.
    expect((await albyLatest.fetchWithL402(forecast(), {}, { wallet: wallet(paid) })).status).toBe(200);
    expect(paid).toHaveLength(2);
  });
});

describe('parsing', () => {
  it('both parseL402s read our challenge as fetch joins the two values (macaroon first, version="0" last)', async () => {
    const res = await fetch(forecast());
    expect(res.status).toBe(402);
    const body = (await res.json()) as { macaroon: string; invoice: string };
    const joined = res.headers.get('www-authenticate') ?? '';
    expect(joined).toMatch(/^L402 macaroon="[^"]+", invoice="[^"]+", version="0", LSAT macaroon=/);
    expect(alby5.parseL402(joined)).toMatchObject({ macaroon: body.macaroon, invoice: body.invoice });
    expect(albyLatest.parseL402(joined)).toMatchObject({ token: body.macaroon, invoice: body.invoice });
  });

  it('Plannt’s client reads the challenge Alby’s server helper writes (token=, version="0")', async () => {
    const res = await fetch(forecast());
    const body = (await res.json()) as { macaroon: string; invoice: string };
    const header = albyLatest.makeL402AuthenticateHeader({ token: body.macaroon, invoice: body.invoice });
    expect(header).toMatch(/^L402 version="0" token="/);
    expect(findChallenge(header)).toMatchObject({
      scheme: 'L402',
      macaroon: body.macaroon,
      invoice: body.invoice,
    });
  });
});
