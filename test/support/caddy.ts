/**
 * A real Caddy run with the Caddyfile users get (deploy/caddy/Caddyfile): forward_auth to Plannt's HTTP port,
 * reverse_proxy to an upstream. Throwaway HOME/XDG dirs; stopped by its own PID.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { httpCall } from './http';
import { waitFor } from './plannt';

const CADDYFILE = path.join(__dirname, '../../deploy/caddy/Caddyfile');
const CADDY = process.env.CADDY_BIN ?? 'caddy';

export interface Caddy {
  url: string;
  stop(): Promise<void>;
}

async function startCaddy(planntAuthz: string, upstream: string): Promise<Caddy> {
  const version = spawnSync(CADDY, ['version'], { encoding: 'utf8', timeout: 10_000 });
  if (version.status !== 0) {
    throw new Error(
      `Caddy is required (${version.error?.message ?? version.stderr}). Install it: apt-get install -y caddy`,
    );
  }
  const port = await freePort();
  const home = mkdtempSync(path.join(tmpdir(), 'plannt-caddy-'));
  let log = '';
  const caddy: ChildProcess = spawn(CADDY, ['run', '--config', CADDYFILE, '--adapter', 'caddyfile'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      XDG_CONFIG_HOME: path.join(home, 'config'),
      XDG_DATA_HOME: path.join(home, 'data'),
      LISTEN: `:${port}`,
      BIND: '127.0.0.1',
      PLANNT_AUTHZ: planntAuthz,
      UPSTREAM: upstream,
    },
  });
  const collect = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-20_000);
  };
  caddy.stdout?.on('data', collect);
  caddy.stderr?.on('data', collect);
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (caddy.pid !== undefined && caddy.exitCode === null) {
      const exited = new Promise((resolve) => caddy.once('exit', resolve));
      caddy.kill('SIGTERM');
      const force = setTimeout(() => caddy.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(force);
    }
    rmSync(home, { recursive: true, force: true });
  };
  const up = await waitFor(async () => {
    if (caddy.exitCode !== null) return false;
    return httpCall(url, { path: '/', timeoutMs: 1000 }).then(
      () => true,
      () => false,
    );
  }, 15_000);
  if (!up) {
    await stop();
    throw new Error(`Caddy did not start (exit ${caddy.exitCode}):\n${log}`);
  }
  return { url, stop };
}

/** A request the API behind Caddy served. */
export interface ServedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

export interface ApiBehindCaddy extends Caddy {
  /** Every request the API served, in order: what got past Plannt. */
  served: ServedRequest[];
}

/**
 * An API behind the real Caddy, Plannt deciding on `planntAuthz` (host:port of its HTTP port). The API records
 * each request it serves and answers 200 with `answer`, or by default with the request echoed as JSON.
 */
export async function startApiBehindCaddy(
  planntAuthz: string,
  answer?: { contentType: string; body: string },
): Promise<ApiBehindCaddy> {
  const served: ServedRequest[] = [];
  const api = createServer((req, res) => {
    const request: ServedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers };
    served.push(request);
    req.resume();
    res.writeHead(200, { 'content-type': answer?.contentType ?? 'application/json', 'x-upstream': 'echo' });
    res.end(answer?.body ?? JSON.stringify(request));
  });
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
  const stopApi = async () => {
    const closed = new Promise<void>((resolve) => api.close(() => resolve()));
    api.closeAllConnections();
    await closed;
  };
  let caddy: Caddy;
  try {
    caddy = await startCaddy(planntAuthz, `127.0.0.1:${(api.address() as AddressInfo).port}`);
  } catch (err) {
    await stopApi();
    throw err;
  }
  return {
    url: caddy.url,
    served,
    async stop() {
      await caddy.stop();
      await stopApi();
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
