/** Wires a validated Config into running parts: backends, spent-set, gate, gRPC, HTTP authz and admin servers. */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { type DevInvoiceBackend, devInvoiceBackend } from './adapters/dev-invoices';
import { withLocalFallback } from './adapters/fallback-spent-set';
import { lndInvoiceBackend } from './adapters/lnd-invoices';
import { loadSignals } from './adapters/load-signals';
import { memorySpentSet } from './adapters/memory-spent-set';
import { type RedisTarget, redisSpentSet } from './adapters/redis-spent-set';
import type { Config } from './config';
import { ConfigError, splitHostPort } from './config';
import type { ChallengeLimits, Engine } from './core/decide';
import { routeOfMemo, serviceOfMemo } from './core/memo';
import type { InvoiceBackend, SpentSet } from './core/ports';
import { concurrencyCap, tokenBucketLimiter } from './core/rate-limit';
import type { RouteRule, RouteTable } from './core/routes';
import { createGate } from './gate';
import { keyring } from './l402/keys';
import type { Logger } from './logger';
import { createMetrics, type Metrics } from './metrics';
import { type AdminServer, startAdminServer } from './server/admin-http';
import { type GrpcServer, startGrpcServer, type TlsMaterial } from './server/grpc-server';
import { type HttpAuthzServer, startHttpAuthzServer } from './server/http-authz';
import { type Readiness, startReadiness } from './server/readiness';

export interface App {
  grpcPort: number;
  /** Undefined in a worker process: the primary serves the admin port. */
  adminPort: number | undefined;
  /** HTTP ext_authz / forward-auth port. */
  httpPort: number;
  metrics: Metrics;
  readiness: Readiness;
  /**
   * Applies a new configuration's routes, prices and root keys at once, without a restart; the checks in
   * flight finish on the old ones. Returns the changed settings that only a restart applies.
   */
  reload(config: Config): string[];
  /** Graceful stop: refuse new checks, finish in-flight ones, close Redis and LND. */
  stop(): Promise<void>;
}

export interface AppOptions {
  env: NodeJS.ProcessEnv;
  logger: Logger;
  readinessIntervalMs?: number;
  /** False in a worker process, whose primary serves the admin port for all workers. */
  serveAdmin?: boolean;
}

export async function startApp(
  config: Config,
  { env, logger, readinessIntervalMs = 2000, serveAdmin = true }: AppOptions,
): Promise<App> {
  const tls = tlsMaterial(config);
  const metrics = createMetrics();
  const invoices = createInvoiceBackend(config, env, logger);
  const spentSet = createSpentSet(config, metrics);
  const load = loadSignals();
  const engine: Engine = {
    routes: routeTable(config),
    keys: keyringOf(config),
    invoices,
    spentSet,
    limits: {
      maxAuthorizationBytes: config.limits.max_authorization_bytes,
      maxMacaroons: config.limits.max_macaroons,
      maxMacaroonBytes: config.limits.max_macaroon_bytes,
      maxCaveats: config.limits.max_caveats,
    },
    now: Date.now,
    clockSkewSeconds: config.spent_set.clock_skew_seconds,
    invoiceTimeoutMs: config.backend.timeout_ms,
    retryAfterSeconds: config.retry_after_seconds,
    location: config.location,
    challengeLimits: challengeLimits(config),
    admission: {
      lagMs: load.lagMs,
      worstLagMs: load.worstLagMs,
      recentCheckMs: load.recentCheckMs,
      recordCheckMs: load.recordCheckMs,
      // Counted even without a cap: the lag rules judge only a process with checks in progress.
      inFlight: concurrencyCap(config.admission.max_in_flight || Number.MAX_SAFE_INTEGER),
    },
  };
  const gate = createGate(engine, metrics, logger);
  // Payments are counted when they settle, not when (or if) their token is used.
  let services = pricedServices(engine.routes);
  let routeIds = pricedRoutes(engine.routes);
  metrics.initialize(services, [invoices.name, spentSet.name]);
  const stopWatching = invoices.watchSettlements?.((settled) => {
    const service = serviceOfMemo(settled.memo, services);
    const route = routeOfMemo(settled.memo, routeIds);
    metrics.invoiceSettled(service, settled.sats, route);
    logger.info({ service, route, sats: settled.sats }, 'invoice settled');
  });

  const readiness = startReadiness(
    [
      { name: `invoice_backend:${invoices.name}`, probe: () => invoices.probe() },
      { name: `spent_set:${spentSet.name}`, probe: () => spentSet.probe() },
    ],
    readinessIntervalMs,
    (name, ok) => metrics.setReady(name, ok),
  );
  readiness.onChange((name, ok) =>
    logger[ok ? 'info' : 'warn'](
      { dependency: name, up: ok },
      ok ? 'dependency is back' : 'dependency is down',
    ),
  );
  await readiness.refresh();

  let draining = false;
  const [grpcHost, grpcPort] = splitHostPort(config.listen.grpc);
  const [adminHost, adminPort] = splitHostPort(config.listen.admin);
  const [httpHost, httpPort] = splitHostPort(config.listen.http);
  // A port that cannot be bound is a configuration problem: name the field, and close what already listens.
  const opened: (() => Promise<void>)[] = [];
  const listen = async <T>(
    field: keyof Config['listen'],
    start: () => Promise<T>,
    close: (t: T) => Promise<void>,
  ) => {
    try {
      const server = await start();
      opened.push(() => close(server));
      return server;
    } catch (err) {
      readiness.stop();
      load.stop();
      await Promise.all(opened.map((c) => c()));
      await Promise.all([invoices.close(), spentSet.close()]);
      throw new ConfigError(
        `listen.${field}: cannot listen on ${config.listen[field]}: ${(err as Error).message}`,
      );
    }
  };
  const grpc: GrpcServer = await listen(
    'grpc',
    () =>
      startGrpcServer(`${grpcHost}:${grpcPort}`, {
        gate,
        render: { stripAuthorization: config.upstream.strip_authorization },
        logger,
        trustedHops: config.client_address.trusted_hops,
        ...(tls && { tls }),
      }),
    (g) => g.shutdown(0),
  );
  const http: HttpAuthzServer = await listen(
    'http',
    () =>
      startHttpAuthzServer(httpHost, httpPort, {
        gate,
        render: { stripAuthorization: config.upstream.strip_authorization },
        logger,
        pathPrefix: config.http_authz.path_prefix,
        defaultTimeoutMs: config.http_authz.timeout_ms,
        trustExpectedTimeoutHeader: config.http_authz.trust_expected_timeout_header,
        trustedHops: config.client_address.trusted_hops,
        // Room for the largest Authorization header Plannt accepts plus ordinary request headers.
        maxHeaderBytes: Math.max(16 * 1024, config.limits.max_authorization_bytes + 8 * 1024),
        ...(tls && { tls }),
      }),
    (h) => h.shutdown(0),
  );
  const admin: AdminServer | undefined = serveAdmin
    ? await listen(
        'admin',
        () =>
          startAdminServer(adminHost, adminPort, {
            metrics: metrics.registry,
            readiness,
            isDraining: () => draining,
            ...(invoices.name === 'dev' && { devBackend: invoices as DevInvoiceBackend }),
          }),
        (a) => a.close(),
      )
    : undefined;
  logger.info(
    {
      grpc_port: grpc.port,
      http_port: http.port,
      admin_port: admin?.port,
      backend: invoices.name,
      spent_set: spentSet.name,
      dependencies: readiness.status(),
    },
    admin ? 'plannt started' : 'worker started',
  );

  let running = config;
  return {
    grpcPort: grpc.port,
    adminPort: admin?.port,
    httpPort: http.port,
    metrics,
    readiness,
    reload(next) {
      // Built before anything changes, then swapped in one synchronous step: a check sees old or new, never both.
      const routes = routeTable(next);
      const keys = keyringOf(next);
      engine.routes = routes;
      engine.keys = keys;
      services = pricedServices(routes);
      routeIds = pricedRoutes(routes);
      // A service a reload adds starts at 0 too, so its first payment counts.
      metrics.initialize(services, []);
      const needRestart = Object.keys(next).filter(
        (k) =>
          !HOT_SETTINGS.has(k) &&
          JSON.stringify(next[k as keyof Config]) !== JSON.stringify(running[k as keyof Config]),
      );
      running = { ...next, ...Object.fromEntries(needRestart.map((k) => [k, running[k as keyof Config]])) };
      return needRestart;
    },
    async stop() {
      // Readiness fails first and the ports keep answering for drain_seconds, so Envoy's health checks and
      // Kubernetes endpoints move traffic away before a single call is refused.
      draining = true;
      grpc.startDraining();
      http.startDraining();
      logger.info({ drain_seconds: config.drain_seconds }, 'draining');
      await new Promise((resolve) => setTimeout(resolve, config.drain_seconds * 1000));
      await Promise.all([grpc.shutdown(config.shutdown_grace_ms), http.shutdown(config.shutdown_grace_ms)]);
      readiness.stop();
      load.stop();
      stopWatching?.();
      await Promise.all([admin?.close(), invoices.close(), spentSet.close()]);
      logger.info('plannt stopped');
    },
  };
}

function createInvoiceBackend(config: Config, env: NodeJS.ProcessEnv, logger: Logger): InvoiceBackend {
  if (config.backend.kind === 'dev') {
    if (env.NODE_ENV === 'production') {
      throw new ConfigError(
        'backend.kind "dev" is refused when NODE_ENV=production: it gives access away for free',
      );
    }
    logger.warn(
      'DEV INVOICE BACKEND: invoices are signed by a throwaway key and POST /dev/pay reveals preimages. Never use in production.',
    );
    return devInvoiceBackend();
  }
  const lnd = config.backend.lnd;
  if (!lnd) throw new ConfigError('backend.lnd: required when kind is lnd');
  const cert =
    lnd.cert_base64 ??
    (lnd.cert_file && readConfigured('backend.lnd.cert_file', lnd.cert_file).toString('base64'));
  const macaroon =
    lnd.macaroon_base64 ??
    (lnd.macaroon_file && readConfigured('backend.lnd.macaroon_file', lnd.macaroon_file).toString('base64'));
  if (!macaroon) throw new ConfigError('backend.lnd: set macaroon_file or macaroon_base64');
  return lndInvoiceBackend({
    socket: lnd.socket,
    macaroon,
    probeTimeoutMs: config.backend.timeout_ms,
    closeGraceMs: config.backend.timeout_ms * 2,
    onWatchError: (err, retryInMs) =>
      logger.warn({ err, retry_in_ms: retryInMs }, 'LND invoice stream failed; reconnecting'),
    ...(cert && { certBase64: cert }),
  });
}

function createSpentSet(config: Config, metrics: Metrics): SpentSet {
  const { spent_set: s } = config;
  if (s.kind === 'memory') return memorySpentSet(s.max_entries);
  const r = s.redis;
  if (!r) throw new ConfigError('spent_set.redis: required when kind is redis');
  const target: RedisTarget = r.url
    ? { mode: 'standalone', url: r.url }
    : r.sentinels
      ? {
          mode: 'sentinel',
          sentinels: r.sentinels,
          masterName: r.master_name ?? '',
          ...(r.password && { password: r.password }),
        }
      : { mode: 'cluster', nodes: r.cluster_nodes ?? [], ...(r.password && { password: r.password }) };
  const shared = redisSpentSet({
    target,
    keyPrefix: r.key_prefix,
    commandTimeoutMs: r.command_timeout_ms,
    ...(r.legacy_key_prefix !== undefined && { legacyKeyPrefix: r.legacy_key_prefix }),
  });
  if (s.on_error === 'fail_closed') return shared;
  return withLocalFallback(shared, memorySpentSet(s.max_entries, 'local'), () => metrics.spentSetFallback(), {
    maxPending: s.max_entries,
    onPending: (tokens) => metrics.writeBackPending(tokens),
  });
}

/** A file named in the config; a failure to read it is a config error naming the field. */
function readConfigured(field: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(`${field}: cannot read ${file}: ${(err as Error).message}`);
  }
}

function tlsMaterial(config: Config): TlsMaterial | undefined {
  const t = config.tls;
  if (!t) return undefined;
  const material: TlsMaterial = {
    cert: readConfigured('tls.cert_file', t.cert_file),
    key: readConfigured('tls.key_file', t.key_file),
    ...(t.client_ca_file && { clientCa: readConfigured('tls.client_ca_file', t.client_ca_file) }),
  };
  // Fail at start, naming the field, rather than at bind time with an OpenSSL message.
  try {
    createSecureContext({ cert: material.cert, key: material.key });
  } catch (err) {
    throw new ConfigError(
      `tls.cert_file/tls.key_file: not a matching PEM certificate and key: ${(err as Error).message}`,
    );
  }
  if (material.clientCa) {
    try {
      new X509Certificate(material.clientCa);
    } catch (err) {
      throw new ConfigError(`tls.client_ca_file: not a PEM CA certificate: ${(err as Error).message}`);
    }
  }
  return material;
}

function challengeLimits(config: Config): ChallengeLimits {
  const c = config.challenge_limits;
  return {
    ...(c.per_client_per_second > 0 && {
      perClient: tokenBucketLimiter({
        ratePerSecond: c.per_client_per_second,
        burst: c.per_client_burst,
        maxClients: c.max_clients,
      }),
    }),
    // The cap spares a Lightning node. The dev backend has none and answers in-process, its slots given back
    // only promise hops later: checks decided in one slice would all look in flight at once.
    ...(c.max_concurrent_invoices > 0 &&
      config.backend.kind !== 'dev' && { concurrency: concurrencyCap(c.max_concurrent_invoices) }),
  };
}

/** The route ids the settlement-by-route metric names; any other memo is counted as `other`. */
function pricedRoutes(routes: RouteTable): Set<string> {
  const ids = new Set(routes.rules.map((r) => r.id));
  if (routes.unmatched.action === 'price') ids.add(routes.unmatched.route.id);
  return ids;
}

/** The services the settlement metrics name; any other memo is counted as `other`, keeping labels bounded. */
function pricedServices(routes: RouteTable): Set<string> {
  const services = new Set(routes.rules.map((r) => r.service));
  if (routes.unmatched.action === 'price') services.add(routes.unmatched.route.service);
  return services;
}

/** What reload() applies; every other setting is read once, at start. */
const HOT_SETTINGS = new Set(['routes', 'unmatched', 'defaults', 'root_keys', 'current_key_id']);

function keyringOf(config: Config) {
  return keyring(
    config.root_keys.map((k) => ({ id: k.id, secret: Buffer.from(k.key, 'hex') })),
    config.current_key_id,
  );
}

function routeTable(config: Config): RouteTable {
  const defaults = {
    tokenLifetimeSeconds: config.defaults.token_lifetime_seconds,
    invoiceExpirySeconds: config.defaults.invoice_expiry_seconds,
  };
  const rules: RouteRule[] = config.routes.map((r) => ({
    id: r.id,
    service: r.service,
    priceSats: r.price_sats,
    tokenLifetimeSeconds: r.token_lifetime_seconds ?? defaults.tokenLifetimeSeconds,
    invoiceExpirySeconds: r.invoice_expiry_seconds ?? defaults.invoiceExpirySeconds,
    // Anchored: like Envoy's safe_regex, a regex matches the whole path.
    path: 'regex' in r.path ? { regex: new RegExp(`^(?:${r.path.regex})$`) } : r.path,
    ...(r.host !== undefined && { host: r.host.toLowerCase() }),
    ...(r.methods && { methods: r.methods.map((m) => m.toUpperCase()) }),
    ...(r.capability !== undefined && { capability: r.capability }),
    ...(r.uses !== undefined && { uses: r.uses }),
    ...(r.max_requests_per_second !== undefined && { maxRequestsPerSecond: r.max_requests_per_second }),
    ...(r.mode === 'shadow' && { shadow: true as const }),
  }));
  const u = config.unmatched;
  const unmatched: RouteTable['unmatched'] =
    u.action === 'price'
      ? {
          action: 'price',
          route: {
            id: 'unmatched',
            service: u.service ?? 'default',
            priceSats: u.price_sats ?? 1,
            ...defaults,
          },
        }
      : { action: u.action };
  return { rules, unmatched, defaults };
}
