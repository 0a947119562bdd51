/**
 * The gRPC face: envoy.service.auth.v3.Authorization/Check and grpc.health.v1.Health on one server.
 * Connections are recycled (max_connection_age) so new replicas behind a load balancer receive traffic.
 */
import type { EventEmitter } from 'node:events';
import type { Http2Session } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { type RenderOptions, render } from '../core/response';
import { HealthService } from '../envoy/health-service';
import type { Gate } from '../gate';
import type { Logger } from '../logger';
import { MalformedCheckRequest, readCheckRequest } from './check-request-codec';
import { encodeCheckResponse } from './check-response-codec';
import { checkScheduler } from './check-scheduler';
import { toEnvoyRequest } from './envoy-grpc';

/** Used when a caller sets no deadline; the invoice timeout still bounds the work. */
const NO_DEADLINE_MS = 30_000;
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
    // grpc-js answers a larger message with RESOURCE_EXHAUSTED, a gRPC error that failure_mode_allow turns
    // into an allow; up to this bound the oversized check is read and denied as a decision instead.
    'grpc.max_receive_message_length': MAX_TRANSPORT_BYTES,
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

  server.addService(RAW_AUTHORIZATION_SERVICE, {
    Check(call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) {
      // grpc-js counts the deadline from when it read this call; the turn reading it began earlier.
      const deadline = deadlineOf(call) - (Date.now() - scheduler.readSince());
      scheduler.defer((shed) => decide(call, callback, deadline, shed), deadline);
    },
  });

  function decide(
    call: grpc.ServerUnaryCall<Buffer, Buffer>,
    callback: grpc.sendUnaryData<Buffer>,
    deadline: number,
    shed: boolean,
  ): void {
    const bytes = call.request;
    if (bytes.length > MAX_CHECK_BYTES) {
      const detail = `the CheckRequest is ${bytes.length} bytes; at most ${MAX_CHECK_BYTES} are read`;
      callback(
        null,
        encodeCheckResponse(render(options.gate.refuse('request_too_large', detail), options.render)),
      );
      return;
    }
    const fields = readCheckRequest(bytes);
    // The generic decoder would fail the call (INTERNAL), which failure_mode_allow turns into an allow.
    if (fields instanceof MalformedCheckRequest) {
      const refusal = options.gate.refuse('malformed_request', fields.message);
      callback(null, encodeCheckResponse(render(refusal, options.render)));
      return;
    }
    const {
      request,
      requestId,
      grpc: downstreamGrpc,
    } = toEnvoyRequest(fields, deadline, options.trustedHops);
    // Envoy cancels at its deadline: a use counted for a cancelled call is given back (core/decide.ts).
    request.abandoned = () => call.cancelled;
    request.shed = shed;
    options.gate.check(request, requestId).then(
      (decision) => {
        // grpc-js drops an answer to a cancelled call: do not spend the CPU encoding it.
        if (call.cancelled) return;
        callback(null, encodeCheckResponse(render(decision, options.render, { grpc: downstreamGrpc })));
      },
      // The gate never rejects; this is a last guard against a crash, still failing closed.
      (err: unknown) => {
        options.logger.error({ err }, 'check failed');
        callback({ code: grpc.status.INTERNAL, details: 'internal error' });
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
/** Beyond this grpc-js refuses the message itself; Envoy caps request headers at 8 MiB. */
const MAX_TRANSPORT_BYTES = 64 * 1024 * 1024;

/**
 * Check passes bytes through: readCheckRequest decodes the few fields Plannt reads, and encodeCheckResponse
 * writes the answer.
 */
const raw = (bytes: Buffer) => bytes;

/** envoy.service.auth.v3.Authorization with Check on raw bytes, which the codecs read and write. */
export const RAW_AUTHORIZATION_SERVICE: grpc.ServiceDefinition = {
  Check: {
    path: '/envoy.service.auth.v3.Authorization/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
};

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

function deadlineOf(call: grpc.ServerUnaryCall<unknown, unknown>): number {
  const deadline = call.getDeadline();
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) ? ms : Date.now() + NO_DEADLINE_MS;
}
