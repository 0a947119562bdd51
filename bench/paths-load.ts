/**
 * Load generator for bench/paths.ts, bench/soak.ts and bench/redis-memory.ts, run in its own process and
 * driven over IPC. It sends Envoy-shaped CheckRequests of one kind, or a weighted mix:
 *   verify     a fresh single-use token minted with the server's root key (allowed once)
 *   bundle     the first use of a fresh 10-use token (the spent-set's Lua script instead of SET NX)
 *   pass       a fresh time pass (`plannt_uses=unlimited`, no rate bound: no Redis call at all)
 *   garbage    `L402 <random base64 of a macaroon's length>:<random hex>`: rejected at decoding
 *   forged     a well-formed token signed with another key: rejected after the HMAC chain (invalid_signature)
 *   challenge  no Authorization header: a 402 with a fresh invoice; source addresses rotate over a pool, as
 *              many agents' would (so per-client limits do not apply)
 * Batches either pre-build and pre-serialise every request (`count`, so client CPU is spent before the
 * clock starts) or build them on the fly (`durationMs`, for long soaks). Closed loop (C in flight) or open
 * loop at a fixed rate, latency from the scheduled send time (no coordinated omission).
 * `raw-invoices` instead measures the dev invoice backend's createInvoice alone, in this process.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { devInvoiceBackend } from '../src/adapters/dev-invoices';
import { AuthorizationClient } from '../src/envoy/protos';
import type { MintedTerms } from '../src/l402/caveats';
import { keyring } from '../src/l402/keys';
import { mintMacaroon } from '../src/l402/mint';
import {
  CHECK_PATH,
  deserializeCheckResponse,
  MAX_OPEN_LOOP_IN_FLIGHT,
  passThrough,
  serializeCheckRequest,
} from './check-codec';
import {
  BENCH_BUNDLE_ROUTE,
  BENCH_HOST,
  BENCH_LOCATION,
  BENCH_PASS_ROUTE,
  BENCH_PATH,
  BENCH_ROUTE,
  type TokenSpec,
} from './protocol';

export type RequestKind = 'verify' | 'bundle' | 'pass' | 'garbage' | 'forged' | 'challenge';

export interface PathsRun {
  type: 'run';
  target: string;
  mix: Partial<Record<RequestKind, number>>;
  tokens: TokenSpec;
  /** Pre-built batch of this many requests, or on-the-fly requests for this long. */
  count?: number;
  durationMs?: number;
  concurrency: number;
  ratePerSecond?: number;
  deadlineMs: number;
}

export interface RawInvoicesRun {
  type: 'raw-invoices';
  count: number;
  concurrency: number;
}

export type PathsLoadCommand = PathsRun | RawInvoicesRun | { type: 'exit' };

export interface PathsResult {
  requests: number;
  /** Outcome counts: 'allow', or the HTTP status of a denial ('402', '401', ...), or 'error <code>'. */
  outcomes: Record<string, number>;
  /** The first error message seen for each gRPC status code. */
  firstErrors?: Record<string, string>;
  elapsedMs: number;
  throughput: number;
  /** Microseconds. */
  latency: { p50: number; p90: number; p99: number; max: number };
  cpuUs: number;
  maxInFlight: number;
}

export type PathsLoadEvent =
  | { type: 'ready'; pid: number }
  | { type: 'result'; result: PathsResult }
  | { type: 'closed' }
  | { type: 'error'; message: string };

const SOURCE_POOL = 1000;

interface CheckResponse {
  status?: { code?: number };
  ok_response?: object;
  denied_response?: { status?: { code?: string | number } };
}

/** HTTP status names as proto-loader decodes the enum (enums: String). */
const STATUS_NAMES: Record<string, string> = {
  PaymentRequired: '402',
  Unauthorized: '401',
  Forbidden: '403',
  TooManyRequests: '429',
  ServiceUnavailable: '503',
};

function send(event: PathsLoadEvent): void {
  process.send?.(event);
}

function envoyRequest(authorization: string | undefined, source: string, path = BENCH_PATH): object {
  const id = randomUUID();
  return {
    attributes: {
      source: { address: { socket_address: { address: source, port_value: 51234 } } },
      destination: { address: { socket_address: { address: '10.1.0.2', port_value: 8443 } } },
      request: {
        time: { seconds: String(Math.floor(Date.now() / 1000)), nanos: 123_000_000 },
        http: {
          id,
          method: 'GET',
          headers: {
            ':authority': BENCH_HOST,
            ':method': 'GET',
            ':path': path,
            ':scheme': 'https',
            accept: 'application/json',
            'accept-encoding': 'gzip, deflate, br',
            ...(authorization && { authorization }),
            'user-agent': 'plannt-bench-agent/1.0 (+https://example.invalid)',
            'x-forwarded-for': source,
            'x-forwarded-proto': 'https',
            'x-request-id': id,
          },
          path,
          host: BENCH_HOST,
          scheme: 'https',
          protocol: 'HTTP/1.1',
        },
      },
      context_extensions: {},
    },
  };
}

function requestFactory(run: PathsRun): () => Buffer {
  const keys = keyring(
    [{ id: run.tokens.keyId, secret: Buffer.from(run.tokens.rootKeyHex, 'hex') }],
    run.tokens.keyId,
  );
  const stranger = keyring([{ id: run.tokens.keyId, secret: randomBytes(32) }], run.tokens.keyId);
  const terms: MintedTerms = {
    service: BENCH_ROUTE.service,
    routeId: BENCH_ROUTE.id,
    priceSats: BENCH_ROUTE.priceSats,
    validUntil: run.tokens.validUntil,
  };
  const bundleTerms = { ...terms, routeId: BENCH_BUNDLE_ROUTE.id, uses: BENCH_BUNDLE_ROUTE.uses };
  const passTerms = { ...terms, routeId: BENCH_PASS_ROUTE.id, uses: BENCH_PASS_ROUTE.uses };
  const token = (k: typeof keys, t: typeof terms = terms) => {
    const preimage = randomBytes(32);
    const hash = createHash('sha256').update(preimage).digest();
    return `L402 ${mintMacaroon(hash, t, k, BENCH_LOCATION).toString('base64')}:${preimage.toString('hex')}`;
  };
  const macaroonLength = mintMacaroon(randomBytes(32), terms, keys, BENCH_LOCATION).length;
  const kinds = Object.entries(run.mix).filter(([, w]) => (w ?? 0) > 0) as [RequestKind, number][];
  const total = kinds.reduce((s, [, w]) => s + w, 0);
  let n = 0;
  return () => {
    let pick = Math.random() * total;
    let kind: RequestKind = 'verify';
    for (const [k, w] of kinds) {
      kind = k;
      pick -= w;
      if (pick < 0) break;
    }
    n = (n + 1) % SOURCE_POOL;
    const source = kind === 'challenge' ? `10.9.${n >> 8}.${n & 255}` : '10.1.2.3';
    if (kind === 'bundle')
      return serializeCheckRequest(
        envoyRequest(
          token(keys, bundleTerms),
          source,
          `${BENCH_BUNDLE_ROUTE.pathPrefix}forecast?city=lisbon`,
        ),
      );
    if (kind === 'pass')
      return serializeCheckRequest(
        envoyRequest(token(keys, passTerms), source, `${BENCH_PASS_ROUTE.pathPrefix}forecast?city=lisbon`),
      );
    const authorization =
      kind === 'verify'
        ? token(keys)
        : kind === 'forged'
          ? token(stranger)
          : kind === 'garbage'
            ? `L402 ${randomBytes(macaroonLength).toString('base64')}:${randomBytes(32).toString('hex')}`
            : undefined;
    return serializeCheckRequest(envoyRequest(authorization, source));
  };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? 0;
}

function summarize(
  latencies: number[],
  outcomes: Record<string, number>,
  started: bigint,
  cpu0: NodeJS.CpuUsage,
) {
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  const sorted = Float64Array.from(latencies).sort();
  const cpu = process.cpuUsage(cpu0);
  return {
    requests: latencies.length,
    outcomes,
    elapsedMs,
    throughput: latencies.length / (elapsedMs / 1000),
    latency: {
      p50: percentile(sorted, 0.5),
      p90: percentile(sorted, 0.9),
      p99: percentile(sorted, 0.99),
      max: sorted[sorted.length - 1] ?? 0,
    },
    cpuUs: cpu.user + cpu.system,
  };
}

let client: grpc.Client | undefined;
let clientTarget = '';

async function connect(target: string): Promise<grpc.Client> {
  if (!client || clientTarget !== target) {
    client?.close();
    // One HTTP/2 connection, as one Envoy worker thread keeps to its ext_authz cluster.
    client = new AuthorizationClient(target, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
    });
    clientTarget = target;
  }
  const c = client;
  await new Promise<void>((resolve, reject) =>
    c.waitForReady(Date.now() + 5000, (err) => (err ? reject(err) : resolve())),
  );
  return c;
}

async function run(cmd: PathsRun): Promise<PathsResult> {
  const c = await connect(cmd.target);
  const make = requestFactory(cmd);
  const prebuilt = cmd.count !== undefined ? Array.from({ length: cmd.count }, make) : undefined;
  const endAt = cmd.durationMs !== undefined ? performance.now() + cmd.durationMs : Number.POSITIVE_INFINITY;
  const latencies: number[] = [];
  const outcomes: Record<string, number> = {};
  const firstErrors: Record<string, string> = {};
  let issued = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const more = () => (prebuilt ? issued < prebuilt.length : performance.now() < endAt);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();

  await new Promise<void>((resolve) => {
    let finishedIssuing = false;
    const maybeDone = () => {
      if (finishedIssuing && inFlight === 0) resolve();
    };
    const call = (bytes: Buffer, startedNs: bigint, next: () => void) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      c.makeUnaryRequest<Buffer, CheckResponse>(
        CHECK_PATH,
        passThrough,
        deserializeCheckResponse as (bytes: Buffer) => CheckResponse,
        bytes,
        { deadline: Date.now() + cmd.deadlineMs },
        (err, res) => {
          latencies.push(Number(process.hrtime.bigint() - startedNs) / 1000);
          inFlight--;
          let key: string;
          if (err || !res) {
            key = `error ${err?.code ?? '?'}`;
            firstErrors[key] ??= err ? `${grpc.status[err.code]}: ${err.details}` : 'empty response';
          } else if (res.ok_response) key = 'allow';
          else {
            const code = res.denied_response?.status?.code;
            key = typeof code === 'number' ? String(code) : (STATUS_NAMES[code ?? ''] ?? String(code));
          }
          outcomes[key] = (outcomes[key] ?? 0) + 1;
          next();
          maybeDone();
        },
      );
    };
    const nextBytes = (): Buffer => {
      issued++;
      return prebuilt ? (prebuilt[issued - 1] as Buffer) : make();
    };

    if (cmd.ratePerSecond === undefined) {
      const issue = () => {
        if (!more()) {
          finishedIssuing = true;
          return;
        }
        call(nextBytes(), process.hrtime.bigint(), issue);
      };
      for (let k = 0; k < cmd.concurrency; k++) issue();
      if (inFlight === 0) {
        finishedIssuing = true;
        maybeDone();
      }
    } else {
      const intervalNs = 1e9 / cmd.ratePerSecond;
      let scheduled = 0;
      const tick = () => {
        const due = Math.floor(Number(process.hrtime.bigint() - t0) / intervalNs) + 1;
        while (scheduled < due && more() && inFlight < MAX_OPEN_LOOP_IN_FLIGHT) {
          call(nextBytes(), t0 + BigInt(Math.round(scheduled * intervalNs)), () => {});
          scheduled++;
        }
        if (more()) setTimeout(tick, 1);
        else {
          finishedIssuing = true;
          maybeDone();
        }
      };
      tick();
    }
  });
  return {
    ...summarize(latencies, outcomes, t0, cpu0),
    ...(Object.keys(firstErrors).length > 0 && { firstErrors }),
    maxInFlight,
  };
}

/** The dev backend's createInvoice alone: what a challenge costs before Plannt adds anything. */
async function rawInvoices(cmd: RawInvoicesRun): Promise<PathsResult> {
  const backend = devInvoiceBackend();
  const latencies: number[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let next = 0;
  const worker = async () => {
    while (next < cmd.count) {
      next++;
      const started = process.hrtime.bigint();
      await backend.createInvoice(
        BENCH_ROUTE.priceSats,
        `${BENCH_ROUTE.service}: ${BENCH_ROUTE.id}`,
        600,
        1000,
      );
      latencies.push(Number(process.hrtime.bigint() - started) / 1000);
    }
  };
  await Promise.all(Array.from({ length: cmd.concurrency }, worker));
  return { ...summarize(latencies, { invoice: latencies.length }, t0, cpu0), maxInFlight: cmd.concurrency };
}

process.on('message', (cmd: PathsLoadCommand) => {
  const handle = async () => {
    if (cmd.type === 'run') send({ type: 'result', result: await run(cmd) });
    else if (cmd.type === 'raw-invoices') send({ type: 'result', result: await rawInvoices(cmd) });
    else {
      client?.close();
      process.send?.({ type: 'closed' } satisfies PathsLoadEvent, undefined, {}, () => process.exit(0));
    }
  };
  handle().catch((err: unknown) => {
    send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  });
});

process.on('disconnect', () => process.exit(0));
send({ type: 'ready', pid: process.pid });
