/**
 * The admin port: /metrics, /healthz (process alive), /readyz (dependencies reachable), and, only with the
 * dev backend, POST /dev/pay which returns an invoice's preimage as if it had been paid.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DevInvoiceBackend } from '../adapters/dev-invoices';
import type { Readiness } from './readiness';

const MAX_BODY_BYTES = 16 * 1024;

export interface AdminOptions {
  /** The Prometheus text: this process's registry, or with workers every worker's, aggregated. */
  metrics: { contentType: string; metrics(): Promise<string> };
  readiness: Pick<Readiness, 'status'>;
  isDraining: () => boolean;
  /** With workers: whether one is serving (a crashed one is being replaced). */
  isServing?: () => boolean;
  /** Present only when the dev backend is selected. */
  devBackend?: DevInvoiceBackend;
}

export interface AdminServer {
  port: number;
  close(): Promise<void>;
}

export async function startAdminServer(
  host: string,
  port: number,
  options: AdminOptions,
): Promise<AdminServer> {
  const server = createServer((req, res) => {
    route(req, res, options).catch(() => send(res, 500, { error: 'internal_error' }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function route(req: IncomingMessage, res: ServerResponse, options: AdminOptions): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && path === '/metrics') {
    // Gathered first: with workers it can fail (one does not answer), and then the answer is a 500.
    const text = await options.metrics.metrics();
    res.writeHead(200, { 'content-type': options.metrics.contentType });
    res.end(text);
    return;
  }
  if (req.method === 'GET' && path === '/healthz') return send(res, 200, { status: 'alive' });
  if (req.method === 'GET' && path === '/readyz') {
    // Dependency outages are reported, not enforced: the pod serves what needs no such dependency.
    const ready = !options.isDraining() && (options.isServing?.() ?? true);
    return send(res, ready ? 200 : 503, {
      status: ready ? 'ready' : 'not_ready',
      draining: options.isDraining(),
      dependencies: options.readiness.status(),
    });
  }
  if (req.method === 'POST' && path === '/dev/pay' && options.devBackend)
    return devPay(req, res, options.devBackend);
  send(res, 404, { error: 'not_found' });
}

async function devPay(req: IncomingMessage, res: ServerResponse, backend: DevInvoiceBackend): Promise<void> {
  const body = await readBody(req);
  if (body === undefined) return send(res, 413, { error: 'body_too_large' });
  let invoice: unknown;
  try {
    invoice = (JSON.parse(body) as { invoice?: unknown }).invoice;
  } catch {
    return send(res, 400, { error: 'bad_request', message: 'expected JSON {"invoice": "<bolt11>"}' });
  }
  const preimage = typeof invoice === 'string' ? backend.pay(invoice) : undefined;
  if (!preimage)
    return send(res, 404, { error: 'unknown_invoice', message: 'not an unexpired invoice of this server' });
  send(res, 200, { preimage: preimage.toString('hex') });
}

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        resolve(undefined);
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify(body)}\n`);
}
