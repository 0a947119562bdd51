/**
 * SIGTERM during load, on the real CLI process (`plannt serve`): checks in flight complete with their real
 * answer, new ones are refused at the connection (gRPC UNAVAILABLE, so Envoy retries another replica), the
 * process exits within shutdown_grace_ms, and no spend is lost: every allowed token is in Redis, and Redis
 * holds no token that was not allowed. In-flight work is made slow on purpose: Redis writes are paused
 * (CLIENT PAUSE … WRITE) and the fake LND answers late.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import Redis from 'ioredis';
import { keyring } from '../../src/l402/keys';
import { authorizationClient, check } from '../support/envoy-client';
import { type FakeLnd, startFakeLnd } from '../support/fake-lnd';
import { paidToken } from '../support/paid-token';
import { sleep, spentKey } from '../support/plannt';
import { startedPorts } from '../support/plannt-process';
import { type RedisServer, startRedisServer } from '../support/redis-server';

// The compiled CLI, as an operator runs it; `npm test` builds before jest runs.
const CLI = path.join(__dirname, '../../dist/src/cli.js');
const FORECAST = { method: 'GET', host: 'api.example.com', path: '/v1/forecast?city=viseu' };
const ROOT_KEY = randomBytes(32).toString('hex');
const GRACE_MS = 5000;
const PREFIX = 'shutdown:';

let fake: FakeLnd;
let redis: RedisServer;
let child: ChildProcess | undefined;
const dir = mkdtempSync(path.join(tmpdir(), 'plannt-shutdown-'));
const clients: grpc.Client[] = [];

beforeAll(async () => {
  [fake, redis] = await Promise.all([startFakeLnd(), startRedisServer({ persistent: false })]);
});

afterAll(async () => {
  for (const c of clients) c.close();
  if (child && child.exitCode === null) child.kill('SIGKILL');
  await Promise.all([fake?.stop(), redis?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

const KEYRING = keyring([{ id: 7, secret: Buffer.from(ROOT_KEY, 'hex') }], 7);
const mintToken = () => paidToken(KEYRING);

async function startCli(): Promise<{ grpcPort: number; adminPort: number; out: string[] }> {
  const config = path.join(dir, 'plannt.yaml');
  writeFileSync(
    config,
    `listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0" }
root_keys: [{ id: 7, key: "${ROOT_KEY}" }]
current_key_id: 7
backend:
  kind: lnd
  timeout_ms: 4000
  lnd: { socket: "${fake.socket}", cert_base64: "${fake.certBase64}", macaroon_base64: "${Buffer.from(fake.macaroonHex, 'hex').toString('base64')}" }
spent_set:
  kind: redis
  redis: { url: "${redis.url}", key_prefix: "${PREFIX}", command_timeout_ms: 4000 }
challenge_limits: { per_client_per_second: 0 }
routes: [{ id: forecast, service: weather, price_sats: 10, path: { prefix: /v1/forecast } }]
shutdown_grace_ms: ${GRACE_MS}
drain_seconds: 0
# One process, as the grace bound below is timed for; workers.test.ts drains several.
workers: 1
`,
  );
  const proc = spawn(process.execPath, [CLI, 'serve', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = proc;
  const out: string[] = [];
  proc.stdout?.on('data', (chunk: Buffer) => out.push(chunk.toString()));
  proc.stderr?.on('data', (chunk: Buffer) => out.push(chunk.toString()));
  const started = await startedPorts(proc, 15_000);
  return { grpcPort: started.grpc_port, adminPort: started.admin_port, out };
}

type Outcome = string;

async function send(client: grpc.Client, authorization?: string): Promise<Outcome> {
  return check(client, {
    ...FORECAST,
    ...(authorization && { headers: { authorization } }),
    deadlineMs: 8000,
  }).then(
    (res) => (res.allowed ? 'allow' : `${res.status} ${String(res.body.error)}`),
    (err: grpc.ServiceError) => `grpc ${grpc.status[err.code]}`,
  );
}

describe('SIGTERM under load', () => {
  it('completes in-flight checks, refuses new ones, exits within the grace period and loses no spend', async () => {
    const { grpcPort, adminPort, out } = await startCli();
    const client = authorizationClient(grpcPort);
    clients.push(client);
    const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
      child?.once('exit', (code) => resolve({ code, at: Date.now() })),
    );

    // A steady stream of paid checks from four workers until the server goes away.
    const allowed = new Set<string>();
    const steady: Outcome[] = [];
    let stop = false;
    const workers = Array.from({ length: 4 }, async () => {
      while (!stop) {
        const token = mintToken();
        const outcome = await send(client, token.authorization);
        steady.push(outcome);
        if (outcome === 'allow') allowed.add(token.paymentHash);
        if (outcome.startsWith('grpc')) break;
      }
    });
    await sleep(500);
    expect(allowed.size).toBeGreaterThan(0);

    // Slow work in flight: spends stalled in Redis for 1.5 s, challenges on an LND answering in 1.5 s.
    redis.cli('CLIENT', 'PAUSE', '1500', 'WRITE');
    fake.setDelayMs(1500);
    const slowTokens = Array.from({ length: 10 }, mintToken);
    const inFlight = [
      ...slowTokens.map((t) => send(client, t.authorization).then((o) => ({ o, hash: t.paymentHash }))),
      ...Array.from({ length: 5 }, () => send(client).then((o) => ({ o, hash: '' }))),
    ];
    await sleep(200);
    const termAt = Date.now();
    child?.kill('SIGTERM');
    await sleep(200);

    // Draining: not ready on the admin port while in-flight checks finish; new connections are refused.
    const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { draining: boolean }).draining).toBe(true);
    const late = authorizationClient(grpcPort);
    clients.push(late);
    expect(await send(late, mintToken().authorization)).toBe('grpc UNAVAILABLE');

    const finished = await Promise.all(inFlight);
    const finishedAt = Date.now();
    for (const f of finished.slice(0, 10)) {
      expect(f.o).toBe('allow');
      allowed.add(f.hash);
    }
    for (const f of finished.slice(10)) expect(f.o).toBe('402 payment_required');
    expect(finishedAt - termAt).toBeGreaterThan(1000); // they really were held in flight across the SIGTERM

    stop = true;
    await Promise.all(workers);
    const { code, at } = await exited;
    expect(code).toBe(0);
    expect(at - termAt).toBeLessThan(GRACE_MS);
    expect(out.join('')).toContain('plannt stopped');
    // Every steady check got its real answer, or was refused outright: no CANCELLED or INTERNAL.
    expect(new Set(steady)).toEqual(
      new Set(steady.some((s) => s.startsWith('grpc')) ? ['allow', 'grpc UNAVAILABLE'] : ['allow']),
    );

    // No spend lost and none invented: Redis holds exactly the allowed tokens.
    const r = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      expect(await r.dbsize()).toBe(allowed.size);
      const keys = [...allowed].map((h) => spentKey(PREFIX, h));
      expect(await r.exists(...keys)).toBe(allowed.size);
    } finally {
      r.disconnect();
    }
  });
});
