/**
 * Changes without restarts: `plannt serve` re-reads its config file and PLANNT_ROOT_KEYS_FILE when they change
 * (as Kubernetes updates a mounted ConfigMap or Secret) and on SIGHUP. A configuration that does not load is
 * refused with a log line and a metric, and the old one keeps serving.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { decodeIdentifier, keyIdOf } from '../../src/l402/identifier';
import { decodeMacaroon } from '../../src/l402/macaroon';
import { authorizationClient, check } from '../support/envoy-client';
import { metricValue, waitFor } from '../support/plannt';
import { startedPorts } from '../support/plannt-process';

const CLI = path.join(__dirname, '../../dist/src/cli.js');
const dir = mkdtempSync(path.join(tmpdir(), 'plannt-reload-'));
const configFile = path.join(dir, 'plannt.yaml');
const keysFile = path.join(dir, 'root-keys');
const KEY_7 = randomBytes(32).toString('hex');
const KEY_8 = randomBytes(32).toString('hex');

/** Write-then-rename, as the kubelet swaps a mounted volume's contents: readers never see half a file. */
function write(file: string, body: string): void {
  writeFileSync(`${file}.tmp`, body);
  renameSync(`${file}.tmp`, file);
}

const config = (price: number) => `
listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0", http: "127.0.0.1:0" }
backend: { kind: dev }
spent_set: { kind: memory }
log_level: info
routes: [{ id: r, service: svc, price_sats: ${price}, path: { prefix: /paid } }]
`;

let child: ChildProcess;
let client: grpc.Client;
let adminPort = 0;
let output = '';

beforeAll(async () => {
  write(configFile, config(3));
  write(keysFile, `7:${KEY_7}`);
  child = spawn(process.execPath, [CLI, 'serve', '--config', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PLANNT_ROOT_KEYS_FILE: keysFile },
  });
  child.stdout?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  const started = await startedPorts(child, 15_000);
  adminPort = started.admin_port;
  client = authorizationClient(started.grpc_port);
});

afterAll(() => {
  client?.close();
  child?.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

const challenge = () => check(client, { method: 'GET', host: 'api.test', path: '/paid/x' });
const reloads = async (result: string) =>
  metricValue(
    await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text(),
    'plannt_config_reloads_total',
    {
      result,
    },
  );
const keyIdOfChallenge = async () => {
  const mac = decodeMacaroon(Buffer.from(String((await challenge()).body.macaroon), 'base64'), {
    maxBytes: 4096,
    maxCaveats: 32,
  });
  return keyIdOf(decodeIdentifier(mac.identifier).tokenId);
};

describe('plannt serve reloads its configuration', () => {
  it('applies a new price written to the config file, without a restart', async () => {
    expect((await challenge()).body.amount_sats).toBe(3);
    write(configFile, config(5));
    expect(await waitFor(async () => (await challenge()).body.amount_sats === 5, 10_000)).toBe(true);
    expect(await reloads('applied')).toBeGreaterThanOrEqual(1);
  });

  it('refuses a file that does not parse, keeps serving the old one, and echoes no key', async () => {
    const rejected = await reloads('rejected');
    write(configFile, `${config(9)}\nroutes: [ {{{ not yaml`);
    expect(await waitFor(async () => (await reloads('rejected')) > rejected, 10_000)).toBe(true);
    expect((await challenge()).body.amount_sats).toBe(5);
    expect(output).toContain('config reload refused');
    expect(output).not.toContain(KEY_7);
    write(configFile, config(5));
  });

  it('rotates root keys from the keys file: new tokens carry the new key id', async () => {
    expect(await keyIdOfChallenge()).toBe(7);
    write(keysFile, `8:${KEY_8},7:${KEY_7}`);
    expect(await waitFor(async () => (await keyIdOfChallenge()) === 8, 10_000)).toBe(true);
  });

  it('reloads on SIGHUP', async () => {
    const applied = await reloads('applied');
    child.kill('SIGHUP');
    expect(await waitFor(async () => (await reloads('applied')) > applied, 10_000)).toBe(true);
    expect(child.exitCode).toBeNull();
  });
});
