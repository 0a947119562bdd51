/**
 * The primary's /metrics with workers: each live worker is asked for its registry (worker.ts answers), and the
 * answers are aggregated with prom-client's AggregatorRegistry, together with what exited workers had counted
 * (metrics-carry.ts), so the pod's counters never go down when a worker dies.
 */
import type { Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { metricsCarry, type WorkerMetrics } from './metrics-carry';
import { isMetricsAnswer, type MetricsRequest } from './worker';

/** As prom-client's own: a worker that does not answer in time fails the scrape (a 500). */
const ANSWER_TIMEOUT_MS = 5000;

export interface PodMetrics {
  contentType: string;
  metrics(): Promise<string>;
  /** Call on a worker's exit: its last answer is carried. */
  exited(worker: Worker): void;
  /** Pass every message a worker sends. */
  received(worker: Worker, message: unknown): void;
}

export function podMetrics(liveWorkers: () => Worker[]): PodMetrics {
  const carry = metricsCarry();
  const lastAnswer = new Map<number, WorkerMetrics>();
  const waiting = new Map<string, (metrics: WorkerMetrics) => void>();
  let nextId = 0;

  const ask = (worker: Worker): Promise<WorkerMetrics> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const key = `${worker.id}:${id}`;
      const timer = setTimeout(() => {
        waiting.delete(key);
        reject(new Error(`worker ${worker.id} did not answer for its metrics in ${ANSWER_TIMEOUT_MS} ms`));
      }, ANSWER_TIMEOUT_MS);
      waiting.set(key, (metrics) => {
        clearTimeout(timer);
        waiting.delete(key);
        resolve(metrics);
      });
      worker.send({ plannt: 'metrics?', id } satisfies MetricsRequest);
    });

  return {
    contentType: AggregatorRegistry.PROMETHEUS_CONTENT_TYPE,
    async metrics() {
      // One whose channel closed is exiting: exited() carries its last answer.
      const workers = liveWorkers().filter((w) => w.isConnected());
      const answers = await Promise.all(workers.map(ask));
      // One that exited meanwhile is in the carry already: its answer would count it twice.
      const live: WorkerMetrics[] = [];
      workers.forEach((w, i) => {
        if (w.isDead()) return;
        lastAnswer.set(w.id, answers[i] ?? []);
        live.push(answers[i] ?? []);
      });
      return AggregatorRegistry.aggregate(carry.withCarried(live)).metrics();
    },
    exited(worker) {
      const last = lastAnswer.get(worker.id);
      lastAnswer.delete(worker.id);
      if (last) carry.retire(last, [...lastAnswer.values()]);
      // A scrape waiting for it goes on without it: what it counted is carried now.
      for (const [key, answer] of waiting) if (key.startsWith(`${worker.id}:`)) answer([]);
    },
    received(worker, message) {
      if (isMetricsAnswer(message)) waiting.get(`${worker.id}:${message.id}`)?.(message.metrics);
    },
  };
}
