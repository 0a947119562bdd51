/**
 * Envoy's ext_authz filter in front of a gRPC service, in node:http2 (plaintext h2c): every call's request
 * headers (its metadata) become a gRPC Check, as Envoy sends them; an allowed call goes to the upstream with
 * the ok_response headers set; a denial is answered as Envoy answers a gRPC request with a local reply
 * (source/common/http/utility.cc, encodeLocalReply): `:status 200`, `content-type: application/grpc`, the
 * denial's headers, `grpc-status` as the authorization server set it or else mapped from the HTTP status,
 * `grpc-message` from the body when there is one, all in one trailers-only HEADERS frame.
 * Also a grpc.health.v1 upstream that records the metadata reaching it.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { HealthService } from '../../src/envoy/protos';
import { check } from './envoy-client';

export interface GrpcAuthzProxy {
  /** host:port for a plaintext gRPC client. */
  target: string;
  /** Every Check the front made: the headers Envoy would send and Plannt's answer. */
  checks: { path: string; headers: Record<string, string>; status: number; allowed: boolean }[];
  close(): Promise<void>;
}

/** Envoy's Grpc::Utility::httpToGrpcStatus. */
function httpToGrpcStatus(status: number): number {
  const table: Record<number, number> = {
    400: 13,
    401: 16,
    403: 7,
    404: 12,
    429: 14,
    502: 14,
    503: 14,
    504: 14,
  };
  return table[status] ?? 2;
}

export async function startGrpcAuthzProxy(
  plannt: grpc.Client,
  upstreamTarget: string,
): Promise<GrpcAuthzProxy> {
  const checks: GrpcAuthzProxy['checks'] = [];
  const upstream = http2.connect(`http://${upstreamTarget}`);
  upstream.on('error', () => {});
  const server = http2.createServer();
  server.on('stream', (stream, requestHeaders) => {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(requestHeaders)) {
      if (typeof name === 'string' && value !== undefined) headers[name] = [value].flat().join(',');
    }
    const path = headers[':path'] ?? '/';
    check(plannt, { method: headers[':method'] ?? 'POST', host: headers[':authority'] ?? '', path, headers })
      .then((answer) => {
        checks.push({ path, headers, status: answer.status, allowed: answer.allowed });
        if (!answer.allowed) {
          const reply: http2.OutgoingHttpHeaders = {};
          for (const [name, value] of answer.headers) {
            const key = name.toLowerCase();
            const previous = reply[key];
            reply[key] = previous === undefined ? value : [previous, value].flat().map(String);
          }
          reply[':status'] = 200;
          reply['content-type'] = 'application/grpc';
          if (reply['grpc-status'] === undefined)
            reply['grpc-status'] = String(httpToGrpcStatus(answer.status));
          const body = answer.raw.denied_response?.body ?? '';
          if (body) reply['grpc-message'] = encodeURIComponent(body);
          delete reply['content-length'];
          stream.respond(reply, { endStream: true });
          return;
        }
        const forward: http2.OutgoingHttpHeaders = { ...requestHeaders };
        for (const name of answer.removeHeaders) delete forward[name.toLowerCase()];
        Object.assign(forward, answer.upstreamHeaders);
        const call = upstream.request(forward);
        let trailers: http2.IncomingHttpHeaders | undefined;
        call.on('response', (responseHeaders, flags) => {
          const trailersOnly = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
          stream.respond(responseHeaders, trailersOnly ? { endStream: true } : { waitForTrailers: true });
        });
        call.on('trailers', (t) => {
          trailers = t;
        });
        stream.on('wantTrailers', () => stream.sendTrailers(trailers ?? { 'grpc-status': '0' }));
        call.on('error', () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
        stream.pipe(call);
        call.pipe(stream);
      })
      .catch(() => {
        // Envoy with failure_mode_allow: false answers UNAVAILABLE-like 403 when the authz call fails.
        stream.respond(
          { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '7' },
          { endStream: true },
        );
      });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    target: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    checks,
    close: () =>
      new Promise<void>((resolve) => {
        upstream.close();
        server.close(() => resolve());
      }),
  };
}

/** A grpc.health.v1 service answering SERVING, recording the metadata of every call it served. */
export async function startHealthUpstream(): Promise<{
  target: string;
  served: Record<string, string>[];
  close(): Promise<void>;
}> {
  const served: Record<string, string>[] = [];
  const server = new grpc.Server();
  server.addService(HealthService, {
    Check(call: grpc.ServerUnaryCall<unknown, object>, callback: grpc.sendUnaryData<object>) {
      const metadata: Record<string, string> = {};
      for (const [key, value] of Object.entries(call.metadata.getMap())) metadata[key] = String(value);
      served.push(metadata);
      callback(null, { status: 'SERVING' });
    },
    Watch(call: grpc.ServerWritableStream<unknown, unknown>) {
      call.end();
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    target: `127.0.0.1:${port}`,
    served,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}
