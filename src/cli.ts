#!/usr/bin/env node
/** The `plannt` command: serve, token inspect, and check (call the gate as Envoy would). */

import cluster from 'node:cluster';
import type * as grpc from '@grpc/grpc-js';
import { Command } from 'commander';
import { registerAgentCommands } from './agent-cli';
import { type Config, ConfigError, loadConfigFile, parseConfig } from './config';
import { watchConfig } from './config-reload';
import { embeddedDefault } from './default-config';
import { inspectToken } from './l402/inspect';
import { createLogger, type Logger } from './logger';
import { superviseWorkers } from './supervisor';
import { answerMetricRequests, reportToPrimary } from './worker';
import { defaultWorkers } from './worker-count';

const program = new Command('plannt').description('L402 payment gate for Envoy ext_authz');

program
  .command('serve')
  .description('run the ext_authz gRPC server and the admin HTTP port')
  .option('-c, --config <file>', 'YAML config file (default: the embedded dev config)')
  .action(async (opts: { config?: string }) => {
    const config = opts.config
      ? loadConfigFile(opts.config, process.env)
      : parseConfig(embeddedDefault(), process.env);
    const workers = config.workers ?? defaultWorkers(config);
    if (workers > 1 && cluster.isPrimary) return supervise(config, workers, createLogger(config.log_level));
    const worker = cluster.worker;
    if (worker) answerMetricRequests((answer) => process.send?.(answer));
    const logger = worker
      ? createLogger(config.log_level).child({ worker: worker.id, pid: process.pid })
      : createLogger(config.log_level);
    // Loaded here, not at the top: the primary of several workers only supervises them (supervisor.ts), and
    // the app (LND's client, Redis, the protos) would cost it ~30 MB.
    const { startApp } = await import('./app');
    const app = await startApp(config, { env: process.env, logger, serveAdmin: !worker });
    if (worker) {
      reportToPrimary(app, (report) => process.send?.(report));
      // An orphaned worker would hold the ports with nobody to drain it.
      process.on('disconnect', () => stop('primary gone'));
    }
    if (!opts.config && app.adminPort !== undefined) printQuickStart(app.grpcPort, app.adminPort);
    const file = opts.config;
    const keysFile = process.env.PLANNT_ROOT_KEYS_FILE;
    const reloader = file
      ? watchConfig(
          keysFile ? [file, keysFile] : [file],
          () => loadConfigFile(file, process.env),
          app,
          logger,
        )
      : undefined;
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      reloader?.stop();
      logger.info({ signal }, 'shutting down');
      app.stop().then(
        () => logger.flush(() => process.exit(0)),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          logger.flush(() => process.exit(1));
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });

async function supervise(config: Config, workers: number, logger: Logger): Promise<void> {
  const supervisor = await superviseWorkers(config, workers, logger);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    void supervisor.stop().then((code) => {
      logger.info('plannt stopped');
      logger.flush(() => process.exit(code));
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

program
  .command('token')
  .description('operator tools for L402 tokens')
  .command('inspect <macaroon>')
  .description(
    'decode a base64 macaroon: identifier, key id and caveats (no secrets needed, nothing verified)',
  )
  .action((macaroon: string) => {
    process.stdout.write(`${JSON.stringify(inspectToken(macaroon), null, 2)}\n`);
  });

program
  .command('check <url>')
  .description('send one CheckRequest to a running server, as Envoy would, and print the HTTP answer')
  .option('-X, --method <method>', 'HTTP method', 'GET')
  .option('-H, --header <header...>', 'request header "Name: value"', [])
  .option('--context <pair...>', 'context extension key=value (e.g. plannt.price_sats=5)', [])
  .option('--server <address>', 'Plannt gRPC address', '127.0.0.1:9001')
  .action(
    async (url: string, opts: { method: string; header: string[]; context: string[]; server: string }) => {
      const target = new URL(url);
      const headers: Record<string, string> = {};
      for (const h of opts.header) {
        const colon = h.indexOf(':');
        headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
      }
      const context = Object.fromEntries(
        opts.context.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]),
      );
      // Loaded here, not at the top: `serve` does not need the Envoy protos.
      const { AuthorizationClient } = await import('./envoy/protos');
      const { credentials } = await import('@grpc/grpc-js');
      const client = new AuthorizationClient(opts.server, credentials.createInsecure());
      const request = {
        attributes: {
          request: {
            http: { method: opts.method, host: target.host, path: target.pathname + target.search, headers },
          },
          context_extensions: context,
        },
      };
      const call = (client.Check as UnaryCall).bind(client);
      call(request, { deadline: Date.now() + 10_000 }, (err, res) => {
        client.close();
        if (err) {
          process.stderr.write(`gRPC error: ${err.message}\n`);
          process.exitCode = 2;
          return;
        }
        process.stdout.write(`${describe(res)}\n`);
      });
    },
  );

type UnaryCall = (
  request: object,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, res: CheckReply) => void,
) => void;

interface HeaderOption {
  header?: { key?: string; value?: string };
}
interface CheckReply {
  denied_response?: { status?: { code?: string | number }; headers?: HeaderOption[]; body?: string };
  ok_response?: { headers?: HeaderOption[]; headers_to_remove?: string[] };
}

function describe(res: CheckReply): string {
  const lines = (hs: HeaderOption[] | undefined, prefix: string) =>
    (hs ?? []).map((h) => `${prefix}${h.header?.key}: ${h.header?.value}`);
  if (res.ok_response) {
    return [
      'ALLOW (request goes upstream)',
      ...lines(res.ok_response.headers, '  + '),
      ...(res.ok_response.headers_to_remove ?? []).map((h) => `  - ${h}`),
    ].join('\n');
  }
  const denied = res.denied_response ?? {};
  return [`DENY ${denied.status?.code}`, ...lines(denied.headers, '  '), '', denied.body ?? ''].join('\n');
}

function printQuickStart(grpcPort: number, adminPort: number): void {
  const check = `npm run --silent plannt -- check --server 127.0.0.1:${grpcPort} -X POST http://localhost/v1/generate`;
  process.stderr.write(`
Plannt is running with the embedded dev config (dev invoices, in-memory spent-set).
Try the L402 flow from another terminal:

  # 1. No credential: a 402 with an invoice and a macaroon
  ${check} | tee /tmp/plannt-402.txt
  MAC=$(grep -o '"macaroon":"[^"]*"' /tmp/plannt-402.txt | cut -d'"' -f4)
  INV=$(grep -o '"invoice":"[^"]*"' /tmp/plannt-402.txt | cut -d'"' -f4)

  # 2. "Pay" the invoice (dev backend only) and learn the preimage
  PRE=$(curl -s -X POST localhost:${adminPort}/dev/pay -d "{\\"invoice\\":\\"$INV\\"}" | cut -d'"' -f4)

  # 3. Retry with the credential: ALLOW, with x-plannt-* headers for the upstream
  ${check} -H "Authorization: L402 $MAC:$PRE"

  # 4. Replay it: 402 token_spent, with a fresh invoice
  ${check} -H "Authorization: L402 $MAC:$PRE"

Metrics: curl localhost:${adminPort}/metrics   Ready: curl localhost:${adminPort}/readyz

`);
}

registerAgentCommands(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`plannt: ${err.message}\n`);
    process.exit(78);
  }
  process.stderr.write(`plannt: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
