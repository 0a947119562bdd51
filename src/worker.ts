/**
 * A worker process's side of `workers` > 1: it tells the primary when it serves and how its dependencies are,
 * answers the primary's metric requests from its own registry (pod-metrics.ts), and stops when the primary is
 * gone.
 */
import type { Registry } from 'prom-client';
import type { App } from './app';
import type { WorkerMetrics } from './metrics-carry';

/** What a worker tells the primary (supervisor.ts). */
export interface WorkerReport {
  plannt: 'serving';
  grpcPort: number;
  httpPort: number;
  dependencies: Record<string, boolean>;
}

/** The primary asks a worker for its registry; the worker answers with the same id. */
export interface MetricsRequest {
  plannt: 'metrics?';
  id: number;
}
export interface MetricsAnswer {
  plannt: 'metrics';
  id: number;
  metrics: WorkerMetrics;
}

let registry: Registry | undefined;

/**
 * First thing in a worker: one worker left unanswered fails the whole scrape after 5 s. Until reportToPrimary,
 * a starting worker answers with no metrics.
 */
export function answerMetricRequests(send: (answer: MetricsAnswer) => void): void {
  process.on('message', (message: unknown) => {
    if (!isMessage(message, 'metrics?')) return;
    const { id } = message as MetricsRequest;
    // A registry that cannot be read leaves the request unanswered: the scrape fails, as prom-client's does.
    Promise.resolve(registry?.getMetricsAsJSON() ?? []).then(
      (metrics) => send({ plannt: 'metrics', id, metrics }),
      () => {},
    );
  });
}

export function reportToPrimary(app: App, send: (report: WorkerReport) => void): void {
  registry = app.metrics.registry;
  const report = () =>
    send({
      plannt: 'serving',
      grpcPort: app.grpcPort,
      httpPort: app.httpPort,
      dependencies: app.readiness.status(),
    });
  report();
  app.readiness.onChange(report);
}

export function isWorkerReport(message: unknown): message is WorkerReport {
  return isMessage(message, 'serving');
}

export function isMetricsAnswer(message: unknown): message is MetricsAnswer {
  return isMessage(message, 'metrics');
}

function isMessage(message: unknown, kind: string): boolean {
  return typeof message === 'object' && message !== null && (message as { plannt?: unknown }).plannt === kind;
}
