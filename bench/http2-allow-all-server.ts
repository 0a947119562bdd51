/**
 * The floor under a Node ext_authz server: node:http2 alone, no gRPC library, answering every call on the
 * Check path with one precomputed OK CheckResponse (the grpc-js allow-all's, encoded once) after reading the
 * whole request and decoding none of it. What it costs, and its latency tail, belong to node's HTTP/2 and
 * V8, not to any code above them; Plannt reads and answers Check on these same streams (src/server/check-streams.ts).
 */
import { createServer, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { type AllowAllServer, allowResponse } from './allow-all-server';
import { CHECK_PATH, serializeCheckResponse } from './check-codec';

const response = serializeCheckResponse(allowResponse());
const frame = Buffer.alloc(5 + response.length);
frame.writeUInt32BE(response.length, 1);
response.copy(frame, 5);

export async function startHttp2AllowAllServer(host: string): Promise<AllowAllServer> {
  const server = createServer();
  server.on('stream', (stream: ServerHttp2Stream, headers) => {
    stream.on('error', () => {});
    if (headers[':path'] !== CHECK_PATH) {
      stream.respond(
        { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' },
        { endStream: true },
      );
      return;
    }
    stream.on('data', () => {});
    stream.once('end', () => {
      if (stream.destroyed) return;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(frame);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    shutdown: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000);
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
