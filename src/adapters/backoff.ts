/** Reconnect delays: exponential from minMs, capped at maxMs, with jitter so replicas do not retry in step. */
export interface Backoff {
  minMs: number;
  maxMs: number;
}

/** The delay before retry number `attempt` (0 = first): half of the capped exponential, plus up to half again. */
export function backoffDelay(attempt: number, { minMs, maxMs }: Backoff, random = Math.random): number {
  const capped = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.round(capped / 2 + (random() * capped) / 2);
}
