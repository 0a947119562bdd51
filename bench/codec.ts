/**
 * The Check codec alone, generic against lean, on a paid request as Envoy sends it (14 headers, an L402
 * Authorization) and its paid answer: µs per check and garbage collections per 10,000 checks.
 *   generic — protobufjs decode + toObject (proto-loader) and fromCheckRequest; toCheckResponse + encode
 *   lean    — readCheckRequest + toEnvoyRequest; encodeCheckResponse
 * Times are CPU time, the fastest of the rounds; collections (v8.GCProfiler) are summed over the rounds.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/codec.js [iterations] [rounds]
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { GCProfiler } from 'node:v8';
import { render } from '../src/core/response';
import { AuthorizationService } from '../src/envoy/protos';
import { MalformedCheckRequest, readCheckRequest } from '../src/server/check-request-codec';
import { encodeCheckResponse } from '../src/server/check-response-codec';
import {
  type CheckRequest,
  fromCheckRequest,
  toCheckResponse,
  toEnvoyRequest,
} from '../src/server/envoy-grpc';

const iterations = Number(process.argv[2] ?? 50_000);
const rounds = Number(process.argv[3] ?? 5);
const check = AuthorizationService.Check;
if (!check) throw new Error('Check missing');

const id = randomUUID();
const source = '203.0.113.7';
const bytes = check.requestSerialize({
  attributes: {
    source: { address: { socket_address: { address: source, port_value: 51234 } } },
    destination: { address: { socket_address: { address: '10.1.0.2', port_value: 8443 } } },
    request: {
      time: { seconds: String(Math.floor(Date.now() / 1000)), nanos: 123_000_000 },
      http: {
        id,
        method: 'GET',
        headers: {
          ':authority': 'api.example.com',
          ':method': 'GET',
          ':path': '/v1/forecast?city=lisbon',
          ':scheme': 'https',
          accept: 'application/json',
          'accept-encoding': 'gzip, deflate, br',
          authorization: `L402 ${randomBytes(230).toString('base64')}:${randomBytes(32).toString('hex')}`,
          'content-type': 'application/json',
          'user-agent': 'plannt-bench-agent/1.0 (+https://example.invalid)',
          'x-forwarded-for': source,
          'x-forwarded-proto': 'https',
          'x-request-id': id,
          'x-envoy-expected-rq-timeout-ms': '1000',
          'x-b3-traceid': randomBytes(8).toString('hex'),
        },
        path: '/v1/forecast?city=lisbon',
        host: 'api.example.com',
        scheme: 'https',
        protocol: 'HTTP/1.1',
      },
    },
    context_extensions: {},
  },
});
const answer = render(
  {
    kind: 'allow',
    reason: 'paid',
    route: {
      id: 'forecast',
      service: 'weather',
      priceSats: 10,
      tokenLifetimeSeconds: 3600,
      invoiceExpirySeconds: 600,
    },
    paymentHash: randomBytes(32),
    amountSats: 10,
    tokenKind: 'single',
  },
  { stripAuthorization: true },
);
const deadline = Date.now() + 1000;

const variants: [string, () => unknown, () => unknown][] = [
  [
    'generic',
    () => fromCheckRequest(check.requestDeserialize(bytes) as CheckRequest, deadline, 1),
    () => check.responseSerialize(toCheckResponse(answer)),
  ],
  [
    'lean',
    () => {
      const fields = readCheckRequest(bytes);
      if (fields instanceof MalformedCheckRequest) throw fields;
      return toEnvoyRequest(fields, deadline, 1);
    },
    () => encodeCheckResponse(answer),
  ],
];

const timed = (run: () => unknown): number => {
  for (let i = 0; i < iterations / 10; i++) run();
  // CPU time, not wall time: the figures stay honest on a shared machine.
  const start = process.cpuUsage();
  for (let i = 0; i < iterations; i++) run();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / iterations;
};

const best = new Map<string, [decodeUs: number, encodeUs: number]>();
/** Collections and their pause, summed over the rounds. */
const gc = new Map<string, [count: number, us: number]>();
for (let round = 0; round < rounds; round++) {
  for (const [name, decode, encode] of round % 2 ? [...variants].reverse() : variants) {
    // GCProfiler reports synchronously, so every collection is charged to the variant that caused it.
    const profiler = new GCProfiler();
    profiler.start();
    const decodeUs = timed(decode);
    const encodeUs = timed(encode);
    const collections = profiler.stop()?.statistics ?? [];
    const [d, e] = best.get(name) ?? [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY];
    best.set(name, [Math.min(d, decodeUs), Math.min(e, encodeUs)]);
    const [count, us] = gc.get(name) ?? [0, 0];
    gc.set(name, [count + collections.length, us + collections.reduce((sum, c) => sum + c.cost, 0)]);
  }
}
// Each loop runs 1.1 × iterations (warm-up included); a check is one decode and one encode.
const checks = iterations * 1.1 * rounds;
process.stdout.write(`CheckRequest ${bytes.length} bytes; ${iterations} checks × ${rounds} rounds\n`);
for (const [name, [d, e]] of best) {
  const [count, us] = gc.get(name) ?? [0, 0];
  process.stdout.write(
    `${name.padEnd(8)} decode ${d.toFixed(2)} µs  encode ${e.toFixed(2)} µs  ` +
      `GC: ${((count * 10_000) / checks).toFixed(1)} collections per 10k checks, ${(us / checks).toFixed(2)} µs per check\n`,
  );
}
