/** Every Prometheus metric Plannt exports, in one registry. Label values are bounded: no paths, no hashes. */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Decision } from './core/decision';

export type CheckPath = 'verify' | 'challenge' | 'none';

export interface Metrics {
  registry: Registry;
  recordDecision(decision: Decision, path: CheckPath, seconds: number): void;
  backendError(backend: string): void;
  spentSetFallback(): void;
  /** A paid allow written after its caller's deadline, whose use was given back. */
  undeliveredAllow(service: string): void;
  /** Tokens whose local_fallback uses wait to be written back to the shared spent-set. */
  writeBackPending(tokens: number): void;
  /** An invoice was paid (the backend's settlement stream), whether or not its token is ever used. */
  invoiceSettled(service: string, sats: number, route?: string): void;
  setReady(dependency: string, ready: boolean): void;
  /**
   * Starts the per-service and per-backend counters at 0. A labelled counter otherwise appears at its first
   * increment, which `increase()` cannot see: each service's first payment on each pod would be lost.
   */
  initialize(services: Iterable<string>, backends: Iterable<string>): void;
  configReload(result: 'applied' | 'rejected'): void;
}

// Sub-millisecond buckets: a verify takes ~100 µs and prom-client's defaults start at 5 ms.
const LATENCY_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const checks = new Counter({
    name: 'plannt_checks_total',
    help: 'Authorization checks by decision (allow, deny), reason and service.',
    labelNames: ['decision', 'reason', 'service'],
    registers,
  });
  const challenges = new Counter({
    name: 'plannt_challenges_total',
    help: 'L402 challenges issued (a new invoice and macaroon), by service.',
    labelNames: ['service'],
    registers,
  });
  const rejections = new Counter({
    name: 'plannt_rejections_total',
    help: 'Denials other than a plain payment challenge, by reason and service.',
    labelNames: ['reason', 'service'],
    registers,
  });
  const paidRequests = new Counter({
    name: 'plannt_paid_requests_total',
    help: 'Requests allowed by a paid, unspent L402 token, by service.',
    labelNames: ['service'],
    registers,
  });
  const paidSats = new Counter({
    name: 'plannt_paid_sats_total',
    help: 'Satoshis of the tokens used by allowed requests, each token counted once at its first use, by service.',
    labelNames: ['service'],
    registers,
  });
  const tokenUses = new Counter({
    name: 'plannt_token_uses_total',
    help: 'Paid requests served, by service and token kind (single, bundle, pass).',
    labelNames: ['service', 'kind'],
    registers,
  });
  const routeUses = new Counter({
    name: 'plannt_route_paid_requests_total',
    help: 'Paid requests served, by route: divide plannt_route_settled_sats_total by it for sats per request.',
    labelNames: ['route'],
    registers,
  });
  const routeSettledSats = new Counter({
    name: 'plannt_route_settled_sats_total',
    help: "Satoshis received by paid invoices, by route (other = not one of the configured routes').",
    labelNames: ['route'],
    // Every worker watches the settlement stream and sees every payment: one pod counts it once.
    aggregator: 'max',
    registers,
  });
  const exhausted = new Counter({
    name: 'plannt_tokens_exhausted_total',
    help: 'Tokens of more than one use whose last use was served, by service and kind.',
    labelNames: ['service', 'kind'],
    registers,
  });
  const remainingAtFirstUse = new Histogram({
    name: 'plannt_token_remaining_uses',
    help: 'Uses a bundle has left after its first use (what each sale still owes), by service.',
    labelNames: ['service'],
    buckets: [1, 2, 4, 9, 19, 49, 99, 199, 499, 999, 9999],
    registers,
  });
  const shadowDenials = new Counter({
    name: 'plannt_shadow_would_deny_total',
    help: 'Requests on shadow routes that enforcing would have denied (they were allowed), by reason and service.',
    labelNames: ['reason', 'service'],
    registers,
  });
  const duration = new Histogram({
    name: 'plannt_check_duration_seconds',
    help: 'Time to decide a check: verify (a credential was presented), challenge (none was) or none (free/unmatched).',
    labelNames: ['path'],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const backendErrors = new Counter({
    name: 'plannt_backend_errors_total',
    help: 'Failures of a dependency (invoice backend or spent-set) while deciding, by backend.',
    labelNames: ['backend'],
    registers,
  });
  const undelivered = new Counter({
    name: 'plannt_undelivered_allows_total',
    help: "Paid allows whose answer was written only after the caller's deadline (an overloaded pod); their use was given back, by service.",
    labelNames: ['service'],
    registers,
  });
  const pendingWriteBack = new Gauge({
    name: 'plannt_spent_set_writeback_pending',
    help: 'Tokens with uses counted in pod memory (local_fallback) that Redis has not been told of yet.',
    registers,
  });
  const fallbacks = new Counter({
    name: 'plannt_spent_set_fallbacks_total',
    help: 'Spends recorded in local memory because the shared spent-set was unavailable (local_fallback).',
    registers,
  });
  const settledInvoices = new Counter({
    name: 'plannt_invoices_settled_total',
    help: "Invoices paid, as the invoice backend's settlement stream reports them, by service (other = not Plannt's).",
    labelNames: ['service'],
    // Every worker watches the settlement stream and sees every payment: one pod counts it once.
    aggregator: 'max',
    registers,
  });
  const settledSats = new Counter({
    name: 'plannt_invoices_settled_sats_total',
    help: "Satoshis received by paid invoices, by service (other = not Plannt's).",
    labelNames: ['service'],
    // Every worker watches the settlement stream and sees every payment: one pod counts it once.
    aggregator: 'max',
    registers,
  });
  const reloads = new Counter({
    name: 'plannt_config_reloads_total',
    help: 'Configuration reloads (SIGHUP or a changed file): applied, or rejected with the old one kept.',
    labelNames: ['result'],
    // Each worker applies the same reload: one pod counts it once.
    aggregator: 'max',
    registers,
  });
  for (const result of ['applied', 'rejected']) reloads.inc({ result }, 0);
  const ready = new Gauge({
    name: 'plannt_dependency_ready',
    help: '1 when the dependency answered its last readiness probe, else 0.',
    labelNames: ['dependency'],
    // With workers, 1 only when every worker reaches it (a sum would read 2 for "up").
    aggregator: 'min',
    registers,
  });

  return {
    registry,
    recordDecision(decision, path, seconds) {
      const service = decision.route?.service ?? 'none';
      checks.inc({ decision: decision.kind, reason: decision.reason, service });
      duration.observe({ path }, seconds);
      if (decision.kind === 'allow') {
        if (decision.reason === 'paid') {
          const kind = decision.tokenKind ?? 'single';
          paidRequests.inc({ service });
          tokenUses.inc({ service, kind });
          if (decision.route) routeUses.inc({ route: decision.route.id });
          // A token's price counts once, at its first use, whatever the uses it buys; a pass that is never
          // counted (no rate bound) is seen only by its settlement (plannt_route_settled_sats_total).
          if (kind === 'single' || decision.used === 1) paidSats.inc({ service }, decision.amountSats ?? 0);
          if (kind === 'bundle' && decision.used === 1 && typeof decision.remaining === 'number')
            remainingAtFirstUse.observe({ service }, decision.remaining);
          if (kind === 'bundle' && decision.remaining === 0) exhausted.inc({ service, kind });
        }
        if (decision.wouldDeny) shadowDenials.inc({ reason: decision.wouldDeny, service });
        return;
      }
      if (decision.challenge) challenges.inc({ service });
      if (decision.reason !== 'payment_required') rejections.inc({ reason: decision.reason, service });
    },
    backendError: (backend) => backendErrors.inc({ backend }),
    spentSetFallback: () => fallbacks.inc(),
    undeliveredAllow: (service) => undelivered.inc({ service }),
    writeBackPending: (tokens) => pendingWriteBack.set(tokens),
    invoiceSettled(service, sats, route) {
      settledInvoices.inc({ service });
      settledSats.inc({ service }, sats);
      if (route !== undefined) routeSettledSats.inc({ route }, sats);
    },
    setReady: (dependency, ok) => ready.set({ dependency }, ok ? 1 : 0),
    initialize(services, backends) {
      for (const service of services) {
        for (const counter of [
          challenges,
          paidRequests,
          paidSats,
          settledInvoices,
          settledSats,
          undelivered,
        ]) {
          counter.inc({ service }, 0);
        }
      }
      for (const backend of backends) backendErrors.inc({ backend }, 0);
    },
    configReload: (result) => reloads.inc({ result }),
  };
}
