/**
 * The load generator, meant to run in its own process (forked by verify-vs-allow-all.ts, driven over IPC).
 *
 * `prepare` mints `count` single-use L402 tokens with the given root key (random 32-byte preimage,
 * payment hash = sha256(preimage), mintMacaroon with the bench route's terms), wraps each in an Envoy-like
 * CheckRequest and serialises it once, so the timed loop spends no client CPU on protobuf encoding.
 * `run` sends them as unary Check calls with grpc-js: closed loop with `concurrency` calls in flight, or
 * open loop at a fixed rate. Each call's latency is taken with process.hrtime.bigint(); the result (throughput,
 * p50/p90/p99/max, allow/deny/error counts, the client's own CPU use) goes back to the parent as JSON.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { AuthorizationClient } from '../src/envoy/protos';
import {
  CHECK_PATH,
  deserializeCheckResponse,
  MAX_OPEN_LOOP_IN_FLIGHT,
  passThrough,
  serializeCheckRequest,
} from './check-codec';
import { envoyCheckRequest, paidCredentialMinter } from './envoy-request';
import type { LoadCommand, LoadEvent, LoadResult, PrepareLoad, RunLoad } from './protocol';

/** How many allowed responses get their payment-hash header compared with the token's. */
const HASH_CHECK_SAMPLE = 500;

/** The fields of a decoded CheckResponse (keepCase) the load generator reads. */
interface CheckResponse {
  status?: { code?: number; message?: string };
  ok_response?: { headers?: { header?: { key?: string; value?: string } }[] };
  denied_response?: { status?: { code?: string | number }; body?: string };
}

interface Prepared {
  bytes: Buffer[];
  paymentHashes: string[];
}

let prepared: Prepared | undefined;
let client: grpc.Client | undefined;
let clientTarget = '';

function send(event: LoadEvent): void {
  process.send?.(event);
}

function prepare(cmd: PrepareLoad): void {
  const started = performance.now();
  const mint = paidCredentialMinter(cmd.tokens);
  const nowSeconds = Math.floor(Date.now() / 1000);
  const bytes: Buffer[] = new Array(cmd.count);
  const paymentHashes: string[] = new Array(cmd.count);
  let total = 0;
  for (let i = 0; i < cmd.count; i++) {
    const { authorization, paymentHashHex } = mint();
    const encoded = serializeCheckRequest(
      envoyCheckRequest({ authorization, requestId: randomUUID(), nowSeconds }),
    );
    bytes[i] = encoded;
    paymentHashes[i] = paymentHashHex;
    total += encoded.length;
  }
  prepared = { bytes, paymentHashes };
  send({
    type: 'prepared',
    count: cmd.count,
    mintMs: performance.now() - started,
    bytesPerRequest: cmd.count ? total / cmd.count : 0,
  });
}

function clientFor(target: string): grpc.Client {
  if (client && clientTarget === target) return client;
  client?.close();
  // One HTTP/2 connection, as one Envoy worker thread keeps to its ext_authz cluster.
  client = new AuthorizationClient(target, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
  });
  clientTarget = target;
  return client;
}

function waitForReady(c: grpc.Client): Promise<void> {
  return new Promise((resolve, reject) =>
    c.waitForReady(Date.now() + 5000, (err) => (err ? reject(err) : resolve())),
  );
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[rank] ?? 0;
}

async function run(cmd: RunLoad): Promise<LoadResult> {
  if (!prepared) throw new Error('run before prepare');
  const { bytes, paymentHashes } = prepared;
  prepared = undefined; // single-use tokens: a batch is never sent twice
  const n = bytes.length;
  const c = clientFor(cmd.target);
  await waitForReady(c);

  const latencyUs = new Float64Array(n);
  let allowed = 0;
  let denied = 0;
  let errors = 0;
  let hashMismatches = 0;
  let hashChecked = 0;
  let firstDeny: string | undefined;
  let firstError: string | undefined;
  let completed = 0;
  let inFlight = 0;
  let maxInFlight = 0;

  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const t0 = process.hrtime.bigint();

  await new Promise<void>((resolve) => {
    if (n === 0) resolve();
    const call = (i: number, startedNs: bigint, onDone: () => void) => {
      inFlight++;
      if (inFlight > maxInFlight) maxInFlight = inFlight;
      c.makeUnaryRequest<Buffer, CheckResponse>(
        CHECK_PATH,
        passThrough,
        deserializeCheckResponse as (bytes: Buffer) => CheckResponse,
        bytes[i] as Buffer,
        { deadline: Date.now() + cmd.deadlineMs },
        (err, res) => {
          latencyUs[i] = Number(process.hrtime.bigint() - startedNs) / 1000;
          inFlight--;
          if (err || !res) {
            errors++;
            firstError ??= err ? `${grpc.status[err.code] ?? err.code}: ${err.details}` : 'empty response';
          } else if (res.status?.code === 0 && res.ok_response) {
            allowed++;
            if (cmd.checkPaymentHash && hashChecked < HASH_CHECK_SAMPLE) {
              hashChecked++;
              const header = res.ok_response.headers?.find((h) => h.header?.key === 'x-plannt-payment-hash');
              if (header?.header?.value !== paymentHashes[i]) hashMismatches++;
            }
          } else {
            denied++;
            firstDeny ??= `grpc status ${res.status?.code}: ${res.denied_response?.body ?? '(no body)'}`;
          }
          completed++;
          if (completed === n) resolve();
          else onDone();
        },
      );
    };

    if (cmd.ratePerSecond === undefined) {
      // Closed loop: each completion starts the next call.
      let next = 0;
      const issue = () => {
        const i = next++;
        if (i < n) call(i, process.hrtime.bigint(), issue);
      };
      for (let k = 0; k < Math.min(cmd.concurrency, n); k++) issue();
    } else {
      // Open loop: call i is due at t0 + i/rate; its latency counts from then, so a stalled server is not
      // hidden by the generator waiting for it (no coordinated omission).
      const intervalNs = 1e9 / cmd.ratePerSecond;
      let next = 0;
      const tick = () => {
        const elapsedNs = Number(process.hrtime.bigint() - t0);
        const due = Math.min(n, Math.floor(elapsedNs / intervalNs) + 1);
        while (next < due && inFlight < MAX_OPEN_LOOP_IN_FLIGHT) {
          const i = next++;
          call(i, t0 + BigInt(Math.round(i * intervalNs)), () => {});
        }
        if (next < n) setTimeout(tick, 1);
      };
      tick();
    }
  });

  const elapsedNs = Number(process.hrtime.bigint() - t0);
  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0);
  const sorted = latencyUs.slice().sort();
  let sum = 0;
  for (const v of latencyUs) sum += v;
  return {
    requests: n,
    allowed,
    denied,
    errors,
    hashMismatches,
    ...(firstDeny !== undefined && { firstDeny }),
    ...(firstError !== undefined && { firstError }),
    elapsedMs: elapsedNs / 1e6,
    throughput: n / (elapsedNs / 1e9),
    latency: {
      p50: percentile(sorted, 0.5),
      p90: percentile(sorted, 0.9),
      p99: percentile(sorted, 0.99),
      max: sorted[sorted.length - 1] ?? 0,
      mean: n ? sum / n : 0,
    },
    cpuUs: cpu.user + cpu.system,
    elu: elu.utilization,
    ...(cmd.ratePerSecond !== undefined && { ratePerSecond: cmd.ratePerSecond }),
    maxInFlight,
  };
}

process.on('message', (cmd: LoadCommand) => {
  const handle = async () => {
    if (cmd.type === 'prepare') prepare(cmd);
    else if (cmd.type === 'run') send({ type: 'result', result: await run(cmd) });
    else if (cmd.type === 'close') {
      client?.close();
      client = undefined;
      send({ type: 'closed' });
    } else {
      client?.close();
      // Exit once the parent has the answer; a normal exit lets --cpu-prof write its profile.
      process.send?.({ type: 'closed' } satisfies LoadEvent, undefined, {}, () => process.exit(0));
    }
  };
  handle().catch((err: unknown) => {
    send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  });
});

process.on('disconnect', () => process.exit(0));
send({ type: 'ready', pid: process.pid });
