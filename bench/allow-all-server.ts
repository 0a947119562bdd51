/**
 * The ceiling: an ext_authz v3 server on Plannt's own stack (grpc-js, the vendored protos loaded by
 * src/envoy/protos.ts with the same loader options, the same grpc.Server options as src/server/grpc-server.ts)
 * that allows every Check without looking at it. It still decodes each CheckRequest and encodes an OK
 * CheckResponse with the same ok_response headers Plannt sets on a paid request, so the only difference
 * from Plannt's verify path is the decision itself.
 *
 * Run alone: node dist/bench/allow-all-server.js [host:port]
 */
import * as grpc from '@grpc/grpc-js';
import { AuthorizationService } from '../src/envoy/protos';

/** Copied from startGrpcServer in src/server/grpc-server.ts; keep them in step. */
export const SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.max_connection_age_ms': 300_000,
  'grpc.max_connection_age_grace_ms': 30_000,
  'grpc.max_receive_message_length': 1024 * 1024,
  'grpc.enable_channelz': 0,
};

/**
 * A paid single-use answer's upstream headers (render in src/core/response.ts): a 64-hex payment hash, the
 * service, the price; Authorization and the uses-remaining header removed. bench/tools/serve.go sends the same.
 */
const PAID_HEADERS = [
  ['x-plannt-payment-hash', 'ab'.repeat(32)],
  ['x-plannt-service', 'bench'],
  ['x-plannt-amount-sats', '10'],
] as const;
const REMOVED_HEADERS = ['authorization', 'x-plannt-uses-remaining'];

export interface AllowAllServer {
  port: number;
  shutdown(): Promise<void>;
}

/** The OK CheckResponse both allow-all servers send (an object for the generic encoder). */
export function allowResponse(): object {
  return {
    status: { code: 0 },
    ok_response: {
      headers: PAID_HEADERS.map(([key, value]) => ({
        header: { key, value },
        append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
      })),
      headers_to_remove: REMOVED_HEADERS,
    },
  };
}

export async function startAllowAllServer(address: string): Promise<AllowAllServer> {
  const server = new grpc.Server(SERVER_OPTIONS);
  server.addService(AuthorizationService, {
    Check(_call: grpc.ServerUnaryCall<unknown, object>, callback: grpc.sendUnaryData<object>) {
      // Built per call, like toCheckResponse in src/server/envoy-grpc.ts.
      callback(null, allowResponse());
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    ),
  );
  return {
    port,
    shutdown: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

if (require.main === module) {
  const address = process.argv[2] ?? '127.0.0.1:9101';
  startAllowAllServer(address).then(
    (s) => {
      process.stdout.write(`allow-all ext_authz server on port ${s.port}\n`);
      const stop = () => void s.shutdown().then(() => process.exit(0));
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    },
    (err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      process.exit(1);
    },
  );
}
