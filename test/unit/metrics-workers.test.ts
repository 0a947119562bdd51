/**
 * What one pod's /metrics says when several workers count: the primary aggregates the workers' registries with
 * prom-client's AggregatorRegistry, as supervisor.ts does. Checks are counted by the one worker that decided
 * them, so they add up; a settlement is reported to every worker (each watches the invoice backend's stream), and
 * every worker applies a config reload, so each of those must count once.
 */
import { AggregatorRegistry } from 'prom-client';
import { createMetrics, type Metrics } from '../../src/metrics';
import { metricValue } from '../support/plannt';

async function podMetrics(workers: Metrics[]): Promise<string> {
  const perWorker = await Promise.all(workers.map((w) => w.registry.getMetricsAsJSON()));
  return AggregatorRegistry.aggregate(perWorker).metrics();
}

describe('metrics of a pod with two workers', () => {
  it('counts a settlement that every worker saw once, by service and by route', async () => {
    const workers = [createMetrics(), createMetrics()];
    for (const w of workers) {
      w.initialize(['weather'], ['lnd']);
      w.invoiceSettled('weather', 10, 'forecast');
      w.invoiceSettled('weather', 3, 'flash');
    }
    const text = await podMetrics(workers);
    expect(metricValue(text, 'plannt_invoices_settled_total', { service: 'weather' })).toBe(2);
    expect(metricValue(text, 'plannt_invoices_settled_sats_total', { service: 'weather' })).toBe(13);
    expect(metricValue(text, 'plannt_route_settled_sats_total', { route: 'forecast' })).toBe(10);
    expect(metricValue(text, 'plannt_route_settled_sats_total', { route: 'flash' })).toBe(3);
  });

  it('keeps the count of the worker that saw the most: one started later saw fewer', async () => {
    const [early, late] = [createMetrics(), createMetrics()];
    early.invoiceSettled('weather', 10, 'forecast');
    for (const w of [early, late]) w.invoiceSettled('weather', 10, 'forecast');
    const text = await podMetrics([early, late]);
    expect(metricValue(text, 'plannt_invoices_settled_sats_total', { service: 'weather' })).toBe(20);
  });

  it('counts a config reload, which every worker applies, once', async () => {
    const workers = [createMetrics(), createMetrics()];
    for (const w of workers) w.configReload('applied');
    const text = await podMetrics(workers);
    expect(metricValue(text, 'plannt_config_reloads_total', { result: 'applied' })).toBe(1);
  });

  it('adds up what each worker decided itself', async () => {
    const workers = [createMetrics(), createMetrics()];
    for (const w of workers) w.backendError('lnd');
    const text = await podMetrics(workers);
    expect(metricValue(text, 'plannt_backend_errors_total', { backend: 'lnd' })).toBe(2);
  });
});
