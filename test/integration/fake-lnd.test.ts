import { createHash } from 'node:crypto';
import { type FakeLnd, startFakeLnd } from '../support/fake-lnd';

/** Minimal typings for the parts of ln-service (untyped JS) this test uses. */
interface GrpcClient {
  close(): void;
}
type AuthenticatedLnd = Record<string, GrpcClient>;
interface LnService {
  authenticatedLndGrpc(args: { cert: string; macaroon: string; socket: string }): { lnd: AuthenticatedLnd };
  createInvoice(args: {
    lnd: AuthenticatedLnd;
    tokens?: number;
    description?: string;
    expires_at?: string;
  }): Promise<{ id: string; request: string; tokens: number; secret: string; created_at: string }>;
  getWalletInfo(args: { lnd: AuthenticatedLnd }): Promise<{
    alias: string;
    public_key: string;
    chains: string[];
    is_synced_to_chain: boolean;
    current_block_height: number;
  }>;
  getInvoices(args: { lnd: AuthenticatedLnd; limit?: number }): Promise<{
    invoices: Array<{
      id: string;
      tokens: number;
      description: string;
      request: string;
      is_confirmed: boolean;
    }>;
  }>;
  parsePaymentRequest(args: { request: string }): {
    id: string;
    tokens: number;
    description: string;
    destination: string;
    network: string;
    expires_at: string;
    payment: string;
  };
}
const lnService: LnService = require('ln-service');

const REGTEST_CHAIN_ID = '06226e46111a0b59caaf126043eb5bbf28c34f3a5e332a1fc7b2b73cf188910f';

describe('fake LND gRPC server + real ln-service client', () => {
  let fake: FakeLnd;
  let lnd: AuthenticatedLnd;
  const clients: AuthenticatedLnd[] = [];

  const connect = (macaroon: string): AuthenticatedLnd => {
    const { lnd: authed } = lnService.authenticatedLndGrpc({
      cert: fake.certBase64,
      macaroon,
      socket: fake.socket,
    });
    clients.push(authed);
    return authed;
  };

  beforeAll(async () => {
    fake = await startFakeLnd();
    lnd = connect(fake.macaroonHex);
  });

  afterEach(() => {
    fake.setDown(false);
    fake.setDelayMs(0);
  });

  afterAll(async () => {
    for (const authed of clients) for (const client of Object.values(authed)) client.close();
    await fake?.stop();
  });

  it('createInvoice returns a real regtest BOLT11 request for the requested amount and hash', async () => {
    const expiresAt = new Date(Date.now() + 10 * 60 * 1000).toISOString();
    const invoice = await lnService.createInvoice({
      lnd,
      tokens: 21,
      description: 'x',
      expires_at: expiresAt,
    });

    expect(invoice.request.startsWith('lnbcrt210n1')).toBe(true);
    expect(invoice.tokens).toBe(21);

    const parsed = lnService.parsePaymentRequest({ request: invoice.request });
    expect(parsed.tokens).toBe(21);
    expect(parsed.id).toBe(invoice.id);
    expect(parsed.description).toBe('x');
    expect(parsed.network).toBe('regtest');
    expect(parsed.destination).toBe(fake.identityPubkey);
    expect(Math.abs(Date.parse(parsed.expires_at) - Date.parse(expiresAt))).toBeLessThanOrEqual(2000);

    const stored = fake.invoices.find((inv) => inv.paymentHash.toString('hex') === invoice.id);
    expect(stored).toBeDefined();
    expect(stored?.valueSat).toBe(21);
    expect(stored?.memo).toBe('x');
    expect(stored?.paymentRequest).toBe(invoice.request);
    expect(stored?.expirySeconds).toBeGreaterThanOrEqual(599);
    expect(stored?.expirySeconds).toBeLessThanOrEqual(600);
    // payment hash = sha256(preimage), and LookupInvoice hands the preimage back as `secret`
    expect(
      createHash('sha256')
        .update(stored?.preimage ?? Buffer.alloc(0))
        .digest('hex'),
    ).toBe(invoice.id);
    expect(invoice.secret).toBe(stored?.preimage.toString('hex'));
  });

  it('getWalletInfo parses GetInfo', async () => {
    const info = await lnService.getWalletInfo({ lnd });
    expect(info.alias).toBe('fake-lnd');
    expect(info.public_key).toBe(fake.identityPubkey);
    expect(info.chains).toEqual([REGTEST_CHAIN_ID]);
    expect(info.is_synced_to_chain).toBe(true);
    expect(info.current_block_height).toBeGreaterThan(0);
  });

  it('getInvoices lists created invoices, newest first', async () => {
    const a = await lnService.createInvoice({ lnd, tokens: 1, description: 'a' });
    const b = await lnService.createInvoice({ lnd, tokens: 2, description: 'b' });
    const { invoices } = await lnService.getInvoices({ lnd, limit: 2 });
    expect(invoices.map((inv) => inv.id)).toEqual([b.id, a.id]);
    expect(invoices.map((inv) => inv.tokens)).toEqual([2, 1]);
    expect(invoices[0]?.request).toBe(b.request);
    expect(invoices[0]?.is_confirmed).toBe(false);
  });

  it('rejects a wrong macaroon with UNAUTHENTICATED', async () => {
    const intruder = connect('deadbeef'.repeat(16));
    const before = fake.invoices.length;
    await expect(lnService.createInvoice({ lnd: intruder, tokens: 21, description: 'x' })).rejects.toEqual([
      503,
      'AddInvoiceError',
      expect.objectContaining({ err: expect.objectContaining({ code: 16 }) }),
    ]);
    await expect(lnService.getWalletInfo({ lnd: intruder })).rejects.toEqual(
      expect.arrayContaining([503, 'GetWalletInfoErr']),
    );
    expect(fake.invoices.length).toBe(before);
  });

  it('fails every call with UNAVAILABLE while down, and recovers', async () => {
    fake.setDown(true);
    await expect(lnService.createInvoice({ lnd, tokens: 21, description: 'x' })).rejects.toEqual([
      503,
      'AddInvoiceError',
      expect.objectContaining({ err: expect.objectContaining({ code: 14 }) }),
    ]);
    await expect(lnService.getWalletInfo({ lnd })).rejects.toBeDefined();
    fake.setDown(false);
    await expect(lnService.getWalletInfo({ lnd })).resolves.toMatchObject({ alias: 'fake-lnd' });
  });

  it('delays replies', async () => {
    fake.setDelayMs(500);
    const started = Date.now();
    await lnService.getWalletInfo({ lnd });
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
  });

  it('restarts on the same port and keeps serving the same client', async () => {
    const before = await lnService.createInvoice({ lnd, tokens: 5, description: 'before restart' });
    await fake.restart();
    const info = await lnService.getWalletInfo({ lnd });
    expect(info.alias).toBe('fake-lnd');
    const { invoices } = await lnService.getInvoices({ lnd, limit: 1 });
    expect(invoices[0]?.id).toBe(before.id);
  });
});
