/**
 * The bench's requests: an Envoy-shaped CheckRequest (addresses, a timestamp, the usual request headers,
 * as Envoy fills them) and the paid single-use L402 credentials minted with the server's root key.
 */
import { createHash, randomBytes } from 'node:crypto';
import { keyring } from '../src/l402/keys';
import { mintMacaroon } from '../src/l402/mint';
import { BENCH_HOST, BENCH_LOCATION, BENCH_PATH, BENCH_ROUTE, type TokenSpec } from './protocol';

export interface RequestShape {
  /** None for a free route or a challenge. */
  authorization?: string;
  requestId: string;
  nowSeconds: number;
  path?: string;
  /** The downstream client's address; challenges rotate it, as many agents would, under the per-client limit. */
  sourceAddress?: string;
}

export function envoyCheckRequest(shape: RequestShape): object {
  const { authorization, requestId, nowSeconds, path = BENCH_PATH, sourceAddress = '10.1.2.3' } = shape;
  return {
    attributes: {
      source: { address: { socket_address: { address: sourceAddress, port_value: 51234 } } },
      destination: { address: { socket_address: { address: '10.1.0.2', port_value: 8443 } } },
      request: {
        time: { seconds: String(nowSeconds), nanos: 123_000_000 },
        http: {
          id: requestId,
          method: 'GET',
          headers: {
            ':authority': BENCH_HOST,
            ':method': 'GET',
            ':path': path,
            ':scheme': 'https',
            accept: 'application/json',
            'accept-encoding': 'gzip, deflate, br',
            ...(authorization !== undefined && { authorization }),
            'user-agent': 'plannt-bench-agent/1.0 (+https://example.invalid)',
            'x-forwarded-for': '203.0.113.7',
            'x-forwarded-proto': 'https',
            'x-request-id': requestId,
          },
          path,
          host: BENCH_HOST,
          scheme: 'https',
          protocol: 'HTTP/1.1',
        },
      },
      context_extensions: {},
    },
  };
}

export interface PaidCredential {
  /** `L402 <macaroon>:<preimage>` */
  authorization: string;
  paymentHashHex: string;
}

/** Mints a fresh single-use token for the bench route: random preimage, its hash, mintMacaroon. */
export function paidCredentialMinter(spec: TokenSpec): () => PaidCredential {
  const keys = keyring([{ id: spec.keyId, secret: Buffer.from(spec.rootKeyHex, 'hex') }], spec.keyId);
  const terms = {
    service: BENCH_ROUTE.service,
    routeId: BENCH_ROUTE.id,
    priceSats: BENCH_ROUTE.priceSats,
    validUntil: spec.validUntil,
  };
  return () => {
    const preimage = randomBytes(32);
    const paymentHash = createHash('sha256').update(preimage).digest();
    const macaroon = mintMacaroon(paymentHash, terms, keys, BENCH_LOCATION);
    return {
      authorization: `L402 ${macaroon.toString('base64')}:${preimage.toString('hex')}`,
      paymentHashHex: paymentHash.toString('hex'),
    };
  };
}
