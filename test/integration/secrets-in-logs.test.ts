/**
 * Secrets never reach a log line or a metric: the root key, the LND macaroon, the macaroons Plannt issues and
 * accepts, and the preimages clients present. A whole flow runs at log level `trace` (everything Plannt can
 * log), including failures (LND down, Redis unreachable, bad tokens), and the captured output is scanned.
 */
import { randomBytes } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { type App, startApp } from '../../src/app';
import { ConfigError, parseConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { authorizationClient, type CheckInput, check } from '../support/envoy-client';
import { type FakeLnd, startFakeLnd } from '../support/fake-lnd';
import { buildConfig, deleteRedisKeys, REDIS_URL, uniqueRedisPrefix } from '../support/plannt';

const FORECAST = { method: 'GET', host: 'api.example.com', path: '/v1/forecast?city=lagos' };
const ROOT_KEY = randomBytes(32);
const prefix = uniqueRedisPrefix();

interface Running {
  app: App;
  client: grpc.Client;
  logs: string[];
  metrics(): Promise<string>;
}

const running: Running[] = [];
let fake: FakeLnd;

/** The forms a secret could leak in: hex (either case), standard and URL-safe base64. */
function forms(secret: Buffer | string): string[] {
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'base64') : secret;
  const b64 = bytes.toString('base64');
  return [
    bytes.toString('hex'),
    bytes.toString('hex').toUpperCase(),
    b64,
    b64.replace(/=+$/, ''),
    bytes.toString('base64url'),
  ];
}

async function start(overrides: Record<string, unknown>): Promise<Running> {
  const logs: string[] = [];
  const config = buildConfig({ ...overrides, log_level: 'trace' }, ROOT_KEY.toString('hex'));
  const logger = createLogger('trace', { write: (line: string) => void logs.push(line) });
  const app = await startApp(config, { env: {}, logger, readinessIntervalMs: 100 });
  const client = authorizationClient(app.grpcPort);
  const r: Running = {
    app,
    client,
    logs,
    metrics: async () => (await fetch(`http://127.0.0.1:${app.adminPort}/metrics`)).text(),
  };
  running.push(r);
  return r;
}

function lnd(f: FakeLnd) {
  return {
    kind: 'lnd',
    timeout_ms: 300,
    lnd: {
      socket: f.socket,
      cert_base64: f.certBase64,
      macaroon_base64: Buffer.from(f.macaroonHex, 'hex').toString('base64'),
    },
  };
}

beforeAll(async () => {
  fake = await startFakeLnd();
});

afterAll(async () => {
  for (const r of running) {
    r.client.close();
    await r.app.stop();
  }
  await fake?.stop();
  await deleteRedisKeys(prefix);
});

describe('secrets in logs and metrics', () => {
  it('a whole flow, failures included, logs and exports no root key, LND macaroon, macaroon or preimage', async () => {
    const secrets: string[] = [...forms(ROOT_KEY), ...forms(Buffer.from(fake.macaroonHex, 'hex'))];
    const main = await start({
      backend: lnd(fake),
      spent_set: { kind: 'redis', redis: { url: REDIS_URL, key_prefix: prefix } },
    });
    const broken = await start({
      backend: lnd(fake),
      spent_set: { kind: 'redis', redis: { url: 'redis://127.0.0.1:1', key_prefix: prefix } },
    });
    const call = (r: Running, input: CheckInput) => check(r.client, input);

    const paidTokens: string[] = [];
    for (let i = 0; i < 3; i++) {
      const before = fake.invoices.length;
      const challenge = await call(main, FORECAST);
      expect(challenge.status).toBe(402);
      const preimage = fake.invoices[before]?.preimage;
      if (!preimage) throw new Error('the fake LND holds no invoice for the challenge');
      const macaroon = String(challenge.body.macaroon);
      const authorization = `L402 ${macaroon}:${preimage.toString('hex')}`;
      secrets.push(...forms(macaroon), ...forms(preimage), authorization);
      paidTokens.push(authorization);
    }
    const [first = '', second = '', third = ''] = paidTokens;

    // Allowed, replayed, wrong preimage, LSAT scheme, garbage, another route.
    expect((await call(main, { ...FORECAST, headers: { authorization: first } })).allowed).toBe(true);
    expect((await call(main, { ...FORECAST, headers: { authorization: first } })).body.error).toBe(
      'token_spent',
    );
    const wrongPreimage = randomBytes(32).toString('hex');
    secrets.push(wrongPreimage);
    const mac = second.slice(5, second.lastIndexOf(':'));
    expect(
      (await call(main, { ...FORECAST, headers: { authorization: `L402 ${mac}:${wrongPreimage}` } })).body
        .error,
    ).toBe('preimage_mismatch');
    expect(
      (await call(main, { ...FORECAST, headers: { authorization: second.replace('L402', 'LSAT') } })).allowed,
    ).toBe(true);
    expect((await call(main, { path: '/v1/history', headers: { authorization: third } })).body.error).toBe(
      'wrong_route',
    );
    expect(
      (
        await call(main, {
          ...FORECAST,
          headers: { authorization: `L402 ${mac.slice(0, 40)}:${wrongPreimage}` },
        })
      ).status,
    ).toBe(402);

    // Redis unreachable: a 503 on the verify path, with an error detail.
    expect((await call(broken, { ...FORECAST, headers: { authorization: third } })).status).toBe(503);

    // LND down, then slow: 503s on the challenge path, readiness flips (logged).
    fake.setDown(true);
    expect((await call(main, FORECAST)).status).toBe(503);
    await new Promise((r) => setTimeout(r, 300));
    fake.setDown(false);
    fake.setDelayMs(600);
    expect((await call(main, FORECAST)).status).toBe(503);
    fake.setDelayMs(0);
    await new Promise((r) => setTimeout(r, 700));

    const output = [
      ...main.logs,
      ...broken.logs,
      await main.metrics(),
      await broken.metrics(),
      ...fake.invoices.map((i) => i.memo),
    ].join('\n');
    // The scan must have something to scan: decisions, dependency changes and errors were logged.
    expect(main.logs.filter((l) => l.includes('"msg":"check"')).length).toBeGreaterThanOrEqual(9);
    expect(output).toContain('dependency is down');
    expect(output).toContain('spent_set_unavailable');
    expect(output).toContain('invoice_backend_unavailable');
    const leaked = [...new Set(secrets)].filter((s) => s.length >= 32 && output.includes(s));
    expect(leaked).toEqual([]);
  });

  it('a configuration error does not echo the key it rejects', () => {
    const short = randomBytes(16).toString('hex');
    const notHex = `zz${randomBytes(32).toString('hex')}`;
    for (const key of [short, notHex]) {
      let message = '';
      try {
        parseConfig({ ...minimalRaw(), root_keys: [{ id: 1, key }] });
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        message = err.message;
      }
      expect(message).toContain('root_keys.0.key');
      expect(message).not.toContain(key.slice(2, 30));
    }
    let fromEnv = '';
    try {
      parseConfig(minimalRaw(), { PLANNT_ROOT_KEYS: `1:${short}` });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      fromEnv = err.message;
    }
    expect(fromEnv).toContain('root_keys.0.key: root keys must be at least 32 bytes');
    expect(fromEnv).not.toContain(short);
  });
});

function minimalRaw(): Record<string, unknown> {
  return {
    root_keys: [{ id: 1, key: randomBytes(32).toString('hex') }],
    current_key_id: 1,
    backend: { kind: 'dev' },
    spent_set: { kind: 'memory' },
  };
}
