/**
 * `plannt serve` with `workers: 2`, as a pod runs it: both workers serve checks on the shared gRPC port, one
 * /metrics counts them all, a killed worker is replaced while the other keeps serving, and SIGTERM drains
 * (readiness fails at once) and exits 0.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { AuthorizationClient } from '../../src/envoy/protos';
import { keyring } from '../../src/l402/keys';
import { check } from '../support/envoy-client';
import { type FakeLnd, startFakeLnd } from '../support/fake-lnd';
import { paidToken } from '../support/paid-token';
import {
  deleteRedisKeys,
  metricValue,
  REDIS_URL,
  sleep,
  uniqueRedisPrefix,
  waitFor,
} from '../support/plannt';
import { type StartedPorts, serve } from '../support/plannt-process';

const ROOT_KEY = randomBytes(32);
const KEYS = keyring([{ id: 7, secret: ROOT_KEY }], 7);
const FORECAST = { method: 'GET', host: 'api.example.com', path: '/v1/forecast' };
// The config sits alone in its directory: the workers watch that directory for changes.
const dir = mkdtempSync(path.join(tmpdir(), 'plannt-workers-'));
const prefix = uniqueRedisPrefix();
const clients: grpc.Client[] = [];
let child: ChildProcess;
// A pod of workers sells through LND (the dev backend serves one process only); this one speaks LND's proto.
let lnd: FakeLnd;
let ports: StartedPorts;
let logs: Record<string, unknown>[];

beforeAll(async () => {
  lnd = await startFakeLnd();
  const config = path.join(dir, 'plannt.yaml');
  writeFileSync(
    config,
    `listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0", http: "127.0.0.1:0" }
root_keys: [{ id: 7, key: "${ROOT_KEY.toString('hex')}" }]
current_key_id: 7
backend: { kind: lnd, lnd: { socket: "${lnd.socket}", cert_base64: "${lnd.certBase64}", macaroon_base64: "${Buffer.from(lnd.macaroonHex, 'hex').toString('base64')}" } }
spent_set: { kind: redis, redis: { url: "${REDIS_URL}", key_prefix: "${prefix}", command_timeout_ms: 2000 } }
routes:
  - { id: forecast, service: weather, price_sats: 10, path: { prefix: /v1/forecast } }
drain_seconds: 1
shutdown_grace_ms: 2000
workers: 2
`,
  );
  ({ child, logs, ports } = await serve(config));
});

afterAll(async () => {
  for (const c of clients) c.close();
  if (child.exitCode === null) child.kill('SIGKILL');
  await lnd?.stop();
  rmSync(dir, { recursive: true, force: true });
  await deleteRedisKeys(prefix);
});

/** A client on its own connection, as each Envoy worker thread has one. */
function connection(): grpc.Client {
  const client = new AuthorizationClient(`127.0.0.1:${ports.grpc_port}`, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
  });
  clients.push(client);
  return client;
}

/** Pays-and-checks on `count` fresh connections; resolves with how many were allowed. */
async function paidChecks(count: number): Promise<number> {
  const results = await Promise.all(
    Array.from({ length: count }, () =>
      check(connection(), {
        ...FORECAST,
        headers: { authorization: paidToken(KEYS).authorization },
        deadlineMs: 10_000,
      }),
    ),
  );
  return results.filter((r) => r.allowed).length;
}

const admin = async (p: string) => {
  const res = await fetch(`http://127.0.0.1:${ports.admin_port}${p}`);
  return { status: res.status, text: await res.text() };
};

const allowsByWorker = () => {
  const pids = new Map<unknown, number>();
  for (const l of logs)
    if (l.msg === 'check' && l.decision === 'allow') pids.set(l.pid, (pids.get(l.pid) ?? 0) + 1);
  return pids;
};

const workerPids = () => logs.filter((l) => l.msg === 'worker started').map((l) => Number(l.pid));

describe('two workers behind one port', () => {
  it('serves checks from many connections on both workers', async () => {
    expect(await paidChecks(40)).toBe(40);
    expect(
      await waitFor(async () => [...allowsByWorker().values()].reduce((a, b) => a + b, 0) === 40, 5000),
    ).toBe(true);
    const perWorker = allowsByWorker();
    expect(perWorker.size).toBe(2);
    for (const n of perWorker.values()) expect(n).toBeGreaterThan(5);
  });

  it('shows on one /metrics the sum of every worker’s counts', async () => {
    const text = (await admin('/metrics')).text;
    expect(metricValue(text, 'plannt_checks_total', { decision: 'allow', reason: 'paid' })).toBe(40);
    expect(metricValue(text, 'plannt_dependency_ready', { dependency: 'spent_set:redis' })).toBe(1);
  });

  it('is ready, with the dependencies every worker reaches', async () => {
    const ready = await admin('/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text).dependencies).toEqual({
      'invoice_backend:lnd': true,
      'spent_set:redis': true,
    });
  });

  it('keeps the primary, which only supervises, well under a worker’s memory: it loads no app', () => {
    const rssKb = (pid: number | undefined) =>
      Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    for (const worker of workerPids()) expect(rssKb(child.pid)).toBeLessThan(0.8 * rssKb(worker));
  });
});

describe('SIGHUP', () => {
  it('reloads the configuration in every worker', async () => {
    const reloadedBy = () => new Set(logs.filter((l) => l.msg === 'config reloaded').map((l) => l.pid));
    expect(reloadedBy().size).toBe(0);
    child.kill('SIGHUP');
    expect(await waitFor(async () => reloadedBy().size === 2, 5000)).toBe(true);
    const text = (await admin('/metrics')).text;
    // One reload of the pod, though each worker applied it.
    expect(metricValue(text, 'plannt_config_reloads_total', { result: 'applied' })).toBe(1);
    expect((await admin('/readyz')).status).toBe(200);
  });
});

describe('a worker that dies', () => {
  it('is replaced, and checks are served throughout; what it counted stays on /metrics', async () => {
    const allowed = async () =>
      metricValue((await admin('/metrics')).text, 'plannt_checks_total', { decision: 'allow' });
    const before = await allowed();
    expect(before).toBeGreaterThan(0);
    const [victim, survivor] = workerPids();
    process.kill(Number(victim), 'SIGKILL');
    // Once the primary has seen the exit (a connection handed over in the instant before is lost, as with
    // any process killed mid-accept), the survivor takes every connection until the replacement is up.
    const noticed = () => logs.some((l) => l.msg === 'worker exited; replacing it' && l.pid === victim);
    expect(await waitFor(async () => noticed(), 5000)).toBe(true);
    // A counter that went down would read to Prometheus as a reset: rate() would count the survivor's whole
    // total again.
    expect(await allowed()).toBe(before);
    // A scrape while the replacement starts (forked 100 ms after the exit) still answers, with the counts of
    // the workers that serve.
    await sleep(300);
    const scrape = admin('/metrics');
    expect(await paidChecks(10)).toBe(10);
    expect((await scrape).status).toBe(200);
    expect(await waitFor(async () => workerPids().length === 3, 15_000)).toBe(true);
    const replacement = workerPids()[2];
    expect([victim, survivor]).not.toContain(replacement);
    await waitFor(async () => (await paidChecks(10)) === 10 && allowsByWorker().has(replacement), 10_000);
    expect(allowsByWorker().has(replacement)).toBe(true);
    expect((await admin('/readyz')).status).toBe(200);
  });
});

describe('SIGTERM', () => {
  it('fails readiness at once, drains the workers and exits 0', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await waitFor(async () => (await admin('/readyz')).status === 503, 2000, 20)).toBe(true);
    // Still answering during the drain window.
    expect(await paidChecks(2)).toBe(2);
    expect(await exited).toBe(0);
  });
});
