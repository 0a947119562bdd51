/**
 * The decision engine: challenge, allow or reject one request. Its dependencies arrive as arguments;
 * it knows nothing of gRPC, Redis or LND.
 */
import { parseCredentials } from '../l402/header';
import type { Keyring } from '../l402/keys';
import { mintMacaroon } from '../l402/mint';
import { verifyCredentials } from '../l402/verify';
import type { Challenge, Decision } from './decision';
import { invoiceMemo } from './memo';
import { type Consumption, DependencyUnavailable, type InvoiceBackend, type SpentSet } from './ports';
import type { ConcurrencyCap, RateLimiter } from './rate-limit';
import type { DenialReason } from './reasons';
import { type PricedRoute, type RequestTarget, type RouteTable, resolveRoute } from './routes';
import { kindOf, needsCounting, remainingAfter, termsFor, UNLIMITED } from './token-kind';

export interface Limits {
  maxAuthorizationBytes: number;
  maxMacaroons: number;
  maxMacaroonBytes: number;
  maxCaveats: number;
}

export interface Engine {
  routes: RouteTable;
  keys: Keyring;
  invoices: InvoiceBackend;
  spentSet: SpentSet;
  limits: Limits;
  /** Milliseconds since the epoch. */
  now: () => number;
  /** Tolerated clock difference between replicas; added to every spent entry's TTL. */
  clockSkewSeconds: number;
  invoiceTimeoutMs: number;
  retryAfterSeconds: number;
  /** The macaroon location field. */
  location: string;
  /** Bounds on invoice creation (challenges); absent = unlimited. */
  challengeLimits?: ChallengeLimits;
  /** Sheds paid-route checks that cannot be answered in time; absent = admit all. */
  admission?: Admission;
}

/**
 * Overload protection, decided before any credential or invoice work so a shed check costs next to nothing.
 * Free routes are never shed: answering them costs no more than refusing them.
 */
export interface Admission {
  /** Paid-route checks in progress at once, past which new ones are refused. */
  inFlight?: ConcurrencyCap;
  /** How late the event loop currently runs (ms): a check waits about that long for each turn it needs. */
  lagMs?: () => number;
  /** The worst lag of the last seconds (ms): how late a timer set now may fire. */
  worstLagMs?: () => number;
  /** How long the slowest recent checks with a credential took (ms), and where each one's time is reported. */
  recentCheckMs?: () => number;
  recordCheckMs?: (ms: number) => void;
}

export interface ChallengeLimits {
  /** Per client address; requests without a known client address are not limited per client. */
  perClient?: RateLimiter;
  /** Invoice creations in flight at once, all clients together. */
  concurrency?: ConcurrencyCap;
}

export interface GateRequest extends RequestTarget {
  /** The Authorization header; repeated headers comma-joined, as Envoy and node join them. */
  authorization?: string;
  /** The first of the hex macaroon headers (`MACAROON_HEADERS`) the request carries. */
  macaroonHeader?: string;
  /** Milliseconds since the epoch by which the caller needs an answer. */
  deadline: number;
  /** The client's IP address as the adapter determined it (trusted proxy hops applied); keys rate limits. */
  clientAddress?: string;
  /** True once the caller stopped waiting (cancelled the call, closed the connection). */
  abandoned?: () => boolean;
  /**
   * Set by a server whose queue is congested when this check has waited half its time there: a paid route is
   * refused at once (`overloaded`), while its caller can still read the answer and retry.
   */
  shed?: boolean;
}

/** Never rejects for a decision: every failure of a dependency becomes a deny with a reason. */
export async function decide(req: GateRequest, engine: Engine): Promise<Decision> {
  const decision = await enforce(req, engine);
  if (decision.kind === 'allow' || !decision.route?.shadow) return decision;
  return { kind: 'allow', reason: 'shadow', route: decision.route, wouldDeny: decision.reason };
}

async function enforce(req: GateRequest, engine: Engine): Promise<Decision> {
  const resolution = resolveRoute(engine.routes, req);
  if (resolution.kind === 'ambiguous')
    return { kind: 'deny', reason: 'ambiguous_path', detail: resolution.detail };
  if (resolution.kind === 'invalid')
    return { kind: 'deny', reason: 'invalid_route_config', detail: resolution.detail };
  if (resolution.kind === 'unmatched') {
    return resolution.action === 'allow'
      ? { kind: 'allow', reason: 'unmatched_allowed' }
      : { kind: 'deny', reason: 'unmatched_route' };
  }
  const { route } = resolution;
  if (route.priceSats === 0) return { kind: 'allow', reason: 'free', route };
  // Work for a caller that is gone only delays the callers still waiting (the overloaded process's worst habit).
  if (req.abandoned?.() === true)
    return {
      kind: 'deny',
      reason: 'deadline_exceeded',
      route,
      detail: 'the caller gave up before the check began',
    };
  if (req.shed) return overloaded(route, 'waited half its deadline in a congested queue');
  const late = lateReason(req, engine);
  if (late) return overloaded(route, late);
  const inFlight = engine.admission?.inFlight;
  const release = inFlight ? inFlight.tryAcquire() : NOTHING;
  if (!release) return overloaded(route, `${inFlight?.inFlight} paid checks are already in progress`);
  const started = engine.now();
  try {
    return await paidRoute(route, req, engine);
  } finally {
    release();
    // Only checks with a credential: a slow LND must not make paid requests, which never wait on it, look late.
    if (req.authorization !== undefined || req.macaroonHeader !== undefined)
      engine.admission?.recordCheckMs?.(engine.now() - started);
  }
}

const NOTHING = () => {};

/** A shed check: a retry in a second is likely served, so say so. */
function overloaded(route: PricedRoute, detail: string): Decision {
  return { kind: 'deny', reason: 'overloaded', route, detail, retryAfterSeconds: 1 };
}

/**
 * A check whose deadline is nearer than the time it needs would be answered too late: refuse it now, cheaply,
 * instead. Behind a lagging event loop it may have waited unread about one lag and needs another turn to send
 * its spend and read the reply; and it needs no less than the slowest recent checks took, since it queues
 * behind the same work. Only a process with paid checks queued is judged so: a lag that other processes cause
 * (a busy machine) is no reason to refuse the one check it has. A caller that gave up meanwhile is seen as
 * cancelled, and its use given back (tooLate).
 */
function lateReason(req: GateRequest, engine: Engine): string | undefined {
  const queued = engine.admission?.inFlight?.inFlight ?? 0;
  if (queued < MIN_QUEUED_TO_SHED) return undefined;
  const lagMs = engine.admission?.lagMs?.() ?? 0;
  const recentMs = engine.admission?.recentCheckMs?.() ?? 0;
  const remaining = req.deadline - engine.now();
  const needed = Math.max(2 * lagMs, recentMs) + MIN_DEADLINE_MARGIN_MS;
  if (remaining >= needed) return undefined;
  const left = Math.max(0, Math.round(remaining));
  return `${left} ms are left and a check needs ${Math.round(needed)} (event loop ${Math.round(lagMs)} ms late, recent checks ${Math.round(recentMs)} ms, ${queued} in progress)`;
}

const MIN_QUEUED_TO_SHED = 4;

async function paidRoute(route: PricedRoute, req: GateRequest, engine: Engine): Promise<Decision> {
  const parsed = parseCredentials(req.authorization, req.macaroonHeader, {
    maxHeaderBytes: engine.limits.maxAuthorizationBytes,
    maxMacaroons: engine.limits.maxMacaroons,
  });
  if (parsed.credentials.length === 0) {
    if (!parsed.problem) return challengeOrUnavailable('payment_required', route, req, engine);
    return challengeOrUnavailable(parsed.problem.problem, route, req, engine, parsed.problem.message);
  }

  const nowSeconds = Math.floor(engine.now() / 1000);
  const verdict = verifyCredentials(
    parsed.credentials,
    {
      service: route.service,
      routeId: route.id,
      priceSats: route.priceSats,
      now: nowSeconds,
      // No route sells a token that lives longer: a later expiry would also keep its spent entry that long.
      maxValidUntil: nowSeconds + route.tokenLifetimeSeconds + engine.clockSkewSeconds,
      ...(route.capability !== undefined && { capability: route.capability }),
    },
    engine.keys,
    { maxBytes: engine.limits.maxMacaroonBytes, maxCaveats: engine.limits.maxCaveats },
  );
  if (!verdict.ok) return challengeOrUnavailable(verdict.reason, route, req, engine, verdict.detail);

  const { token } = verdict;
  const terms = termsFor(token, route);
  const kind = kindOf(terms.uses);
  const paid = {
    kind: 'allow',
    reason: 'paid',
    route,
    paymentHash: token.paymentHash,
    amountSats: token.priceSats,
    tokenKind: kind,
  } as const;
  // A pass with no rate bound has nothing to count: its expiry, already checked, is its only limit.
  if (!needsCounting(terms)) return { ...paid, remaining: UNLIMITED };
  // The use must be counted before the caller's deadline, or Envoy gives up first and reports a gRPC error,
  // which an Envoy with failure_mode_allow would turn into an allow.
  const spendBudget = budgetFor(req, engine);
  if (spendBudget <= 0)
    return unavailable('deadline_exceeded', route, engine, 'deadline passed before the spend');
  // The count must outlive every copy of the token (its minted expiry) on every replica, whatever their clocks say.
  const ttlMs = (token.validUntil - nowSeconds + engine.clockSkewSeconds) * 1000;
  let consumption: Consumption;
  try {
    consumption = await engine.spentSet.consume(
      token.paymentHash,
      {
        limit: terms.uses,
        ttlMs,
        ...(terms.maxRequestsPerSecond !== undefined && { maxPerSecond: terms.maxRequestsPerSecond }),
      },
      spendBudget,
    );
  } catch (err) {
    if (err instanceof DependencyUnavailable)
      return unavailable('spent_set_unavailable', route, engine, err.message);
    throw err;
  }
  if (!consumption.ok) {
    // The token is still good, only too fast: a new one would not help, so no invoice.
    if (consumption.why === 'rate_limited')
      return { kind: 'deny', reason: 'token_rate_limited', route, retryAfterSeconds: 1 };
    return challengeOrUnavailable(kind === 'single' ? 'token_spent' : 'token_exhausted', route, req, engine);
  }
  if (tooLate(req, engine)) return refunded(token.paymentHash, route, engine);
  return { ...paid, used: consumption.used, remaining: remainingAfter(terms.uses, consumption.used) };
}

/** Time an answer needs to leave this process once decided: a write, no further turn of the event loop. */
const SEND_MARGIN_MS = 2;

/**
 * The caller has given up, or will have by the time the answer reaches it. The deadline was counted from when
 * the request was read: behind a lagging event loop it may have waited unread about one lag, and its answer
 * waits about one more to be written, so with paid checks queued an answer needs twice the lag before the
 * deadline. (A lone check is not judged by the lag: a stall before it arrived did not delay it.)
 */
function tooLate(req: GateRequest, engine: Engine): boolean {
  if (req.abandoned?.() === true) return true;
  const queued = engine.admission?.inFlight?.inFlight ?? 0;
  const lagMs = queued >= MIN_QUEUED_TO_SHED ? (engine.admission?.lagMs?.() ?? 0) : 0;
  return engine.now() >= req.deadline - Math.max(SEND_MARGIN_MS, 2 * lagMs);
}

/**
 * An allow whose answer its transport wrote only after the caller's deadline reached no one: the caller stopped
 * waiting and will retry. Gives its counted use back, so the payment still buys that request; resolves with
 * whether there was one. (A pass with no rate bound counted none.)
 */
export async function giveBack(decision: Decision, engine: Engine): Promise<boolean> {
  if (decision.kind !== 'allow' || decision.reason !== 'paid') return false;
  if (decision.used === undefined || decision.paymentHash === undefined) return false;
  await engine.spentSet.refund(decision.paymentHash);
  return true;
}

/** The use was counted but its allow would reach no one: give it back, so the payment still buys it. */
async function refunded(paymentHash: Buffer, route: PricedRoute, engine: Engine): Promise<Decision> {
  let detail = 'the caller gave up before the answer; the use was given back';
  try {
    await engine.spentSet.refund(paymentHash);
  } catch (err) {
    if (!(err instanceof DependencyUnavailable)) throw err;
    detail = `the caller gave up before the answer; giving the use back failed: ${err.message}`;
  }
  return unavailable('deadline_exceeded', route, engine, detail);
}

/**
 * A 402 with a fresh invoice: the request had no usable token, and buying one cures that. When no invoice
 * can be made the answer says why (429, 503 with Retry-After), keeping the token's own problem in the detail.
 */
async function challengeOrUnavailable(
  reason: DenialReason,
  route: PricedRoute,
  req: GateRequest,
  engine: Engine,
  detail?: string,
): Promise<Decision> {
  // A shadow route's client never sees the challenge: creating an invoice for it would only load LND.
  if (route.shadow) return { kind: 'deny', reason, route, ...(detail && { detail }) };
  const challenge = await tryChallenge(route, req, engine);
  if ('macaroon' in challenge) return { kind: 'deny', reason, route, challenge, ...(detail && { detail }) };
  const why = reason === 'payment_required' ? challenge.detail : `${reason}; ${challenge.detail}`;
  if (challenge.reason === 'rate_limited') {
    const retryAfterSeconds = challenge.retryAfterSeconds ?? engine.retryAfterSeconds;
    return { kind: 'deny', reason: 'rate_limited', route, detail: why, retryAfterSeconds };
  }
  return unavailable(challenge.reason, route, engine, why);
}

const MIN_DEADLINE_MARGIN_MS = 25;

/**
 * Time left for a dependency call, keeping back a margin so the answer reaches the caller in time: a tenth of
 * it (at least 25 ms) for the answer's way out, and the worst recent event-loop lag on top, since the call
 * ends by a timer, which fires that much late. The lag takes at most another tenth: one long stall (a start,
 * a major GC) must not leave no time for any call for seconds after.
 */
function budgetFor(req: GateRequest, engine: Engine): number {
  const remaining = req.deadline - engine.now();
  const lagMs = Math.min(engine.admission?.worstLagMs?.() ?? 0, remaining / 10);
  return remaining - Math.max(MIN_DEADLINE_MARGIN_MS, remaining / 10) - lagMs;
}

interface NoChallenge {
  reason: 'deadline_exceeded' | 'invoice_backend_unavailable' | 'rate_limited';
  detail: string;
  retryAfterSeconds?: number;
}

async function tryChallenge(
  route: PricedRoute,
  req: GateRequest,
  engine: Engine,
): Promise<Challenge | NoChallenge> {
  // Keep back a margin so the answer reaches Envoy before its deadline, not just after it.
  const budget = Math.min(engine.invoiceTimeoutMs, budgetFor(req, engine));
  if (budget <= 0) return { reason: 'deadline_exceeded', detail: 'no time left to create an invoice' };
  const limits = engine.challengeLimits;
  if (limits?.perClient && req.clientAddress !== undefined) {
    const admission = limits.perClient.take(req.clientAddress, engine.now());
    if (!admission.ok) {
      const { retryAfterSeconds } = admission;
      return { reason: 'rate_limited', detail: 'too many challenges from this client', retryAfterSeconds };
    }
  }
  const release = limits?.concurrency ? limits.concurrency.tryAcquire() : () => {};
  if (!release) {
    return { reason: 'rate_limited', detail: 'too many invoices being created', retryAfterSeconds: 1 };
  }
  try {
    return await challenge(route, engine, budget);
  } catch (err) {
    if (err instanceof DependencyUnavailable)
      return { reason: 'invoice_backend_unavailable', detail: err.message };
    throw err;
  } finally {
    release();
  }
}

async function challenge(route: PricedRoute, engine: Engine, timeoutMs: number): Promise<Challenge> {
  const invoice = await engine.invoices.createInvoice(
    route.priceSats,
    invoiceMemo(route.service, route.id),
    route.invoiceExpirySeconds,
    timeoutMs,
  );
  const validUntil = Math.floor(engine.now() / 1000) + route.tokenLifetimeSeconds;
  const macaroon = mintMacaroon(
    invoice.paymentHash,
    {
      service: route.service,
      routeId: route.id,
      priceSats: route.priceSats,
      validUntil,
      ...(route.capability !== undefined && { capabilities: [route.capability] }),
      ...(route.uses !== undefined && { uses: route.uses }),
      ...(route.maxRequestsPerSecond !== undefined && { maxRequestsPerSecond: route.maxRequestsPerSecond }),
    },
    engine.keys,
    engine.location,
  );
  return {
    macaroon: macaroon.toString('base64'),
    invoice: invoice.paymentRequest,
    paymentHash: invoice.paymentHash.toString('hex'),
    amountSats: route.priceSats,
    expiresAt: invoice.expiresAt,
    uses: route.uses ?? 1,
    tokenExpiresAt: new Date(validUntil * 1000),
  };
}

function unavailable(reason: DenialReason, route: PricedRoute, engine: Engine, detail: string): Decision {
  return { kind: 'deny', reason, route, detail, retryAfterSeconds: engine.retryAfterSeconds };
}
