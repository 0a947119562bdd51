/**
 * Starts a real Plannt (startApp) on loopback with ephemeral ports, a fresh 32-byte root key and a small
 * route table, plus the helpers integration tests need: an Envoy-like gRPC client, the admin port, the dev
 * backend's /dev/pay, and the Prometheus text parsed into values.
 */
import { randomBytes } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import Redis from 'ioredis';
import { type App, startApp } from '../../src/app';
import { type Config, parseConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { authorizationClient, type CheckInput, type CheckResult, check } from './envoy-client';

/** Routes every test app starts with (unless `routes` is overridden). */
export const ROUTES = [
  { id: 'forecast', service: 'weather', price_sats: 10, path: { prefix: '/v1/forecast' }, methods: ['GET'] },
  // Same service as forecast, another route: a forecast token here is a wrong_route.
  { id: 'history', service: 'weather', price_sats: 10, path: { prefix: '/v1/history' } },
  {
    id: 'generate',
    service: 'inference',
    price_sats: 21,
    host: 'api.example.com',
    path: { prefix: '/v1/generate' },
    methods: ['POST'],
  },
  // Tokens that expire three seconds after the challenge. The invoice's 2 s leave at least 1 s to pay it: a
  // BOLT11 timestamp is whole seconds, and the invoice expires counted from it.
  {
    id: 'short',
    service: 'weather',
    price_sats: 2,
    path: { exact: '/v1/short' },
    token_lifetime_seconds: 3,
    invoice_expiry_seconds: 2,
  },
  { id: 'status', service: 'public', price_sats: 0, path: { exact: '/status' } },
];

export interface StartOptions {
  /** Hex root key; replicas that verify each other's tokens share it. Random by default. */
  rootKeyHex?: string;
  readinessIntervalMs?: number;
}

export interface AdminReply {
  status: number;
  headers: Headers;
  text: string;
  json(): Record<string, unknown>;
}

/** A paid credential, as a client holds it after a challenge and a payment. */
export interface Purchase {
  challenge: CheckResult;
  macaroon: string;
  invoice: string;
  paymentHash: string;
  preimage: string;
  /** `L402 <macaroon>:<preimage>` */
  authorization: string;
}

export interface Plannt {
  app: App;
  config: Config;
  rootKeyHex: string;
  client: grpc.Client;
  adminUrl: string;
  /** The HTTP ext_authz / forward-auth port. */
  httpUrl: string;
  /** Every JSON log line the app wrote. */
  logs: string[];
  check(input?: CheckInput): Promise<CheckResult>;
  admin(path: string, init?: RequestInit): Promise<AdminReply>;
  /** POST /dev/pay; resolves with the preimage hex, throws unless 200. */
  pay(invoice: string): Promise<string>;
  /** Challenge for `input`, pay the invoice through `payer` (this instance by default). */
  buy(input: CheckInput, payer?: Plannt): Promise<Purchase>;
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

type Raw = Record<string, unknown>;

const isObject = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Objects merge key by key; arrays and scalars replace. */
export function deepMerge(base: Raw, override: Raw): Raw {
  const out: Raw = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const current = out[key];
    out[key] = isObject(current) && isObject(value) ? deepMerge(current, value) : value;
  }
  return out;
}

export function randomRootKey(): string {
  return randomBytes(32).toString('hex');
}

export const REDIS_URL = 'redis://127.0.0.1:6379';

export function uniqueRedisPrefix(): string {
  return `plannt-test:${randomBytes(6).toString('hex')}:`;
}

/** The Redis key Plannt counts a token's uses under (redis-spent-set.ts): the prefix and 16 bytes of the hash. */
export function spentKey(prefix: string, paymentHash: string | Buffer): Buffer {
  const hash = typeof paymentHash === 'string' ? Buffer.from(paymentHash, 'hex') : paymentHash;
  return Buffer.concat([Buffer.from(prefix), hash.subarray(0, 16)]);
}

/** Removes the spent entries a test run left under its key prefix. */
export async function deleteRedisKeys(prefix: string, url = REDIS_URL): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scanBuffer(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next.toString();
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

export function buildConfig(overrides: Raw = {}, rootKeyHex = randomRootKey()): Config {
  const base: Raw = {
    listen: { grpc: '127.0.0.1:0', admin: '127.0.0.1:0', http: '127.0.0.1:0' },
    location: 'plannt-test',
    root_keys: [{ id: 7, key: rootKeyHex }],
    current_key_id: 7,
    backend: { kind: 'dev', timeout_ms: 2000 },
    spent_set: { kind: 'memory' },
    routes: ROUTES,
    unmatched: { action: 'deny' },
    // Tests stop many apps; the drain window has its own test (drain.test.ts).
    drain_seconds: 0,
    shutdown_grace_ms: 2000,
    log_level: 'info',
  };
  // Only the test's values: the real environment must not leak PLANNT_* overrides in.
  return parseConfig(deepMerge(base, overrides), {});
}

export async function startPlannt(overrides: Raw = {}, options: StartOptions = {}): Promise<Plannt> {
  const rootKeyHex = options.rootKeyHex ?? randomRootKey();
  const config = buildConfig(overrides, rootKeyHex);
  const logs: string[] = [];
  const logger = createLogger('info', { write: (line: string) => void logs.push(line) });
  const app = await startApp(config, {
    env: { NODE_ENV: 'test' },
    logger,
    ...(options.readinessIntervalMs !== undefined && { readinessIntervalMs: options.readinessIntervalMs }),
  });
  const client = authorizationClient(app.grpcPort);
  const adminUrl = `http://127.0.0.1:${app.adminPort}`;
  let stopped = false;

  const admin = async (path: string, init?: RequestInit): Promise<AdminReply> => {
    const res = await fetch(adminUrl + path, init);
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) as Raw };
  };

  const self: Plannt = {
    app,
    config,
    rootKeyHex,
    client,
    adminUrl,
    httpUrl: `http://127.0.0.1:${app.httpPort}`,
    logs,
    check: (input = {}) => check(client, input),
    admin,
    async pay(invoice) {
      const reply = await admin('/dev/pay', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ invoice }),
      });
      if (reply.status !== 200) throw new Error(`/dev/pay answered ${reply.status}: ${reply.text}`);
      return String(reply.json().preimage);
    },
    async buy(input, payer = self) {
      const { authorization: _ignored, ...headers } = input.headers ?? {};
      const challenge = await self.check({ ...input, headers });
      if (challenge.status !== 402) {
        throw new Error(
          `expected a 402 challenge, got ${challenge.status}: ${JSON.stringify(challenge.body)}`,
        );
      }
      const macaroon = String(challenge.body.macaroon);
      const invoice = String(challenge.body.invoice);
      const preimage = await payer.pay(invoice);
      return {
        challenge,
        macaroon,
        invoice,
        paymentHash: String(challenge.body.payment_hash),
        preimage,
        authorization: `L402 ${macaroon}:${preimage}`,
      };
    },
    metrics: async () => (await admin('/metrics')).text,
    async stop() {
      if (stopped) return;
      stopped = true;
      client.close();
      await app.stop();
    },
  };
  return self;
}

/**
 * The sum of every sample of `name` whose labels include `labels`, from Prometheus text exposition;
 * 0 when there is none (a counter never incremented is not exported with those labels).
 */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = new Map<string, string>();
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      found.set(pair[1] ?? '', pair[2] ?? '');
    }
    if (Object.entries(labels).every(([k, v]) => found.get(k) === v)) sum += Number(match[3]);
  }
  return sum;
}

/** Polls `probe` until it returns true or `timeoutMs` passes; resolves with the last result. */
export async function waitFor(
  probe: () => Promise<boolean>,
  timeoutMs: number,
  stepMs = 50,
): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() >= until) return false;
    await sleep(stepMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A dependency's state as /readyz reports it (true: its last probe answered). */
export async function dependencyUp(plannt: Plannt, name: string): Promise<boolean | undefined> {
  const { dependencies } = (await plannt.admin('/readyz')).json() as {
    dependencies?: Record<string, boolean>;
  };
  return dependencies?.[name];
}
