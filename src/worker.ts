/**
 * A worker process's side of `workers` > 1: it tells the primary when it serves and how its dependencies are,
 * answers the primary's metric requests from its own registry, and stops when the primary is gone.
 */
import { AggregatorRegistry } from 'prom-client';
import type { App } from './app';

/** What a worker tells the primary (supervisor.ts). */
export interface WorkerReport {
  plannt: 'serving';
  grpcPort: number;
  httpPort: number;
  dependencies: Record<string, boolean>;
}

/**
 * First thing in a worker: prom-client answers the primary's metric requests only once an AggregatorRegistry
 * exists in this process, and one worker left unanswered fails the whole scrape after 5 s. Until
 * reportToPrimary, a starting worker answers with no metrics.
 */
export function answerMetricRequests(): void {
  new AggregatorRegistry();
}

export function reportToPrimary(app: App, send: (report: WorkerReport) => void): void {
  AggregatorRegistry.setRegistries([app.metrics.registry]);
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
  return (
    typeof message === 'object' && message !== null && (message as { plannt?: unknown }).plannt === 'serving'
  );
}
