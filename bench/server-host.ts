/**
 * A forked child that runs one server under test, Plannt (startApp with Redis) or the allow-all ceiling,
 * and answers the parent's IPC requests for its CPU and event-loop figures.
 */
import { PerformanceObserver, performance } from 'node:perf_hooks';
import pino from 'pino';
import { type App, startApp } from '../src/app';
import { parseConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { type AllowAllServer, startAllowAllServer } from './allow-all-server';
import { startHttp2AllowAllServer } from './http2-allow-all-server';
import {
  BENCH_BUNDLE_ROUTE,
  BENCH_FREE_ROUTE,
  BENCH_KEY_ID,
  BENCH_LOCATION,
  BENCH_PASS_ROUTE,
  BENCH_ROUTE,
  type ServerCommand,
  type ServerEvent,
} from './protocol';

let app: App | undefined;
let allowAll: AllowAllServer | undefined;

// Every pause of the main thread for GC: the bench reports them per check and the longest per batch.
let gcMs = 0;
let gcMaxPauseMs = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gcMs += entry.duration;
    gcMaxPauseMs = Math.max(gcMaxPauseMs, entry.duration);
  }
}).observe({ entryTypes: ['gc'] });

function send(event: ServerEvent, then?: () => void): void {
  process.send?.(event, undefined, {}, () => then?.());
}

async function start(cmd: Extract<ServerCommand, { type: 'start' }>): Promise<number> {
  if (cmd.kind === 'allow-all') {
    allowAll = await startAllowAllServer('127.0.0.1:0');
    return allowAll.port;
  }
  if (cmd.kind === 'http2-allow-all') {
    allowAll = await startHttp2AllowAllServer('127.0.0.1');
    return allowAll.port;
  }
  if (!cmd.rootKeyHex) throw new Error('plannt needs a root key');
  const memory = cmd.spentSet === 'memory';
  if (!memory && (!cmd.redisUrl || !cmd.keyPrefix))
    throw new Error('plannt with Redis needs its url and prefix');
  const config = parseConfig({
    listen: { grpc: '127.0.0.1:0', admin: '127.0.0.1:0', http: '127.0.0.1:0' },
    location: BENCH_LOCATION,
    root_keys: [{ id: BENCH_KEY_ID, key: cmd.rootKeyHex }],
    current_key_id: BENCH_KEY_ID,
    backend: { kind: 'dev' },
    spent_set: memory
      ? { kind: 'memory' }
      : { kind: 'redis', redis: { url: cmd.redisUrl, key_prefix: cmd.keyPrefix } },
    routes: [
      {
        id: BENCH_ROUTE.id,
        service: BENCH_ROUTE.service,
        price_sats: BENCH_ROUTE.priceSats,
        path: { prefix: BENCH_ROUTE.pathPrefix },
      },
      {
        id: BENCH_FREE_ROUTE.id,
        service: BENCH_FREE_ROUTE.service,
        price_sats: BENCH_FREE_ROUTE.priceSats,
        path: { prefix: BENCH_FREE_ROUTE.pathPrefix },
      },
      ...[BENCH_BUNDLE_ROUTE, BENCH_PASS_ROUTE].map((r) => ({
        id: r.id,
        service: r.service,
        price_sats: r.priceSats,
        path: { prefix: r.pathPrefix },
        uses: r.uses,
      })),
    ],
    unmatched: { action: 'deny' },
    drain_seconds: 0,
    shutdown_grace_ms: 2000,
    log_level: cmd.logLevel ?? 'silent',
  });
  // 'info' goes to /dev/null through the same asynchronous pino destination production uses, so the
  // per-decision log line is paid for (serialise, redact, write) without flooding the terminal.
  const logger =
    config.log_level === 'silent'
      ? createLogger('silent')
      : createLogger(config.log_level, pino.destination({ dest: '/dev/null', sync: false }));
  app = await startApp(config, { env: {}, logger });
  if (Object.values(app.readiness.status()).includes(false))
    throw new Error(`plannt is not ready: ${JSON.stringify(app.readiness.status())}`);
  return app.grpcPort;
}

async function paidRequests(): Promise<number | undefined> {
  if (!app) return undefined;
  const metric = app.metrics.registry.getSingleMetric('plannt_paid_requests_total');
  if (!metric) return undefined;
  const { values } = await metric.get();
  return values.reduce((sum, v) => sum + v.value, 0);
}

process.on('message', (cmd: ServerCommand) => {
  const handle = async () => {
    if (cmd.type === 'start') {
      const port = await start(cmd);
      send({ type: 'ready', port, pid: process.pid });
    } else if (cmd.type === 'stats') {
      const cpu = process.cpuUsage();
      const elu = performance.eventLoopUtilization();
      const paid = await paidRequests();
      send({
        type: 'stats',
        stats: {
          cpuUserUs: cpu.user,
          cpuSystemUs: cpu.system,
          eluIdleMs: elu.idle,
          eluActiveMs: elu.active,
          rssBytes: process.memoryUsage.rss(),
          gcMs,
          gcMaxPauseMs,
          ...(paid !== undefined && { paidRequests: paid }),
        },
      });
      gcMaxPauseMs = 0;
    } else {
      await (app?.stop() ?? allowAll?.shutdown());
      // A normal exit once the parent has the message, so --cpu-prof writes its profile.
      send({ type: 'stopped' }, () => process.exit(0));
    }
  };
  handle().catch((err: unknown) => {
    send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  });
});

process.on('disconnect', () => process.exit(0));
