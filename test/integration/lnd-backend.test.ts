import { lndInvoiceBackend } from '../../src/adapters/lnd-invoices';
import { DependencyUnavailable, type InvoiceBackend } from '../../src/core/ports';
import { type FakeLnd, startFakeLnd } from '../support/fake-lnd';

/** The LND invoice backend's own connection to LND (its part in a check: test/integration/gate-lnd.test.ts). */
describe('the LND invoice backend', () => {
  let fake: FakeLnd;
  const opened: InvoiceBackend[] = [];

  const connect = (macaroon: string): InvoiceBackend => {
    const backend = lndInvoiceBackend({
      socket: fake.socket,
      certBase64: fake.certBase64,
      macaroon,
      probeTimeoutMs: 5_000,
      closeGraceMs: 1_000,
    });
    opened.push(backend);
    return backend;
  };

  beforeAll(async () => {
    fake = await startFakeLnd();
  });

  afterAll(async () => {
    for (const backend of opened) await backend.close();
    await fake?.stop();
  });

  it('takes the macaroon as hex or as base64, as ln-service does', async () => {
    const base64 = Buffer.from(fake.macaroonHex, 'hex').toString('base64');
    for (const macaroon of [fake.macaroonHex, base64]) {
      const backend = connect(macaroon);
      await expect(backend.probe()).resolves.toBeUndefined();
      const invoice = await backend.createInvoice(21, 'either encoding', 600, 5_000);
      expect(fake.invoices.at(-1)?.paymentHash).toEqual(invoice.paymentHash);
    }
  });

  it('refuses an answer from LND larger than 4 MiB instead of buffering it', async () => {
    const backend = connect(fake.macaroonHex);
    await backend.createInvoice(1, 'small', 600, 5_000);
    const newest = fake.invoices.at(-1);
    if (!newest) throw new Error('no invoice');
    newest.memo = 'x'.repeat(5 * 1024 * 1024);
    const probe = backend.probe();
    await expect(probe).rejects.toBeInstanceOf(DependencyUnavailable);
    await expect(probe).rejects.toMatchObject({ cause: expect.arrayContaining([503]) });
    newest.memo = 'small';
    await expect(backend.probe()).resolves.toBeUndefined();
  });
});
