/**
 * The challenge path with a real LND, against a raw createInvoice loop on the same node, in one run.
 *
 *   npm run build && node dist/bench/challenge-vs-raw-lnd.js [options]
 *
 * Brings a regtest network up (test/regtest; its start-up time is reported) unless --dir names one that
 * `npm run regtest:up` left running. Plannt runs in this process (startApp, lnd backend with alice's
 * invoice-only macaroon, log level silent) and is called over loopback gRPC exactly as Envoy calls it;
 * every call must be answered 402 with an invoice. The raw call is ln-service's createInvoice with the same
 * macaroon, amount, memo and expiry: what Plannt itself asks LND for a challenge, minus Plannt.
 *
 * Sequential (one call in flight): raw, Plannt and a free-route check (the gRPC round trip alone, no LND)
 * are interleaved call by call, rotating the order, so the machine's drift hits all three alike. Then
 * closed loops of C calls in flight, raw and Plannt alternating by phase. Plannt's own decision time comes
 * from its plannt_check_duration_seconds histogram.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import type * as grpc from '@grpc/grpc-js';
import { authenticatedLndGrpc, createInvoice } from 'ln-service';
import { type App, startApp } from '../src/app';
import { parseConfig } from '../src/config';
import { createLogger } from '../src/logger';
import {
  isNetworkUp,
  lndCredentials,
  loadNetwork,
  type RegtestNetwork,
  startNetwork,
  stopNetwork,
} from '../test/regtest/network';
import { authorizationClient, check } from '../test/support/envoy-client';

const USAGE = `usage: node dist/bench/challenge-vs-raw-lnd.js [options]
  --requests N      sequential calls of each kind, interleaved (default 500)
  --warmup N        sequential warm-up calls of each kind (default 50)
  --concurrency C   calls in flight for the closed-loop phases; 0 skips them (default 8)
  --loop-requests N calls per closed-loop phase (default 400)
  --rounds R        closed-loop rounds of (raw, plannt), order alternating (default 2)
  --dir DIR         use the running network in DIR (npm run regtest:up) instead of starting one`;

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '500' },
    warmup: { type: 'string', default: '50' },
    concurrency: { type: 'string', default: '8' },
    'loop-requests': { type: 'string', default: '400' },
    rounds: { type: 'string', default: '2' },
    dir: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}

const PRICE = 10;

interface Stats {
  n: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
}

function stats(latenciesMs: readonly number[]): Stats {
  const sorted = [...latenciesMs].sort((x, y) => x - y);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  const mean = sorted.reduce((s, v) => s + v, 0) / sorted.length;
  return { n: sorted.length, mean, p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

const row = (name: string, s: Stats, extra = '') =>
  `  ${name.padEnd(26)} ${String(s.n).padStart(5)} ${s.mean.toFixed(2).padStart(8)} ${s.p50.toFixed(2).padStart(8)} ` +
  `${s.p90.toFixed(2).padStart(8)} ${s.p99.toFixed(2).padStart(8)}${extra}`;
const HEADER = `  ${''.padEnd(26)} ${'calls'.padStart(5)} ${'mean ms'.padStart(8)} ${'p50'.padStart(8)} ${'p90'.padStart(8)} ${'p99'.padStart(8)}`;
const pct = (x: number, base: number) => `${x >= base ? '+' : ''}${((x / base - 1) * 100).toFixed(1)}%`;

/** Keeps `concurrency` calls in flight until `n` are done; each call's latency and the wall time. */
async function closedLoop(n: number, concurrency: number, call: () => Promise<void>) {
  const latencies: number[] = [];
  let started = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (started < n) {
      started++;
      const t = performance.now();
      await call();
      latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { latencies, seconds: (performance.now() - t0) / 1000 };
}

/** Mean decision time (ms) of Plannt's challenge path so far, from its own histogram. */
async function challengeDecision(app: App): Promise<{ sum: number; count: number }> {
  const text = await app.metrics.registry.metrics();
  const read = (suffix: string) =>
    Number(
      new RegExp(`^plannt_check_duration_seconds_${suffix}\\{path="challenge"\\} (\\S+)$`, 'm').exec(
        text,
      )?.[1] ?? 0,
    );
  return { sum: read('sum') * 1000, count: read('count') };
}

async function main(): Promise<void> {
  const requests = Number(args.requests);
  const warmup = Number(args.warmup);
  const concurrency = Number(args.concurrency);
  const loopRequests = Number(args['loop-requests']);
  const rounds = Number(args.rounds);

  let net: RegtestNetwork;
  let owned = false;
  if (args.dir) {
    const found = loadNetwork(args.dir);
    if (!found || !(await isNetworkUp(found))) throw new Error(`no running network in ${args.dir}`);
    net = found;
  } else {
    const t0 = performance.now();
    net = await startNetwork({ log: (line) => console.log(`  regtest: ${line}`) });
    owned = true;
    console.log(
      `network up in ${((performance.now() - t0) / 1000).toFixed(1)} s (btcd, 2 lnd, 120 blocks, channel)\n`,
    );
  }

  const app = await startApp(
    parseConfig(
      {
        listen: { grpc: '127.0.0.1:0', admin: '127.0.0.1:0', http: '127.0.0.1:0' },
        drain_seconds: 0,
        root_keys: [{ id: 1, key: randomBytes(32).toString('hex') }],
        current_key_id: 1,
        backend: {
          kind: 'lnd',
          timeout_ms: 5000,
          lnd: {
            socket: net.alice.socket,
            cert_file: net.alice.certPath,
            macaroon_file: net.alice.invoiceMacaroonPath,
          },
        },
        spent_set: { kind: 'memory' },
        // One client address sends every call: the per-client challenge limit is off, the global cap stays.
        challenge_limits: { per_client_per_second: 0 },
        routes: [
          { id: 'forecast', service: 'weather', price_sats: PRICE, path: { prefix: '/v1/forecast' } },
          { id: 'status', service: 'weather', price_sats: 0, path: { exact: '/status' } },
        ],
        log_level: 'silent',
      },
      {},
    ),
    { env: { NODE_ENV: 'production' }, logger: createLogger('silent') },
  );
  const client: grpc.Client = authorizationClient(app.grpcPort);
  const { lnd } = authenticatedLndGrpc(lndCredentials(net.alice, net.alice.invoiceMacaroonPath));

  const calls = {
    raw: async () => {
      await createInvoice({
        lnd,
        tokens: PRICE,
        description: 'weather: forecast',
        expires_at: new Date(Date.now() + 600_000).toISOString(),
      });
    },
    plannt: async () => {
      const res = await check(client, { method: 'GET', path: '/v1/forecast', deadlineMs: 10_000 });
      if (res.status !== 402 || typeof res.body.invoice !== 'string') {
        throw new Error(`expected a 402 challenge, got ${res.status} ${JSON.stringify(res.body)}`);
      }
    },
    free: async () => {
      const res = await check(client, { method: 'GET', path: '/status', deadlineMs: 10_000 });
      if (!res.allowed) throw new Error(`expected the free route to be allowed, got ${res.status}`);
    },
  };
  type Kind = keyof typeof calls;
  const kinds: Kind[] = ['raw', 'plannt', 'free'];

  try {
    const sequential = async (n: number) => {
      const out: Record<Kind, number[]> = { raw: [], plannt: [], free: [] };
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < kinds.length; j++) {
          const kind = kinds[(i + j) % kinds.length] as Kind;
          const t = performance.now();
          await calls[kind]();
          out[kind].push(performance.now() - t);
        }
      }
      return out;
    };
    await sequential(warmup);
    const before = await challengeDecision(app);
    const seq = await sequential(requests);
    const after = await challengeDecision(app);
    const decisionMs = (after.sum - before.sum) / (after.count - before.count);

    const raw = stats(seq.raw);
    const plannt = stats(seq.plannt);
    const free = stats(seq.free);
    console.log('sequential, one call in flight, interleaved call by call');
    console.log(HEADER);
    console.log(row('raw createInvoice', raw));
    console.log(
      row(
        'plannt challenge (402)',
        plannt,
        `   ${pct(plannt.mean, raw.mean)} mean, ${pct(plannt.p50, raw.p50)} p50`,
      ),
    );
    console.log(row('plannt free route (no LND)', free, '   the gRPC round trip alone'));
    console.log(
      `  Plannt adds ${(plannt.mean - raw.mean).toFixed(2)} ms to the mean (${pct(plannt.mean, raw.mean)}; target <= +10%: ` +
        `${plannt.mean <= raw.mean * 1.1 ? 'met' : 'MISSED'}). Inside Plannt a challenge decision takes ${decisionMs.toFixed(2)} ms ` +
        `(${pct(decisionMs, raw.mean)} vs raw); the rest is the Envoy → Plannt gRPC hop.`,
    );

    if (concurrency > 0) {
      console.log(`\nclosed loop, ${concurrency} calls in flight, phases alternating`);
      const loops: Record<'raw' | 'plannt', { latencies: number[]; seconds: number }> = {
        raw: { latencies: [], seconds: 0 },
        plannt: { latencies: [], seconds: 0 },
      };
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 ? (['plannt', 'raw'] as const) : (['raw', 'plannt'] as const);
        for (const kind of order) {
          await closedLoop(warmup, concurrency, calls[kind]);
          const { latencies, seconds } = await closedLoop(loopRequests, concurrency, calls[kind]);
          loops[kind].latencies.push(...latencies);
          loops[kind].seconds += seconds;
        }
      }
      console.log(`${HEADER}    inv/s`);
      const rate = (k: 'raw' | 'plannt') => loops[k].latencies.length / loops[k].seconds;
      const r = stats(loops.raw.latencies);
      const p = stats(loops.plannt.latencies);
      console.log(row('raw createInvoice', r, ` ${rate('raw').toFixed(0).padStart(8)}`));
      console.log(row('plannt challenge (402)', p, ` ${rate('plannt').toFixed(0).padStart(8)}`));
      console.log(
        `  Plannt: ${pct(p.mean, r.mean)} mean latency, ${pct(p.p50, r.p50)} p50, throughput ratio ${(rate('plannt') / rate('raw')).toFixed(3)}`,
      );
    }
  } finally {
    client.close();
    for (const c of Object.values(lnd)) (c as { close?: () => void }).close?.();
    await app.stop();
    if (owned) await stopNetwork(net);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
