/**
 * Settlement metrics with the dev backend: /dev/pay is the dev world's payment, so it is counted when it
 * happens, once per invoice, whether or not the token is ever used.
 */
import { metricValue, type Plannt, startPlannt } from '../support/plannt';

const FORECAST = { method: 'GET', host: 'api.example.com', path: '/v1/forecast' };

describe('settlement metrics (dev backend)', () => {
  let plannt: Plannt;

  beforeAll(async () => {
    plannt = await startPlannt({ unmatched: { action: 'price', service: 'misc', price_sats: 3 } });
  });

  afterAll(async () => {
    await plannt?.stop();
  });

  const settled = async (service: string) => {
    const text = await plannt.metrics();
    return {
      count: metricValue(text, 'plannt_invoices_settled_total', { service }),
      sats: metricValue(text, 'plannt_invoices_settled_sats_total', { service }),
    };
  };

  it('counts a paid invoice when it is paid, before its token is used', async () => {
    const paid = await plannt.buy(FORECAST);
    expect(await settled('weather')).toEqual({ count: 1, sats: 10 });
    expect(metricValue(await plannt.metrics(), 'plannt_paid_requests_total')).toBe(0);
    expect(
      (await plannt.check({ ...FORECAST, headers: { authorization: paid.authorization } })).allowed,
    ).toBe(true);
    expect(await settled('weather')).toEqual({ count: 1, sats: 10 });
  });

  it('counts an invoice once however often its preimage is revealed', async () => {
    const paid = await plannt.buy(FORECAST);
    await plannt.pay(paid.invoice);
    expect(await settled('weather')).toEqual({ count: 2, sats: 20 });
  });

  it('does not count an invoice that is never paid', async () => {
    expect((await plannt.check(FORECAST)).status).toBe(402);
    expect(await settled('weather')).toEqual({ count: 2, sats: 20 });
  });

  it('labels the unmatched-but-priced service by its name', async () => {
    await plannt.buy({ method: 'GET', host: 'api.example.com', path: '/anything' });
    expect(await settled('misc')).toEqual({ count: 1, sats: 3 });
    expect(await settled('other')).toEqual({ count: 0, sats: 0 });
  });
});
