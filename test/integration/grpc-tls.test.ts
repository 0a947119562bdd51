/**
 * gRPC over TLS between Envoy and Plannt, and mTLS: with tls.client_ca_file set, only a client presenting a
 * certificate signed by that CA gets an answer. Certificates are made with the openssl CLI per run.
 */
import * as grpc from '@grpc/grpc-js';
import { startApp } from '../../src/app';
import { ConfigError } from '../../src/config';
import { AuthorizationClient } from '../../src/envoy/protos';
import { createLogger } from '../../src/logger';
import { check } from '../support/envoy-client';
import { buildConfig, type Plannt, startPlannt } from '../support/plannt';
import { makePki, type Pki } from '../support/tls-certs';

const FORECAST = { method: 'GET', host: 'api.example.com', path: '/v1/forecast?city=evora' };

let pki: Pki;
const clients: grpc.Client[] = [];

beforeAll(() => {
  pki = makePki();
});

afterAll(() => {
  for (const c of clients) c.close();
  pki?.remove();
});

function client(port: number, creds: grpc.ChannelCredentials): grpc.Client {
  const c = new AuthorizationClient(`localhost:${port}`, creds);
  clients.push(c);
  return c;
}

/** The gRPC status a call ended with: 'OK' when a CheckResponse came back. */
async function outcome(c: grpc.Client): Promise<string> {
  return check(c, { ...FORECAST, deadlineMs: 3000 }).then(
    (res) => `OK ${res.status}`,
    (err: grpc.ServiceError) => grpc.status[err.code] ?? String(err.code),
  );
}

describe('gRPC over TLS (server certificate only)', () => {
  let plannt: Plannt;

  beforeAll(async () => {
    plannt = await startPlannt({ tls: { cert_file: pki.serverCert, key_file: pki.serverKey } });
  });

  afterAll(async () => {
    await plannt?.stop();
  });

  it('answers a client that trusts its CA', async () => {
    expect(await outcome(client(plannt.app.grpcPort, grpc.credentials.createSsl(pki.read(pki.caCert))))).toBe(
      'OK 402',
    );
  });

  it('does not answer a plaintext client', async () => {
    expect(await outcome(client(plannt.app.grpcPort, grpc.credentials.createInsecure()))).toBe('UNAVAILABLE');
  });

  it('is refused by a client that does not trust its certificate', async () => {
    const other = grpc.credentials.createSsl(pki.read(pki.strangerCert));
    expect(await outcome(client(plannt.app.grpcPort, other))).toBe('UNAVAILABLE');
  });
});

describe('mTLS (tls.client_ca_file)', () => {
  let plannt: Plannt;

  beforeAll(async () => {
    plannt = await startPlannt({
      tls: { cert_file: pki.serverCert, key_file: pki.serverKey, client_ca_file: pki.caCert },
    });
  });

  afterAll(async () => {
    await plannt?.stop();
  });

  const withClientCert = (cert: string, key: string) =>
    grpc.credentials.createSsl(pki.read(pki.caCert), pki.read(key), pki.read(cert));

  it('answers a client presenting a certificate signed by the client CA', async () => {
    const creds = withClientCert(pki.clientCert, pki.clientKey);
    expect(await outcome(client(plannt.app.grpcPort, creds))).toBe('OK 402');
  });

  it('refuses a client without a certificate', async () => {
    const creds = grpc.credentials.createSsl(pki.read(pki.caCert));
    expect(await outcome(client(plannt.app.grpcPort, creds))).toBe('UNAVAILABLE');
  });

  it('refuses a client whose certificate another CA signed', async () => {
    const creds = withClientCert(pki.strangerCert, pki.strangerKey);
    expect(await outcome(client(plannt.app.grpcPort, creds))).toBe('UNAVAILABLE');
  });
});

describe('files named in the configuration: errors stop startup and name the field', () => {
  const startWith = async (overrides: Record<string, unknown>): Promise<string> => {
    const config = buildConfig(overrides);
    try {
      const app = await startApp(config, { env: {}, logger: createLogger('silent') });
      await app.stop();
    } catch (err) {
      if (err instanceof ConfigError) return err.message;
      throw err;
    }
    throw new Error('startApp accepted the configuration');
  };
  const start = (tls: Record<string, string>) => startWith({ tls });

  it('a missing certificate file', async () => {
    const message = await start({ cert_file: `${pki.dir}/nope.crt`, key_file: pki.serverKey });
    expect(message).toMatch(/^tls\.cert_file: cannot read .*nope\.crt/);
  });

  it('a key that does not match the certificate', async () => {
    const message = await start({ cert_file: pki.serverCert, key_file: pki.clientKey });
    expect(message).toContain('tls.cert_file/tls.key_file');
  });

  it('a client CA file that is not a certificate', async () => {
    const message = await start({
      cert_file: pki.serverCert,
      key_file: pki.serverKey,
      client_ca_file: pki.serverKey,
    });
    expect(message).toContain('tls.client_ca_file');
  });

  it('an LND macaroon or certificate file that cannot be read', async () => {
    const lnd = {
      socket: '127.0.0.1:1',
      cert_file: pki.caCert,
      macaroon_file: `${pki.dir}/missing.macaroon`,
    };
    expect(await startWith({ backend: { kind: 'lnd', lnd } })).toMatch(
      /^backend\.lnd\.macaroon_file: cannot read/,
    );
    const noCert = { ...lnd, cert_file: `${pki.dir}/missing.cert`, macaroon_file: pki.serverKey };
    expect(await startWith({ backend: { kind: 'lnd', lnd: noCert } })).toMatch(
      /^backend\.lnd\.cert_file: cannot read/,
    );
  });
});
