/**
 * Envoy's ext_authz contract in a few lines of node:http, so HTTP clients can talk to a Plannt-protected
 * upstream: every request becomes a gRPC Check (as Envoy sends it); a denial is answered with its status,
 * headers and body; an allow goes to the upstream with the ok_response headers set and the listed ones removed.
 * Also a small upstream that echoes what reached it.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type * as grpc from '@grpc/grpc-js';
import { check } from './envoy-client';

export interface AuthzProxy {
  url: string;
  /** Every Check the proxy made: what it sent and whether it was allowed. */
  checks: { method: string; path: string; authorization?: string; status: number }[];
  close(): Promise<void>;
}

export interface ProxyOptions {
  /** Context extensions of the route, as Envoy's per-route config would set them. */
  context?: Record<string, string>;
  /** Drop the client's Authorization before the Check: a server that challenges every request. */
  dropAuthorization?: boolean;
}

export async function startExtAuthzProxy(
  plannt: grpc.Client,
  upstreamUrl: string,
  options: ProxyOptions = {},
): Promise<AuthzProxy> {
  const upstream = new URL(upstreamUrl);
  const checks: AuthzProxy['checks'] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const headers = flatten(req.headers);
      if (options.dropAuthorization) delete headers.authorization;
      const method = req.method ?? 'GET';
      const path = req.url ?? '/';
      try {
        const answer = await check(plannt, {
          method,
          host: headers.host ?? 'localhost',
          path,
          headers,
          ...(options.context && { context: options.context }),
        });
        checks.push({ method, path, authorization: headers.authorization, status: answer.status });
        if (!answer.allowed) {
          const grouped = new Map<string, string[]>();
          for (const [name, value] of answer.headers)
            grouped.set(name, [...(grouped.get(name) ?? []), value]);
          res.writeHead(answer.status, Object.fromEntries(grouped));
          res.end(answer.raw.denied_response?.body ?? '');
          return;
        }
        for (const name of answer.removeHeaders) delete headers[name.toLowerCase()];
        Object.assign(headers, answer.upstreamHeaders);
        const forward = httpRequest(
          { host: upstream.hostname, port: upstream.port, method, path, headers },
          (up) => {
            // Envoy adds ok_response.response_headers_to_add to the response the client gets.
            res.writeHead(up.statusCode ?? 502, { ...up.headers, ...answer.clientHeaders });
            up.pipe(res);
          },
        );
        forward.on('error', () => res.writeHead(502).end());
        forward.end(Buffer.concat(chunks));
      } catch (err) {
        // Envoy with failure_mode_allow: false answers 403 when the authz call itself fails.
        res
          .writeHead(403, { 'content-type': 'text/plain' })
          .end(`ext_authz error: ${(err as Error).message}`);
      }
    });
  });
  const url = await listen(server);
  return { url, checks, close: () => close(server) };
}

/** Answers every request with JSON: method, path, headers and body as the upstream received them. */
export async function startEchoUpstream(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          method: req.method,
          path: req.url,
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
  });
  const url = await listen(server);
  return { url, close: () => close(server) };
}

function flatten(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
