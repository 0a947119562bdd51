/**
 * Plannt's verify path against the allow-all ceiling, in one run, on the same stack.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/verify-vs-allow-all.js [options]
 *
 * Processes: this parent only orchestrates. Each server under test runs in its own forked child
 * (server-host.js): Plannt via startApp with the Redis spent-set, log level 'silent' (and, as a variant,
 * 'info' to /dev/null), and the allow-all server. The load generator (load.js) is one more forked child that
 * mints a fresh single-use token for every request and keeps C unary Check calls in flight.
 *
 * Phases: for each target a warm-up, then a measured batch of N requests; the order alternates between
 * rounds (V A, A V, ...) so drift cancels. Optionally an open-loop run of both at the same fixed rate (half the
 * verify peak) for latency below saturation. Every verify request must be allowed, Plannt's paid counter must
 * agree, and Redis must hold one key per verify request; otherwise the run fails. Keys are removed at the end.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Redis from 'ioredis';
import { Child, delay } from './ipc';
import { machineCpuMs } from './proc-cpu';
import {
  BENCH_KEY_ID,
  type LoadCommand,
  type LoadEvent,
  type LoadResult,
  type ServerCommand,
  type ServerEvent,
  type ServerKind,
  type ServerStats,
  type TokenSpec,
} from './protocol';
import { countKeys, deleteKeys } from './redis-keys';

const USAGE = `usage: node dist/bench/verify-vs-allow-all.js [options]
  --requests N      measured calls per phase (default 15000)
  --warmup N        warm-up calls before each measured phase (default 2000)
  --concurrency C   calls in flight, closed loop (default 64)
  --rounds R        rounds of (verify, allow-all), order alternating (default 2)
  --deadline-ms MS  per-call gRPC deadline (default 1000)
  --rate-seconds S  open-loop phase length at half the verify peak; 0 to skip (default 4)
  --skip-info       skip the 'info' logging variant
  --noisy-cores X   a measured batch during which other processes kept more than X cores busy is noisy:
                    it is flagged '!' and re-measured (see --retries) (default 0.25)
  --retries N       re-measurements of a noisy batch, keeping the quieter one (default 1)
  --quiet-wait-s S  before each measured batch, wait up to S seconds for the machine to be quiet (default 10)
  --budget-s S      no more quiet waits or retries once the run is this old (default 110)
  --redis-url URL   (default redis://127.0.0.1:6379)
  --cpu-prof DIR    write V8 CPU profiles of the silent Plannt server, the allow-all server, the load
                    generator to DIR/<name> (see profile-summary.js)
  --json FILE       also write every figure as JSON to FILE`;

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '15000' },
    warmup: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '2' },
    'deadline-ms': { type: 'string', default: '1000' },
    'rate-seconds': { type: 'string', default: '4' },
    'skip-info': { type: 'boolean', default: false },
    'noisy-cores': { type: 'string', default: '0.25' },
    retries: { type: 'string', default: '1' },
    'quiet-wait-s': { type: 'string', default: '10' },
    'budget-s': { type: 'string', default: '110' },
    'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
    'cpu-prof': { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

const int = (name: string, value: string | undefined, min: number): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}`);
  return n;
};
const REQUESTS = int('requests', args.requests, 1);
const WARMUP = int('warmup', args.warmup, 0);
const CONCURRENCY = int('concurrency', args.concurrency, 1);
const ROUNDS = int('rounds', args.rounds, 1);
const DEADLINE_MS = int('deadline-ms', args['deadline-ms'], 1);
const RATE_SECONDS = int('rate-seconds', args['rate-seconds'], 0);
const REDIS_URL = args['redis-url'] ?? 'redis://127.0.0.1:6379';
const NOISY_CORES = Number(args['noisy-cores']);
if (!(NOISY_CORES >= 0)) throw new Error('--noisy-cores must be a number >= 0');
const RETRIES = int('retries', args.retries, 0);
const QUIET_WAIT_MS = int('quiet-wait-s', args['quiet-wait-s'], 0) * 1000;
const BUDGET_MS = int('budget-s', args['budget-s'], 0) * 1000;
const STARTED = Date.now();
const overBudget = () => Date.now() - STARTED > BUDGET_MS;

type ServerPeer = Child<ServerCommand, ServerEvent>;
type LoadPeer = Child<LoadCommand, LoadEvent>;

async function startServer(
  name: string,
  cmd: Extract<ServerCommand, { type: 'start' }>,
  execArgv: string[] = [],
): Promise<{ peer: ServerPeer; target: string; pid: number }> {
  const peer: ServerPeer = new Child(name, 'server-host.js', execArgv);
  const ready = await peer.request(cmd, 'ready');
  return { peer, target: `127.0.0.1:${ready.port}`, pid: ready.pid };
}

async function stats(server: ServerPeer): Promise<ServerStats> {
  return (await server.request({ type: 'stats' }, 'stats')).stats;
}

// ---------------------------------------------------------------------------------------------------------
// Phases

interface Target {
  /** Short name used in phase labels and summaries. */
  short: string;
  name: string;
  kind: ServerKind;
  peer: ServerPeer;
  address: string;
}

interface PhaseResult {
  label: string;
  target: string;
  short: string;
  kind: ServerKind;
  result: LoadResult;
  /** Server process CPU (user + system) per measured check, microseconds. */
  serverCpuUsPerCheck: number;
  /** Server event-loop utilisation during the measured batch (1 = saturated). */
  serverElu: number;
  /** redis-server CPU (INFO cpu, all threads) per measured check, microseconds. */
  redisCpuUsPerCheck: number;
  /**
   * Cores busy with something other than the server, the load generator and Redis during the batch
   * (other people's jobs on a shared machine): a noise indicator, ideally ~0.
   */
  otherCores: number;
  mintMs: number;
  bytesPerRequest: number;
}

let verifyRequestsSent = 0;

function tokenSpec(rootKeyHex: string): TokenSpec {
  // The bench route uses the default token lifetime (3600 s).
  return { rootKeyHex, keyId: BENCH_KEY_ID, validUntil: Math.floor(Date.now() / 1000) + 3600 };
}

interface Snapshot {
  server: ServerStats;
  redisCpuUs: number;
  system: { busy: number; total: number };
}

async function snapshot(redis: Redis, target: Target): Promise<Snapshot> {
  const [server, redisCpu] = await Promise.all([stats(target.peer), redisCpuUs(redis)]);
  return { server, redisCpuUs: redisCpu, system: machineCpuMs() };
}

/** Mints and serialises `count` requests in the load process, then sends them; snapshots bracket the send. */
async function runBatch(
  redis: Redis,
  load: LoadPeer,
  target: Target,
  rootKeyHex: string,
  count: number,
  options: { ratePerSecond?: number; waitForQuiet: boolean },
): Promise<{
  result: LoadResult;
  mintMs: number;
  bytesPerRequest: number;
  before: Snapshot;
  after: Snapshot;
}> {
  const { ratePerSecond } = options;
  const prepared = await load.request({ type: 'prepare', count, tokens: tokenSpec(rootKeyHex) }, 'prepared');
  if (options.waitForQuiet) await waitForQuiet();
  const before = await snapshot(redis, target);
  if (target.kind === 'plannt') verifyRequestsSent += count;
  const { result } = await load.request(
    {
      type: 'run',
      target: target.address,
      concurrency: CONCURRENCY,
      deadlineMs: DEADLINE_MS,
      checkPaymentHash: target.kind === 'plannt',
      ...(ratePerSecond !== undefined && { ratePerSecond }),
    },
    'result',
  );
  const after = await snapshot(redis, target);
  assertClean(target, result);
  return { result, mintMs: prepared.mintMs, bytesPerRequest: prepared.bytesPerRequest, before, after };
}

function assertClean(target: Target, r: LoadResult): void {
  const problems: string[] = [];
  if (r.errors) problems.push(`${r.errors} gRPC errors (first: ${r.firstError})`);
  if (r.denied) problems.push(`${r.denied} denials (first: ${r.firstDeny})`);
  if (r.hashMismatches) problems.push(`${r.hashMismatches} allowed responses with the wrong payment hash`);
  if (r.allowed !== r.requests) problems.push(`${r.allowed} of ${r.requests} allowed`);
  if (problems.length) {
    throw new Error(`${target.name}: the numbers are meaningless, ${problems.join('; ')}`);
  }
}

/** redis-server's own CPU time so far, microseconds. */
async function redisCpuUs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return (field('used_cpu_sys') + field('used_cpu_user')) * 1e6;
}

/** Waits, up to --quiet-wait-s, for a one-second window in which the machine is (nearly) idle. */
async function waitForQuiet(): Promise<void> {
  const deadline = Date.now() + QUIET_WAIT_MS;
  while (Date.now() < deadline && !overBudget()) {
    const s0 = machineCpuMs();
    await delay(1000);
    const s1 = machineCpuMs();
    const cores = ((s1.busy - s0.busy) / (s1.total - s0.total)) * os.cpus().length;
    if (cores < NOISY_CORES / 2) return;
  }
}

async function measure(
  redis: Redis,
  load: LoadPeer,
  target: Target,
  rootKeyHex: string,
  label: string,
  options: { warmup: number; ratePerSecond?: number; count?: number },
): Promise<PhaseResult> {
  if (options.warmup > 0) {
    await runBatch(redis, load, target, rootKeyHex, options.warmup, { waitForQuiet: false });
  }
  const attempts: PhaseResult[] = [];
  for (let attempt = 0; attempt <= RETRIES; attempt++) {
    const phase = await measureOnce(redis, load, target, rootKeyHex, label, options);
    attempts.push(phase);
    const last = phase.otherCores <= NOISY_CORES || attempt === RETRIES || overBudget();
    process.stdout.write(`  ${row(phase)}${last ? '' : '   (noisy: re-measuring)'}\n`);
    if (last) break;
  }
  const chosen = attempts.reduce((a, b) => (b.otherCores < a.otherCores ? b : a));
  discarded.push(...attempts.filter((p) => p !== chosen));
  if (chosen !== attempts[attempts.length - 1]) {
    process.stdout.write(
      `  ${''.padEnd(COLUMNS[0][1])} (kept the first measurement: the retry was noisier)\n`,
    );
  }
  return chosen;
}

/** Measured batches that a quieter re-measurement replaced; kept for the JSON output only. */
const discarded: PhaseResult[] = [];

async function measureOnce(
  redis: Redis,
  load: LoadPeer,
  target: Target,
  rootKeyHex: string,
  label: string,
  options: { ratePerSecond?: number; count?: number },
): Promise<PhaseResult> {
  const { result, mintMs, bytesPerRequest, before, after } = await runBatch(
    redis,
    load,
    target,
    rootKeyHex,
    options.count ?? REQUESTS,
    {
      waitForQuiet: true,
      ...(options.ratePerSecond !== undefined && { ratePerSecond: options.ratePerSecond }),
    },
  );
  const b = before.server;
  const a = after.server;
  const cpuUs = a.cpuUserUs + a.cpuSystemUs - b.cpuUserUs - b.cpuSystemUs;
  const active = a.eluActiveMs - b.eluActiveMs;
  const idle = a.eluIdleMs - b.eluIdleMs;
  const redisUs = after.redisCpuUs - before.redisCpuUs;
  const wallMs = (after.system.total - before.system.total) / os.cpus().length;
  const ownMs = (cpuUs + result.cpuUs + redisUs) / 1000;
  const otherCores = Math.max(0, after.system.busy - before.system.busy - ownMs) / wallMs;
  return {
    label,
    target: target.name,
    short: target.short,
    kind: target.kind,
    result,
    serverCpuUsPerCheck: cpuUs / result.requests,
    serverElu: active / (active + idle),
    redisCpuUsPerCheck: redisUs / result.requests,
    otherCores,
    mintMs,
    bytesPerRequest,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Report

const COLUMNS = [
  ['phase', 20],
  ['checks/s', 9],
  ['p50 ms', 7],
  ['p90 ms', 7],
  ['p99 ms', 7],
  ['max ms', 7],
  ['allow', 7],
  ['deny', 5],
  ['err', 4],
  ['srv CPU µs/chk', 15],
  ['srv ELU', 8],
  ['load CPU', 9],
  ['redis µs/chk', 13],
  ['other cores', 12],
] as const;

const ms = (us: number) => (us / 1000).toFixed(2);
const pct = (x: number) => `${(x * 100).toFixed(0)}%`;

function header(): string {
  return COLUMNS.map(([name, width], i) => (i === 0 ? name.padEnd(width) : name.padStart(width))).join(' ');
}

function row(p: PhaseResult): string {
  const r = p.result;
  const cells = [
    p.otherCores > NOISY_CORES ? `${p.label} !` : p.label,
    r.throughput.toFixed(0),
    ms(r.latency.p50),
    ms(r.latency.p90),
    ms(r.latency.p99),
    ms(r.latency.max),
    String(r.allowed),
    String(r.denied),
    String(r.errors),
    p.serverCpuUsPerCheck.toFixed(1),
    pct(p.serverElu),
    pct(r.cpuUs / 1000 / r.elapsedMs),
    p.redisCpuUsPerCheck.toFixed(1),
    p.otherCores.toFixed(2),
  ];
  return cells
    .map((c, i) => (i === 0 ? c.padEnd(COLUMNS[0][1]) : c.padStart(COLUMNS[i]?.[1] ?? 0)))
    .join(' ');
}

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / (xs.length || 1);
}

interface Summary {
  throughput: number;
  p50Us: number;
  p99Us: number;
  cpuUsPerCheck: number;
  /** Server + load generator + Redis CPU per check: what a fully shared machine pays for one check. */
  totalCpuUsPerCheck: number;
}

function totalCpu(p: PhaseResult): number {
  return p.serverCpuUsPerCheck + p.result.cpuUs / p.result.requests + p.redisCpuUsPerCheck;
}

function summarize(phases: readonly PhaseResult[]): Summary {
  return {
    throughput: mean(phases.map((p) => p.result.throughput)),
    p50Us: mean(phases.map((p) => p.result.latency.p50)),
    p99Us: mean(phases.map((p) => p.result.latency.p99)),
    cpuUsPerCheck: mean(phases.map((p) => p.serverCpuUsPerCheck)),
    totalCpuUsPerCheck: mean(phases.map(totalCpu)),
  };
}

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect().catch((err: unknown) => {
    throw new Error(`Redis is not reachable at ${REDIS_URL}: ${String(err)}`);
  });
  const redisVersion = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown';
  const runId = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const keyPrefix = `plannt:bench:${runId}:`;
  const rootKeyHex = randomBytes(32).toString('hex');
  const cpus = os.cpus();
  const machine = {
    node: process.version,
    redis: redisVersion,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    platform: `${os.platform()} ${os.release()}`,
  };
  process.stdout.write(
    `plannt bench: verify path vs allow-all ceiling\n` +
      `  node ${machine.node}, redis ${machine.redis}, ${machine.cpus} × ${machine.cpuModel}\n` +
      `  ${REQUESTS} measured + ${WARMUP} warm-up calls per phase, ${CONCURRENCY} in flight, ${ROUNDS} rounds, ` +
      `deadline ${DEADLINE_MS} ms, redis key prefix ${keyPrefix}\n`,
  );

  const servers: ServerPeer[] = [];
  let load: LoadPeer | undefined;
  const phases: PhaseResult[] = [];
  const ratePhases: PhaseResult[] = [];
  let failure: unknown;
  try {
    const plannt = { type: 'start', kind: 'plannt', redisUrl: REDIS_URL, keyPrefix, rootKeyHex } as const;
    const profileDir = args['cpu-prof'];
    const profile = (name: string) =>
      profileDir ? ['--cpu-prof', '--cpu-prof-dir', path.join(profileDir, name)] : [];
    const verify = await startServer('plannt', { ...plannt, logLevel: 'silent' }, profile('plannt'));
    const allowAll = await startServer(
      'allow-all',
      { type: 'start', kind: 'allow-all' },
      profile('allow-all'),
    );
    servers.push(verify.peer, allowAll.peer);
    const v: Target = {
      short: 'verify',
      name: 'plannt verify',
      kind: 'plannt',
      peer: verify.peer,
      address: verify.target,
    };
    const a: Target = {
      short: 'allow-all',
      name: 'allow-all',
      kind: 'allow-all',
      peer: allowAll.peer,
      address: allowAll.target,
    };
    const inRounds = [v, a];
    const plannts = [v];
    let info: Target | undefined;
    if (!args['skip-info']) {
      const s = await startServer('plannt-info', { ...plannt, logLevel: 'info' });
      servers.push(s.peer);
      info = {
        short: 'verify info-log',
        name: 'plannt verify, info log',
        kind: 'plannt',
        peer: s.peer,
        address: s.target,
      };
      plannts.push(info);
    }

    load = new Child('load', 'load.js', profile('load'));
    const loadReady = await load.next('ready');
    process.stdout.write(
      `  pids: plannt ${verify.pid}, allow-all ${allowAll.pid}, load ${loadReady.pid}, bench ${process.pid}\n\n`,
    );
    process.stdout.write(`  ${header()}\n`);

    // Alternate the order between rounds (A B, B A, ...) so slow drift of the machine cancels out.
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 === 1 ? inRounds : [...inRounds].reverse();
      for (const t of order) {
        phases.push(await measure(redis, load, t, rootKeyHex, `${t.short} #${round}`, { warmup: WARMUP }));
      }
    }
    if (info) phases.push(await measure(redis, load, info, rootKeyHex, `${info.short}`, { warmup: WARMUP }));
    if (RATE_SECONDS > 0) {
      const peak = summarize(phases.filter((p) => p.short === 'verify')).throughput;
      const rate = Math.max(100, Math.round(peak / 2 / 100) * 100);
      for (const t of [v, a]) {
        const count = rate * RATE_SECONDS;
        const label = `${t.short} @${rate}/s`;
        ratePhases.push(
          await measure(redis, load, t, rootKeyHex, label, { warmup: 0, ratePerSecond: rate, count }),
        );
      }
    }

    // Every verify request was allowed (asserted per batch); Plannt's own counters and Redis must agree.
    await load.request({ type: 'close' }, 'closed');
    let paid = 0;
    for (const t of plannts) paid += (await stats(t.peer)).paidRequests ?? 0;
    if (paid !== verifyRequestsSent) {
      throw new Error(`plannt_paid_requests_total is ${paid}, expected ${verifyRequestsSent}`);
    }
    const { count, sample } = await countKeys(redis, keyPrefix);
    const ttl = sample ? await redis.pttl(sample) : -2;
    if (count !== verifyRequestsSent || ttl <= 0) {
      throw new Error(`Redis holds ${count} spent keys (ttl ${ttl} ms), expected ${verifyRequestsSent}`);
    }
    process.stdout.write(
      `\n  checks: ${verifyRequestsSent} verify calls, all allowed; plannt_paid_requests_total = ${paid}; ` +
        `Redis holds ${count} spent keys under ${keyPrefix} (sample PTTL ${ttl} ms)\n`,
    );
  } catch (err) {
    failure = err;
  } finally {
    await load?.stop({ type: 'exit' }, 'closed').catch(() => undefined);
    for (const s of servers) await s.stop({ type: 'stop' }, 'stopped').catch(() => undefined);
    const deleted = await deleteKeys(redis, keyPrefix).catch(() => -1);
    process.stdout.write(`  cleanup: deleted ${deleted} Redis keys under ${keyPrefix}\n`);
    await redis.quit().catch(() => redis.disconnect());
  }
  if (failure) throw failure;

  const verifyPhases = phases.filter((p) => p.short === 'verify');
  const allowPhases = phases.filter((p) => p.short === 'allow-all');
  const v = summarize(verifyPhases);
  const a = summarize(allowPhases);
  const ratio = v.throughput / a.throughput;
  const perRound = verifyPhases.map((p, i) => {
    const other = allowPhases[i];
    return other ? (p.result.throughput / other.result.throughput).toFixed(3) : '?';
  });
  const summaryRow = (name: string, x: Summary) =>
    `  ${name.padEnd(22)} ${x.throughput.toFixed(0).padStart(8)} ${ms(x.p50Us).padStart(8)} ${ms(x.p99Us).padStart(8)} ` +
    `${x.cpuUsPerCheck.toFixed(1).padStart(12)} ${x.totalCpuUsPerCheck.toFixed(1).padStart(16)}`;
  const lines = [
    '',
    `  mean of ${ROUNDS} rounds       checks/s   p50 ms   p99 ms  srv CPU µs/chk  all CPU µs/chk`,
    summaryRow('plannt verify (redis)', v),
    summaryRow('allow-all ceiling', a),
    '',
    `  throughput ratio verify/allow-all: ${ratio.toFixed(3)}  (target >= 0.85: ${ratio >= 0.85 ? 'met' : 'MISSED'}; ` +
      `per round ${perRound.join(', ')})`,
    `  p99 ratio verify/allow-all:        ${(v.p99Us / a.p99Us).toFixed(3)}  (>1 = verify slower)`,
    `  server CPU per check ratio:        ${(v.cpuUsPerCheck / a.cpuUsPerCheck).toFixed(3)}  ` +
      `(capacity ratio when the server is the bottleneck: ${(a.cpuUsPerCheck / v.cpuUsPerCheck).toFixed(3)})`,
    `  all-process CPU per check ratio:   ${(v.totalCpuUsPerCheck / a.totalCpuUsPerCheck).toFixed(3)}  ` +
      `(predicts the throughput ratio when every process shares the cores: ${(a.totalCpuUsPerCheck / v.totalCpuUsPerCheck).toFixed(3)})`,
  ];
  const quiet = (list: PhaseResult[]) => list.filter((p) => p.otherCores <= NOISY_CORES);
  const qv = quiet(verifyPhases);
  const qa = quiet(allowPhases);
  if (qv.length && qa.length && (qv.length < verifyPhases.length || qa.length < allowPhases.length)) {
    const x = summarize(qv);
    const y = summarize(qa);
    lines.push(
      `  quiet batches only (${qv.length} verify, ${qa.length} allow-all): throughput ratio ` +
        `${(x.throughput / y.throughput).toFixed(3)} (${x.throughput.toFixed(0)} / ${y.throughput.toFixed(0)} checks/s), ` +
        `server CPU per check ${x.cpuUsPerCheck.toFixed(1)} / ${y.cpuUsPerCheck.toFixed(1)} µs`,
    );
  }
  const info = phases.find((p) => p.short === 'verify info-log');
  if (info) {
    lines.push(
      `  info logging to /dev/null:         ${info.result.throughput.toFixed(0)} checks/s = ` +
        `${(info.result.throughput / v.throughput).toFixed(3)} × silent verify, ` +
        `+${(info.serverCpuUsPerCheck - v.cpuUsPerCheck).toFixed(1)} µs server CPU per check`,
    );
  }
  for (const p of ratePhases) {
    lines.push(
      `  open loop ${(p.otherCores > NOISY_CORES ? `${p.label} !` : p.label).padEnd(18)} p50 ${ms(p.result.latency.p50)} ms, p99 ${ms(p.result.latency.p99)} ms, ` +
        `max ${ms(p.result.latency.max)} ms (achieved ${p.result.throughput.toFixed(0)}/s)`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);

  if (args.json) {
    writeFileSync(
      args.json,
      `${JSON.stringify(
        {
          machine,
          settings: {
            requests: REQUESTS,
            warmup: WARMUP,
            concurrency: CONCURRENCY,
            rounds: ROUNDS,
            deadlineMs: DEADLINE_MS,
            rateSeconds: RATE_SECONDS,
          },
          phases,
          ratePhases,
          discarded,
          summary: { verify: v, allowAll: a, throughputRatio: ratio, p99Ratio: v.p99Us / a.p99Us },
        },
        null,
        2,
      )}\n`,
    );
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
