/**
 * Messages exchanged over IPC between the bench parent, the server hosts and the load generator,
 * and the fixed shape of the benchmark's requests (route, host, path) shared by all of them.
 */

/** The priced route every bench request hits. Plannt's config and the minted caveats both use it. */
export const BENCH_ROUTE = {
  id: 'bench.forecast',
  service: 'bench',
  priceSats: 10,
  pathPrefix: '/v1/bench/',
} as const;

/** The same service sold as 10-use bundles (verify = the Lua script) and as passes (verify = no Redis call). */
export const BENCH_BUNDLE_ROUTE = {
  id: 'bench.bundle',
  service: 'bench',
  priceSats: 10,
  pathPrefix: '/v1/bundle/',
  uses: 10,
} as const;
export const BENCH_PASS_ROUTE = {
  id: 'bench.pass',
  service: 'bench',
  priceSats: 10,
  pathPrefix: '/v1/pass/',
  uses: 'unlimited',
} as const;

/** A free route (price 0): the decision without verification, for the hot-path bench's "free" row. */
export const BENCH_FREE_ROUTE = {
  id: 'bench.free',
  service: 'bench',
  priceSats: 0,
  pathPrefix: '/v1/free/',
} as const;
export const BENCH_FREE_PATH = '/v1/free/status';

export const BENCH_HOST = 'api.bench.example';
export const BENCH_PATH = '/v1/bench/forecast?city=lisbon&days=3';
export const BENCH_LOCATION = 'plannt';
export const BENCH_KEY_ID = 1;

export type ServerKind = 'plannt' | 'allow-all' | 'http2-allow-all';

/** Parent → server host: what to start. */
export interface StartServer {
  type: 'start';
  kind: ServerKind;
  /** Plannt only. */
  logLevel?: 'silent' | 'info';
  /** Plannt's spent-set; 'redis' (the default) needs redisUrl and keyPrefix. */
  spentSet?: 'redis' | 'memory';
  redisUrl?: string;
  keyPrefix?: string;
  rootKeyHex?: string;
}

export type ServerCommand = StartServer | { type: 'stats' } | { type: 'stop' };

export interface ServerStats {
  /** process.cpuUsage(), microseconds. */
  cpuUserUs: number;
  cpuSystemUs: number;
  /** performance.eventLoopUtilization() raw counters, milliseconds. */
  eluIdleMs: number;
  eluActiveMs: number;
  rssBytes: number;
  /** Garbage collection since start (perf_hooks 'gc' entries): total pause, milliseconds. */
  gcMs: number;
  /** The longest single pause since the previous stats request, milliseconds. */
  gcMaxPauseMs: number;
  /** Plannt only: plannt_paid_requests_total summed over services. */
  paidRequests?: number;
}

export type ServerEvent =
  | { type: 'ready'; port: number; pid: number }
  | { type: 'stats'; stats: ServerStats }
  | { type: 'stopped' }
  | { type: 'error'; message: string };

/** What a load run sends: tokens are minted in the load process with this key and these terms. */
export interface TokenSpec {
  rootKeyHex: string;
  keyId: number;
  /** Unix seconds written in the `<service>_valid_until` caveat. */
  validUntil: number;
}

export interface PrepareLoad {
  type: 'prepare';
  /** How many requests (each with its own freshly minted, single-use token) to build. */
  count: number;
  tokens: TokenSpec;
}

export interface RunLoad {
  type: 'run';
  target: string;
  /** Closed loop: keep this many calls in flight. Ignored when ratePerSecond is set. */
  concurrency: number;
  /** Open loop: send at this fixed rate; latency counts from each call's scheduled time. */
  ratePerSecond?: number;
  /** Per-call gRPC deadline, as Envoy's ext_authz timeout would set it. */
  deadlineMs: number;
  /** Compare the x-plannt-payment-hash header of allowed responses with the token's (Plannt only). */
  checkPaymentHash: boolean;
}

export type LoadCommand = PrepareLoad | RunLoad | { type: 'close' } | { type: 'exit' };

export interface LoadResult {
  requests: number;
  allowed: number;
  denied: number;
  errors: number;
  /** Allowed responses whose payment-hash header did not match the token sent (checked on a sample). */
  hashMismatches: number;
  firstDeny?: string;
  firstError?: string;
  elapsedMs: number;
  throughput: number;
  /** Microseconds. */
  latency: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** The load process's own CPU and event-loop use during the run: shows whether the client was the limit. */
  cpuUs: number;
  elu: number;
  /** Open loop only: the rate asked for, and the peak number of calls in flight. */
  ratePerSecond?: number;
  maxInFlight: number;
}

export type LoadEvent =
  | { type: 'ready'; pid: number }
  | { type: 'prepared'; count: number; mintMs: number; bytesPerRequest: number }
  | { type: 'result'; result: LoadResult }
  | { type: 'closed' }
  | { type: 'error'; message: string };
