/**
 * Shadow mode: a route with `mode: shadow` is decided and recorded as if enforced (metrics, a log line with
 * `would_deny`), but allowed, so a team can watch pricing on a live API before enforcing it.
 */
import { metricValue, type Plannt, ROUTES, startPlannt } from '../support/plannt';

const FORECAST = { method: 'GET', host: 'api.example.com', path: '/v1/forecast' };
let plannt: Plannt;

beforeAll(async () => {
  plannt = await startPlannt({
    routes: ROUTES.map((r) => (r.id === 'forecast' ? { ...r, mode: 'shadow' } : r)),
  });
});

afterAll(async () => {
  await plannt?.stop();
});

describe('a shadow route', () => {
  it('allows an unpaid request, counts what enforcing would have answered, and logs would_deny', async () => {
    const before = metricValue(await plannt.metrics(), 'plannt_shadow_would_deny_total', {
      reason: 'payment_required',
      service: 'weather',
    });
    const res = await plannt.check(FORECAST);
    expect(res.allowed).toBe(true);
    expect(res.upstreamHeaders).toEqual({});
    const text = await plannt.metrics();
    expect(
      metricValue(text, 'plannt_shadow_would_deny_total', { reason: 'payment_required', service: 'weather' }),
    ).toBe(before + 1);
    expect(
      metricValue(text, 'plannt_checks_total', { decision: 'allow', reason: 'shadow', service: 'weather' }),
    ).toBe(1);
    expect(metricValue(text, 'plannt_challenges_total', { service: 'weather' })).toBe(0);
    const line = plannt.logs.map((l) => JSON.parse(l)).find((l) => l.reason === 'shadow');
    expect(line).toMatchObject({ decision: 'allow', would_deny: 'payment_required', route: 'forecast' });
  });

  it('leaves enforcing routes enforcing', async () => {
    const res = await plannt.check({ method: 'GET', host: 'api.example.com', path: '/v1/history' });
    expect([res.allowed, res.status]).toEqual([false, 402]);
  });
});
