/**
 * What the workers that exited had counted, kept on the pod's /metrics. The primary aggregates the live workers'
 * registries; without this, a worker's death would make the pod's counters go down, which Prometheus reads as a
 * reset: rate() and increase() would count the survivors' whole totals again.
 *
 * A summed counter or histogram keeps the dead worker's last reported values. A counter aggregated by `max`
 * (every worker counts the same events: settlements, reloads) keeps what the dead worker had over the live
 * maximum, as an offset on every live worker's value, so the pod's count goes on from where it was.
 * Gauges are the live workers' alone. Uses counted after the dead worker's last scrape are lost, not repeated.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client';

type Metric = MetricObjectWithValues<MetricValue<string>>;
/** One worker's registry, as `registry.getMetricsAsJSON()` gives it. */
export type WorkerMetrics = Metric[];
type Value = Metric['values'][number] & { metricName?: string };

interface Carried {
  metric: Omit<Metric, 'values'>;
  /** By series: the value carried and the series' own labels and name. */
  series: Map<string, Value>;
}

export interface MetricsCarry {
  /** A worker exited: `dead` is its last answer, `live` the others' last answers. */
  retire(dead: WorkerMetrics, live: WorkerMetrics[]): void;
  /** What to aggregate for the pod: the live workers' answers, with what the dead ones counted. */
  withCarried(live: WorkerMetrics[]): WorkerMetrics[];
}

export function metricsCarry(): MetricsCarry {
  const carried = new Map<string, Carried>();

  return {
    retire(dead, live) {
      for (const metric of dead) {
        const aggregator = metric.aggregator ?? 'sum';
        const type = typeOf(metric);
        const summed = aggregator === 'sum' && (type === 'counter' || type === 'histogram');
        const maxed = aggregator === 'max' && type === 'counter';
        if (!summed && !maxed) continue;
        const { values, ...meta } = metric;
        let entry = carried.get(metric.name);
        if (!entry) {
          entry = { metric: meta, series: new Map() };
          carried.set(metric.name, entry);
        }
        for (const value of values as Value[]) {
          const key = seriesKey(value);
          const held = entry.series.get(key)?.value ?? 0;
          const add = summed ? value.value : Math.max(0, value.value - liveMaximum(live, metric.name, key));
          entry.series.set(key, { ...value, value: held + add });
        }
      }
    },
    withCarried(live) {
      if (carried.size === 0) return live;
      const offsetLive = live.map((worker) =>
        worker.map((metric) => {
          const entry = carried.get(metric.name);
          if (!entry || metric.aggregator !== 'max') return metric;
          const values = (metric.values as Value[]).map((v) => ({
            ...v,
            value: v.value + (entry.series.get(seriesKey(v))?.value ?? 0),
          }));
          return { ...metric, values };
        }),
      );
      const carriedMetrics = [...carried.values()].map(({ metric, series }) => ({
        ...metric,
        values: [...series.values()],
      }));
      return [...offsetLive, carriedMetrics];
    },
  };
}

/** prom-client's typings give a numeric enum; the JSON holds its name: `counter`, `histogram`… */
const typeOf = (metric: Metric): string => metric.type as unknown as string;

/** A series: its name (a histogram's bucket, sum or count) and its labels, in a stable order. */
function seriesKey(value: Value): string {
  const labels = Object.entries(value.labels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([value.metricName ?? '', labels]);
}

function liveMaximum(live: WorkerMetrics[], name: string, key: string): number {
  let max = 0;
  for (const worker of live) {
    const metric = worker.find((m) => m.name === name);
    for (const value of (metric?.values ?? []) as Value[])
      if (seriesKey(value) === key) max = Math.max(max, value.value);
  }
  return max;
}
