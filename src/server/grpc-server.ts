/**
 * The gRPC face: envoy.service.auth.v3.Authorization/Check and grpc.health.v1.Health on one server. grpc-js
 * owns the connections and serves health; Check is read and answered on the bare streams (check-streams.ts).
 * Connections are recycled (max_connection_age) so new replicas behind a load balancer receive traffic.
 */
import type { EventEmitter } from 'node:events';
import type { Http2Session } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import type { DenialReason } from '../core/reasons';
import { type RenderOptions, render } from '../core/response';
import { HealthService } from '../envoy/health-service';
import type { Gate } from '../gate';
import type { Logger } from '../logger';
import { MalformedCheckRequest, readCheckRequest } from './check-request-codec';
import { encodeCheckResponse } from './check-response-codec';
import { checkScheduler } from './check-scheduler';
import { type CheckCall, serveChecks, TooLarge } from './check-streams';
import { toEnvoyRequest } from './envoy-grpc';

const SERVING = 'SERVING';
const NOT_SERVING = 'NOT_SERVING';

export interface GrpcServerOptions {
  gate: Gate;
  render: RenderOptions;
  logger: Logger;
  maxConnectionAgeMs?: number;
  /** Trusted x-forwarded-for hops for the client address (see toEnvoyRequest); 0 by default. */
  trustedHops?: number;
  /** Serve over TLS; with `clientCa`, require client certificates signed by it (mTLS). Plaintext if absent. */
  tls?: TlsMaterial;
}

export interface TlsMaterial {
  /** PEM certificate chain and private key of this server. */
  cert: Buffer;
  key: Buffer;
  /** PEM CA bundle that client certificates must chain to. */
  clientCa?: Buffer;
}

export interface GrpcServer {
  port: number;
  /** Reports NOT_SERVING to health checks while Check keeps answering: load balancers move away first. */
  startDraining(): void;
  /** Stops accepting calls, lets in-flight checks finish, and force-closes after graceMs. */
  shutdown(graceMs: number): Promise<void>;
}

export async function startGrpcServer(address: string, options: GrpcServerOptions): Promise<GrpcServer> {
  const server = new grpc.Server({
    'grpc.max_connection_age_ms': options.maxConnectionAgeMs ?? 300_000,
    'grpc.max_connection_age_grace_ms': 30_000,
    // Plannt serves no channelz service: its per-call bookkeeping (an object, four closures, clock reads)
    // would be kept for nobody.
    'grpc.enable_channelz': 0,
  });
  sizeResetGuard(server);
  const scheduler = checkScheduler();
  let draining = false;
  const watchers = new Set<grpc.ServerWritableStream<unknown, unknown>>();
  // Dependency outages do not make the pod unready (server/readiness.ts): only draining does.
  const servingStatus = () => (draining ? NOT_SERVING : SERVING);

  /** A call arrived in this turn: its deadline counts from when the turn began reading, no later. */
  function onCall(call: CheckCall): void {
    const deadline = call.deadline - (Date.now() - scheduler.readSince());
    scheduler.defer((shed) => decide(call, deadline, shed), deadline);
  }

  function decide(call: CheckCall, deadline: number, shed: boolean): void {
    const refuse = (reason: DenialReason, detail: string) =>
      call.answer(encodeCheckResponse(render(options.gate.refuse(reason, detail), options.render)));
    const { message } = call;
    if (message instanceof TooLarge) {
      refuse(
        'request_too_large',
        `the CheckRequest is ${message.bytes} bytes; at most ${MAX_CHECK_BYTES} are read`,
      );
      return;
    }
    // An unreadable call gets a decision too: a gRPC error is what failure_mode_allow turns into an allow.
    if (typeof message === 'string') {
      refuse('malformed_request', message);
      return;
    }
    const fields = readCheckRequest(message);
    if (fields instanceof MalformedCheckRequest) {
      refuse('malformed_request', fields.message);
      return;
    }
    const {
      request,
      requestId,
      grpc: downstreamGrpc,
    } = toEnvoyRequest(fields, deadline, options.trustedHops);
    // Envoy cancels at its deadline: a use counted for a cancelled call is given back (core/decide.ts).
    request.abandoned = call.cancelled;
    request.shed = shed;
    options.gate.check(request, requestId).then(
      (decision) => {
        // An answer to a cancelled call would be dropped: do not spend the CPU encoding it.
        if (call.cancelled()) return;
        const response = encodeCheckResponse(render(decision, options.render, { grpc: downstreamGrpc }));
        // Written after the deadline, an allow reached no one (Envoy stops waiting): its use is given back.
        if (decision.kind === 'allow')
          call.answer(response, () => options.gate.undelivered(decision, requestId));
        else call.answer(response);
      },
      // The gate never rejects; this is a last guard against a crash, still failing closed.
      (err: unknown) => {
        options.logger.error({ err }, 'check failed');
        refuse('deadline_exceeded', 'internal error');
      },
    );
  }

  server.addService(HealthService, {
    Check(call: grpc.ServerUnaryCall<{ service?: string }, object>, callback: grpc.sendUnaryData<object>) {
      const service = call.request.service ?? '';
      if (service !== '' && service !== 'envoy.service.auth.v3.Authorization') {
        callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
        return;
      }
      callback(null, { status: servingStatus() });
    },
    Watch(call: grpc.ServerWritableStream<unknown, unknown>) {
      watchers.add(call);
      call.write({ status: servingStatus() });
      call.on('cancelled', () => watchers.delete(call));
    },
    List(_call: unknown, callback: grpc.sendUnaryData<object>) {
      callback(null, { statuses: { '': { status: servingStatus() } } });
    },
  });

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, credentials(options.tls), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  widenConnectionWindow(server);
  serveChecks(server, CHECK_PATH, MAX_CHECK_BYTES, onCall);

  return {
    port,
    startDraining() {
      if (draining) return;
      draining = true;
      for (const w of watchers) w.write({ status: NOT_SERVING });
    },
    async shutdown(graceMs) {
      draining = true;
      for (const w of watchers) {
        w.write({ status: NOT_SERVING });
        w.end();
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

/** Larger CheckRequests are denied unread (request_too_large); Envoy's headers alone stay far below. */
export const MAX_CHECK_BYTES = 1024 * 1024;
/** The one method served on bare HTTP/2 streams (check-streams.ts); grpc-js serves the others. */
export const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';

/**
 * Envoy cancels each ext_authz call it stops waiting for with a RST_STREAM. Node's HTTP/2 rapid-reset guard
 * (CVE-2023-44487: 1,000 resets, then 33/s per connection) would close the connection with INTERNAL_ERROR after
 * an overloaded second, failing every other check on it with a gRPC error; allow what one Envoy connection can
 * send at this server's peak, still bounded. grpc-js does not expose the option: its http2 server options are.
 */
const RESET_BURST = 20_000;
const RESETS_PER_SECOND = 10_000;

function sizeResetGuard(server: grpc.Server): void {
  const http2Options = (server as unknown as { commonServerOptions?: Record<string, unknown> })
    .commonServerOptions;
  if (!http2Options)
    throw new Error('@grpc/grpc-js no longer keeps its http2 server options: update sizeResetGuard');
  http2Options.streamResetBurst = RESET_BURST;
  http2Options.streamResetRate = RESETS_PER_SECOND;
}

/**
 * Node's HTTP/2 server keeps each connection's receive window at 64 KiB, and grpc-js widens it only on its
 * client side. About 90 checks fill it: under load the caller's further requests then wait unsent, their
 * deadlines running while this server cannot see them. A window of a second's traffic at this server's peak
 * lets them arrive, where admission control can see how long they waited and shed them in time.
 */
const CONNECTION_WINDOW_BYTES = 4 * 1024 * 1024;

function widenConnectionWindow(server: grpc.Server): void {
  const http2Servers = (server as unknown as { http2Servers?: Map<EventEmitter, unknown> }).http2Servers;
  if (!http2Servers)
    throw new Error('@grpc/grpc-js no longer keeps its http2 servers: update widenConnectionWindow');
  for (const http2Server of http2Servers.keys())
    http2Server.on('session', (session: Http2Session) => session.setLocalWindowSize(CONNECTION_WINDOW_BYTES));
}

function credentials(tls: TlsMaterial | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(
    tls.clientCa ?? null,
    [{ cert_chain: tls.cert, private_key: tls.key }],
    tls.clientCa !== undefined,
  );
}
