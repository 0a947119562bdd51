/**
 * A pod's counters never go down when a worker exits: what it counted is carried into the aggregation
 * (summed counters and histograms), or kept as an offset over the live maximum (counters every worker counts
 * alike, aggregated by max). Gauges are the live workers' alone.
 */
import { AggregatorRegistry } from 'prom-client';
import type { Decision } from '../../src/core/decision';
import { createMetrics, type Metrics } from '../../src/metrics';
import { metricsCarry, type WorkerMetrics } from '../../src/metrics-carry';
import { metricValue } from '../support/plannt';

/** What recordDecision reads of a paid allow. */
const PAID = {
  kind: 'allow',
  reason: 'paid',
  route: { id: 'forecast', service: 'weather', priceSats: 10 },
  amountSats: 10,
} as unknown as Decision;

const answer = (m: Metrics): Promise<WorkerMetrics> =>
  m.registry.getMetricsAsJSON() as Promise<WorkerMetrics>;

async function pod(carry: ReturnType<typeof metricsCarry>, live: Metrics[]): Promise<string> {
  return AggregatorRegistry.aggregate(carry.withCarried(await Promise.all(live.map(answer)))).metrics();
}

describe('metrics of workers that exited', () => {
  it('keeps a summed counter and a histogram where they were, and counts on from there', async () => {
    const [dead, live] = [createMetrics(), createMetrics()];
    for (const w of [dead, dead, live]) w.recordDecision(PAID, 'verify', 0.0002);
    const carry = metricsCarry();
    const before = await pod(carry, [dead, live]);
    carry.retire(await answer(dead), [await answer(live)]);
    live.recordDecision(PAID, 'verify', 0.0002);
    const after = await pod(carry, [live]);
    const allowed = (text: string) => metricValue(text, 'plannt_checks_total', { decision: 'allow' });
    const observed = (text: string) => metricValue(text, 'plannt_check_duration_seconds_count');
    expect(allowed(before)).toBe(3);
    expect(allowed(after)).toBe(4);
    expect(observed(before)).toBe(3);
    expect(observed(after)).toBe(4);
  });

  it('goes on from the dead worker’s count for a counter every worker counts alike (max)', async () => {
    const [early, late] = [createMetrics(), createMetrics()];
    early.invoiceSettled('weather', 10, 'forecast');
    for (const w of [early, late]) w.invoiceSettled('weather', 10, 'forecast');
    const carry = metricsCarry();
    const settled = (text: string) =>
      metricValue(text, 'plannt_invoices_settled_total', { service: 'weather' });
    expect(settled(await pod(carry, [early, late]))).toBe(2);
    carry.retire(await answer(early), [await answer(late)]);
    expect(settled(await pod(carry, [late]))).toBe(2);
    late.invoiceSettled('weather', 10, 'forecast');
    const replacement = createMetrics();
    expect(settled(await pod(carry, [late, replacement]))).toBe(3);
    expect(
      metricValue(await pod(carry, [late]), 'plannt_route_settled_sats_total', { route: 'forecast' }),
    ).toBe(30);
  });

  it('keeps no gauge of a dead worker', async () => {
    const [dead, live] = [createMetrics(), createMetrics()];
    dead.writeBackPending(5);
    live.writeBackPending(2);
    const carry = metricsCarry();
    carry.retire(await answer(dead), [await answer(live)]);
    expect(metricValue(await pod(carry, [live]), 'plannt_spent_set_writeback_pending')).toBe(2);
  });
});
