/**
 * The gate every adapter calls: decide, then record the outcome once (metric and log line).
 * Adapters translate their wire format to a GateRequest and render the decision; nothing more.
 */
import { decide, type Engine, type GateRequest, giveBack } from './core/decide';
import type { Decision } from './core/decision';
import type { DenialReason } from './core/reasons';
import type { Logger } from './logger';
import type { CheckPath, Metrics } from './metrics';

export interface Gate {
  check(request: GateRequest, requestId?: string): Promise<Decision>;
  /** A denial an adapter reached before a request could be read (too large): recorded like any decision. */
  refuse(reason: DenialReason, detail: string, requestId?: string): Decision;
  /** The adapter wrote this allow only after its caller's deadline: its use is given back. */
  undelivered(decision: Decision, requestId?: string): void;
}

const BACKEND_OF_REASON: Partial<Record<string, 'invoices' | 'spentSet'>> = {
  invoice_backend_unavailable: 'invoices',
  spent_set_unavailable: 'spentSet',
};

export function createGate(engine: Engine, metrics: Metrics, logger: Logger): Gate {
  const record = (decision: Decision, path: CheckPath, started: bigint, requestId?: string): Decision => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    metrics.recordDecision(decision, path, seconds);
    const backend = BACKEND_OF_REASON[decision.reason];
    if (backend) metrics.backendError(engine[backend].name);
    // Building the line costs more than writing it: skip both when info is off.
    if (!logger.isLevelEnabled('info')) return decision;
    logger.info(
      {
        decision: decision.kind,
        reason: decision.reason,
        service: decision.route?.service,
        route: decision.route?.id,
        payment_hash: decision.kind === 'allow' ? prefix(decision.paymentHash?.toString('hex')) : undefined,
        challenge_payment_hash:
          decision.kind === 'deny' ? prefix(decision.challenge?.paymentHash) : undefined,
        detail: decision.kind === 'deny' ? decision.detail : undefined,
        would_deny: decision.kind === 'allow' ? decision.wouldDeny : undefined,
        duration_ms: Math.round(seconds * 1e6) / 1e3,
        request_id: requestId,
      },
      'check',
    );
    return decision;
  };

  return {
    async check(request, requestId) {
      const started = process.hrtime.bigint();
      let decision: Decision;
      try {
        decision = await decide(request, engine);
      } catch (err) {
        // A bug, not a decision: fail closed with a 503 rather than let the adapter turn it into a gRPC error.
        logger.error({ err, request_id: requestId }, 'unexpected error while deciding');
        decision = {
          kind: 'deny',
          reason: 'deadline_exceeded',
          detail: 'internal error',
          retryAfterSeconds: engine.retryAfterSeconds,
        };
      }
      const path: CheckPath =
        !decision.route || decision.reason === 'free'
          ? 'none'
          : request.authorization || request.macaroonHeader
            ? 'verify'
            : 'challenge';
      return record(decision, path, started, requestId);
    },
    refuse(reason, detail, requestId) {
      return record({ kind: 'deny', reason, detail }, 'none', process.hrtime.bigint(), requestId);
    },
    undelivered(decision, requestId) {
      const fields = {
        service: decision.route?.service,
        payment_hash: prefix(decision.kind === 'allow' ? decision.paymentHash?.toString('hex') : undefined),
        request_id: requestId,
      };
      giveBack(decision, engine).then(
        (gaveBack) => {
          if (!gaveBack) return;
          metrics.undeliveredAllow(decision.route?.service ?? 'none');
          logger.warn(fields, 'allow written after the caller gave up; its use was given back');
        },
        (err: unknown) =>
          logger.error(
            { ...fields, err },
            'allow written after the caller gave up; giving its use back failed',
          ),
      );
    },
  };
}

/** Enough of a payment hash to correlate with LND, not enough to matter if logs leak. */
function prefix(hex: string | undefined): string | undefined {
  return hex?.slice(0, 16);
}
