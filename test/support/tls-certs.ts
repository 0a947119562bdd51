/**
 * Throwaway PKI for TLS tests, made with the openssl CLI in a temp dir: a CA, a server certificate for
 * localhost / 127.0.0.1, a client certificate signed by the CA, and one signed by an unrelated CA.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface Pki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate from another CA: a well-formed cert the server must not accept. */
  strangerCert: string;
  strangerKey: string;
  read(file: string): Buffer;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('the openssl CLI is needed for the TLS tests: apt-get install -y openssl');
    }
    throw err;
  }
}

/** A self-signed CA, then leaf certificates signed by it (EC P-256 keys: fast to make). */
export function makePki(): Pki {
  const dir = mkdtempSync(path.join(tmpdir(), 'plannt-tls-'));
  const key = (name: string) =>
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', name], dir);
  const ca = (name: string, cn: string) => {
    key(`${name}.key`);
    openssl(
      [
        'req',
        '-x509',
        '-new',
        '-key',
        `${name}.key`,
        '-subj',
        `/CN=${cn}`,
        '-days',
        '2',
        '-out',
        `${name}.crt`,
      ],
      dir,
    );
  };
  const leaf = (name: string, issuer: string, cn: string, ext: string) => {
    key(`${name}.key`);
    writeFileSync(path.join(dir, `${name}.ext`), ext);
    openssl(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`], dir);
    openssl(
      [
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        `${issuer}.crt`,
        '-CAkey',
        `${issuer}.key`,
        '-CAcreateserial',
        '-days',
        '2',
        '-extfile',
        `${name}.ext`,
        '-out',
        `${name}.crt`,
      ],
      dir,
    );
  };
  ca('ca', 'plannt-test-ca');
  ca('other-ca', 'someone-else-ca');
  leaf(
    'server',
    'ca',
    'localhost',
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n',
  );
  leaf('client', 'ca', 'envoy', 'extendedKeyUsage=clientAuth\n');
  leaf('stranger', 'other-ca', 'envoy', 'extendedKeyUsage=clientAuth\n');
  const at = (f: string) => path.join(dir, f);
  return {
    dir,
    caCert: at('ca.crt'),
    serverCert: at('server.crt'),
    serverKey: at('server.key'),
    clientCert: at('client.crt'),
    clientKey: at('client.key'),
    strangerCert: at('stranger.crt'),
    strangerKey: at('stranger.key'),
    read: (file) => readFileSync(file),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
