/**
 * A gRPC client for LND's Lightning service alone, in the shape ln-service's methods take (`{ default }`).
 * ln-service's authenticatedLndGrpc loads the protos of all twelve LND sub-servers and opens a client for
 * each, ~25 MB of a worker's memory; the invoice backend calls AddInvoice, LookupInvoice, ListInvoices and
 * SubscribeInvoices, all on Lightning.
 */
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

/** The proto ln-service's own `lightning` package ships, so fields match the methods reading them. */
const LIGHTNING_PROTO = createRequire(require.resolve('ln-service')).resolve(
  'lightning/grpc/protos/lightning.proto',
);
/** The loader options ln-service's methods expect LND's answers in (lightning/lnd_grpc/grpc_options.js). */
const LOADER_OPTIONS = { defaults: true, enums: String, keepCase: true, longs: String, oneofs: true };
/** An invoice is a few KB; ln-service sets no bound, this keeps grpc-js's default. */
const MAX_RECEIVE_BYTES = 4 * 1024 * 1024;

export interface LndConnection {
  socket: string;
  /** Base64 or hex of LND's TLS certificate PEM; absent when LND's cert is publicly trusted. */
  cert?: string;
  /** Base64 or hex of the macaroon. */
  macaroon: string;
}

/** What ln-service's methods take as `lnd`: they call `lnd.default.<rpc>`. */
export type LightningService = { readonly default: grpc.Client };

export function lightningService({ socket, cert, macaroon }: LndConnection): LightningService {
  const { lnrpc } = grpc.loadPackageDefinition(loadSync(LIGHTNING_PROTO, LOADER_OPTIONS)) as {
    lnrpc: { Lightning: grpc.ServiceClientConstructor };
  };
  const macaroonHex = decoded(macaroon).toString('hex');
  const withMacaroon = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
    const metadata = new grpc.Metadata();
    metadata.set('macaroon', macaroonHex);
    callback(null, metadata);
  });
  const credentials = grpc.credentials.combineChannelCredentials(
    grpc.credentials.createSsl(cert === undefined ? null : decoded(cert)),
    withMacaroon,
  );
  return {
    default: new lnrpc.Lightning(socket, credentials, {
      'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
    }),
  };
}

/** Hex when it reads as hex, base64 otherwise: ln-service's rule for certs and macaroons. */
function decoded(serialized: string): Buffer {
  const hex = serialized.length % 2 === 0 && /^[0-9a-f]*$/i.test(serialized);
  return Buffer.from(serialized, hex ? 'hex' : 'base64');
}
