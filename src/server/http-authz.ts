/**
 * The HTTP face: Envoy's HTTP ext_authz service contract, and the forward-auth convention of Caddy
 * `forward_auth`, Traefik ForwardAuth and nginx `auth_request`. Translation only; the gate decides and
 * `render()` shapes the answer exactly as for gRPC.
 *
 * - Envoy (http_service): the original request arrives as this request: method, `Host`, headers, and the
 *   original path appended to `path_prefix`. A 200 allows, and Envoy copies the `allowed_upstream_headers`
 *   of this response onto the upstream request; any other status is the denial, sent to the client with
 *   its headers and body.
 * - Forward auth: the proxy sends a request of its own and names the original in `X-Forwarded-Method`,
 *   `X-Forwarded-Uri` and `X-Forwarded-Host`; each one, when present, replaces what the request line or
 *   `Host` says. A 2xx allows (the proxy copies the x-plannt-* headers it is told to); anything else is
 *   returned to the client as is. An allow also carries `x-l402-uses-remaining` for tokens that last.
 *
 * X-Forwarded-* are trusted as the proxy's word: the proxy must set them itself, never pass a client's.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { GateRequest } from '../core/decide';
import {
  type Header,
  type HttpAnswer,
  isGrpcContentType,
  type RenderOptions,
  render,
} from '../core/response';
import type { Gate } from '../gate';
import { MACAROON_HEADERS } from '../l402/header';
import type { Logger } from '../logger';
import { clientAddressOf } from './envoy-grpc';
import type { TlsMaterial } from './grpc-server';

export interface HttpAuthzOptions {
  /** Envoy's `path_prefix`: stripped from the request path ('' = none). Unused when X-Forwarded-Uri is set. */
  pathPrefix: string;
  /** The caller's budget, unless it is trusted to send `x-envoy-expected-rq-timeout-ms` and does. */
  defaultTimeoutMs: number;
  /**
   * Believe `x-envoy-expected-rq-timeout-ms`. Only Envoy sets it for itself; Caddy and Traefik pass a
   * client's copy through, and a client that sends `1` would turn its own paid request into a 503.
   */
  trustExpectedTimeoutHeader?: boolean;
  /** Proxies in front of the one calling Plannt, trusted to append to X-Forwarded-For (see below). */
  trustedHops?: number;
}

/** Headers as node's `headersDistinct` gives them: lower-case names, every value of repeated headers. */
export type DistinctHeaders = Record<string, string[] | undefined>;

export interface AuthzHttpRequest {
  method: string;
  /** The request target as received (origin form: path and query). */
  url: string;
  headers: DistinctHeaders;
}

export type Translation =
  | { ok: true; request: GateRequest; requestId?: string; grpc: boolean }
  | { ok: false; message: string };

/** What the proxy gets back: an HTTP answer to relay (deny) or to copy headers from (allow). */
export interface HttpReply {
  status: number;
  headers: Header[];
  body: string;
}

const MAX_TIMEOUT_MS = 600_000;
const MIN_TIMEOUT_MS = 100;
const METHOD = /^[A-Za-z]{1,32}$/;
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

export function fromHttpRequest(req: AuthzHttpRequest, options: HttpAuthzOptions, now: number): Translation {
  const single = (name: string): string | undefined | Error => {
    const values = req.headers[name];
    if (values === undefined || values.length === 0) return undefined;
    return values.length === 1 ? values[0] : new Error(`${name} appears more than once`);
  };
  const forwardedMethod = single('x-forwarded-method');
  const forwardedUri = single('x-forwarded-uri');
  const forwardedHost = single('x-forwarded-host');
  for (const value of [forwardedMethod, forwardedUri, forwardedHost]) {
    if (value instanceof Error) return { ok: false, message: value.message };
  }

  const method = (forwardedMethod as string | undefined) ?? req.method;
  if (!METHOD.test(method)) return { ok: false, message: 'the method is not an HTTP token' };

  let target = forwardedUri as string | undefined;
  if (target === undefined) {
    if (!req.url.startsWith(options.pathPrefix))
      return { ok: false, message: 'the path does not start with http_authz.path_prefix' };
    target = req.url.slice(options.pathPrefix.length);
  }
  if (!target.startsWith('/')) return { ok: false, message: 'the request path must start with /' };
  const query = target.search(/[?#]/);
  const path = query < 0 ? target : target.slice(0, query);

  const host = (forwardedHost as string | undefined) ?? req.headers.host?.[0] ?? '';
  if (host.includes(',')) return { ok: false, message: 'x-forwarded-host lists more than one host' };

  // Repeated Authorization headers are joined as Envoy joins them for gRPC, so both faces judge alike.
  const authorization = req.headers.authorization?.join(',');
  const macaroonHeader = MACAROON_HEADERS.map((name) => req.headers[name]?.join(',')).find(Boolean);
  const clientAddress = clientAddressFrom(req.headers, options.trustedHops ?? 0);
  const requestId = req.headers['x-request-id']?.[0];
  return {
    ok: true,
    request: {
      host,
      path,
      method: method.toUpperCase(),
      // Envoy's HTTP service has no context_extensions: prices come from the route table only.
      contextExtensions: {},
      deadline:
        now +
        (options.trustExpectedTimeoutHeader
          ? budgetOf(req.headers, options.defaultTimeoutMs)
          : options.defaultTimeoutMs),
      ...(authorization !== undefined && { authorization }),
      ...(macaroonHeader !== undefined && { macaroonHeader }),
      ...(clientAddress !== undefined && { clientAddress }),
    },
    ...(requestId !== undefined && REQUEST_ID.test(requestId) && { requestId }),
    grpc: isGrpcContentType(req.headers['content-type']?.[0]),
  };
}

/**
 * The proxy calling Plannt is itself a hop: it appends the address of its own peer to X-Forwarded-For.
 * Without that header the client is unknown (the socket peer is the proxy, shared by every client), so no
 * per-client limit applies rather than one limit for everybody.
 */
function clientAddressFrom(headers: DistinctHeaders, trustedHops: number): string | undefined {
  const forwardedFor = headers['x-forwarded-for']?.join(',');
  if (forwardedFor === undefined) return undefined;
  return clientAddressOf(undefined, forwardedFor, trustedHops + 1);
}

/** Envoy tells its upstreams how long it will wait; other proxies do not, so a configured default applies. */
function budgetOf(headers: DistinctHeaders, defaultMs: number): number {
  const expected = headers['x-envoy-expected-rq-timeout-ms']?.[0];
  if (expected === undefined || !/^\d{1,9}$/.test(expected)) return defaultMs;
  const ms = Number(expected);
  // Below Envoy's 200 ms default nothing useful fits; a tiny value would only burn a paid request.
  return ms > 0 ? Math.min(Math.max(ms, MIN_TIMEOUT_MS), MAX_TIMEOUT_MS) : defaultMs;
}

/** Envoy's HTTP ext_authz removes the headers this response header lists from the upstream request. */
export const HEADERS_TO_REMOVE = 'x-envoy-auth-headers-to-remove';

export function toHttpReply(answer: HttpAnswer): HttpReply {
  if (answer.allowed) {
    // The client's headers ride on the same 200: Envoy passes those listed in allowed_client_headers_on_success
    // to the client; a forward-auth proxy copies what it is told (README, "Token kinds").
    const headers: Header[] = [...answer.upstreamHeaders, ...answer.clientHeaders];
    if (answer.removeHeaders.length) headers.push([HEADERS_TO_REMOVE, answer.removeHeaders.join(',')]);
    return { status: 200, headers, body: '' };
  }
  return { status: answer.status, headers: answer.headers, body: answer.body };
}

/** A request Plannt cannot judge: not a decision, so not counted or logged as one (it gets its own log line). */
export function protocolError(status: 400 | 413, message: string): HttpReply {
  return {
    status,
    headers: [['content-type', 'application/json']],
    body: JSON.stringify({ error: status === 413 ? 'body_too_large' : 'bad_request', message }),
  };
}

export interface HttpAuthzServerOptions extends HttpAuthzOptions {
  gate: Gate;
  render: RenderOptions;
  logger: Logger;
  /** Bound on the request line and headers together; larger requests get 431 from node. */
  maxHeaderBytes: number;
  /** The same certificate (and client CA for mTLS) as the gRPC port; plaintext if absent. */
  tls?: TlsMaterial;
}

export interface HttpAuthzServer {
  port: number;
  /** Keeps answering, but every answer closes its connection, so proxies reconnect to another replica. */
  startDraining(): void;
  /** Stops accepting requests, lets in-flight checks finish, and force-closes after graceMs. */
  shutdown(graceMs: number): Promise<void>;
}

/** Authorization requests carry no body worth reading; one larger than this closes the connection. */
const MAX_BODY_BYTES = 64 * 1024;
/** Longer than the idle timeouts proxies keep upstream connections for (Caddy 2 min, nginx 60 s). */
const KEEP_ALIVE_TIMEOUT_MS = 125_000;

export async function startHttpAuthzServer(
  host: string,
  port: number,
  options: HttpAuthzServerOptions,
): Promise<HttpAuthzServer> {
  const limits = {
    maxHeaderSize: options.maxHeaderBytes,
    headersTimeout: 10_000,
    requestTimeout: 15_000,
    // Node enforces both timeouts only when it sweeps connections, every 30 s by default: a slow client
    // would get 40 s instead of 10.
    connectionsCheckingInterval: 1000,
  };
  const { tls } = options;
  const server = tls
    ? createTlsServer({
        ...limits,
        cert: tls.cert,
        key: tls.key,
        ...(tls.clientCa && { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true }),
      })
    : createServer(limits);
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  let inFlight = 0;
  let idle: (() => void) | undefined;
  let draining = false;

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    inFlight++;
    // node then sends `Connection: close` and closes the connection after this answer.
    if (draining) res.shouldKeepAlive = false;
    res.on('close', () => {
      inFlight--;
      if (inFlight === 0) idle?.();
    });
    // Nothing in the body is used; one too large to be an authorization request is refused unread.
    if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) {
      res.shouldKeepAlive = false;
      send(res, protocolError(413, 'the request body is too large'));
      return;
    }
    discardBody(req);
    handle(req, options).then(
      (reply) => send(res, reply),
      // The gate never rejects; this is a last guard against a crash, still failing closed.
      (err: unknown) => {
        options.logger.error({ err }, 'http check failed');
        send(res, {
          status: 500,
          headers: [['content-type', 'application/json']],
          body: '{"error":"internal"}',
        });
      },
    );
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });

  return {
    port: (server.address() as AddressInfo).port,
    startDraining() {
      draining = true;
    },
    async shutdown(graceMs) {
      server.close();
      server.closeIdleConnections();
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, graceMs);
          idle = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      server.closeAllConnections();
    },
  };
}

async function handle(req: IncomingMessage, options: HttpAuthzServerOptions): Promise<HttpReply> {
  const translation = fromHttpRequest(
    { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headersDistinct },
    options,
    Date.now(),
  );
  if (!translation.ok) {
    options.logger.info({ detail: translation.message }, 'malformed authorization request');
    return protocolError(400, translation.message);
  }
  // A proxy that gave up closes the connection: a use counted for it is given back (core/decide.ts).
  translation.request.abandoned = () => req.socket.destroyed;
  const decision = await options.gate.check(translation.request, translation.requestId);
  return toHttpReply(render(decision, options.render, { grpc: translation.grpc }));
}

function send(res: ServerResponse, reply: HttpReply): void {
  if (res.headersSent || res.destroyed) return;
  const headers: string[] = [];
  for (const [name, value] of reply.headers) headers.push(name, value);
  headers.push('content-length', String(Buffer.byteLength(reply.body)));
  res.writeHead(reply.status, headers);
  res.end(reply.body);
}

function discardBody(req: IncomingMessage): void {
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) req.socket.destroy();
  });
}
