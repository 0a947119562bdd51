/**
 * The route table: which requests cost what. Envoy's per-route `context_extensions` override the table,
 * because platform teams set prices in their Envoy route config.
 */

import { normalizePath } from './path';
import { UNLIMITED, type Uses } from './token-kind';

export interface PricedRoute {
  id: string;
  service: string;
  priceSats: number;
  tokenLifetimeSeconds: number;
  invoiceExpirySeconds: number;
  capability?: string;
  /** Requests one token buys: absent = 1 (a single-use token), or `unlimited` until it expires (a pass). */
  uses?: Uses;
  /** Per token; absent = no bound. */
  maxRequestsPerSecond?: number;
  /** Decided and recorded as if enforced, then allowed: pricing watched before it is enforced. */
  shadow?: true;
}

export type PathMatch = { prefix: string } | { exact: string } | { regex: RegExp };

export interface RouteRule extends PricedRoute {
  /** Exact host or `*.suffix`; any host when absent. */
  host?: string;
  path: PathMatch;
  /** Upper-case methods; any method when absent. */
  methods?: readonly string[];
}

export type UnmatchedPolicy =
  | { action: 'deny' }
  | { action: 'allow' }
  | { action: 'price'; route: PricedRoute };

export interface RouteTable {
  rules: readonly RouteRule[];
  unmatched: UnmatchedPolicy;
  defaults: { tokenLifetimeSeconds: number; invoiceExpirySeconds: number };
}

export interface RequestTarget {
  host: string;
  /** Path without the query string. */
  path: string;
  method: string;
  contextExtensions: Readonly<Record<string, string>>;
}

export type Resolution =
  | { kind: 'route'; route: PricedRoute }
  | { kind: 'ambiguous'; detail: string }
  | { kind: 'unmatched'; action: 'deny' | 'allow' }
  | { kind: 'invalid'; detail: string };

export const CONTEXT_KEYS = {
  price: 'plannt.price_sats',
  service: 'plannt.service',
  route: 'plannt.route',
  uses: 'plannt.uses',
  maxRequestsPerSecond: 'plannt.max_requests_per_second',
  mode: 'plannt.mode',
} as const;
const MODES = ['enforce', 'shadow'];

export const NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const ROUTE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;
const PRICE_PATTERN = /^\d{1,12}$/;
const COUNT_PATTERN = /^[1-9]\d{0,8}$/;
/** The largest `uses` a route may sell: far beyond any bundle, and exact in a Lua (double) counter. */
export const MAX_USES = 1_000_000_000;

export function resolveRoute(table: RouteTable, request: RequestTarget): Resolution {
  // Match what the upstream will serve, not how the client spelled it.
  const normalized = normalizePath(request.path);
  if (!normalized.ok) return { kind: 'ambiguous', detail: normalized.detail };
  const target = { ...request, path: normalized.path };
  const rule = table.rules.find((r) => matches(r, target));
  const base: PricedRoute | undefined =
    rule ?? (table.unmatched.action === 'price' ? table.unmatched.route : undefined);
  const ext = target.contextExtensions;
  const price = ext[CONTEXT_KEYS.price];
  const service = ext[CONTEXT_KEYS.service];
  const routeId = ext[CONTEXT_KEYS.route];
  const uses = ext[CONTEXT_KEYS.uses];
  const rps = ext[CONTEXT_KEYS.maxRequestsPerSecond];
  const mode = ext[CONTEXT_KEYS.mode];

  if (
    price === undefined &&
    service === undefined &&
    routeId === undefined &&
    uses === undefined &&
    rps === undefined &&
    mode === undefined
  ) {
    if (base) return { kind: 'route', route: base };
    return { kind: 'unmatched', action: table.unmatched.action === 'allow' ? 'allow' : 'deny' };
  }
  if (price !== undefined && !PRICE_PATTERN.test(price))
    return invalid(`${CONTEXT_KEYS.price} is not a whole number`);
  if (service !== undefined && !NAME_PATTERN.test(service))
    return invalid(`${CONTEXT_KEYS.service} is not a valid name`);
  if (routeId !== undefined && !ROUTE_ID_PATTERN.test(routeId))
    return invalid(`${CONTEXT_KEYS.route} is not valid`);
  if (uses !== undefined && uses !== UNLIMITED && !COUNT_PATTERN.test(uses))
    return invalid(`${CONTEXT_KEYS.uses} is not a positive whole number or "${UNLIMITED}"`);
  if (rps !== undefined && !COUNT_PATTERN.test(rps))
    return invalid(`${CONTEXT_KEYS.maxRequestsPerSecond} is not a positive whole number`);
  if (mode !== undefined && !MODES.includes(mode))
    return invalid(`${CONTEXT_KEYS.mode} is not enforce or shadow`);

  const resolvedService = service ?? base?.service;
  const resolvedPrice = price !== undefined ? Number(price) : base?.priceSats;
  const resolvedUses: Uses | undefined =
    uses === undefined ? base?.uses : uses === UNLIMITED ? UNLIMITED : Number(uses);
  const resolvedRps = rps !== undefined ? Number(rps) : base?.maxRequestsPerSecond;
  if (resolvedService === undefined || resolvedPrice === undefined) {
    return invalid('context extensions need plannt.service and plannt.price_sats when no route matches');
  }
  return {
    kind: 'route',
    route: {
      id: routeId ?? base?.id ?? resolvedService,
      service: resolvedService,
      priceSats: resolvedPrice,
      tokenLifetimeSeconds: base?.tokenLifetimeSeconds ?? table.defaults.tokenLifetimeSeconds,
      invoiceExpirySeconds: base?.invoiceExpirySeconds ?? table.defaults.invoiceExpirySeconds,
      ...(base?.capability !== undefined && { capability: base.capability }),
      ...(resolvedUses !== undefined && { uses: resolvedUses }),
      ...(resolvedRps !== undefined && { maxRequestsPerSecond: resolvedRps }),
      ...((mode ?? (base?.shadow ? 'shadow' : 'enforce')) === 'shadow' && { shadow: true as const }),
    },
  };
}

function invalid(detail: string): Resolution {
  return { kind: 'invalid', detail };
}

function matches(rule: RouteRule, target: RequestTarget): boolean {
  if (rule.methods && !rule.methods.includes(target.method)) return false;
  if (rule.host !== undefined && !hostMatches(rule.host, target.host)) return false;
  const { path } = rule;
  if ('prefix' in path) return target.path.startsWith(path.prefix);
  if ('exact' in path) return target.path === path.exact;
  return path.regex.test(target.path);
}

function hostMatches(pattern: string, host: string): boolean {
  const bare = host.toLowerCase().replace(/:\d+$/, '');
  return pattern.startsWith('*.') ? bare.endsWith(pattern.slice(1)) : bare === pattern;
}
