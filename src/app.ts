/** Wires a validated Config into running parts: backends, spent-set, gate, gRPC and admin servers. */
import { readFileSync } from 'node:fs';
import { type DevInvoiceBackend, devInvoiceBackend } from './adapters/dev-invoices';
import { withLocalFallback } from './adapters/fallback-spent-set';
import { lndInvoiceBackend } from './adapters/lnd-invoices';
import { memorySpentSet } from './adapters/memory-spent-set';
import { type RedisTarget, redisSpentSet } from './adapters/redis-spent-set';
import type { Config } from './config';
import { ConfigError } from './config';
import type { Engine } from './core/decide';
import type { InvoiceBackend, SpentSet } from './core/ports';
import type { RouteRule, RouteTable } from './core/routes';
import { createGate } from './gate';
import { keyring } from './l402/keys';
import type { Logger } from './logger';
import { createMetrics, type Metrics } from './metrics';
import { type AdminServer, startAdminServer } from './server/admin-http';
import { type GrpcServer, startGrpcServer } from './server/grpc-server';
import { type Readiness, startReadiness } from './server/readiness';

export interface App {
  grpcPort: number;
  adminPort: number;
  metrics: Metrics;
  readiness: Readiness;
  /** Graceful stop: refuse new checks, finish in-flight ones, close Redis and LND. */
  stop(): Promise<void>;
}

export interface AppOptions {
  env: NodeJS.ProcessEnv;
  logger: Logger;
  readinessIntervalMs?: number;
}

export async function startApp(
  config: Config,
  { env, logger, readinessIntervalMs = 2000 }: AppOptions,
): Promise<App> {
  const metrics = createMetrics();
  const invoices = createInvoiceBackend(config, env, logger);
  const spentSet = createSpentSet(config, metrics);
  const engine: Engine = {
    routes: routeTable(config),
    keys: keyring(
      config.root_keys.map((k) => ({ id: k.id, secret: Buffer.from(k.key, 'hex') })),
      config.current_key_id,
    ),
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
  };
  const gate = createGate(engine, metrics, logger);

  const readiness = startReadiness(
    [
      { name: `invoice_backend:${invoices.name}`, probe: () => invoices.probe(), critical: true },
      // Under local_fallback a Redis outage is survivable by design: report it, stay in service.
      {
        name: `spent_set:${spentSet.name}`,
        probe: () => spentSet.probe(),
        critical: config.spent_set.on_error === 'fail_closed',
      },
    ],
    readinessIntervalMs,
    (name, ok) => metrics.setReady(name, ok),
  );
  readiness.onChange((ready) =>
    logger.info({ ready, dependencies: readiness.status() }, 'readiness changed'),
  );
  await readiness.refresh();

  let draining = false;
  const [grpcHost, grpcPort] = splitHostPort(config.listen.grpc);
  const [adminHost, adminPort] = splitHostPort(config.listen.admin);
  const grpc: GrpcServer = await startGrpcServer(`${grpcHost}:${grpcPort}`, {
    gate,
    render: { stripAuthorization: config.upstream.strip_authorization },
    readiness,
    logger,
  });
  const admin: AdminServer = await startAdminServer(adminHost, adminPort, {
    metrics,
    readiness,
    isDraining: () => draining,
    ...(invoices.name === 'dev' && { devBackend: invoices as DevInvoiceBackend }),
  });
  logger.info(
    {
      grpc_port: grpc.port,
      admin_port: admin.port,
      backend: invoices.name,
      spent_set: spentSet.name,
      ready: readiness.isReady(),
    },
    'plannt started',
  );

  return {
    grpcPort: grpc.port,
    adminPort: admin.port,
    metrics,
    readiness,
    async stop() {
      draining = true;
      await grpc.shutdown(config.shutdown_grace_ms);
      readiness.stop();
      await Promise.all([admin.close(), invoices.close(), spentSet.close()]);
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
  const cert = lnd.cert_base64 ?? (lnd.cert_file && readFileSync(lnd.cert_file).toString('base64'));
  const macaroon =
    lnd.macaroon_base64 ?? (lnd.macaroon_file && readFileSync(lnd.macaroon_file).toString('base64'));
  if (!macaroon) throw new ConfigError('backend.lnd: set macaroon_file or macaroon_base64');
  return lndInvoiceBackend({
    socket: lnd.socket,
    macaroon,
    probeTimeoutMs: config.backend.timeout_ms,
    closeGraceMs: config.backend.timeout_ms * 2,
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
  const shared = redisSpentSet({ target, keyPrefix: r.key_prefix, commandTimeoutMs: r.command_timeout_ms });
  if (s.on_error === 'fail_closed') return shared;
  return withLocalFallback(shared, memorySpentSet(s.max_entries, 'local'), () => metrics.spentSetFallback());
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

function splitHostPort(address: string): [string, number] {
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon) || '0.0.0.0', Number(address.slice(colon + 1))];
}
