/**
 * The drain window, on the real CLI process: after SIGTERM readiness fails at once (/readyz, gRPC health)
 * while both ports keep answering for drain_seconds, so load balancers move away before any call is refused;
 * HTTP answers close their keep-alive connections politely (Connection: close); then the process exits.
 * Waits are bounded by conditions, not by assumptions about how fast an idle machine is.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { authorizationClient, check, healthCheck, healthClient } from '../support/envoy-client';
import { waitFor } from '../support/plannt';
import { startedPorts } from '../support/plannt-process';

const CLI = path.join(__dirname, '../../dist/src/cli.js');
const DRAIN_SECONDS = 4;
const dir = mkdtempSync(path.join(tmpdir(), 'plannt-drain-'));
const clients: grpc.Client[] = [];
let child: ChildProcess | undefined;

afterAll(() => {
  for (const c of clients) c.close();
  if (child && child.exitCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface Ports {
  grpc: number;
  http: number;
  admin: number;
}

async function startCli(): Promise<Ports> {
  const config = path.join(dir, 'plannt.yaml');
  writeFileSync(
    config,
    `listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0", http: "127.0.0.1:0" }
root_keys: [{ id: 7, key: "${randomBytes(32).toString('hex')}" }]
current_key_id: 7
backend: { kind: dev }
spent_set: { kind: memory }
routes:
  - { id: forecast, service: weather, price_sats: 10, path: { prefix: /v1/forecast } }
  - { id: status, service: public, price_sats: 0, path: { exact: /status } }
drain_seconds: ${DRAIN_SECONDS}
shutdown_grace_ms: 2000
`,
  );
  const proc = spawn(process.execPath, [CLI, 'serve', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = proc;
  const started = await startedPorts(proc, 20_000);
  return { grpc: started.grpc_port, http: started.http_port, admin: started.admin_port };
}

interface Reply {
  status: number;
  connection: string | undefined;
  /** The local port of the socket used: equal ports mean one kept-alive connection. */
  localPort: number | undefined;
}

function get(port: number, agent: Agent, pathname: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path: pathname,
      agent,
      headers: { host: 'api.example.com' },
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          connection: res.headers.connection,
          localPort: req.socket?.localPort,
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

describe('SIGTERM opens a drain window', () => {
  it('fails readiness first, keeps both ports answering, closes keep-alive politely, then exits', async () => {
    const ports = await startCli();
    const grpcClient = authorizationClient(ports.grpc);
    const health = healthClient(ports.grpc);
    clients.push(grpcClient, health);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const before = await get(ports.http, agent, '/status');
    expect(before).toMatchObject({ status: 200, connection: 'keep-alive' });
    expect(await healthCheck(health)).toBe('SERVING');

    const exited = new Promise<number | null>((resolve) => child?.once('exit', (code) => resolve(code)));
    const termAt = Date.now();
    child?.kill('SIGTERM');

    // Readiness fails first ...
    const notReady = () =>
      fetch(`http://127.0.0.1:${ports.admin}/readyz`, { signal: AbortSignal.timeout(2000) }).then(
        (res) => res.status === 503,
        () => false,
      );
    expect(await waitFor(notReady, 5000)).toBe(true);
    expect(await healthCheck(health)).toBe('NOT_SERVING');

    // ... while the ports still answer: a new gRPC connection gets a decision, not UNAVAILABLE,
    const late = authorizationClient(ports.grpc);
    clients.push(late);
    const decision = await check(late, { method: 'GET', host: 'api.example.com', path: '/v1/forecast' });
    expect(decision.status).toBe(402);
    expect((await check(grpcClient, { path: '/status' })).allowed).toBe(true);

    // and the kept-alive HTTP connection is answered once more, with Connection: close.
    const during = await get(ports.http, agent, '/status');
    expect(during).toEqual({ status: 200, connection: 'close', localPort: before.localPort });
    // A new connection is answered too, and closed after its answer.
    expect(await get(ports.http, agent, '/status')).toMatchObject({ status: 200, connection: 'close' });
    const drainedFor = Date.now() - termAt;
    expect(drainedFor).toBeLessThan(DRAIN_SECONDS * 1000);

    // Then the process stops, no sooner than the drain window.
    expect(await exited).toBe(0);
    expect(Date.now() - termAt).toBeGreaterThanOrEqual(DRAIN_SECONDS * 1000);
    agent.destroy();
  }, 60_000);
});
